"""The organisation tree of the seeds, for routing tests: a centre, two branches, an outlet under each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

CENTRE, B01, B02, OUT1, OUT2 = "SH-CENTRE", "B01", "B02", "OUT1", "OUT2"


@dataclass(frozen=True)
class Orgs:
    centre: str = CENTRE
    b01: str = B01
    b02: str = B02
    out1: str = OUT1
    out2: str = OUT2


@pytest.fixture
def orgs(app) -> Orgs:
    from node.db import session_scope
    from node.org.service import create_organisation

    with session_scope(app.state.ctx.engine) as s:
        create_organisation(s, code=CENTRE, name="上海市终身教育学分银行管理中心", kind="centre")
        create_organisation(s, code=B01, name="黄浦区分部", kind="branch")
        create_organisation(s, code=B02, name="徐汇区分部", kind="branch")
        create_organisation(s, code=OUT1, name="某大学网点", kind="outlet", parent_code=B01)
        create_organisation(s, code=OUT2, name="另一大学网点", kind="outlet", parent_code=B02)
    return Orgs()
