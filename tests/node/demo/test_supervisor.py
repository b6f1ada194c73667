"""Issue 11.20: the demo's process supervision — a node that dies is reported (region, pid, exit code or
signal, the end of its log) and the others keep running; `creditnode demo restart REGION` brings it back on its
data through the running demo's control channel.

Two real nodes (init, serve) on free ports; no full scenario (tests/node/demo/test_demo.py runs that)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from node.demo.supervisor import DemoNode, RestartRefused, Supervisor, find_running_demo, request_restart
from tests.node.demo.test_demo import ROOT, _free_base_port

pytestmark = pytest.mark.skipif(bool(os.environ.get("CREDITNODE_TEST_DATABASE_URL")),
                                reason="the demo's nodes run on their own SQLite databases; run in the SQLite pass")


@pytest.fixture
def supervised(tmp_path: Path):
    base = _free_base_port()
    nodes = {region: DemoNode(region, base + i, f"http://127.0.0.1:{base + i}", tmp_path / region)
             for i, region in enumerate(("shanghai", "zhejiang"))}
    said: list[str] = []
    supervisor = Supervisor(tmp_path, nodes, password="demo-password-1", say=said.append)
    supervisor.start()
    supervisor.write_state()
    try:
        yield supervisor, said
    finally:
        supervisor.stop()


def _discovery(node: DemoNode) -> dict:
    return httpx.get(node.base_url + "/.well-known/credit-node", timeout=5, trust_env=False).json()


def test_a_killed_node_is_reported_and_comes_back_on_its_data(supervised, tmp_path: Path) -> None:
    supervisor, said = supervised
    shanghai, zhejiang = supervisor.nodes["shanghai"], supervisor.nodes["zhejiang"]
    did = _discovery(zhejiang)["did"]
    with (zhejiang.data_dir / "node.log").open("a") as log:
        log.write("last words of the zhejiang node\n")
    old_pid = zhejiang.process.pid
    os.kill(old_pid, signal.SIGKILL)
    zhejiang.process.wait(timeout=10)

    [dead] = supervisor.newly_dead()
    assert dead is zhejiang and supervisor.newly_dead() == []  # reported once
    report = supervisor.exit_report(zhejiang)
    assert f"the zhejiang node (pid {old_pid}, {zhejiang.base_url}) was killed by SIGKILL" in report
    assert "last words of the zhejiang node" in report
    assert shanghai.process.poll() is None and _discovery(shanghai)["node_id"] == "shanghai"  # the other lives

    # `creditnode demo restart zhejiang --data-dir ROOT`, answered by the running demo's watch loop
    assert find_running_demo(tmp_path) == tmp_path.resolve()
    answers: list[dict] = []
    asking = threading.Thread(target=lambda: answers.append(request_restart(tmp_path, "zhejiang", timeout=60)))
    asking.start()
    while asking.is_alive():
        supervisor.serve_requests()
        asking.join(timeout=0.2)
    [answer] = answers
    assert answer["ok"] and answer["pid"] != old_pid, answer
    assert any("restarting the zhejiang node" in line for line in said)
    assert _discovery(zhejiang)["did"] == did  # same keys, same data
    state = json.loads((tmp_path / "demo.json").read_text())
    assert state["nodes"]["zhejiang"]["pid"] == answer["pid"] and state["pid"] == os.getpid()
    assert zhejiang.process.poll() is None and not supervisor.newly_dead()


def test_restarting_a_running_node_stops_it_first_and_unknown_regions_are_refused(supervised) -> None:
    supervisor, _said = supervised
    shanghai = supervisor.nodes["shanghai"]
    before = shanghai.process.pid
    assert supervisor.restart("shanghai").process.pid != before
    assert _discovery(shanghai)["node_id"] == "shanghai"
    assert supervisor.newly_dead() == []  # a restart is not a death
    with pytest.raises(RestartRefused, match="no anhui node"):
        supervisor.restart("anhui")


def test_the_restart_command_needs_a_running_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
    done = subprocess.run([sys.executable, "-c", "from node.cli import app; app()", "demo", "restart", "zhejiang",
                           "--data-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1 and "no running demo" in done.stderr
    (tmp_path / "demo.json").write_text(json.dumps({"pid": 2**22 + 12345, "nodes": {}}))  # a demo that is gone
    with pytest.raises(RestartRefused, match="no running demo"):
        find_running_demo(tmp_path)
