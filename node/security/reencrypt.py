"""Re-encrypting personal data under the current database key (`creditnode keys reencrypt`, docs/operations.md).

After a database-key rotation (a new `security.database_key` / `database_key_id`, the old key moved to
`security.retired_database_keys`) existing values stay readable with the retired key of their id. This module
rewrites them under the current key so the retired key can be removed.

Every encrypted store is a `Target`: it counts what is still under another key, and re-encrypts one batch in
the caller's transaction. The command commits each batch on its own, so an interrupted run keeps what it did and
a re-run continues with what is left (a value under the current key is never selected again). Values are
updated with a guard on their old key id, so a concurrent writer (the node keeps running) or a second run never
double-encrypts. `TARGETS` holds the learner's fields; other encrypted stores (e.g. upload and evidence files
encrypted with the same keys) add theirs with `register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from node.models import Learner, LearnerRegistration
from node.security.fields import FieldCipher

__all__ = ["TARGETS", "Target", "missing_keys", "register"]


@dataclass(frozen=True)
class Target:
    """One store of values encrypted with the database key.

    `stale(session, current_key_id)` → {key id: number of values under that (non-current) key};
    `batch(session, cipher, limit)` re-encrypts at most `limit` values still under another key, in the
    session's transaction (the caller commits), and returns how many it looked at (0: nothing left)."""

    name: str
    stale: Callable[[Session, str], dict[str, int]]
    batch: Callable[[Session, FieldCipher, int], int]


_learner = Learner.__table__


def _learner_stale(session: Session, current: str) -> dict[str, int]:
    c = _learner.c
    rows = session.execute(sa.select(c.key_id, sa.func.count()).where(c.key_id != current).group_by(c.key_id))
    return {key_id: count for key_id, count in rows}


def _learner_batch(session: Session, cipher: FieldCipher, limit: int) -> int:
    """The learner's ID number and name (`id_cipher`, `name_cipher`, one `key_id` for both)."""
    c = _learner.c
    stmt = (sa.select(c.id, c.key_id, c.id_cipher, c.name_cipher)
            .where(c.key_id != cipher.current_key_id).order_by(c.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # a second run takes other rows
    rows = session.execute(stmt).all()
    if rows:
        session.execute(
            sa.update(_learner)
            .where(c.id == sa.bindparam("_id"), c.key_id == sa.bindparam("_old"))
            .values(id_cipher=sa.bindparam("_idc"), name_cipher=sa.bindparam("_namec"),
                    key_id=cipher.current_key_id),
            [{"_id": r.id, "_old": r.key_id, "_idc": cipher.reencrypt(bytes(r.id_cipher), r.key_id),
              "_namec": cipher.reencrypt(bytes(r.name_cipher), r.key_id)} for r in rows],
        )
    return len(rows)


def _registration_stale(session: Session, current: str) -> dict[str, int]:
    c = _registration.c
    rows = session.execute(sa.select(c.key_id, sa.func.count()).where(c.key_id != current).group_by(c.key_id))
    return {key_id: count for key_id, count in rows}


def _registration_batch(session: Session, cipher: FieldCipher, limit: int) -> int:
    """The names given in online registrations awaiting verification (`name_cipher`)."""
    c = _registration.c
    stmt = (sa.select(c.id, c.key_id, c.name_cipher)
            .where(c.key_id != cipher.current_key_id).order_by(c.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.execute(stmt).all()
    if rows:
        session.execute(
            sa.update(_registration)
            .where(c.id == sa.bindparam("_id"), c.key_id == sa.bindparam("_old"))
            .values(name_cipher=sa.bindparam("_namec"), key_id=cipher.current_key_id),
            [{"_id": r.id, "_old": r.key_id, "_namec": cipher.reencrypt(bytes(r.name_cipher), r.key_id)}
             for r in rows],
        )
    return len(rows)


_registration = LearnerRegistration.__table__

TARGETS: list[Target] = [
    Target("learner ID numbers and names", _learner_stale, _learner_batch),
    Target("names in online registrations", _registration_stale, _registration_batch),
]


def register(target: Target) -> Target:
    """Add an encrypted store to what `creditnode keys reencrypt` rewrites."""
    TARGETS.append(target)
    return target


def missing_keys(stale: dict[str, dict[str, int]], cipher: FieldCipher) -> list[str]:
    """Key ids values are still written under that no configured key can read (the run must not start)."""
    return sorted({key_id for counts in stale.values() for key_id in counts} - cipher.key_ids)
