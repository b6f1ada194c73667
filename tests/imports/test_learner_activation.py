"""A bulk-imported learner gets in: the outlet finds the account by ID number, hands over an activation code,
the learner activates with their ID number and sees the imported archive (issue 12: "Done when")."""

from __future__ import annotations

from tests.conftest import valid_id
from tests.imports.conftest import sh_csv, sh_row


def test_imported_learner_activates_with_a_code_and_sees_the_archive(client, upload, uploader,
                                                                     staff_headers) -> None:
    number = valid_id(serial="808")
    body = upload(uploader, sh_csv([sh_row("808", course="高等数学"), sh_row("808", course="大学英语")])).json()
    assert body["deposited"] == 2
    # before activation: no password works, and online registration does not open the account
    assert client.post("/api/v1/auth/token", data={"username": number, "password": "anything-1"}).status_code == 401
    assert client.post("/api/v1/learners/register", json={"id_number": number, "name": "张三",
                                                          "password": "squat-pass-1"}).status_code == 202
    outlet = staff_headers("outlet_staff", org="OUT1")
    found = client.get("/api/v1/learners/search", params={"id_number": number}, headers=outlet).json()
    code = client.post(f"/api/v1/learners/{found['id']}/activation-code", headers=outlet).json()["code"]
    done = client.post("/api/v1/learners/activate",
                       json={"id_number": number, "code": code, "new_password": "my-own-pass-9"})
    assert done.status_code == 200, done.text
    token = client.post("/api/v1/auth/token", data={"username": number, "password": "my-own-pass-9"})
    assert token.status_code == 200
    archive = client.get("/api/v1/me/archive", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert archive.status_code == 200 and "高等数学" in archive.text and "大学英语" in archive.text
    assert client.post("/api/v1/auth/token", data={"username": number, "password": "squat-pass-1"}).status_code == 401
