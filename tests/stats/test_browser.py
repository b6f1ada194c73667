"""The statistics pages in a real browser (Chromium through Playwright) against a node served on 127.0.0.1: the
public page and the centre's (signed in through the sign-in page), axe-core on each (no serious or critical
violation), screenshots at 1280 and 390 px in both languages (under the run's tmp folder)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="no browser driver: pip install '.[test]' installs playwright")

from tests.conftest import valid_id  # noqa: E402
from tests.portal.conftest import LiveNode, browser, live_node, screenshot_dir  # noqa: E402, F401 (fixtures)
from tests.portal.test_browser import WIDTHS, _check  # noqa: E402

pytestmark = pytest.mark.slow
UTC = dt.UTC


def _data(live_node: LiveNode) -> None:
    """Twenty-four learners, dated deposits over three months (one small group), a centre auditor; counted."""
    from node.db import session_scope
    from node.ledger.service import EventSpec, append_events
    from node.learners.service import open_account
    from node.org.service import create_staff
    from node.stats.counting import refresh

    ctx = live_node.ctx
    with session_scope(ctx.engine) as s:
        people = [open_account(s, ctx, id_type="resident_id", id_number=valid_id(serial=f"{500 + i}"),
                               name=f"学员{i}")[0] for i in range(24)]
        specs = []
        for month, n, kind in ((1, 14, "degree_course"), (2, 20, "degree_course"), (2, 3, "training"),
                               (3, 12, "vocational_qualification"), (3, 11, "degree_course")):
            for i in range(n):
                p = people[i % len(people)]
                specs.append(EventSpec(kind="achievement.deposited", learner_id=p.id, pseudonym=p.pseudonym,
                                       at=dt.datetime(2025, month, 5 + i % 20, 3, tzinfo=UTC),
                                       data={"type": kind, "source": "bulk", "issuer": "U001",
                                             "credits": "2"}))
        append_events(s, specs)
        create_staff(s, username="stats-auditor", display_name="统计员", password="correct-horse-1",
                     roles=["auditor", "node_admin"], organisation_code=None)
    refresh(ctx.engine)


def test_statistics_pages_in_a_browser(live_node: LiveNode, browser, screenshot_dir: Path) -> None:  # noqa: F811
    _data(live_node)
    query = "from=2025-01-01&to=2025-03-31"
    for label, width in WIDTHS.items():
        for lang in ("zh", "en"):
            context = browser.new_context(viewport={"width": width, "height": 900}, base_url=live_node.base,
                                          locale="zh-CN")
            page = context.new_page()
            page.goto(f"/statistics?{query}&lang={lang}")
            assert page.locator("#stats-by_type").count() == 1
            _check(page, screenshot_dir, "statistics-public")
            page.goto(f"/centre/statistics?{query}&lang={lang}")
            page.locator("#username").fill("stats-auditor")
            page.locator("#password").fill("correct-horse-1")
            page.locator("form button[type=submit]").last.click()
            page.wait_for_load_state("load")
            if "/centre/statistics" not in page.url:
                page.goto(f"/centre/statistics?{query}&lang={lang}")
            assert page.locator("#stats-reviews, #stats-by_type").count() >= 1, page.url
            _check(page, screenshot_dir, "statistics-centre")
            context.close()
    # the public page hides the small group (training: 3) and the one that would give it back
    context = browser.new_context(base_url=live_node.base)
    page = context.new_page()
    page.goto(f"/statistics?{query}&lang=en")
    text = page.locator("#stats-by_type").inner_text()
    assert "(suppressed)" in text and "Training certificate" in text
    # a wrong range: the error next to its field, reached from the summary
    page.get_by_label("From", exact=True).fill("2025-03-01")
    page.get_by_label("To", exact=True).fill("2025-01-01")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state("load")
    assert page.locator("#to-error").is_visible()
    _check(page)
    context.close()
