"""Sign-in: by account or ID number, equal work for unknown users, lockout in the database, per-client
limits, no connection held while hashing, every failure audited (issue 11.6, issue 12 item 1)."""

from __future__ import annotations

import threading

import pytest

import node.auth.service
import node.security.passwords as passwords
from tests.auth.conftest import PASSWORD, audit_rows, bearer, token

FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


class _Watched:
    """The node's Argon2 hasher, with a hook on each verification (the real one still runs)."""

    def __init__(self, real, hook) -> None:
        self.real, self.hook = real, hook

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, hash_: str, password: str) -> bool:
        self.hook(hash_)
        return self.real.verify(hash_, password)


@pytest.fixture
def argon2_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    hook = lambda hash_: calls.append("dummy" if hash_ == passwords._DUMMY else "real")  # noqa: E731
    monkeypatch.setattr(passwords, "_hasher", _Watched(passwords._hasher, hook))
    return calls


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The throttle's clock, moved by the test (no sleeping)."""
    now = [1_900_000_000.0]
    monkeypatch.setattr(node.auth.service.time, "time", lambda: now[0])
    return now


def test_learner_signs_in_with_account_number_or_id_number(client, learner) -> None:
    person = learner()
    for username, form in [(person.account_no, {}), (person.id_number, {}),
                           (person.id_number.lower().translate(FULL_WIDTH), {}),
                           (person.id_number, {"id_type": "resident_id"})]:
        h = bearer(token(client, username, **form))
        assert client.get("/api/v1/me", headers=h).json()["id"] == person.id
    # with an explicit id_type the name is an ID number only (never a staff user name or account number)
    r = token(client, person.account_no, id_type="resident_id")
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


@pytest.mark.parametrize("who", ["unknown_staff_name", "unknown_account", "unknown_id_number", "not_activated",
                                 "learner", "staff", "bad_id_type"])
def test_every_attempt_costs_one_argon2_verification(client, learner, staff_headers, argon2_calls, who) -> None:
    staff_headers("outlet_staff", username="counter1")
    inactive = learner(password=None)
    active = learner()
    username, form = {
        "unknown_staff_name": ("nobody-here", {}),
        "unknown_account": ("SH9999999999", {}),
        "unknown_id_number": ("11010519491231002X", {}),
        "not_activated": (inactive.account_no, {}),
        "learner": (active.account_no, {}),
        "staff": ("counter1", {}),
        "bad_id_type": (active.id_number, {"id_type": "library_card"}),
    }[who]
    argon2_calls.clear()
    r = token(client, username, "wrong-password-1", **form)
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    assert r.json()["message"] == "wrong user name or password, or the account is not activated yet"
    assert len(argon2_calls) == 1, argon2_calls


def test_failed_learner_sign_ins_are_audited_without_the_name(client, learner, engine) -> None:
    person = learner()
    token(client, person.account_no, "wrong-password-1")
    token(client, "11010519491231002X", "wrong-password-1")
    rows = audit_rows(engine, "auth.sign_in")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("anonymous", "learner", str(person.id), "denied"),
                                                        ("anonymous", None, None, "denied")]
    with engine.connect() as conn:
        dump = repr(list(conn.exec_driver_sql("SELECT * FROM audit_log"))) + repr(
            list(conn.exec_driver_sql("SELECT * FROM sign_in_throttle")))
    assert "11010519491231002X" not in dump and person.id_number not in dump
    bearer(token(client, person.account_no))
    assert audit_rows(engine, "auth.sign_in")[-1][:4] == ("learner", "learner", str(person.id), "ok")


@pytest.mark.parametrize("kind", ["learner", "staff", "unknown"])
def test_lockout_after_repeated_failures_then_released_and_doubled(client, learner, staff_headers, engine, clock,
                                                                   kind) -> None:
    staff_headers("branch_reviewer", username="reviewer9")
    person = learner()
    username, password = {"learner": (person.account_no, PASSWORD), "staff": ("reviewer9", "correct-horse-1"),
                          "unknown": ("SH0000099999", "whatever-123")}[kind]
    for _ in range(5):
        r = token(client, username, "wrong-password-1")
        assert r.status_code == 401, r.text
    locked = token(client, username, password)  # even the right password: locked
    assert locked.status_code == 429 and locked.json()["code"] == "account_locked"
    assert int(locked.headers["Retry-After"]) == 300
    lockouts = audit_rows(engine, "auth.lockout")
    assert len(lockouts) == 1 and lockouts[0][3] == "denied"
    clock[0] += 299
    assert token(client, username, password).status_code == 429
    clock[0] += 2
    for _ in range(5):
        assert token(client, username, "wrong-password-1").status_code == 401
    again = token(client, username, password)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) == 600  # the second lockout doubles
    clock[0] += 601
    if kind != "unknown":
        bearer(token(client, username, password))  # and a success forgets the failures
        for _ in range(4):
            assert token(client, username, "wrong-password-1").status_code == 401
        bearer(token(client, username, password))


def test_failures_outside_the_window_do_not_add_up(client, learner, clock) -> None:
    person = learner()
    for _ in range(4):
        assert token(client, person.account_no, "wrong-password-1").status_code == 401
    clock[0] += 901
    for _ in range(4):
        assert token(client, person.account_no, "wrong-password-1").status_code == 401
    bearer(token(client, person.account_no))


def test_lockout_holds_across_worker_processes(app, client, learner, settings) -> None:
    """Two apps with their own engines on one database, as two worker processes would be."""
    from fastapi.testclient import TestClient

    from node.app import create_app

    person = learner()
    other_app = create_app(settings)
    with TestClient(other_app) as other:
        for i in range(5):
            r = token(client if i % 2 else other, person.account_no, "wrong-password-1")
            assert r.status_code == 401
        assert token(other, person.account_no).json()["code"] == "account_locked"
        assert token(client, person.account_no).json()["code"] == "account_locked"


def test_per_client_limit_with_retry_after(client, ctx, learner) -> None:
    person = learner()
    ctx.settings.ratelimit.sign_in = "3/minute"
    codes = [token(client, person.account_no).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = token(client, person.account_no)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_no_database_connection_is_held_while_hashing(client, learner, engine, monkeypatch) -> None:
    """On SQLite the request's transaction is the database's write lock; on PostgreSQL a pooled connection:
    neither may be held for the length of an Argon2 computation."""
    person = learner()
    held: list[int] = []
    monkeypatch.setattr(passwords, "_hasher",
                        _Watched(passwords._hasher, lambda _hash: held.append(engine.pool.checkedout())))
    bearer(token(client, person.account_no))
    token(client, person.account_no, "wrong-password-1")
    token(client, "nobody-at-all", "wrong-password-1")
    assert held == [0, 0, 0]


def test_password_gate_refuses_at_once_when_its_queue_is_full() -> None:
    from node.errors import TooManyRequests

    gate = passwords.PasswordGate(concurrency=1, queue=1)
    inside, release, waited = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            inside.set()
            release.wait()

    def wait_for_slot() -> None:
        with gate.slot():
            waited.set()

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait()
    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    while gate._waiting == 0:  # the waiter has taken the one queue place
        threading.Event().wait(0.001)
    with pytest.raises(TooManyRequests) as err:
        with gate.slot():
            pass
    assert err.value.retry_after == 1 and err.value.code == "rate_limited"
    release.set()
    holder.join()
    waiter.join()
    assert waited.is_set()
    with gate.slot():  # free again
        pass


@pytest.mark.parametrize("name", ["ad\x00min", "SH\x000000000001", "\x00", "a" * 5000, "管理员\u202e"])
def test_odd_names_are_just_wrong_names(client, argon2_calls, name) -> None:
    """NUL bytes reach no query (PostgreSQL refuses them in text: a 500 before), nor do huge names."""
    r = token(client, name, "wrong-password-1")
    if "\x00" in name:  # refused at the edge, before any route runs (node/middleware.py)
        assert r.status_code == 422 and r.json()["detail"]["errors"][0]["type"] == "invalid_text"
        assert argon2_calls == []
        return
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    assert len(argon2_calls) == 1
