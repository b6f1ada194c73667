import logging

import sqlalchemy as sa

from tests.conftest import valid_id


def test_open_account_twice_yields_one_account(client, staff_headers) -> None:
    h = staff_headers("outlet_staff", org="OUT1")
    number = valid_id()
    r1 = client.post("/api/v1/learners", json={"id_number": number, "name": "张三"}, headers=h)
    assert r1.status_code == 201, r1.text
    body = r1.json()
    assert body["id_number_masked"] == number[:6] + "********" + number[-4:]
    assert number not in r1.text
    r2 = client.post("/api/v1/learners", json={"id_number": number.lower(), "name": "张三"}, headers=h)
    assert r2.status_code == 200 and r2.json()["id"] == body["id"]


def test_invalid_id_number_is_refused_with_code(client, staff_headers) -> None:
    h = staff_headers("outlet_staff")
    good = valid_id(serial="321")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    r = client.post("/api/v1/learners", json={"id_number": bad, "name": "李四"}, headers=h)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_id_number"


def test_staff_search_by_id_number_and_account(client, staff_headers) -> None:
    h = staff_headers("branch_reviewer")
    number = valid_id(serial="555")
    opened = client.post("/api/v1/learners", json={"id_number": number, "name": "王五"}, headers=h).json()
    found = client.get("/api/v1/learners/search", params={"id_number": number}, headers=h)
    assert found.status_code == 200 and found.json()["account_no"] == opened["account_no"]
    by_acct = client.get("/api/v1/learners/search", params={"account_no": opened["account_no"]}, headers=h)
    assert by_acct.json()["id"] == opened["id"]
    missing = client.get("/api/v1/learners/search", params={"id_number": valid_id(serial="556")}, headers=h)
    assert missing.status_code == 404


def test_learner_sees_only_self_and_not_staff_routes(client, staff_headers) -> None:
    number = valid_id(serial="777")
    h = staff_headers("outlet_staff")
    r = client.post("/api/v1/learners", json={"id_number": number, "name": "赵六", "password": "learner-pass-1"},
                    headers=h)
    assert r.status_code == 201
    token = client.post("/api/v1/auth/token",
                        data={"username": r.json()["account_no"], "password": "learner-pass-1"}).json()
    h = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/api/v1/me", headers=h).json()["id"] == r.json()["id"]
    denied = client.get(f"/api/v1/learners/{r.json()['id']}", headers=h)
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert client.get("/api/v1/me").status_code == 401


def test_id_number_not_stored_or_logged_in_clear(client, staff_headers, engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    h = staff_headers("outlet_staff")
    number = valid_id(serial="901")
    client.post("/api/v1/learners", json={"id_number": number, "name": "钱七"}, headers=h)
    client.get("/api/v1/learners/search", params={"id_number": number}, headers=h)
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names()]
        for table in tables:
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                assert number not in repr(tuple(row)), table
                assert number.encode() not in b"".join(v for v in row if isinstance(v, bytes | memoryview))
    assert number not in caplog.text


# -- one person, one account: every spelling of an ID number goes through one parser (issue 11.1) ----------

_FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


def test_staff_opening_folds_full_width_and_refuses_other_digits(client, staff_headers, engine) -> None:
    h = staff_headers("outlet_staff", org="OUT1")
    number = "11010519491231002X"  # a check character X: the spelling of the rest decides
    first = client.post("/api/v1/learners", json={"id_number": number, "name": "张三"}, headers=h)
    assert first.status_code == 201, first.text
    for spelling in (number.translate(_FULL_WIDTH), "\u3000" + number.lower() + "\u3000"):
        again = client.post("/api/v1/learners", json={"id_number": spelling, "name": "张三"}, headers=h)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    for spelling in (number.translate(_ARABIC_INDIC), number.translate(_DEVANAGARI),
                     number[:6] + "".join(chr(0x1D7CE + int(c)) for c in number[6:17]) + "X"):
        r = client.post("/api/v1/learners", json={"id_number": spelling, "name": "张三"}, headers=h)
        assert r.status_code == 400 and r.json()["code"] == "invalid_id_number", r.text
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM learner").scalar_one() == 1


def test_search_folds_full_width_and_refuses_other_digits(client, staff_headers) -> None:
    h = staff_headers("branch_reviewer")
    number = "11010519491231002X"
    opened = client.post("/api/v1/learners", json={"id_number": number, "name": "王五"}, headers=h).json()
    found = client.get("/api/v1/learners/search", params={"id_number": number.translate(_FULL_WIDTH)}, headers=h)
    assert found.status_code == 200 and found.json()["id"] == opened["id"]
    r = client.get("/api/v1/learners/search", params={"id_number": number.translate(_ARABIC_INDIC)}, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "invalid_id_number"
