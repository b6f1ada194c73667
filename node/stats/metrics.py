"""The metrics the counters keep, their dimensions and units: one place (docs/statistics.md)."""

from __future__ import annotations

import datetime as dt

__all__ = ["DUAL_CERT_MODES", "LEDGER_METRICS", "METRICS", "REPORT_TZ", "REVIEW_METRICS", "WAIT_BUCKETS", "local_day", "wait_bucket"]

# Every member region of the Yangtze Delta keeps China Standard Time: a day is counted in it, not in UTC.
REPORT_TZ = dt.timezone(dt.timedelta(hours=8), "CST")

# metric -> (dim1, dim2, dim3, what `amount` sums)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "accounts.opened": ("id_type", "", "", ""),
    "learners.active": ("", "", "", ""),  # distinct learners with a ledger event in the month (month rows only)
    "achievements.deposited": ("type", "source", "issuer", "credits"),
    "achievements.revoked": ("type", "source", "issuer", "credits"),
    "conversions.approved": ("programme", "rule", "target_kind", "credits"),
    "conversions.revoked": ("programme", "rule", "target_kind", ""),
    "dualcert.approved": ("mode", "rule", "target_kind", "credits"),  # 双证融通: rules with one of the four modes
    "transfers.in.requested": ("origin", "", "", ""),  # transfers verified (each with its records)
    "transfers.in.recognised": ("origin", "", "", "credits"),
    "transfers.in.rejected": ("origin", "", "", ""),
    "transfers.in.not_recognised": ("origin", "", "", ""),
    "transfers.out.released": ("destination", "", "", ""),  # records released to a destination
    "transfers.out.recognised": ("destination", "", "", ""),  # records the destination's receipt recognised
    "reviews.entered": ("queue", "stage", "", ""),
    "reviews.decided": ("queue", "stage", "decision", ""),
    "reviews.wait": ("queue", "stage", "bucket", "seconds"),
    "reviews.moved": ("queue", "stage", "direction", ""),  # re-routed between branches: "out" of, "in" to
}
REVIEW_METRICS = ("reviews.entered", "reviews.decided", "reviews.wait", "reviews.moved")
LEDGER_METRICS = tuple(m for m in METRICS if m not in REVIEW_METRICS)

DUAL_CERT_MODES = frozenset({"credit_recognition", "certificate_recognition", "course_restructuring",
                             "through_train"})

# upper bounds in days of the time-to-decision buckets; the last is open
WAIT_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("1d", 1), ("3d", 3), ("7d", 7), ("14d", 14), ("30d", 30), ("more", None),
)


def wait_bucket(seconds: int) -> str:
    days = seconds / 86400
    for name, bound in WAIT_BUCKETS:
        if bound is None or days <= bound:
            return name
    return WAIT_BUCKETS[-1][0]


def local_day(at: dt.datetime) -> dt.date:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(REPORT_TZ).date()
