"""The README's "Running one node" block, end to end, as a new operator and a bulk-imported learner live it
(issue 12): `creditnode init`, `serve`, `org add`, `example`, `import`, then at the outlet `learners
activation-code` for a person whose ID card was checked; the learner activates the account with the code, signs
in with their ID number and sees their archive. Real processes, real HTTP on 127.0.0.1."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-c", "from node.cli import app; app()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(config: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
    if config is not None:
        env["CREDITNODE_CONFIG"] = str(config)
    return env


def _run(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"creditnode {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_block_from_init_to_a_learner_reading_their_archive(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out = _run(["init", "--region", "shanghai", "--data-dir", str(tmp_path / "data" / "shanghai"),
                "--base-url", base], cwd=tmp_path, env=_env())
    assert "standards loaded" in out and "password (shown once)" in out
    config = tmp_path / "data" / "shanghai" / "creditnode.toml"
    env = _env(config)

    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*CLI, "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
            else:
                raise AssertionError("the node did not become ready")

            _run(["org", "add", "U001", "--name", "示例大学", "--kind", "institution",
                  "--institution-type", "university"], cwd=tmp_path, env=env)
            _run(["example", "scores.csv"], cwd=tmp_path, env=env)
            out = _run(["import", "scores.csv", "--institution", "U001"], cwd=tmp_path, env=env)
            with (tmp_path / "scores.csv").open(encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.DictReader(fh))
            people = {row["身份证号"] for row in rows}
            assert re.search(rf"deposited\s+{len(rows)}\b", out), out
            assert re.search(rf"learners created\s+{len(people)}\b", out), out

            # at the outlet: the person shows their ID card; staff print a one-time code for them
            id_number = rows[0]["身份证号"]
            out = _run(["learners", "activation-code", id_number], cwd=tmp_path, env=env)
            code = re.search(r"code: (\S+)", out)[1]
            assert id_number not in out  # the letter never prints the ID number in full

            # the learner, at home: activate with the code, sign in with the ID number, read the archive
            r = http.post("/api/v1/learners/activate",
                          json={"id_number": id_number, "code": code, "new_password": "my-own-password-1"})
            assert r.status_code == 200, r.text
            r = http.post("/api/v1/learners/activate",
                          json={"id_number": id_number, "code": code, "new_password": "my-own-password-1"})
            assert r.status_code in (400, 401), r.text  # single use
            r = http.post("/api/v1/auth/token", data={"username": id_number, "password": "my-own-password-1"})
            assert r.status_code == 200, r.text
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            archive = http.get("/api/v1/me/archive", headers=headers)
            assert archive.status_code == 200, archive.text
            mine = [row for row in rows if row["身份证号"] == id_number]
            text = archive.text
            assert all(row["课程名称"] in text for row in mine), text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
