"""Bulk import parses ID numbers with the node's one parser: a full-width spelling of a number is the same
person, any other script is a rejected row (issue 11.1)."""

from __future__ import annotations

from tests.imports.conftest import count, sh_csv, sh_row

NUMBER = "11010519491231002X"  # check character X: the spelling of the digits alone decides
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def test_one_person_whatever_the_spelling_and_foreign_digits_rejected(client, upload, uploader, engine,
                                                                        staff_headers) -> None:
    content = sh_csv([
        sh_row(id_number=NUMBER, course="高等数学"),
        sh_row(id_number=NUMBER.translate(FULL_WIDTH), course="大学英语"),
        sh_row(id_number=NUMBER.translate(ARABIC_INDIC), course="线性代数"),
    ])
    body = upload(uploader, content).json()
    assert (body["deposited"], body["rejected"]) == (2, 1), body
    assert count(engine, "learner") == 1
    report = client.get(f"/api/v1/imports/{body['id']}/report", headers=uploader)
    assert "invalid_id_number" in report.text or "ID number" in report.text, report.text
    # the account an outlet finds with the ASCII number is the one holding both outcomes
    h = staff_headers("outlet_staff", org="OUT1")
    again = client.post("/api/v1/learners", json={"id_number": NUMBER, "name": "张三"}, headers=h)
    assert again.status_code == 200, again.text
