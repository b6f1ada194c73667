"""What the import endpoints return."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

__all__ = ["ImportJobPublic"]


class ImportJobPublic(BaseModel):
    id: str
    institution_code: str
    filename: str
    format: str
    encoding: str | None
    status: str  # queued | running | done | failed
    rows_read: int
    deposited: int
    updated: int
    duplicates: int
    rejected: int
    rows_committed: int
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    report_url: str
