"""Tables for learner consents and cross-region transfers (migration 0008)."""

from __future__ import annotations

import datetime as dt  # noqa: F401

import sqlalchemy as sa  # noqa: F401
from sqlmodel import Field, SQLModel  # noqa: F401

from node.models import _id, _ts, utcnow  # noqa: F401  (defined before this module is imported)
from node.models.types import BigId, ExactDecimal  # noqa: F401

__all__: list[str] = []
