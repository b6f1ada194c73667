"""Storing an uploaded evidence file under the node's evidence directory (encrypted), with the configured limits,
and reading it back."""

from __future__ import annotations

from typing import BinaryIO

from fastapi import UploadFile

from node.context import NodeContext
from node.errors import NotFound
from node.evidence.storage import StoredFile, open_evidence, store_stream
from node.models import EvidenceFile
from node.security.filecrypt import file_cipher

__all__ = ["open_evidence_file", "store_upload"]


def store_upload(ctx: NodeContext, upload: UploadFile) -> StoredFile:
    """413 `payload_too_large` beyond `imports.max_evidence_bytes`; 415 `unsupported_media_type` unless the
    declared type is in `imports.evidence_types` and the file's magic bytes say the same."""
    return store_stream(
        upload.file,
        root=ctx.settings.evidence_dir,
        cipher=file_cipher(ctx),
        declared_type=upload.content_type,
        allowed_types=ctx.settings.imports.evidence_types,
        max_bytes=ctx.settings.imports.max_evidence_bytes,
    )


def open_evidence_file(ctx: NodeContext, row: EvidenceFile) -> BinaryIO:
    """The file's content as a stream (decrypted as it is read); 404 `evidence_missing` when it is gone."""
    stream = open_evidence(ctx.settings.evidence_dir, row.sha256, file_cipher(ctx))
    if stream is None:
        raise NotFound("the evidence file is missing from storage", code="evidence_missing")
    return stream
