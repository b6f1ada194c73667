"""Conversion-window warnings (docs/engage.md): a notice to the learner `engage.window_notice_days` before a
deposited record stops being usable under a rule in force that it matches.

How the model expresses a window (node.rules.engine `_convertible_until`, the what-if's `expiring`): a source
condition "earned within N years" (`within_years`: usable until earned_on + N years), the rule's own end
(`effective_to`) and a certificate's validity (`expires_on`). The last is already noticed per certificate by
`engage.deadline_notices` (`certificate_expiring`), so this job covers the first two: per rule in force (the
newest version of each, institution rules merged with their guidance standard, as the engine applies them) and
per source condition, it finds the deposited records that satisfy the condition today and whose window closes
between today and the horizon, and that have not been converted under that rule already. The node does not
record which programme a learner follows, so a record is warned about for each rule it could serve — the
learner sees which (the notice names the rule).

Once per (record, rule, closing day): `notice.dedupe_key` `window:<achievement>:<rule>:<date>` with `ON CONFLICT
DO NOTHING`, whoever runs the job (it runs under the scheduler lease; a second run adds nothing). Records are
read in id-keyset batches narrowed in SQL by the condition's type, catalogue code, issuer and — for
`within_years` — the band of earning dates whose window closes within the horizon."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from node.db import session_scope
from node.engage.notices import notify
from node.models import Achievement
from node.models.standards import ConversionItem, ConversionUsage
from node.rules.matching import OutcomeView, add_years, field_checks, leaves_of
from node.rules.model import Leaf, LevelMap, Outcome, Rule
from node.standards import service as standards

__all__ = ["rules_in_force", "window_notices"]

_BATCH = 1000
_COLUMNS = (Achievement.id, Achievement.learner_id, Achievement.type, Achievement.code, Achievement.title,
            Achievement.issuer_code, Achievement.level, Achievement.score_text, Achievement.score_value,
            Achievement.credits, Achievement.hours, Achievement.earned_on, Achievement.expires_on)


def rules_in_force(rules: tuple[Rule, ...], day: dt.date) -> list[Rule]:
    """The newest version in force on `day` of each rule (what the engine would apply that day)."""
    newest: dict[str, Rule] = {}
    for rule in rules:
        if rule.in_force(day) and rule.condition is not None:
            if rule.id not in newest or rule.version > newest[rule.id].version:
                newest[rule.id] = rule
    return [newest[k] for k in sorted(newest)]


def _outcome(row: Any) -> Outcome:
    return Outcome(id=str(row.id), type=row.type, catalogue_code=row.code or "", title=row.title,
                   earned_on=row.earned_on, issuer_code=row.issuer_code, level=row.level, score_text=row.score_text,
                   score_value=row.score_value, credits=row.credits or Decimal(0),
                   hours=int(row.hours) if row.hours is not None else None, expires_on=row.expires_on)


def _closes(rule: Rule, leaf: Leaf, outcome: Outcome) -> tuple[dt.date, str] | None:
    """When this record stops being usable for this condition of the rule, and why (None: never)."""
    limits: list[tuple[dt.date, str]] = []
    if leaf.matcher.within_years is not None:
        limits.append((add_years(outcome.earned_on, leaf.matcher.within_years), "within_years"))
    if rule.effective_to is not None:
        limits.append((rule.effective_to, "rule_ends"))
    if outcome.expires_on is not None:
        limits.append((outcome.expires_on, "certificate_expires"))
    return min(limits) if limits else None


def _candidates(session: Session, leaf: Leaf, rule: Rule, today: dt.date, horizon: dt.date, after: int) -> list[Any]:
    m = leaf.matcher
    stmt = sa.select(*_COLUMNS).where(Achievement.status == "deposited", Achievement.source != "conversion",
                                      Achievement.earned_on.is_not(None), Achievement.id > after)
    if m.types:
        stmt = stmt.where(Achievement.type.in_(m.types))
    if m.catalogue_codes:
        stmt = stmt.where(Achievement.code.in_(m.catalogue_codes))
    if m.issuer_codes:
        stmt = stmt.where(Achievement.issuer_code.in_(m.issuer_codes))
    if not (rule.effective_to is not None and today <= rule.effective_to <= horizon):
        # only the earning-date window can close in time: earned_on + N years within [today, horizon]
        years = m.within_years or 0
        stmt = stmt.where(Achievement.earned_on >= add_years(today, -years),
                          Achievement.earned_on <= add_years(horizon, -years))
    return list(session.execute(stmt.order_by(Achievement.id).limit(_BATCH)))


def _converted_under(session: Session, rule_id: str, achievement_ids: list[int]) -> set[int]:
    if not achievement_ids:
        return set()
    return set(session.execute(
        sa.select(ConversionUsage.achievement_id).join(ConversionItem, ConversionItem.id == ConversionUsage.item_id)
        .where(ConversionItem.rule_id == rule_id, ConversionUsage.achievement_id.in_(achievement_ids))).scalars())


def _warn_leaf(session: Session, rule: Rule, leaf: Leaf, *, today: dt.date, horizon: dt.date,
               level_map: LevelMap) -> tuple[int, int]:
    m = leaf.matcher
    if m.within_years is None and not (rule.effective_to is not None and today <= rule.effective_to <= horizon):
        return 0, 0  # no window of this condition closes within the horizon
    given = considered = 0
    after = 0
    while True:
        rows = _candidates(session, leaf, rule, today, horizon, after)
        if not rows:
            return given, considered
        after = rows[-1].id
        used = _converted_under(session, rule.id, [r.id for r in rows])
        for row in rows:
            considered += 1
            if row.id in used:
                continue
            outcome = _outcome(row)
            view = OutcomeView.of(outcome, level_map)
            if not all(c.met for c in field_checks(m, view, on=today, level_map=level_map)):
                continue
            closes = _closes(rule, leaf, outcome)
            if closes is None or closes[1] == "certificate_expires" or not today <= closes[0] <= horizon:
                continue
            day, cause = closes
            if notify(session, learner_id=row.learner_id, kind="conversion_window_closing",
                      params={"id": row.id, "title": row.title, "rule": rule.id, "rule_title": rule.title,
                              "closes_on": day.isoformat(), "cause": cause},
                      link=f"/me/records/{row.id}",
                      dedupe_key=f"window:{row.id}:{rule.id}:{day.isoformat()}") is not None:
                given += 1
        if len(rows) < _BATCH:
            return given, considered


def window_notices(ctx: Any, *, today: dt.date | None = None) -> dict:
    """Warn learners of conversion windows closing within `engage.window_notice_days` (once each)."""
    today = today or dt.date.today()
    horizon = today + dt.timedelta(days=ctx.settings.engage.window_notice_days)
    given = considered = 0
    with session_scope(ctx.engine) as session:
        level_map = standards.build_level_map(session, ctx.settings.node.region, today)
        rules = rules_in_force(standards.rule_index(session, level_map).rules, today)
    for rule in rules:
        with session_scope(ctx.engine) as session:  # one transaction per rule
            for leaf in leaves_of(rule.condition):  # type: ignore[arg-type]
                g, c = _warn_leaf(session, rule, leaf, today=today, horizon=horizon, level_map=level_map)
                given, considered = given + g, considered + c
    return {"notices": given, "considered": considered, "rules": len(rules), "until": horizon.isoformat()}
