"""Storing an uploaded evidence file under the node's evidence directory, with the configured limits."""

from __future__ import annotations

from pathlib import Path

from fastapi import UploadFile

from node.context import NodeContext
from node.errors import NotFound
from node.evidence.storage import StoredFile, evidence_path, store_stream
from node.models import EvidenceFile

__all__ = ["evidence_file_path", "store_upload"]


def store_upload(ctx: NodeContext, upload: UploadFile) -> StoredFile:
    """413 `payload_too_large` beyond `imports.max_evidence_bytes`; 415 `unsupported_media_type` unless the
    declared type is in `imports.evidence_types` and the file's magic bytes say the same."""
    return store_stream(
        upload.file,
        root=ctx.settings.evidence_dir,
        declared_type=upload.content_type,
        allowed_types=ctx.settings.imports.evidence_types,
        max_bytes=ctx.settings.imports.max_evidence_bytes,
    )


def evidence_file_path(ctx: NodeContext, row: EvidenceFile) -> Path:
    path = evidence_path(ctx.settings.evidence_dir, row.sha256)
    if not path.is_file():
        raise NotFound("the evidence file is missing from storage", code="evidence_missing")
    return path
