"""Real nodes under test: a uvicorn subprocess on 127.0.0.1 (a free port), its own database, test mode on,
optional fault switches, and a `conformance` staff account (federation_admin + centre_reviewer) whose bearer
token is the suite's admin token. Also runnable as a script for CI:

    python -m tests.conformance.nodes --report-dir DIR   # start a node, run creditnode-conformance, stop it
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_PATH = ROOT / "conformance-tests"
PASSWORD = "conformance-pass-1"


def _key(seed: str) -> str:
    return base64.urlsafe_b64encode((seed * 32).encode()[:32]).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: no inherited CREDITNODE_* settings, the suite importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONFORMANCE_PATH), str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class RunningNode:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen
    faults: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def signing_key_file(self) -> tuple[Path, str]:
        """The node's own current key as a key file for `--signing-key` (the candidate signs its report)."""
        from crypto.did import did_web_from_url
        from node.identity.keyring import load_keyring

        ring = load_keyring(_settings(self.env))
        path = self.data_dir / "report-signing-key.json"
        key_id = f"{did_web_from_url(self.url)}#{ring.current}"
        path.write_text(json.dumps({"id": key_id,
                                    "secretKeyMultibase": ring.current_key.signing_key.secret_multikey}))
        return path, key_id

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return (self.data_dir / "node.log").read_text(errors="replace") if (self.data_dir / "node.log").exists() \
            else ""


def node_env(*, port: int, data_dir: Path, database_url: str, faults: tuple[str, ...] = (),
             test_mode: bool = True) -> dict[str, str]:
    env = {
        "CREDITNODE_NODE__REGION": "shanghai",
        "CREDITNODE_NODE__BASE_URL": f"http://127.0.0.1:{port}",
        "CREDITNODE_NODE__DATA_DIR": str(data_dir),
        "CREDITNODE_NODE__MODE": "development",
        "CREDITNODE_NODE__LOG_LEVEL": "WARNING",
        "CREDITNODE_DATABASE__URL": database_url,
        "CREDITNODE_SECURITY__DATABASE_KEY": _key("d"),
        "CREDITNODE_SECURITY__DATABASE_KEY_ID": "c1",
        "CREDITNODE_SECURITY__BLIND_INDEX_KEY": _key("b"),
        "CREDITNODE_SECURITY__TOKEN_SECRET": _key("t"),
        "CREDITNODE_FEDERATION__TEST_MODE": "true" if test_mode else "false",
    }
    if faults:
        env["CREDITNODE_TESTING__FAULTS"] = ",".join(faults)
    return env


def _settings(env: dict[str, str]):
    from config.settings import Settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prepare(env: dict[str, str]) -> None:
    """Schema, centre, admin, and the conformance account (federation_admin + centre_reviewer)."""
    from sqlmodel import select

    from node.bootstrap import bootstrap_node
    from node.db import make_engine, session_scope
    from node.models import StaffAccount
    from node.org.service import create_staff
    from node.roles import Role

    settings = _settings(env)
    bootstrap_node(settings, admin_password=PASSWORD)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            if not session.exec(select(StaffAccount).where(StaffAccount.username == "conformance")).first():
                create_staff(session, username="conformance", display_name="Conformance suite", password=PASSWORD,
                             roles=[Role.FEDERATION_ADMIN, Role.CENTRE_REVIEWER],
                             organisation_code=f"{settings.node_id.upper()}-CENTRE")
    finally:
        engine.dispose()


def launch_node(data_dir: Path, database_url: str, *, faults: tuple[str, ...] = (),
                test_mode: bool = True) -> RunningNode:
    """Prepare the database and start the server process (not yet ready: see `wait_ready`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = node_env(port=port, data_dir=data_dir, database_url=database_url, faults=faults, test_mode=test_mode)
    prepare(env)
    with (data_dir / "node.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "node.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=subprocess_env(env), stdout=log, stderr=subprocess.STDOUT,
        )
    return RunningNode(f"http://127.0.0.1:{port}", "", data_dir, process, faults, env)


def start_node(data_dir: Path, database_url: str, *, faults: tuple[str, ...] = (), test_mode: bool = True,
               timeout: float = 40.0) -> RunningNode:
    return wait_ready(launch_node(data_dir, database_url, faults=faults, test_mode=test_mode), timeout=timeout)


def wait_ready(node: RunningNode, *, timeout: float = 40.0) -> RunningNode:
    """Wait until the node answers discovery, then sign in as the conformance account."""
    process, url = node.process, node.url
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the node exited with {process.returncode}:\n{node.stop()[-3000:]}")
            try:
                if http.get(url + "/.well-known/credit-node").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                node.stop()
                raise RuntimeError(f"the node did not start within {timeout}s")
            time.sleep(0.1)
        r = http.post(url + "/api/v1/auth/token", data={"username": "conformance", "password": PASSWORD})
        r.raise_for_status()
        node.token = r.json()["access_token"]
    return node


def run_suite(node: RunningNode, report_dir: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`creditnode-conformance` (as `python -m conformance.cli`) against `node`, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", "--target", node.url, "--admin-token", node.token,
         "--report-dir", str(report_dir), *extra],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, check=False,
    )


def main(argv: list[str] | None = None) -> int:
    """CI: a fresh node on SQLite in a temporary directory, the suite against it, the reports kept."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report-dir", type=Path, required=True)
    parser.add_argument("--database-url", help="default: SQLite in the temporary directory")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="conformance-node-"))
    try:
        db = args.database_url or f"sqlite:///{tmp / 'node.db'}"
        node = start_node(tmp / "data", db)
        try:
            script = Path(sys.executable).with_name("creditnode-conformance")  # the installed console script
            command = [str(script)] if script.exists() else [sys.executable, "-m", "conformance.cli"]
            result = subprocess.run(
                [*command, "--target", node.url, "--admin-token", node.token, "--report-dir", str(args.report_dir)],
                cwd=ROOT, env=subprocess_env(), timeout=300, check=False)
        finally:
            node.stop()
        print(f"conformance reports in {args.report_dir}: "
              f"{', '.join(sorted(p.name for p in args.report_dir.iterdir()))}")
        return result.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
