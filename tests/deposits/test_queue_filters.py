"""The review queue's filters by achievement type and by day of submission (GET /api/v1/deposit-applications),
combined with the branch scope and keyset paging; bad filters are a 4xx with a documented code."""

from __future__ import annotations

import datetime as dt

from tests.deposits.helpers import ok, refused, register_learner, submitted


def test_filter_by_type_and_submission_day(client, orgs, staff_headers) -> None:
    learner = register_learner(client, serial="901")
    course = submitted(client, learner, branch=orgs.b01)
    cert = submitted(client, learner, branch=orgs.b01, type="vocational_qualification", code="VQ.X", title="数控铣工",
                     credits=None, score=None, level="三级")
    elsewhere = submitted(client, learner, branch=orgs.b02)
    reviewer = staff_headers("branch_reviewer", org=orgs.b01)

    def ids(**query) -> list[int]:
        page = ok(client.get("/api/v1/deposit-applications", params=query, headers=reviewer))
        return [a["id"] for a in page["items"]]

    assert ids() == [cert["id"], course["id"]]  # never another branch's
    assert ids(type="degree_course") == [course["id"]]
    assert ids(type=["degree_course", "vocational_qualification"]) == [cert["id"], course["id"]]
    assert ids(type="training") == []
    today = dt.datetime.now(dt.UTC).date()
    assert ids(submitted_from=today.isoformat(), submitted_to=today.isoformat()) == [cert["id"], course["id"]]
    assert ids(submitted_to=(today - dt.timedelta(days=1)).isoformat()) == []
    assert ids(submitted_from=(today + dt.timedelta(days=1)).isoformat()) == []
    assert ids(submitted_to="9999-12-31", type="vocational_qualification") == [cert["id"]]
    page = ok(client.get("/api/v1/deposit-applications", params={"limit": 1, "type": "degree_course"},
                         headers=staff_headers("centre_reviewer", org=orgs.centre)))
    assert [a["id"] for a in page["items"]] == [elsewhere["id"]] and page["next_cursor"] == elsewhere["id"]
    page = ok(client.get("/api/v1/deposit-applications", params={"limit": 1, "type": "degree_course",
                                                                 "cursor": page["next_cursor"]},
                         headers=staff_headers("centre_reviewer", org=orgs.centre)))
    assert [a["id"] for a in page["items"]] == [course["id"]]

    refused(client.get("/api/v1/deposit-applications", params={"submitted_from": "2025-02-02",
                                                               "submitted_to": "2025-02-01"}, headers=reviewer),
            400, "invalid_query")
    r = client.get("/api/v1/deposit-applications", params={"type": "no_such_type"}, headers=reviewer)
    assert r.status_code == 422
    r = client.get("/api/v1/deposit-applications", params={"submitted_from": "2025-13-01"}, headers=reviewer)
    assert r.status_code == 422
