"""No server errors under load (issue 13 items 6 and 7): many concurrent connections against a real node.

    python bench/load.py                                  # SQLite, 200 connections, 60 s
    python bench/load.py --pg postgresql://postgres@127.0.0.1:5432/test --workers 2
    python bench/load.py --duration 600                   # does the server's memory stay flat?

It builds a fresh node (`creditnode init` in a temporary directory; with --pg, in a throwaway database on that
server, dropped afterwards), imports the example file (5 learners, 12 course results), activates the learners'
accounts and reads one signed credential, starts `creditnode serve` (`--workers N`) on a free port of 127.0.0.1
with the per-client limits lifted (every request comes from 127.0.0.1), then runs --connections client loops
(asyncio + httpx, one keep-alive connection each) for --duration seconds, each picking at random from a mix:

    archive 35 %   GET /api/v1/me/archive                 (learner token)
    credential 15 % GET /api/v1/me/credentials/{id}       (signed on the fly)
    discovery 10 % GET /.well-known/credit-node
    verify 10 %    POST /api/v1/verify                    (a signed credential)
    deposit 25 %   POST /api/v1/me/deposit-applications   (a write: a draft application)
    sign-in 5 %    POST /api/v1/auth/token                (argon2; the password gate may answer 429)

It prints the status codes per kind, server errors (5xx, must be 0), transport errors and timeouts (a hang),
latency p50/p99 per kind, stalls (a second of the run in which no request completed), and the server's resident
memory (the serve process and its workers) every 10 s, with its growth over the run. The client runs on the
same 2 cores as the server: the throughput is the pair's, the latency includes the client's own queueing.
Prints; asserts nothing (tests/ops/test_load.py runs a short bounded version and asserts 0 5xx, no stall).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "load-bench-pass-1"
EXAMPLE_IDS = ("319999199803120114", "319999199609300525", "319999199711030357", "319999199907250220",
               "319999200001180460")
MIX = {"archive": 35, "credential": 15, "discovery": 10, "verify": 10, "deposit": 25, "sign_in": 5}
DEPOSIT = {"achievement": {"type": "degree_course", "issuer_code": "U001", "issuer_name": "示例大学",
                           "code": "LOAD101", "title": "负载测试课程", "credits": "2", "hours": "32", "score": "80",
                           "earned_on": "2025-01-15"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CREDITNODE_", "PROMETHEUS_"))}


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", "from node.cli import app; app()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"creditnode {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


# -- the node --------------------------------------------------------------------------------------------------


@dataclass
class Node:
    """A node built for the load, served by `creditnode serve` in a subprocess."""

    data_dir: Path
    database_url: str
    workers: int = 1
    settings: dict[str, str] = field(default_factory=dict)  # extra CREDITNODE_* settings for the server
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    admin_password: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build(self) -> None:
        from node.cli import initialise_node

        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.startswith("CREDITNODE_")]:
                del os.environ[key]
            config, self.admin_password = initialise_node(region="shanghai", data_dir=self.data_dir,
                                                          base_url=self.base_url, database_url=self.database_url)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.env = _clean_env()
        self.env.update({
            "CREDITNODE_CONFIG": str(config),
            # every request of the bench comes from 127.0.0.1: lift the per-client limits
            "CREDITNODE_RATELIMIT__SIGN_IN": "100000000/minute",
            "CREDITNODE_RATELIMIT__REGISTRATION": "100000000/minute",
            "CREDITNODE_SECURITY__VERIFY_RATE_LIMIT_PER_MINUTE": "100000000",
            "CREDITNODE_NODE__LOG_LEVEL": "WARNING",  # no access line per request
            "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
            **self.settings,
        })
        _cli("org", "add", "U001", "--name", "示例大学", "--kind", "institution", "--institution-type",
             "university", env=self.env)
        scores = self.data_dir / "scores.csv"
        _cli("example", str(scores), env=self.env)
        _cli("import", str(scores), "--institution", "U001", env=self.env)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from node.cli import app; app()", "serve", "--port", str(self.port),
             "--workers", str(self.workers)], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=5) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the node exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/ready").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the node did not come up in 120 s")
                time.sleep(0.3)
        if self.workers > 1:  # let every worker finish its startup
            deadline = time.monotonic() + 60
            while len(self.pids()) < self.workers + 1 and time.monotonic() < deadline:
                time.sleep(0.3)

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.send_signal(signal.SIGINT)
        try:
            _out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        self.proc = None
        return err or ""

    def pids(self) -> list[int]:
        """The serve process and its descendants (uvicorn's workers; a worker's helpers)."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = defaultdict(list)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024


@dataclass
class Fixture:
    """What the client loops use: learners' tokens, one learner's achievement ids, a signed credential."""

    learners: list[dict]  # {"id_number", "token", "account_no"}
    achievement_ids: list[int]
    credential: dict


def prepare(node: Node) -> Fixture:
    """Activate the example learners' accounts through the API (an outlet's activation code each)."""
    with httpx.Client(base_url=node.base_url, trust_env=False, timeout=60) as http:
        def token(username: str, password: str) -> str:
            answer = http.post("/api/v1/auth/token", data={"username": username, "password": password})
            answer.raise_for_status()
            return answer.json()["access_token"]

        admin = {"Authorization": f"Bearer {token('admin', node.admin_password)}"}
        http.post("/api/v1/admin/staff", headers=admin, json={
            "username": "outlet", "display_name": "outlet", "password": PASSWORD, "roles": ["outlet_staff"]},
        ).raise_for_status()
        outlet = {"Authorization": f"Bearer {token('outlet', PASSWORD)}"}
        learners = []
        for id_number in EXAMPLE_IDS:
            found = http.get("/api/v1/learners/search", headers=outlet, params={"id_number": id_number})
            found.raise_for_status()
            learner = found.json()
            code = http.post(f"/api/v1/learners/{learner['id']}/activation-code", headers=outlet)
            code.raise_for_status()
            activated = http.post("/api/v1/learners/activate", json={
                "id_number": id_number, "code": code.json()["code"], "new_password": PASSWORD})
            activated.raise_for_status()
            learners.append({"id_number": id_number, "account_no": learner["account_no"],
                             "token": token(learner["account_no"], PASSWORD)})
        me = {"Authorization": f"Bearer {learners[0]['token']}"}
        archive = http.get("/api/v1/me/archive", headers=me)
        archive.raise_for_status()
        ids = _achievement_ids(archive.json())
        if not ids:
            raise RuntimeError(f"the first learner's archive holds no achievement: {archive.text[:500]}")
        credential = http.get(f"/api/v1/me/credentials/{ids[0]}", headers=me)
        credential.raise_for_status()
        checked = http.post("/api/v1/verify", json=credential.json())
        checked.raise_for_status()
    return Fixture(learners=learners, achievement_ids=ids, credential=credential.json())


def _achievement_ids(archive: dict) -> list[int]:
    found: list[int] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("achievement_id",) and isinstance(item, int):
                    found.append(item)
                elif key == "id" and isinstance(item, int) and {"title", "credits"} & value.keys():
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(archive)
    return sorted(set(found))


# -- the load --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    duration: float
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    per_second: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # transport errors and timeouts, by kind of error
    rss: list[tuple[float, float]] = field(default_factory=list)
    server_error_samples: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for c in self.statuses.values() for status, n in c.items() if status >= 500)

    def stalls(self) -> list[int]:
        """Whole seconds of the run, from the first completed request on (connecting 200 clients and the first
        answers are not a stall), in which no request completed."""
        busy = [s for s in range(int(self.duration)) if self.per_second[s]]
        if not busy:
            return list(range(int(self.duration)))
        return [s for s in range(busy[0], int(self.duration)) if self.per_second[s] == 0]

    def longest_stall(self) -> int:
        """The longest run of consecutive stalled seconds."""
        longest = run = 0
        previous = None
        for second in self.stalls():
            run = run + 1 if previous is not None and second == previous + 1 else 1
            longest = max(longest, run)
            previous = second
        return longest


def _request(kind: str, fx: Fixture, rnd: random.Random) -> tuple[str, str, dict]:
    learner = rnd.choice(fx.learners)
    auth = {"Authorization": f"Bearer {learner['token']}"}
    if kind == "archive":
        return "GET", "/api/v1/me/archive", {"headers": auth}
    if kind == "credential":
        first = fx.learners[0]
        return "GET", f"/api/v1/me/credentials/{rnd.choice(fx.achievement_ids)}", {
            "headers": {"Authorization": f"Bearer {first['token']}"}}
    if kind == "discovery":
        return "GET", "/.well-known/credit-node", {}
    if kind == "verify":
        return "POST", "/api/v1/verify", {"content": json.dumps(fx.credential).encode(),
                                          "headers": {"Content-Type": "application/json"}}
    if kind == "deposit":
        return "POST", "/api/v1/me/deposit-applications", {"headers": auth, "json": DEPOSIT}
    if kind == "sign_in":
        return "POST", "/api/v1/auth/token", {"data": {"username": learner["account_no"], "password": PASSWORD}}
    raise ValueError(kind)


async def _loop(http: httpx.AsyncClient, fx: Fixture, result: Result, started: float, deadline: float,
                seed: int) -> None:
    rnd = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    while time.monotonic() < deadline:
        kind = rnd.choices(kinds, weights)[0]
        method, path, kwargs = _request(kind, fx, rnd)
        t0 = time.monotonic()
        try:
            answer = await http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            result.errors[f"{kind}: timeout"] += 1
            continue
        except httpx.TransportError as exc:
            result.errors[f"{kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
            continue
        t1 = time.monotonic()
        result.statuses[kind][answer.status_code] += 1
        result.latencies[kind].append(t1 - t0)
        result.per_second[int(t1 - started)] += 1
        if answer.status_code >= 500 and len(result.server_error_samples) < 5:
            result.server_error_samples.append(f"{kind} {answer.status_code} {answer.text[:200]}")


async def _sample_rss(node: Node, result: Result, started: float, deadline: float, every: float) -> None:
    while True:
        result.rss.append((time.monotonic() - started, node.rss_mib()))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(every, remaining))


async def _run(node: Node, fx: Fixture, *, connections: int, duration: float, timeout: float,
               rss_every: float) -> Result:
    result = Result(duration=duration)
    # One client, one connection per loop: each loop has at most one request in flight, so the pool holds
    # `connections` keep-alive connections. (A client per loop would build an SSL context each, blocking the
    # event loop for seconds at the start on a busy machine.)
    # keep-alive shorter than uvicorn's 5 s: a connection the server is closing is never picked for a request
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=node.base_url, trust_env=False, timeout=timeout, limits=limits) as http:
        started = time.monotonic()
        deadline = started + duration
        loops = [_loop(http, fx, result, started, deadline, seed) for seed in range(connections)]
        await asyncio.gather(_sample_rss(node, result, started, deadline, rss_every), *loops)
        result.duration = time.monotonic() - started
    return result


def run_load(node: Node, fx: Fixture, *, connections: int, duration: float, timeout: float = 60.0,
             rss_every: float = 10.0) -> Result:
    return asyncio.run(_run(node, fx, connections=connections, duration=duration, timeout=timeout,
                            rss_every=rss_every))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: Result, *, label: str) -> str:
    lines = [f"== {label}: {result.completed} responses in {result.duration:.0f} s "
             f"({result.completed / result.duration:.0f}/s)"]
    lines.append(f"{'kind':11} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for kind in MIX:
        lat = result.latencies.get(kind, [])
        codes = " ".join(f"{s}:{n}" for s, n in sorted(result.statuses.get(kind, Counter()).items()))
        lines.append(f"{kind:11} {len(lat):6d} {_pct(lat, 0.5) * 1000:8.0f} {_pct(lat, 0.99) * 1000:8.0f}  {codes}")
    everything = [v for lat in result.latencies.values() for v in lat]
    lines.append(f"{'all':11} {len(everything):6d} {_pct(everything, 0.5) * 1000:8.0f} "
                 f"{_pct(everything, 0.99) * 1000:8.0f}")
    lines.append(f"server errors (5xx): {result.server_errors}" +
                 (f"  e.g. {result.server_error_samples}" if result.server_error_samples else ""))
    lines.append(f"transport errors / timeouts: {sum(result.errors.values())} {dict(result.errors) or ''}")
    stalls = result.stalls()
    lines.append(f"stalls (seconds with 0 completions, after the first): {len(stalls)}"
                 f"{' at ' + str(stalls[:20]) + f', longest {result.longest_stall()} s' if stalls else ''}")
    per_second = [result.per_second[s] for s in range(int(result.duration))]
    if per_second:
        lines.append(f"completions per second: min {min(per_second)}, median {statistics.median(per_second):.0f}, "
                     f"max {max(per_second)}")
    if result.rss:
        lines.append("server RSS (MiB, serve process + workers): " +
                     ", ".join(f"{t:.0f}s {m:.0f}" for t, m in result.rss))
        first, last = result.rss[0][1], result.rss[-1][1]
        settled = result.rss[min(1, len(result.rss) - 1)][1]
        lines.append(f"RSS growth: start {first:.0f} → end {last:.0f} MiB ({last - first:+.0f}); "
                     f"after the first 10 s {settled:.0f} → {last:.0f} ({last - settled:+.0f})")
    return "\n".join(lines)


@contextlib.contextmanager
def node_for_load(database_url: str | None, *, pg_server: str | None = None, workers: int = 1,
                  settings: dict[str, str] | None = None):
    """A built, prepared and serving node; stopped (and its throwaway database dropped) afterwards."""
    with tempfile.TemporaryDirectory(prefix="creditnode-load-") as tmp:
        dropper = None
        if pg_server:
            import psycopg

            name = f"creditnode_load_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            admin_url = pg_server.rstrip("/").replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database_url = admin_url.rsplit("/", 1)[0] + f"/{name}"

            def dropper() -> None:
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        node = Node(data_dir=Path(tmp) / "node", database_url=database_url or f"sqlite:///{tmp}/node/load.db",
                    workers=workers, settings=settings or {})
        try:
            node.build()
            node.start()
            fx = prepare(node)
            yield node, fx
        finally:
            err = node.stop()
            errors = Counter(line.split(" [", 1)[-1].split("] ", 1)[-1][:160] for line in err.splitlines()
                             if " ERROR " in line or " CRITICAL " in line)
            if errors:
                print("server error lines (count, message):", file=sys.stderr)
                for message, count in errors.most_common(8):
                    print(f"  {count:5d}  {message}", file=sys.stderr)
            if dropper is not None:
                dropper()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--pg", metavar="SERVER_URL", help="PostgreSQL: a throwaway database on this server, "
                                                           "e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workers", type=int, default=1, help="creditnode serve --workers (PostgreSQL only)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds (past it: a hang)")
    parser.add_argument("--set", action="append", default=[], metavar="CREDITNODE_X__Y=VALUE",
                        help="a setting for the server, e.g. CREDITNODE_DATABASE__POOL_SIZE=20 (repeatable)")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    label = (f"{'PostgreSQL' if args.pg else 'SQLite'}, {args.workers} worker(s), {args.connections} connections, "
             f"{args.duration:.0f} s")
    if settings:
        label += " " + " ".join(args.set)
    with node_for_load(None, pg_server=args.pg, workers=args.workers, settings=settings) as (node, fx):
        result = run_load(node, fx, connections=args.connections, duration=args.duration, timeout=args.timeout)
        print(report(result, label=label), flush=True)


if __name__ == "__main__":
    main()
