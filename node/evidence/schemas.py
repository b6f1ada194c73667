from __future__ import annotations

from pydantic import BaseModel

__all__ = ["EvidencePublic"]


class EvidencePublic(BaseModel):
    sha256: str
    size: int
    content_type: str
    original_name: str
