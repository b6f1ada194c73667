"""The demo's node processes: start, readiness, watching, restart on their data, stop — and the control
channel through which `creditnode demo restart REGION` reaches a running demo.

Each node is a uvicorn process on 127.0.0.1 with its own data directory (`<root>/<region>`): the first start
runs `creditnode init` (as a function, with the demo's admin password) and then serves; a restart serves the
same data directory again (`CREDITNODE_CONFIG=<root>/<region>/creditnode.toml`). Its output goes to
`<root>/<region>/node.log`. The processes get SIGTERM if the demo itself dies (even by SIGKILL).

A demo that keeps running (`--keep-running`) writes `<root>/demo.json` (its pid, the nodes and their pids) and
watches its children: a node that exits is reported — region, pid, exit code or signal, the last lines of its
log — and the others keep running. `creditnode demo restart REGION [--data-dir ROOT]` writes a request file
`<root>/control/restart-REGION.request`; the running demo restarts that node on its data and answers in
`restart-REGION.done` (JSON), which the command prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["DemoNode", "RestartRefused", "Supervisor", "find_running_demo", "request_restart"]

READY_TIMEOUT = 30.0
RESTART_TIMEOUT = 60.0
LOG_TAIL_LINES = 15
STATE_FILE = "demo.json"
CONTROL_DIR = "control"
TEMP_PREFIX = "creditnode-demo-"


class RestartRefused(RuntimeError):
    """`creditnode demo restart` cannot reach a running demo, or the demo could not bring the node back."""


@dataclass
class DemoNode:
    region: str
    port: int
    base_url: str
    data_dir: Path
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    reported: bool = False  # its exit was reported
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.data_dir / "creditnode.toml"


# A node's first start: `creditnode init` (as a function, with the demo's admin password), the region's
# published standards (as `creditnode standards load FILE...`), then `creditnode serve`.
_INIT_AND_SERVE = """
import os, sys
from pathlib import Path
from node.cli import initialise_node
region, data_dir, base_url, port = sys.argv[1:5]
initialise_node(region=region, data_dir=Path(data_dir), base_url=base_url,
                admin_password=os.environ.pop("CREDITNODE_DEMO_ADMIN_PASSWORD"))
standards = [Path(f) for f in os.environ.pop("CREDITNODE_DEMO_STANDARDS", "").split(os.pathsep) if f]
if standards:
    from config.settings import Settings
    from node.db import make_engine
    from node.standards.cli import load_files
    engine = make_engine(Settings().database_url)
    load_files(engine, standards)
    engine.dispose()
import uvicorn
from node.app import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
"""

# A restart: serve the initialised data directory again (CREDITNODE_CONFIG names its configuration).
_SERVE = """
import sys
import uvicorn
from node.app import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _child_env(password: str) -> dict[str, str]:
    """The nodes' environment: the outbox flushed by the scheduler, no proxies (127.0.0.1 only), and none of
    the caller's CREDITNODE_* settings (each node's `init` points CREDITNODE_CONFIG at its own file)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CREDITNODE_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(CREDITNODE_DEMO_ADMIN_PASSWORD=password, CREDITNODE_FEDERATION__SCHEDULER_ENABLED="true",
               CREDITNODE_NODE__LOG_LEVEL="WARNING", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONUNBUFFERED="1")
    return env


def _die_with_parent() -> None:
    """In the child (Linux): get SIGTERM if the demo itself dies, even by SIGKILL, so no node is left behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """The demo's node processes (see the module docstring). `say(text)` prints a line for the user."""

    def __init__(self, root: Path, nodes: dict[str, DemoNode], *, password: str,
                 standards: dict[str, list[Path]] | None = None, say: Callable[[str], None] = print) -> None:
        self.root = root
        self.nodes = nodes
        self.password = password
        self.standards = standards or {}
        self.say = say
        self.http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0), trust_env=False)

    # -- starting -------------------------------------------------------------------------------------------

    def check_ports(self, nodes: list[DemoNode] | None = None) -> list[DemoNode]:
        """The nodes whose port on 127.0.0.1 is busy."""
        busy = []
        for node in nodes or list(self.nodes.values()):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # as uvicorn binds: connections of an earlier run in TIME_WAIT do not make the port busy
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", node.port))
                except OSError:
                    busy.append(node)
        return busy

    def _spawn(self, node: DemoNode, *, initialise: bool) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.log_path = node.data_dir / "node.log"
        env = _child_env(self.password)
        if initialise:
            args = [_INIT_AND_SERVE, node.region, str(node.data_dir), node.base_url, str(node.port)]
            if self.standards.get(node.region):
                env["CREDITNODE_DEMO_STANDARDS"] = os.pathsep.join(str(p) for p in self.standards[node.region])
        else:
            args = [_SERVE, str(node.port)]
            env["CREDITNODE_CONFIG"] = str(node.config_path)
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                [sys.executable, "-c", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(node.data_dir),
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no thread of the demo holds a lock it needs
            )
        node.reported = False

    def start(self) -> None:
        """Start every node (each initialises its empty data directory, then serves; in parallel) and wait
        until all answer. Raises RuntimeError naming a node that exits or does not answer."""
        for node in self.nodes.values():
            self._spawn(node, initialise=True)
        self.wait_ready(list(self.nodes.values()), READY_TIMEOUT)

    def wait_ready(self, nodes: list[DemoNode], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {n.region: n for n in nodes}
        while pending:
            for region, node in list(pending.items()):
                if node.process is None or node.process.poll() is not None:
                    node.reported = True
                    raise RuntimeError(self.exit_report(node))
                with contextlib.suppress(httpx.HTTPError):
                    if self.http.get(node.base_url + "/.well-known/credit-node", timeout=1.0).status_code == 200:
                        del pending[region]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"nodes not answering after {timeout:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.1)

    # -- watching -------------------------------------------------------------------------------------------

    def log_tail(self, node: DemoNode, lines: int = LOG_TAIL_LINES) -> str:
        if node.log_path is None or not node.log_path.exists():
            return ""
        with node.log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def exit_report(self, node: DemoNode) -> str:
        """`the zhejiang node (pid 123, http://…) was killed by SIGKILL`, and the last lines of its log."""
        code = node.process.poll() if node.process is not None else None
        pid = node.process.pid if node.process is not None else "-"
        text = f"the {node.region} node (pid {pid}, {node.base_url}) {_exit_text(code)}"
        tail = self.log_tail(node)
        if tail:
            text += f"; last lines of {node.log_path}:\n" + "\n".join(f"      {line}" for line in tail.splitlines())
        else:
            text += f"; its log {node.log_path} is empty"
        return text

    def dead(self) -> list[DemoNode]:
        """Nodes whose process has exited (reported or not)."""
        return [n for n in self.nodes.values() if n.process is not None and n.process.poll() is not None]

    def newly_dead(self) -> list[DemoNode]:
        """Nodes that exited since the last call (each is returned once)."""
        found = [n for n in self.dead() if not n.reported]
        for node in found:
            node.reported = True
        return found

    def restart(self, region: str) -> DemoNode:
        """Stop the region's node if it runs, start it again on its data, wait until it answers."""
        node = self.nodes.get(region)
        if node is None:
            raise RestartRefused(f"no {region} node in this demo (regions: {', '.join(self.nodes)})")
        if not node.config_path.exists():
            raise RestartRefused(f"{node.data_dir} holds no initialised node")
        self._stop(node)
        if self.check_ports([node]):
            raise RestartRefused(f"port {node.port} on 127.0.0.1 is busy: something else listens there")
        self._spawn(node, initialise=False)
        try:
            self.wait_ready([node], READY_TIMEOUT)
        except RuntimeError as exc:
            raise RestartRefused(str(exc)) from None
        self.write_state()
        return node

    # -- the control channel -----------------------------------------------------------------------------------

    def write_state(self) -> None:
        state = {"pid": os.getpid(), "root": str(self.root),
                 "nodes": {r: {"port": n.port, "base_url": n.base_url, "data_dir": str(n.data_dir),
                               "pid": n.process.pid if n.process is not None else None}
                           for r, n in self.nodes.items()}}
        (self.root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
        target = self.root / STATE_FILE
        temporary = self.root / (STATE_FILE + ".part")
        temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        temporary.replace(target)

    def clear_state(self) -> None:
        with contextlib.suppress(OSError):
            (self.root / STATE_FILE).unlink()

    def serve_requests(self) -> None:
        """Carry out the restart requests waiting in the control directory (each answered in a .done file)."""
        control = self.root / CONTROL_DIR
        for request in sorted(control.glob("restart-*.request")) if control.is_dir() else []:
            region = request.name.removeprefix("restart-").removesuffix(".request")
            request.unlink(missing_ok=True)
            self.say(f"restarting the {region} node on its data (asked by `creditnode demo restart`) …")
            try:
                node = self.restart(region)
                answer = {"ok": True, "region": region, "pid": node.process.pid, "base_url": node.base_url,
                          "message": f"the {region} node is back (pid {node.process.pid}, {node.base_url}, "
                                     f"data {node.data_dir})"}
            except RestartRefused as exc:
                answer = {"ok": False, "region": region, "message": str(exc)}
            self.say(("✓ " if answer["ok"] else "✗ ") + answer["message"])
            done = control / f"restart-{region}.done"
            partial = control / f"restart-{region}.done.part"
            partial.write_text(json.dumps(answer) + "\n", encoding="utf-8")
            partial.replace(done)

    # -- stopping -------------------------------------------------------------------------------------------

    def _stop(self, node: DemoNode) -> None:
        if node.process is None:
            return
        if node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=5)

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            self._stop(node)
        self.clear_state()
        self.http.close()


# -- the `creditnode demo restart` side ------------------------------------------------------------------------


def find_running_demo(data_dir: Path | None) -> Path:
    """The root of the running demo: `data_dir`, or the one running demo in a temporary directory."""
    if data_dir is not None:
        roots = [data_dir.resolve()]
    else:
        roots = sorted(Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"))
    running = []
    for root in roots:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
            if _pid_running(int(state["pid"])):
                running.append(root)
    if not running:
        where = str(data_dir) if data_dir is not None else f"{tempfile.gettempdir()}/{TEMP_PREFIX}*"
        raise RestartRefused(f"no running demo at {where}: start one with `creditnode demo --keep-running` "
                             "(and the same --data-dir)")
    if len(running) > 1:
        raise RestartRefused("several demos are running; name one with --data-dir: "
                             + ", ".join(str(r) for r in running))
    return running[0]


def request_restart(root: Path, region: str, *, timeout: float = RESTART_TIMEOUT) -> dict:
    """Ask the demo running at `root` to restart `region`'s node; its answer (`ok`, `message`, ...)."""
    control = root / CONTROL_DIR
    control.mkdir(parents=True, exist_ok=True)
    done = control / f"restart-{region}.done"
    done.unlink(missing_ok=True)
    request = control / f"restart-{region}.request"
    partial = control / f"restart-{region}.request.part"
    partial.write_text(json.dumps({"asked_at": time.time()}) + "\n", encoding="utf-8")
    partial.replace(request)
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            raise RestartRefused(f"the demo at {root} did not answer within {timeout:.0f} s")
        time.sleep(0.2)
    answer = json.loads(done.read_text(encoding="utf-8"))
    done.unlink(missing_ok=True)
    return answer
