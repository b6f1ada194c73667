"""Recognition of prior learning end to end: portfolio → assessment against a catalogue course → the centre's
confirmation → an achievement like any other (archive, ledger, signed credential) with its provenance."""

from __future__ import annotations

from tests.deposits.helpers import PDF, ok
from tests.projects.conftest import audit_actions, events

SUES = "SUES-CE-MECHATRONICS"


def _apply(client, me, **over):
    body = {"kind": "work_based", "title": "数控车间三年机械制图工作", "description": "在车间绘制零件图与装配图三年。",
            "employer": "示例精密机械有限公司", "hours": "1200", "started_on": "2021-03-01", "ended_on": "2024-02-29"}
    body.update(over)
    return client.post("/api/v1/me/rpl", json=body, headers=me.headers)


def test_rpl_from_portfolio_to_achievement(client, engine, seeded, learner, person) -> None:
    me = learner()
    assessor_id, assessor = person("assessor", org="B01", kind="branch")
    _, centre = person("centre_reviewer", org="C01")
    _, both = person("assessor", "centre_reviewer", org="C01")

    app = ok(_apply(client, me), 201)
    assert app["state"] == "draft"
    # a draft is the learner's own: staff do not see it, nor can it be submitted without a portfolio
    assert client.get(f"/api/v1/rpl/{app['id']}", headers=assessor).status_code == 404
    r = client.post(f"/api/v1/me/rpl/{app['id']}/submit", json={"version": app["version"]}, headers=me.headers)
    assert r.status_code == 409 and r.json()["code"] == "evidence_required"
    ok(client.post(f"/api/v1/me/rpl/{app['id']}/evidence", files={"file": ("作品集.pdf", PDF, "application/pdf")},
                   headers=me.headers), 201)
    r = client.post(f"/api/v1/me/rpl/{app['id']}/evidence", files={"file": ("x.exe", b"MZ\x90\x00", "application/x-msdownload")},
                    headers=me.headers)
    assert r.status_code == 415
    app = ok(client.get(f"/api/v1/me/rpl/{app['id']}", headers=me.headers))
    app = ok(client.post(f"/api/v1/me/rpl/{app['id']}/submit", json={"version": app["version"]}, headers=me.headers))
    assert app["state"] == "submitted"
    # another learner does not see it
    assert client.get(f"/api/v1/me/rpl/{app['id']}", headers=learner().headers).status_code == 404

    # the assessor: against a catalogue course, never more than the course's credits, never a never-exempt course
    queue = ok(client.get("/api/v1/rpl", params={"state": "submitted"}, headers=assessor))
    assert [a["id"] for a in queue] == [app["id"]]
    assert ok(client.get(f"/api/v1/rpl/{app['id']}", headers=assessor))["description"].startswith("在车间")
    sha = app["evidence"][0]["sha256"]
    got = client.get(f"/api/v1/rpl/{app['id']}/evidence/{sha}", headers=assessor)
    assert got.status_code == 200 and got.content == PDF
    base = {"programme": SUES, "comment": "图纸规范，达到课程要求", "version": app["version"]}
    r = client.post(f"/api/v1/rpl/{app['id']}/assessment", json=base | {"course": "SUES-DRAWING", "credits": "5"},
                    headers=assessor)
    assert r.status_code == 400 and r.json()["code"] == "rpl_credits_invalid"
    r = client.post(f"/api/v1/rpl/{app['id']}/assessment", json=base | {"course": "SUES-THESIS", "credits": "1"},
                    headers=assessor)
    assert r.status_code == 400 and r.json()["code"] == "rpl_credits_invalid"
    r = client.post(f"/api/v1/rpl/{app['id']}/assessment", json=base | {"course": "NOPE", "credits": "1"},
                    headers=assessor)
    assert r.status_code == 400 and r.json()["code"] == "rpl_standard_unknown"
    assert client.post(f"/api/v1/rpl/{app['id']}/assessment", json=base | {"course": "SUES-DRAWING", "credits": "4"},
                       headers=centre).status_code == 403
    app = ok(client.post(f"/api/v1/rpl/{app['id']}/assessment", json=base | {"course": "SUES-DRAWING",
                                                                              "credits": "4"}, headers=assessor))
    assert app["state"] == "assessed" and app["proposed_credits"] == "4"

    # the centre: sends it back once, then confirms; the assessor never confirms their own assessment
    r = client.post(f"/api/v1/rpl/{app['id']}/decision", json={"decision": "reassess", "version": app["version"]},
                    headers=centre)
    assert r.status_code == 400 and r.json()["code"] == "reason_required"
    app = ok(client.post(f"/api/v1/rpl/{app['id']}/decision",
                         json={"decision": "reassess", "reason": "请写明对照的知识点", "version": app["version"]},
                         headers=centre))
    assert app["state"] == "submitted"
    app = ok(client.post(f"/api/v1/rpl/{app['id']}/assessment",
                         json=base | {"course": "SUES-DRAWING", "credits": "3.5", "version": app["version"],
                                      "comment": "对照机械制图课程七个知识点，覆盖六个"}, headers=both))
    r = client.post(f"/api/v1/rpl/{app['id']}/decision", json={"decision": "confirm", "version": app["version"]},
                    headers=both)
    assert r.status_code == 403 and r.json()["code"] == "rpl_same_person"
    app = ok(client.post(f"/api/v1/rpl/{app['id']}/decision", json={"decision": "confirm", "version": app["version"]},
                         headers=centre))
    assert app["state"] == "confirmed" and app["achievement_id"]

    # the outcome is an achievement like any other: archive, ledger event with provenance, signed credential
    archive = ok(client.get("/api/v1/me/archive", headers=me.headers))
    text = str(archive)
    assert "机械制图（先前学习认定）" in text
    [event] = [e for e in events(engine, "achievement.deposited") if e["achievement_id"] == app["achievement_id"]]
    assert event["data"]["source"] == "rpl" and event["data"]["rpl_application"] == app["id"]
    assert event["data"]["standard"] == {"programme": SUES, "course": "SUES-DRAWING"}
    assert event["data"]["credits"] == "3.5" and event["data"]["evidence"] == [app["evidence"][0]["sha256"]]
    assert event["seq"] == app["ledger_seq"]
    kinds = {k: len(events(engine, k)) for k in ("rpl.submitted", "rpl.assessed")}
    assert kinds == {"rpl.submitted": 1, "rpl.assessed": 2}
    credential = ok(client.get(f"/api/v1/me/credentials/{app['achievement_id']}", headers=me.headers))
    assert ok(client.post("/api/v1/verify", json=credential))["valid"] is True
    assert me.id_number not in str(credential)
    done = [a for a, o in audit_actions(engine, "rpl.") if o == "ok"]
    for action in ("rpl.create", "rpl.evidence", "rpl.submit", "rpl.read", "rpl.evidence_download", "rpl.assess",
                   "rpl.reassess", "rpl.confirm"):
        assert action in done, action
    assert ("rpl.confirm", "denied") in audit_actions(engine, "rpl.confirm")


def test_rpl_bad_input_is_refused_cleanly(client, seeded, learner, person) -> None:
    me = learner()
    _, centre = person("centre_reviewer", org="C01")
    for body, where in (({"kind": "dream"}, "kind"), ({"employer": ""}, "employer"),
                        ({"started_on": "2024-01-01", "ended_on": "2023-01-01"}, "dates"),
                        ({"hours": "1e9"}, "hours"), ({"title": "x" * 201}, "title"),
                        ({"description": "\x00" * 20}, "nul")):
        r = _apply(client, me, **body)
        assert r.status_code == 422, (where, r.text)
    app = ok(_apply(client, me, kind="informal", employer=None), 201)
    r = client.post(f"/api/v1/rpl/{app['id']}/decision", json={"decision": "confirm", "version": 1}, headers=centre)
    assert r.status_code == 404
