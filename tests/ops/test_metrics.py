"""`/metrics`: Prometheus text format, parsed with prometheus_client's own parser; by route template; the
database gauges; access; no personal data; several processes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings, valid_id


def scrape(client, **kw) -> dict[str, list]:
    r = client.get("/metrics", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(r.text)}


def _value(samples, name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, [s for s in samples if s.name == name])
    return found[0]


def test_requests_are_counted_by_route_template_and_status(client) -> None:
    for seq in (1, 2, 3):
        client.get(f"/api/v1/ledger/events/{seq}")
    client.get("/api/v1/ledger/events/abc")
    client.get(f"/nothing/here/{valid_id()}")
    families = scrape(client)
    requests = families["creditnode_http_requests"]
    route = "/api/v1/ledger/events/{seq}"
    counted = {s.labels["status"]: s.value for s in requests
               if s.name == "creditnode_http_requests_total" and s.labels["route"] == route}
    assert sum(counted.values()) == 4 and counted.get("422") == 1
    assert _value(requests, "creditnode_http_requests_total", route="<unmatched>", status="404") == 1
    latency = families["creditnode_http_request_duration_seconds"]
    assert _value(latency, "creditnode_http_request_duration_seconds_count", method="GET", route=route) == 4
    buckets = [s for s in latency if s.name.endswith("_bucket") and s.labels["route"] == route]
    assert len(buckets) > 5 and buckets[-1].labels["le"] == "+Inf"


def test_the_database_gauges(client, engine) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO peer_stream (peer, next_out_seq, next_in_seq) VALUES "
                             "('jiangsu', 5, 1), ('zhejiang', 1, 1), ('anhui', 3, 1)"))
        for seq, (peer, state) in enumerate([("jiangsu", "pending"), ("jiangsu", "pending"), ("jiangsu", "dead"),
                                             ("anhui", "delivered"), ("anhui", "pending")], start=1):
            conn.execute(sa.text("INSERT INTO outbox_message (peer, seq, message_id, type, body, state, attempts, "
                                 "next_attempt_at, created_at) VALUES (:p, :s, :m, 'test', '{}', :st, 0, :t, :t)"),
                         {"p": peer, "s": seq, "m": f"m{seq}", "st": state, "t": now})
        ledger_size = conn.execute(sa.text("SELECT size FROM ledger_head")).scalar_one_or_none() or 0
    families = scrape(client)
    outbox = families["creditnode_outbox_messages"]
    assert _value(outbox, "creditnode_outbox_messages", peer="jiangsu", state="pending") == 2
    assert _value(outbox, "creditnode_outbox_messages", peer="jiangsu", state="dead") == 1
    assert _value(outbox, "creditnode_outbox_messages", peer="anhui", state="pending") == 1
    assert _value(outbox, "creditnode_outbox_messages", peer="zhejiang", state="dead") == 0
    jobs = families["creditnode_import_jobs"]
    assert {s.labels["status"]: s.value for s in jobs} == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    assert _value(families["creditnode_ledger_size"], "creditnode_ledger_size") == ledger_size
    assert _value(families["creditnode_database_up"], "creditnode_database_up") == 1
    info = families["creditnode_node_info"][0]
    assert info.labels["node_id"] == "shanghai" and info.labels["did"].startswith("did:web:")


def test_a_scrape_with_the_database_down_still_answers(client, ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a, **_k):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("down"))

    monkeypatch.setattr(ctx.engine, "connect", refuse)
    families = scrape(client)
    assert _value(families["creditnode_database_up"], "creditnode_database_up") == 0
    assert "creditnode_ledger_size" not in families


def test_no_personal_data_in_the_metrics(client, staff_headers) -> None:
    id_number = valid_id(serial="555")
    r = client.post("/api/v1/learners", headers=staff_headers("outlet_staff"),
                    json={"id_number": id_number, "name": "王小明", "password": "learner-pass-1"})
    assert r.status_code == 201, r.text
    client.get(f"/api/v1/learners/{id_number}")
    client.get(f"/api/v1/ledger/events/1?who={id_number}")
    text = client.get("/metrics").text
    assert id_number not in text and id_number[:14] not in text and "王小明" not in text
    assert r.json()["account_no"] not in text


def _app_client(engine, settings):
    from node.app import create_app

    return TestClient(create_app(settings, engine=engine))


def _with_ops(settings, **ops):
    from config.settings import OpsSettings

    return settings.model_copy(update={"ops": OpsSettings(**{**settings.ops.model_dump(), **ops})})


def test_metrics_access(engine, tmp_path: Path, database_url: str) -> None:
    loopback = make_settings(database_url, tmp_path / "a")
    with _app_client(engine, loopback) as c:
        assert c.get("/metrics").status_code == 200  # a loopback node: public by default
    public_url = make_settings(database_url, tmp_path / "b", base_url="https://creditbank.example.sh.cn")
    with _app_client(engine, public_url) as c:
        r = c.get("/metrics")
        assert r.status_code == 403 and r.json()["code"] == "metrics_restricted"
    with _app_client(engine, _with_ops(public_url, metrics_token="s3cret-scrape")) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.json()["code"] == "metrics_token_required"
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"}).status_code == 200
    with _app_client(engine, _with_ops(public_url, metrics_public=True)) as c:
        assert c.get("/metrics").status_code == 200
    with _app_client(engine, _with_ops(loopback, metrics_token="s3cret-scrape")) as c:
        assert c.get("/metrics").status_code == 401  # a token, once set, is always needed
    with _app_client(engine, _with_ops(loopback, metrics_enabled=False)) as c:
        assert c.get("/metrics").status_code == 404


_WORKER = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from node.app import create_app
from tests.conftest import make_settings
database_url, data_dir, requests, do_scrape = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
with TestClient(create_app(make_settings(database_url, Path(data_dir)))) as client:
    for _ in range(requests):
        assert client.get("/health").status_code == 200
    if do_scrape:
        print(client.get("/metrics").text)
"""


def test_several_processes_share_their_counts_with_a_multiprocess_dir(tmp_path: Path, database_url: str) -> None:
    """`PROMETHEUS_MULTIPROC_DIR`: each worker process writes its counts there; a scrape of any one shows the
    sum over all of them (docs/operations.md, "Metrics")."""
    shared = tmp_path / "prom"
    shared.mkdir()
    root = Path(__file__).resolve().parents[2]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")},
           "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(root)}

    def worker(requests: int, do_scrape: bool) -> str:
        done = subprocess.run([sys.executable, "-c", _WORKER, database_url, str(tmp_path / "data"), str(requests),
                               "1" if do_scrape else "0"], env=env, cwd=root, capture_output=True, text=True, check=False,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    worker(3, False)
    worker(4, False)
    text = worker(2, True)
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert _value(families["creditnode_http_requests"], "creditnode_http_requests_total", route="/health",
                  status="200") == 9
    assert _value(families["creditnode_database_up"], "creditnode_database_up") == 1
    assert len(list(shared.glob("counter_*.db"))) == 3  # one file per process
