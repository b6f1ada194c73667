"""Content-addressed file storage for evidence.

A file lives at `<evidence_dir>/<sha[:2]>/<sha>`; identical uploads are stored once. Uploads are streamed to a
temporary file in the same directory tree (hashing and counting on the way, refusing beyond the size limit),
checked by their magic bytes, then renamed into place atomically, so a reader never sees a partial file.
A file written by a request whose transaction later rolls back stays on disk unreferenced: harmless, since the
next identical upload reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from node.errors import PayloadTooLarge, UnsupportedMediaType

__all__ = ["StoredFile", "evidence_path", "sniff_type", "store_stream"]

_CHUNK = 64 * 1024
_SHA = re.compile(r"[0-9a-f]{64}")
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf"}
# (content type, magic prefix at offset 0)
_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("application/pdf", b"%PDF-"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF87a"),
    ("image/gif", b"GIF89a"),
    ("image/tiff", b"II*\x00"),
    ("image/tiff", b"MM\x00*"),
)


def sniff_type(head: bytes) -> str | None:
    """The content type the first bytes of a file reveal, or None."""
    for content_type, magic in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def normalise_type(declared: str | None) -> str:
    base = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str
    path: Path


def evidence_path(root: Path, sha256: str) -> Path:
    if not _SHA.fullmatch(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return root / sha256[:2] / sha256


def store_stream(
    stream: BinaryIO | Iterable[bytes],
    *,
    root: Path,
    declared_type: str | None,
    allowed_types: Iterable[str],
    max_bytes: int,
) -> StoredFile:
    """Store an upload by its SHA-256: 413 beyond `max_bytes`, 415 unless both the declared type and the
    magic bytes name the same allowed type."""
    allowed = {normalise_type(t) for t in allowed_types}
    declared = normalise_type(declared_type)
    if declared not in allowed:
        raise UnsupportedMediaType(f"evidence must be one of: {', '.join(sorted(allowed))}",
                                   detail={"declared": declared or None})
    tmp_dir = root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            chunks = iter(lambda: stream.read(_CHUNK), b"") if hasattr(stream, "read") else iter(stream)
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"evidence files are limited to {max_bytes} bytes",
                                          detail={"max_bytes": max_bytes})
                if len(head) < 16:
                    head = (head + chunk)[:16]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise UnsupportedMediaType("the evidence file is empty", detail={"declared": declared})
        sniffed = sniff_type(head)
        if sniffed != declared:
            raise UnsupportedMediaType(
                "the file's content does not match its declared type",
                detail={"declared": declared, "detected": sniffed},
            )
        sha = digest.hexdigest()
        final = evidence_path(root, sha)
        if final.exists():
            tmp.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)  # atomic within one file system
        return StoredFile(sha256=sha, size=size, content_type=declared, path=final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
