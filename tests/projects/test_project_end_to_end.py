"""A 双证融通 project from the institution's application to published rules, a learner's exemption under them,
and the signed list reported to the skills appraisal centre (issue 16, item 2, "Done when")."""

from __future__ import annotations

import json

from tests.deposits.helpers import PDF, ok
from tests.projects.conftest import audit_actions, events

DHVC = "DHVC-MECHATRONICS"
RULE_ID = "DHVC-CRED-2026-MAINT-ELEC-3"
TARGET = "exemption:VQ.MAINT_ELECTRICIAN:三级:theory"


def proposed_rule(**over) -> dict:
    rule = {
        "id": RULE_ID, "version": 1, "kind": "guidance", "mode": "credit_recognition",
        "title": "学分认可型双证融通：电工基础、电机与电气控制两门课程替代维修电工（三级）理论考核",
        "effective_from": "2020-01-01", "effective_to": None,
        "applies_to": {"programmes": [DHVC]},
        "condition": {"all_of": [
            {"outcome": {"type": "degree_course", "catalogue_code": "DHVC-CIRCUITS", "issuer_code": "DHVC",
                         "min_grade": "及格"}, "as": "circuits"},
            {"outcome": {"type": "degree_course", "catalogue_code": "DHVC-MOTOR-CTRL", "issuer_code": "DHVC",
                         "min_grade": "及格"}, "as": "motor"}]},
        "exemption": {"certificate": "VQ.MAINT_ELECTRICIAN", "level": "三级", "component": "theory",
                      "title": "维修电工（三级）理论考核", "grade": {"record": "免考"}},
    }
    rule.update(over)
    return rule


def application(**over) -> dict:
    body = {"title": "机电一体化技术专业学分认可型双证融通（维修电工三级）", "programme": DHVC,
            "certificate": "VQ.MAINT_ELECTRICIAN", "level": "高级", "mode": "credit_recognition",
            "discipline": "机电", "description": "两门课程覆盖维修电工（三级）理论考核要求。",
            "rules": [proposed_rule()]}
    body.update(over)
    return body


def test_project_to_published_rules_to_reported_exemption(client, engine, seeded, person, learner, deposit_via_api,
                                                           crew) -> None:
    _, inst = person("institution_uploader", org="DHVC", kind="institution")
    _, admin_a = person("standards_admin", org="C01")
    _, admin_b = person("standards_admin", org="C01")
    experts = [person("expert", org=org, kind=kind) for org, kind in
               (("SH-OSTA", "institution"), ("C01", "centre"), ("SUES", "institution"))]
    conflicted, _ = person("expert", org="DHVC", kind="institution")
    outsider = person("expert", org="SSPU", kind="institution")

    # 1. the institution applies (printed level 高级 = 三级), attaches its materials, submits
    project = ok(client.post("/api/v1/projects", json=application(), headers=inst), 201)
    assert project["state"] == "draft" and project["level"] == "高级"
    r = client.post(f"/api/v1/projects/{project['id']}/submit", json={"version": project["version"]}, headers=inst)
    assert r.status_code == 409 and r.json()["code"] == "evidence_required"
    ok(client.post(f"/api/v1/projects/{project['id']}/evidence",
                   files={"file": ("方案.pdf", PDF, "application/pdf")}, headers=inst), 201)
    project = ok(client.get(f"/api/v1/projects/{project['id']}", headers=inst))
    project = ok(client.post(f"/api/v1/projects/{project['id']}/submit", json={"version": project["version"]},
                             headers=inst))
    assert project["state"] == "submitted" and len(project["evidence"]) == 1
    pid = project["id"]

    # 2. the centre assigns a panel for the discipline: nobody from the applicant, experts only
    r = client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [experts[0][0], conflicted],
                                                           "version": project["version"]}, headers=admin_a)
    assert r.status_code == 400 and r.json()["code"] == "project_panel_invalid"
    project = ok(client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [e[0] for e in experts],
                                                                    "version": project["version"]}, headers=admin_a))
    assert project["state"] == "in_review" and project["panel"] == sorted(e[0] for e in experts)

    # 3. experts vote with comments; an expert off the panel cannot see it, nobody votes twice
    assert client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "approve", "comment": "可"},
                       headers=outsider[1]).status_code == 404
    ok(client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "approve", "comment": "课程覆盖理论考核内容"},
                   headers=experts[0][1]), 201)
    r = client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "reject", "comment": "再投"}, headers=experts[0][1])
    assert r.status_code == 409 and r.json()["code"] == "project_already_voted"
    ok(client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "reject", "comment": "电机课时偏少"},
                   headers=experts[1][1]), 201)
    assert ok(client.get(f"/api/v1/projects/{pid}", headers=inst))["state"] == "in_review"
    project = ok(client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "approve", "comment": "同意"},
                             headers=experts[2][1]), 201)
    assert project["state"] == "recommended"
    assert [v["comment"] for v in project["votes"]] == ["课程覆盖理论考核内容", "电机课时偏少", "同意"]

    # 4. publishing goes through the rules' maker-checker: admin A makes the drafts, only admin B activates them
    project = ok(client.post(f"/api/v1/projects/{pid}/publish", json={"version": project["version"]},
                             headers=admin_a))
    assert project["state"] == "activating" and project["rule_refs"] == [{"id": RULE_ID, "version": 1}]
    rule = ok(client.get(f"/api/v1/standards/rules/{RULE_ID}/versions/1", headers=admin_a))
    assert rule["status"] == "draft"
    r = client.post(f"/api/v1/projects/{pid}/activate", json={"version": project["version"]}, headers=admin_a)
    assert r.status_code == 403 and r.json()["code"] == "rule_self_approval"
    project = ok(client.post(f"/api/v1/projects/{pid}/activate", json={"version": project["version"]},
                             headers=admin_b))
    assert project["state"] == "published"
    assert ok(client.get(f"/api/v1/standards/rules/{RULE_ID}/versions/1", headers=admin_a))["state"] == "effective"

    # 5. a learner's courses are deposited; the conversion under the project's rule grants the exemption
    me = learner()
    for code, title, score in (("DHVC-CIRCUITS", "电工基础", "及格"), ("DHVC-MOTOR-CTRL", "电机与电气控制", "82")):
        deposit_via_api(me, type="degree_course", issuer_code="DHVC", issuer_name="上海东海职业技术学院", code=code,
                        title=title, score=score, credits="4", earned_on="2025-01-10")
    req = ok(client.post("/api/v1/conversions", json={"programme": DHVC, "learner_id": me.id},
                         headers=crew["outlet"]), 201)
    [item] = [i for i in req["items"] if i["target_key"] == TARGET]
    assert item["rule_id"] == RULE_ID
    req = ok(client.post(f"/api/v1/conversions/{req['id']}/confirm", json={"version": req["version"]},
                         headers=crew["outlet"]))
    decisions = [{"item_id": i["id"], "decision": "approve"} for i in req["items"] if i["status"] == "confirmed"]
    done = ok(client.post(f"/api/v1/conversions/{req['id']}/review",
                          json={"version": req["version"], "decisions": decisions}, headers=crew["centre"]))
    assert all(i["status"] == "approved" for i in done["items"])
    statement = ok(client.get(f"/api/v1/me/conversions/{req['id']}/items/{item['id']}/statement",
                              headers=me.headers))

    # 6. the exemptions granted under the project, as a signed list for the appraisal centre
    report = ok(client.post(f"/api/v1/projects/{pid}/exemption-reports", headers=admin_b), 201)
    subject = report["credentialSubject"]
    assert report["type"] == ["VerifiableCredential", "ExemptionReport"]
    assert subject["recipient"] == {"code": "SH-OSTA", "name": "上海市职业技能鉴定中心"}
    assert subject["count"] == 1
    [entry] = subject["exemptions"]
    assert entry["statementId"] == statement["id"] and entry["learnerAccount"] == me.account_no
    assert entry["rule"] == {"ruleId": RULE_ID, "version": 1} and entry["level"] == "三级"
    assert me.id_number not in json.dumps(report, ensure_ascii=False)
    assert report["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    verdict = ok(client.post("/api/v1/verify", json=report))
    assert verdict["valid"] is True, verdict
    forged = json.loads(json.dumps(report))
    forged["credentialSubject"]["exemptions"][0]["learnerAccount"] = "SH00000000"
    assert ok(client.post("/api/v1/verify", json=forged))["valid"] is False
    [listed] = ok(client.get(f"/api/v1/projects/{pid}/exemption-reports", headers=admin_a))
    assert ok(client.get(f"/api/v1/projects/{pid}/exemption-reports/{listed['id']}", headers=admin_a)) == report
    assert client.get(f"/api/v1/projects/{pid}/exemption-reports/{listed['id']}", headers=inst).status_code == 403

    # 7. suspended: the rule is retired, no new learner is granted the exemption; reinstated by maker-checker
    project = ok(client.post(f"/api/v1/projects/{pid}/suspend", json={"reason": "复核课程", "version":
                                                                      project["version"]}, headers=admin_a))
    assert project["state"] == "suspended"
    assert ok(client.get(f"/api/v1/standards/rules/{RULE_ID}/versions/1", headers=admin_a))["status"] == "retired"
    other = learner()
    for code, title in (("DHVC-CIRCUITS", "电工基础"), ("DHVC-MOTOR-CTRL", "电机与电气控制")):
        deposit_via_api(other, type="degree_course", issuer_code="DHVC", issuer_name="上海东海职业技术学院",
                        code=code, title=title, score="90", credits="4", earned_on="2025-01-10")
    what_if = ok(client.get("/api/v1/me/conversions/what-if", params={"programme": DHVC}, headers=other.headers))
    assert RULE_ID not in json.dumps(what_if["proposals"])
    project = ok(client.post(f"/api/v1/projects/{pid}/reinstate", json={"version": project["version"]},
                             headers=admin_a))
    assert project["state"] == "activating" and project["rule_refs"][-1] == {"id": RULE_ID, "version": 2}
    project = ok(client.post(f"/api/v1/projects/{pid}/activate", json={"version": project["version"]},
                             headers=admin_b))
    assert project["state"] == "published"
    assert RULE_ID in json.dumps(ok(client.get("/api/v1/me/conversions/what-if", params={"programme": DHVC},
                                               headers=other.headers))["proposals"])
    project = ok(client.post(f"/api/v1/projects/{pid}/end", json={"reason": "项目到期", "version": project["version"]},
                             headers=admin_a))
    assert project["state"] == "ended"
    assert ok(client.get(f"/api/v1/standards/rules/{RULE_ID}/versions/2", headers=admin_a))["status"] == "retired"

    # every step is a public ledger event and an audit entry
    kinds = ["project.submitted", "project.panel_assigned", "project.reviewed", "project.published",
             "project.exemptions_reported", "project.suspended", "project.ended"]
    for kind in kinds:
        [event] = events(engine, kind) if kind != "project.published" else events(engine, kind)[:1]
        assert event["data"]["project"] == pid and "subject" not in event
    reviewed = events(engine, "project.reviewed")[0]["data"]
    assert (reviewed["approve"], reviewed["reject"], reviewed["state"]) == (2, 1, "recommended")
    assert len(events(engine, "project.published")) == 2
    actions = [a for a, outcome in audit_actions(engine, "project.") if outcome == "ok"]
    for action in ("project.create", "project.evidence", "project.submit", "project.panel", "project.vote",
                   "project.publish", "project.activate", "project.report", "project.suspend", "project.reinstate",
                   "project.end"):
        assert action in actions, action
    assert ("project.activate", "denied") in audit_actions(engine, "project.activate")


def test_project_refusals(client, engine, seeded, person) -> None:
    """Bad applications and steps out of order are refused with their documented codes, never a 500."""
    _, inst = person("institution_uploader", org="DHVC", kind="institution")
    _, other_inst = person("institution_uploader", org="SSPU", kind="institution")
    _, branch_staff = person("institution_uploader", org="B09", kind="branch")
    _, admin = person("standards_admin", org="C01")
    _, admin_b = person("standards_admin", org="C01")
    expert_id, expert = person("expert", org="SH-OSTA", kind="institution")
    cases = [
        (application(programme="SSPU-IMAGE-DESIGN"), "project_invalid"),  # not the institution's programme
        (application(certificate="VQ.NOPE"), "project_invalid"),
        (application(level="特级"), "project_invalid"),
        (application(mode="through_train"), "project_invalid"),  # the rule's mode differs
        (application(rules=[proposed_rule(id="SH-GS-CRED-2016-ELECTRICIAN-3")]), "project_invalid"),  # id exists
        (application(rules=[proposed_rule(), proposed_rule()]), "project_invalid"),  # twice
        (application(rules=[{"id": "X", "nonsense": True}]), "project_invalid"),
        (application(rules=[proposed_rule(exemption={"certificate": "VQ.ELECTRICIAN", "level": "三级",
                                                     "component": "theory"})]), "project_invalid"),
    ]
    for body, code in cases:
        r = client.post("/api/v1/projects", json=body, headers=inst)
        assert r.status_code == 400 and r.json()["code"] == code, (body, r.text)
    for body in ({}, {"rules": []}, application(rules=[1]), application(title="x" * 301), application(mode="other")):
        assert client.post("/api/v1/projects", json=body, headers=inst).status_code == 422
    r = client.post("/api/v1/projects", json=application(), headers=branch_staff)
    assert r.status_code == 403 and r.json()["code"] == "project_not_institution"

    project = ok(client.post("/api/v1/projects", json=application(), headers=inst), 201)
    pid = project["id"]
    # another institution neither sees nor touches it
    assert client.get(f"/api/v1/projects/{pid}", headers=other_inst).status_code == 404
    assert client.post(f"/api/v1/projects/{pid}/submit", json={"version": 1}, headers=other_inst).status_code == 404
    # steps out of order
    r = client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [expert_id], "version": project["version"]},
                    headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "project_illegal_transition"
    ok(client.post(f"/api/v1/projects/{pid}/evidence", files={"file": ("a.pdf", PDF, "application/pdf")},
                   headers=inst), 201)
    again = client.post(f"/api/v1/projects/{pid}/evidence", files={"file": ("a.pdf", PDF, "application/pdf")},
                        headers=inst)
    assert again.status_code == 200  # the same file once
    r = client.post(f"/api/v1/projects/{pid}/submit", json={"version": project["version"]}, headers=inst)
    assert r.status_code == 409 and r.json()["code"] == "stale_version"
    project = ok(client.post(f"/api/v1/projects/{pid}/submit", json={"version": project["version"] + 1},
                             headers=inst))
    assert client.post(f"/api/v1/projects/{pid}/evidence", files={"file": ("b.pdf", PDF + b" ", "application/pdf")},
                       headers=inst).status_code == 409
    r = client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [expert_id, expert_id],
                                                           "version": project["version"]}, headers=admin)
    assert r.status_code == 400 and r.json()["code"] == "project_panel_invalid"
    r = client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [987654321], "version": project["version"]},
                    headers=admin)
    assert r.status_code == 400 and r.json()["code"] == "project_panel_invalid"
    project = ok(client.post(f"/api/v1/projects/{pid}/panel", json={"experts": [expert_id],
                                                                    "version": project["version"]}, headers=admin))
    project = ok(client.post(f"/api/v1/projects/{pid}/votes", json={"vote": "reject", "comment": "不足"},
                             headers=expert), 201)
    assert project["state"] == "not_recommended"
    r = client.post(f"/api/v1/projects/{pid}/publish", json={"version": project["version"]}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "project_illegal_transition"
    r = client.post(f"/api/v1/projects/{pid}/exemption-reports", headers=admin)
    assert r.status_code == 409
    r = client.post(f"/api/v1/projects/{pid}/reject", json={"reason": "", "version": project["version"]},
                    headers=admin)
    assert r.status_code == 422
    project = ok(client.post(f"/api/v1/projects/{pid}/reject", json={"reason": "专家小组不建议",
                                                                     "version": project["version"]}, headers=admin))
    assert project["state"] == "rejected" and project["decision_reason"] == "专家小组不建议"
    assert [e["data"]["state"] for e in events(engine, "project.rejected")] == ["rejected"]
    # a project whose rule id was taken meanwhile cannot publish it
    second = ok(client.post("/api/v1/projects", json=application(), headers=inst), 201)
    ok(client.post(f"/api/v1/projects/{second['id']}/evidence", files={"file": ("a.pdf", PDF, "application/pdf")},
                   headers=inst), 201)
    second = ok(client.post(f"/api/v1/projects/{second['id']}/submit", json={"version": second["version"] + 1},
                            headers=inst))
    second = ok(client.post(f"/api/v1/projects/{second['id']}/panel", json={"experts": [expert_id],
                                                                            "version": second["version"]},
                            headers=admin))
    second = ok(client.post(f"/api/v1/projects/{second['id']}/votes", json={"vote": "approve", "comment": "可"},
                            headers=expert), 201)
    ok(client.post("/api/v1/standards/rules", json={"body": proposed_rule()}, headers=admin_b), 201)
    r = client.post(f"/api/v1/projects/{second['id']}/publish", json={"version": second["version"]}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "project_rule_taken"
    assert ("project.publish", "failed") in audit_actions(engine, "project.publish")
