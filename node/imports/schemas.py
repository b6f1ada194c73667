"""What the import endpoints return."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

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
    total_rows: int | None = Field(description="rows in the file: counted at upload (lines of a CSV or JSON Lines "
                                               "file, an XLSX sheet's declared dimension), an upper bound when "
                                               "records span lines or rows are blank; rows_read once the job is done")
    percent: float | None = Field(description="rows_read / total_rows × 100, one decimal; 100 when done")
    seconds_left: int | None = Field(default=None, description="estimated seconds until the file is read, at the "
                                     "rate so far; 0 when done, null while queued or failed")
    learners_created: int = Field(description="learner accounts this job opened")
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    report_url: str
