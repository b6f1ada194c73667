"""Content-addressed, encrypted file storage for evidence.

A file is identified by the SHA-256 of its content (what the API shows, so that a learner or reviewer can check
a download), and stored once however often it is uploaded, encrypted with the node's database key
(`node.security.filecrypt`) under a keyed name: `<evidence_dir>/<name[:2]>/<name>`, where `name` is an HMAC of
the SHA-256 — a listing of the directory (or a backup of it) neither shows the documents nor lets anyone check
whether a document they hold is stored. Uploads are streamed through the cipher into a temporary file in the same
directory tree (hashing and counting on the way, refusing beyond the size limit; the plaintext never touches the
disk), checked by their magic bytes, then renamed into place atomically, so a reader never sees a partial file.
A file written by a request whose transaction later rolls back stays on disk unreferenced: harmless, since the
next identical upload reuses it.

Files stored in clear by an earlier version (`<sha[:2]>/<sha>`) are still read (`open_evidence`), and
`encrypt_legacy` encrypts them in place of the clear copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from node.errors import PayloadTooLarge, UnsupportedMediaType
from node.security.filecrypt import FileCipher

__all__ = ["StoredFile", "encrypt_legacy", "evidence_path", "open_evidence", "sniff_type", "store_stream"]

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


def evidence_path(root: Path, sha256: str, cipher: FileCipher) -> Path:
    """Where the encrypted file of content `sha256` lives (its keyed name)."""
    if not _SHA.fullmatch(sha256):
        raise ValueError("not a SHA-256 hex digest")
    name = cipher.name_for(sha256)
    return root / name[:2] / name


def _legacy_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def open_evidence(root: Path, sha256: str, cipher: FileCipher) -> BinaryIO | None:
    """The file's plaintext as a stream (encrypted, or a clear file of an earlier version), or None."""
    path = evidence_path(root, sha256, cipher)
    if path.is_file():
        return cipher.open(path)
    legacy = _legacy_path(root, sha256)
    if legacy.is_file():
        return legacy.open("rb")
    return None


def encrypt_legacy(root: Path, cipher: FileCipher) -> int:
    """Encrypt every clear file of an earlier version under its keyed name, then delete the clear copy
    (idempotent, crash-safe: the clear copy goes only once the encrypted one is in place). The number done."""
    done = 0
    for legacy in sorted(root.glob("??/*")):
        if not (legacy.is_file() and _SHA.fullmatch(legacy.name) and legacy.parent.name == legacy.name[:2]):
            continue
        if FileCipher.key_id_of(legacy) is not None:
            continue  # an encrypted file under its keyed name (names have the same shape)
        target = evidence_path(root, legacy.name, cipher)
        if not target.exists():
            with legacy.open("rb") as src, cipher.create(target, tmp_dir=root / "tmp") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
        legacy.unlink()
        done += 1
    return done


def store_stream(
    stream: BinaryIO | Iterable[bytes],
    *,
    root: Path,
    cipher: FileCipher,
    declared_type: str | None,
    allowed_types: Iterable[str],
    max_bytes: int,
) -> StoredFile:
    """Store an upload by its SHA-256, encrypted: 413 beyond `max_bytes`, 415 unless both the declared type and
    the magic bytes name the same allowed type."""
    allowed = {normalise_type(t) for t in allowed_types}
    declared = normalise_type(declared_type)
    if declared not in allowed:
        raise UnsupportedMediaType(f"evidence must be one of: {', '.join(sorted(allowed))}",
                                   detail={"declared": declared or None})
    tmp_dir = root / "tmp"
    digest = hashlib.sha256()
    size = 0
    head = b""
    staged = tmp_dir / f"staged-{os.urandom(8).hex()}"
    try:
        with cipher.create(staged, tmp_dir=tmp_dir) as out:
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
        if size == 0:
            raise UnsupportedMediaType("the evidence file is empty", detail={"declared": declared})
        sniffed = sniff_type(head)
        if sniffed != declared:
            raise UnsupportedMediaType(
                "the file's content does not match its declared type",
                detail={"declared": declared, "detected": sniffed},
            )
        sha = digest.hexdigest()
        final = evidence_path(root, sha, cipher)
        if final.exists():
            staged.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)  # atomic within one file system
        return StoredFile(sha256=sha, size=size, content_type=declared, path=final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        raise
