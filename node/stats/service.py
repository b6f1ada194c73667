"""Reports built from the summary counters: the centre's (exact figures, any date range, day precision) and the
public one (whole months, small groups suppressed). Nothing here reads the ledger or the achievement table."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from node.errors import BadRequest
from node.models import LedgerHead, Organisation
from node.stats import repository as repo
from node.stats.counting import STATE
from node.stats.metrics import WAIT_BUCKETS

__all__ = ["EARLIEST", "SUPPRESSED", "Report", "Table", "centre_report", "check_range", "public_report"]

EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2099, 12, 31)
MAX_DAYS = 366 * 30
SUPPRESSED = "suppressed"  # a cell the public view does not show (below k, or it would let one recompute one)


@dataclass
class Table:
    key: str  # stats.table.<key>: its title
    columns: list[str]  # stats.col.<name>: the first `labels` columns are labels, the rest figures
    rows: list[list[Any]]
    total: list[Any] | None = None
    labels: int = 1
    chart: list[tuple[str, Any]] = field(default_factory=list)  # (label, value) pairs for a bar chart


@dataclass
class Report:
    start: dt.date
    end: dt.date
    tables: list[Table]
    counted_to: int  # ledger events counted (seq < counted_to)
    ledger_size: int
    counted_at: dt.datetime | None
    public: bool = False
    min_group: int | None = None

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)


def check_range(start: dt.date | None, end: dt.date | None, *, today: dt.date) -> tuple[dt.date, dt.date]:
    """The range asked for, defaulting to this year so far; 400 `invalid_range` when it is reversed, outside
    2000–2099 or longer than 30 years."""
    end = end or today
    start = start or end.replace(month=1, day=1)
    if start > end:
        raise BadRequest("'from' must not be after 'to'", code="invalid_range",
                         detail={"from": start.isoformat(), "to": end.isoformat()})
    if start < EARLIEST or end > LATEST:
        raise BadRequest("dates must lie between 2000-01-01 and 2099-12-31", code="invalid_range",
                         detail={"from": start.isoformat(), "to": end.isoformat()})
    if (end - start).days > MAX_DAYS:
        raise BadRequest("a range covers at most 30 years", code="invalid_range")
    return start, end


def _credits(thousandths: int) -> Decimal:
    """Thousandths as a Decimal without trailing zeros or an exponent (90, 2.5, 0.125)."""
    text = format((Decimal(thousandths) / 1000).quantize(Decimal("0.001")), "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _progress(session: Session) -> tuple[int, int, dt.datetime | None]:
    counted, at = repo.state_of(session, STATE)
    size = session.execute(sa.select(LedgerHead.size).where(LedgerHead.id == 1)).scalar() or 0
    return counted, size, at


def _sum(rows: list[Any], metric: str, dims: tuple[int, ...]) -> dict[tuple[str, ...], list[int]]:
    out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.metric != metric:
            continue
        key = tuple((r.dim1, r.dim2, r.dim3)[i] for i in dims)
        out[key][0] += r.count
        out[key][1] += r.amount
    return out


def _org_names(session: Session, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    return dict(session.execute(sa.select(Organisation.code, Organisation.name)
                                .where(Organisation.code.in_(sorted(codes)))).all())


def _month(day: dt.date) -> str:
    return day.strftime("%Y-%m")


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, m = [], start.replace(day=1)
    while m <= end:
        out.append(m)
        m = repo._next_month(m)
    return out


# -- the centre's report ---------------------------------------------------------------------------------------


def centre_report(session: Session, start: dt.date, end: dt.date) -> Report:
    rows = repo.range_rows(session, ["accounts.opened", "achievements.deposited", "achievements.revoked",
                                     "conversions.approved", "conversions.revoked", "dualcert.approved",
                                     "transfers.in.requested", "transfers.in.recognised", "transfers.in.rejected",
                                     "transfers.in.not_recognised", "transfers.out.released",
                                     "transfers.out.recognised", "reviews.entered", "reviews.decided",
                                     "reviews.wait", "reviews.moved"], start, end)
    tables = [
        _accounts(rows),
        _active(session, start, end),
        *_achievements(session, rows),
        _by_month(rows, start, end),
        _conversions(rows),
        _dualcert(rows),
        _transfers(rows),
        _reviews(session, rows, end),
    ]
    counted, size, at = _progress(session)
    return Report(start, end, tables, counted, size, at)


def _accounts(rows: list[Any]) -> Table:
    sums = _sum(rows, "accounts.opened", (0,))
    body = [[k[0] or "-", v[0]] for k, v in sorted(sums.items())]
    return Table("accounts", ["id_type", "opened"], body, ["total", sum(v[0] for v in sums.values())],
                 chart=[(r[0], r[1]) for r in body])


def _active(session: Session, start: dt.date, end: dt.date) -> Table:
    """Distinct active learners per month (a distinct count does not add up over months: no total)."""
    months = _months(start, end)
    rows = repo.month_rows(session, ["learners.active"], months[0], months[-1])
    by = {r.day: r.count for r in rows}
    body = [[_month(m), by.get(m, 0)] for m in months]
    return Table("active", ["month", "learners"], body, None, chart=[(r[0], r[1]) for r in body])


def _achievements(session: Session, rows: list[Any]) -> list[Table]:
    out = []
    for key, dim in (("by_type", 0), ("by_source", 1), ("by_institution", 2)):
        dep = _sum(rows, "achievements.deposited", (dim,))
        rev = _sum(rows, "achievements.revoked", (dim,))
        names = _org_names(session, {k[0] for k in dep} | {k[0] for k in rev}) if dim == 2 else {}
        body = []
        for k in sorted(set(dep) | set(rev)):
            label = k[0] or "-"
            cells = [label] + ([names.get(k[0], "")] if dim == 2 else [])
            body.append(cells + [dep[k][0], _credits(dep[k][1]), rev[k][0]])
        labels = 2 if dim == 2 else 1
        total = ["total"] + [""] * (labels - 1) + [sum(v[0] for v in dep.values()),
                                                   _credits(sum(v[1] for v in dep.values())),
                                                   sum(v[0] for v in rev.values())]
        cols = [("type", "source", "institution")[dim]] + (["name"] if dim == 2 else []) + [
            "deposited", "credits", "revoked"]
        out.append(Table(key, cols, body, total, labels=labels,
                         chart=[(r[0], r[labels]) for r in body]))
    return out


def _by_month(rows: list[Any], start: dt.date, end: dt.date) -> Table:
    per: dict[dt.date, list[int]] = {m: [0, 0] for m in _months(start, end)}
    for r in rows:
        if r.metric == "achievements.deposited":
            cell = per[r.day.replace(day=1)]
            cell[0] += r.count
            cell[1] += r.amount
    body = [[_month(m), v[0], _credits(v[1])] for m, v in sorted(per.items())]
    return Table("deposits_by_month", ["month", "deposited", "credits"], body,
                 ["total", sum(v[0] for v in per.values()), _credits(sum(v[1] for v in per.values()))],
                 chart=[(r[0], r[1]) for r in body])


def _conversions(rows: list[Any]) -> Table:
    ok = _sum(rows, "conversions.approved", (0, 1, 2))
    rev = _sum(rows, "conversions.revoked", (0, 1, 2))
    body = [[k[0] or "-", k[1] or "-", k[2] or "-", ok[k][0], _credits(ok[k][1]), rev[k][0]]
            for k in sorted(set(ok) | set(rev))]
    total = ["total", "", "", sum(v[0] for v in ok.values()), _credits(sum(v[1] for v in ok.values())),
             sum(v[0] for v in rev.values())]
    return Table("conversions", ["programme", "rule", "target_kind", "approved", "credits", "revoked"], body, total,
                 labels=3)


def _dualcert(rows: list[Any]) -> Table:
    ok = _sum(rows, "dualcert.approved", (0, 1, 2))
    body = [[k[0], k[1], k[2], v[0], _credits(v[1])] for k, v in sorted(ok.items())]
    total = ["total", "", "", sum(v[0] for v in ok.values()), _credits(sum(v[1] for v in ok.values()))]
    by_mode: dict[str, int] = defaultdict(int)
    for k, v in ok.items():
        by_mode[k[0]] += v[0]
    return Table("dualcert", ["mode", "rule", "target_kind", "approved", "credits"], body, total, labels=3,
                 chart=sorted(by_mode.items()))


_TRANSFER_COLS = (("transfers.in.requested", "in_requested"), ("transfers.in.recognised", "in_recognised"),
                  ("transfers.in.rejected", "in_rejected"), ("transfers.in.not_recognised", "in_not_recognised"),
                  ("transfers.out.released", "out_released"), ("transfers.out.recognised", "out_recognised"))


def _transfers(rows: list[Any]) -> Table:
    sums = {metric: _sum(rows, metric, (0,)) for metric, _ in _TRANSFER_COLS}
    regions = sorted({k[0] for s in sums.values() for k in s})
    body = [[r] + [sums[m][(r,)][0] if (r,) in sums[m] else 0 for m, _ in _TRANSFER_COLS] for r in regions]
    total = ["total"] + [sum(v[0] for v in sums[m].values()) for m, _ in _TRANSFER_COLS]
    return Table("transfers", ["region"] + [c for _, c in _TRANSFER_COLS], body, total)


def _reviews(session: Session, rows: list[Any], end: dt.date) -> Table:
    entered = _sum(rows, "reviews.entered", (0, 1))
    decided = _sum(rows, "reviews.decided", (0, 1, 2))
    waits = _sum(rows, "reviews.wait", (0, 1, 2))
    moved = _sum(rows, "reviews.moved", (0, 1, 2))
    # open at the end of the range: everything that entered the queue (or was moved into it) up to then, less
    # what was decided (or moved out)
    history = repo.range_rows(session, ["reviews.entered", "reviews.decided", "reviews.moved"], EARLIEST, end)
    ever_in = _sum(history, "reviews.entered", (0, 1))
    ever_out = _sum(history, "reviews.decided", (0, 1))
    ever_moved = _sum(history, "reviews.moved", (0, 1, 2))
    queues = sorted(set(entered) | {k[:2] for k in decided} | {k[:2] for k in waits} | set(ever_in)
                    | {k[:2] for k in moved} | {k[:2] for k in ever_moved})
    names = _org_names(session, {q[0] for q in queues})
    body = []
    for q in queues:
        timed = [(b, waits.get((*q, b), [0, 0])) for b, _ in WAIT_BUCKETS]
        n = sum(v[0] for _, v in timed)
        seconds = sum(v[1] for _, v in timed)
        mean = (Decimal(seconds) / n / 86400).quantize(Decimal("0.1")) if n else None
        median = None
        if n:
            seen = 0
            for b, v in timed:
                seen += v[0]
                if seen * 2 >= n:
                    median = b
                    break
        still_open = (ever_in.get(q, [0])[0] + ever_moved.get((*q, "in"), [0])[0] - ever_out.get(q, [0])[0]
                      - ever_moved.get((*q, "out"), [0])[0])
        body.append([q[0], names.get(q[0], ""), q[1], entered.get(q, [0])[0], decided.get((*q, "approve"), [0])[0],
                     decided.get((*q, "reject"), [0])[0], still_open, mean, median,
                     moved.get((*q, "in"), [0])[0], moved.get((*q, "out"), [0])[0]])
    return Table("reviews", ["queue", "name", "stage", "entered", "approved", "rejected", "open_at_end",
                             "mean_days", "median_within", "moved_in", "moved_out"], body, None, labels=3,
                 chart=[(f"{r[0]} {r[2]}", r[7] or 0) for r in body])


# -- the public report ------------------------------------------------------------------------------------------

# (table key, metric, dimension index, label column)
_PUBLIC = (
    ("accounts", "accounts.opened", None, None),
    ("by_type", "achievements.deposited", 0, "type"),
    ("by_source", "achievements.deposited", 1, "source"),
    ("by_institution", "achievements.deposited", 2, "institution"),
    ("conversions", "conversions.approved", 0, "programme"),
    ("dualcert", "dualcert.approved", 0, "mode"),
    ("transfers_in", "transfers.in.recognised", 0, "region"),
    ("transfers_out", "transfers.out.released", 0, "region"),
)


def suppress(matrix: dict[dt.date, dict[str, int]], k: int) -> tuple[dict[str, int | str], dict[dt.date, int | str],
                                                                         int | str]:
    """Publishable figures of a months × groups table of counts: per group over all the months, per month over
    all groups, and the grand total. In each month a group of 1…k-1 is suppressed; if that leaves exactly one
    suppressed group beside a published month total, the next smallest group is suppressed too (else the total
    gives it back); a month total of 1…k-1 suppresses the month. A group (or the total) over several months is
    shown only if none of its month cells is suppressed — so the difference of two ranges never isolates a
    suppressed cell either."""
    hidden_groups: set[str] = set()
    month_out: dict[dt.date, int | str] = {}
    total_hidden = False
    for month, cells in matrix.items():
        total = sum(cells.values())
        small = {g for g, n in cells.items() if 0 < n < k}
        if 0 < total < k:
            small = {g for g, n in cells.items() if n > 0}
            month_out[month] = SUPPRESSED
            total_hidden = True
        else:
            month_out[month] = total
            if len(small) == 1:
                others = sorted((n, g) for g, n in cells.items() if n > 0 and g not in small)
                if others:
                    small.add(others[0][1])
        hidden_groups |= small
    groups: dict[str, int | str] = {}
    for g in sorted({g for cells in matrix.values() for g, n in cells.items() if n > 0}):
        groups[g] = SUPPRESSED if g in hidden_groups else sum(cells.get(g, 0) for cells in matrix.values())
    grand: int | str = SUPPRESSED if total_hidden else sum(sum(c.values()) for c in matrix.values())
    return groups, month_out, grand


def public_report(session: Session, start: dt.date, end: dt.date, *, k: int) -> Report:
    """Whole months only (the range is widened to the months it touches), counts only."""
    first, last = start.replace(day=1), end.replace(day=1)
    months = _months(first, last)
    rows = repo.month_rows(session, sorted({m for _, m, _, _ in _PUBLIC}), first, last)
    tables: list[Table] = []
    for key, metric, dim, label in _PUBLIC:
        matrix: dict[dt.date, dict[str, int]] = {m: {} for m in months}
        for r in rows:
            if r.metric == metric:
                g = "" if dim is None else ((r.dim1, r.dim2, r.dim3)[dim] or "-")
                matrix[r.day][g] = matrix[r.day].get(g, 0) + r.count
        groups, per_month, grand = suppress(matrix, k)
        if dim is None:
            body = [[_month(m), per_month[m]] for m in months]
            tables.append(Table(key, ["month", "count"], body, ["total", grand],
                                chart=[(r[0], r[1]) for r in body if r[1] != SUPPRESSED]))
        else:
            body = [[g, v] for g, v in groups.items()]
            tables.append(Table(key, [label, "count"], body, ["total", grand],
                                chart=[(r[0], r[1]) for r in body if r[1] != SUPPRESSED]))
        if key == "by_type":  # deposits per month: the month totals of the same suppression
            body = [[_month(m), per_month[m]] for m in months]
            tables.append(Table("deposits_by_month", ["month", "count"], body, ["total", grand],
                                chart=[(r[0], r[1]) for r in body if r[1] != SUPPRESSED]))
    counted, size, at = _progress(session)
    return Report(first, repo._next_month(last) - dt.timedelta(days=1), tables, counted, size, at, public=True,
                  min_group=k)
