"""Who may deposit and read: uploaders (people or API keys) for their own institution; centre staff for any."""

from __future__ import annotations

from tests.imports.conftest import INSTITUTION, OTHER_INSTITUTION, count, sh_csv, sh_row

CONTENT = sh_csv([sh_row("901")])


def _learner_headers(client) -> dict[str, str]:
    from tests.deposits.helpers import register_learner

    return register_learner(client, serial="990", name="赵六").headers


def test_learners_and_outlet_staff_cannot_deposit(client, upload, uploader, staff_headers, engine) -> None:
    job = upload(uploader, CONTENT).json()
    for headers in (_learner_headers(client), staff_headers("outlet_staff", org="OUT1")):
        r = upload(headers, CONTENT)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        assert client.get(f"/api/v1/imports/{job['id']}", headers=headers).status_code == 403
        assert client.get(f"/api/v1/imports/{job['id']}/report", headers=headers).status_code == 403
    assert client.post("/api/v1/imports", files={"file": ("a.csv", CONTENT)}).status_code == 401
    assert count(engine, "import_job") == 1


def test_api_key_deposits_for_its_institution_and_sees_only_its_jobs(client, upload, api_key, engine) -> None:
    own, other = api_key(INSTITUTION), api_key(OTHER_INSTITUTION)
    job = upload(own, CONTENT).json()
    assert job["status"] == "done" and job["institution_code"] == INSTITUTION
    assert client.get(f"/api/v1/imports/{job['id']}", headers=own).status_code == 200
    for path in (f"/api/v1/imports/{job['id']}", f"/api/v1/imports/{job['id']}/report"):
        r = client.get(path, headers=other)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.get("/api/v1/imports", headers=other).json() == []
    assert [j["id"] for j in client.get("/api/v1/imports", headers=own).json()] == [job["id"]]
    assert count(engine, "audit_log", "WHERE action = 'import.read' AND outcome = 'denied'") == 2
    # an uploader cannot deposit in another institution's name
    r = upload(own, CONTENT, institution_code=OTHER_INSTITUTION)
    assert r.status_code == 403


def test_centre_staff_name_the_institution(client, upload, staff_headers, institution, engine) -> None:
    admin = staff_headers("node_admin")
    missing = upload(admin, CONTENT)
    assert missing.status_code == 400 and missing.json()["code"] == "unknown_institution"
    unknown = upload(admin, CONTENT, institution_code="NOPE")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_institution"
    assert "NOPE" in unknown.json()["message"]
    not_institution = upload(admin, CONTENT, institution_code="B01")  # a branch is not an institution
    assert not_institution.status_code == 400
    ok = upload(staff_headers("centre_reviewer"), CONTENT, institution_code=OTHER_INSTITUTION).json()
    assert ok["status"] == "done" and ok["institution_code"] == OTHER_INSTITUTION
    assert client.get(f"/api/v1/imports/{ok['id']}", headers=admin).status_code == 200
    assert count(engine, "audit_log", "WHERE action = 'import.create' AND outcome = 'ok'") == 1
    assert count(engine, "audit_log", "WHERE action = 'import.finish'") == 1


def test_format_is_taken_from_the_extension_or_the_field(upload, uploader) -> None:
    r = upload(uploader, CONTENT, "grades.txt")
    assert r.status_code == 400 and r.json()["code"] == "unknown_format"
    assert upload(uploader, CONTENT, "grades.txt", format="shanghai-csv").json()["status"] == "done"
    r = upload(uploader, CONTENT, "grades.csv", format="xml")
    assert r.status_code == 400 and r.json()["code"] == "unknown_format"
