"""An administrator at the centre of a node, and the seeds' organisation tree made through the admin API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

CENTRE = "SH-CENTRE"


@pytest.fixture
def centre(app) -> str:
    from node.db import session_scope
    from node.org.service import create_organisation

    with session_scope(app.state.ctx.engine) as s:
        create_organisation(s, code=CENTRE, name="上海市终身教育学分银行管理中心", kind="centre")
    return CENTRE


@pytest.fixture
def admin(centre, staff_headers) -> dict[str, str]:
    return staff_headers("node_admin", org=centre, username="admin")


@pytest.fixture
def api(client, admin) -> Callable[..., Any]:
    """`api("POST", "/organisations", 201, json=...)`: an admin call under /api/v1/admin, status checked."""

    def call(method: str, path: str, status: int = 200, *, headers: dict | None = None, **kw: Any) -> Any:
        r = client.request(method, f"/api/v1/admin{path}", headers=headers or admin, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    return call


@pytest.fixture
def tree(api, centre) -> dict[str, str]:
    """B01 and B02 under the centre, an outlet under each, one university."""
    for code, kind, parent in (("B01", "branch", None), ("B02", "branch", None), ("OUT1", "outlet", "B01"),
                               ("OUT2", "outlet", "B02")):
        api("POST", "/organisations", 201, json={"code": code, "name": f"{code} 名称", "kind": kind,
                                                 **({"parent_code": parent} if parent else {})})
    api("POST", "/organisations", 201, json={"code": "U001", "name": "上海示范大学", "kind": "institution",
                                             "institution_type": "university"})
    return {"centre": centre, "b01": "B01", "b02": "B02", "out1": "OUT1", "out2": "OUT2", "uni": "U001"}


def sign_in(client, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
