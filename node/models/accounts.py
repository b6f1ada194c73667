"""Tables for learner access and sign-in protection (migration 0013; docs/accounts.md).

- `learner_registration`: an online registration waiting for its identity to be checked. It is not an account:
  it holds no records and signs nobody in; deposits for the ID number go to the `learner` row only. It keeps the
  blind index of the number (never the number), the name the registrant typed (encrypted) and the password they
  chose, and becomes (or joins) the account when staff at an outlet check the ID card against it.
- `activation_code`: one-time codes an outlet hands over to activate an account or reset its password; only an
  HMAC of the code is stored.
- `sign_in_throttle`: failed sign-ins and activation attempts per account (or per unknown name), and lockouts,
  shared by every worker process. Its times are Unix seconds, so both databases compare them in SQL.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from node.models import _id, _ts
from node.models.types import BigId

__all__ = ["ActivationCode", "LearnerRegistration", "SignInThrottle"]


class LearnerRegistration(SQLModel, table=True):
    __tablename__ = "learner_registration"
    id: int | None = _id()
    reference_hash: str = Field(max_length=64, unique=True)  # SHA-256 of the reference the registrant was given
    id_type: str = Field(max_length=20)
    id_blind: str = Field(max_length=64, index=True)
    name_cipher: bytes = Field(sa_type=sa.LargeBinary)
    key_id: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)


class ActivationCode(SQLModel, table=True):
    __tablename__ = "activation_code"
    id: int | None = _id()
    learner_id: int = Field(foreign_key="learner.id", sa_type=BigId, index=True)
    code_hash: str = Field(max_length=64, unique=True)  # HMAC-SHA256 of the code (key derived from the token secret)
    purpose: str = Field(max_length=20)  # activation | reset
    issued_by: str = Field(max_length=100)  # the actor's name, as in the audit log
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    used_at: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    revoked_at: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class SignInThrottle(SQLModel, table=True):
    __tablename__ = "sign_in_throttle"
    key: str = Field(primary_key=True, max_length=80)  # "sign_in:learner:12", "activate:name:<hmac>"...
    failures: int = Field(default=0)
    window_start: int = Field(default=0, sa_type=sa.BigInteger)
    locked_until: int = Field(default=0, sa_type=sa.BigInteger)
    lockouts: int = Field(default=0)  # lockouts in a row: each one doubles the next
    updated_at: int = Field(default=0, sa_type=sa.BigInteger, index=True)
