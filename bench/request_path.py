"""The request path against a raw baseline, side by side in one run (issue 13).

    python bench/request_path.py                          # SQLite, 32 connections, 5 s per scenario
    python bench/request_path.py --database postgresql    # a throwaway database on 127.0.0.1:5432, dropped afterwards
    python bench/request_path.py --seconds 10 --connections 64 --only archive,discovery
    python bench/request_path.py --profile /tmp/prof      # also a py-spy flame graph of the node per scenario

It starts a real node (`creditnode serve`: uvicorn, one worker, 127.0.0.1), seeds one learner with
--achievements deposited achievements through the project's own services (account opening, ledger events),
signs the learner in over HTTP, then starts the raw baseline (bench/_http_raw.py: a minimal async Starlette app
running the equivalent SQL on the same database with sqlite3/psycopg directly, orjson, one Ed25519 signature for
the signed reads). Each scenario is loaded with `wrk` against the node and then against its baseline, and one
table is printed: node req/s, p50, p99, errors | baseline req/s | ratio | goal. Prints; asserts nothing.

The last row, "peer", is the signed vs unsigned `POST /federation/v1/inbox` of bench/_http_peer.py (its own node
with fake peers, one connection per peer; see `peer_results`): node = signed, baseline = unsigned, goal ≥ 0.7.

Adding a scenario: `SCENARIOS` below is a list of functions `(bench: Bench) -> list[Scenario]`. A `Target` is a URL
with a method, headers and a body (or a wrk Lua script); a scenario compares its `node` target with its
`baseline`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file's name would hide the standard
# library's `http` package from everything imported below: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
else:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
WRK = shutil.which("wrk") or "/usr/bin/wrk"

__all__ = ["SCENARIOS", "Bench", "Result", "Scenario", "Target", "main", "run_wrk"]


# -- the pieces a scenario is made of ---------------------------------------------------------------------


@dataclass
class Target:
    """One thing to load: a URL, with a method, headers and a body, or a wrk Lua script (`script`, its text:
    for requests that change from one to the next, e.g. signed ones). `expect` is the status every answer should
    have; wrk counts answers outside 2xx/3xx, so a non-2xx `expect` is checked once before the run instead."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    script: str | None = None
    expect: int = 200


@dataclass
class Scenario:
    name: str
    node: Target
    baseline: Target | None
    goal: float | None = None  # node / baseline req/s wanted
    baseline_label: str = "raw"  # what the baseline is ("raw", "unsigned", ...)
    note: str = ""
    node_pid: int | None = None  # whose CPU time to count (default: the node's; the baseline's: the raw app's)
    baseline_pid: int | None = None


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # unexpected statuses (non-2xx when 2xx is expected) + socket errors and timeouts
    requests: int
    cpu_ms: float = float("nan")  # the server process's CPU time per request (all threads), from /proc

    @property
    def cpu_rps(self) -> float:
        """Requests per CPU-second of the server: what it would answer with a core to itself (noise-robust)."""
        return 1000.0 / self.cpu_ms if self.cpu_ms == self.cpu_ms and self.cpu_ms > 0 else float("nan")

    @property
    def shown_errors(self) -> str:
        return f"{self.errors} (no answer at all)" if self.requests == 0 else str(self.errors)


@dataclass
class Bench:
    """What a scenario function gets: the running node and baseline, the seeded learner, the settings."""

    node_url: str
    raw_url: str
    database_url: str
    config_path: Path
    tmp: Path
    learner_id: int
    achievement_ids: list[int]
    token: str
    args: argparse.Namespace
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def learner_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


# -- wrk ----------------------------------------------------------------------------------------------------

_LUA_REQUEST = """
wrk.method = {method}
wrk.body = {body}
{headers}
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _wrk_script(target: Target, tmp: Path) -> Path | None:
    if target.script is not None:
        text = target.script
    elif target.method != "GET" or target.body is not None:
        headers = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in target.headers.items())
        text = _LUA_REQUEST.format(method=_lua_string(target.method),
                                   body=_lua_string((target.body or b"").decode("latin-1")) if target.body else "nil",
                                   headers=headers)
    else:
        return None
    path = tmp / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    path.write_text(text, encoding="latin-1")
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(target: Target, *, seconds: float, connections: int, threads: int, tmp: Path,
            pid: int | None = None) -> Result:
    """Load `target` with wrk and read requests/s, p50, p99 and the error counts from its report; with the
    server's `pid`, also its CPU time per request."""
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s"]
    script = _wrk_script(target, tmp)
    if script is not None:
        cmd += ["-s", str(script)]
    if target.script is None:
        for name, value in target.headers.items():
            cmd += ["-H", f"{name}: {value}"]
    cmd.append(target.url)
    cpu_before = _cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    cpu = _cpu_seconds(pid) - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) if "Requests/sec" in out else 0.0
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in sock.groups()) if sock else 0
    if non2xx and target.expect < 300:
        errors += int(non2xx.group(1))
    requests = int(total.group(1)) if total else 0
    return Result(rps=rps, p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
                  p99_ms=_ms(p99.group(1)) if p99 else float("nan"), errors=errors, requests=requests,
                  cpu_ms=1000.0 * cpu / requests if requests else float("nan"))


# -- the scenarios ------------------------------------------------------------------------------------------


def read_scenarios(bench: Bench) -> list[Scenario]:
    node, raw, auth = bench.node_url, bench.raw_url, bench.learner_headers
    some = bench.achievement_ids[len(bench.achievement_ids) // 2]
    n = len(bench.achievement_ids)
    return [
        Scenario("archive", Target(node + "/api/v1/me/archive", headers=auth), Target(raw + "/archive"), 0.5,
                 note=f"GET /api/v1/me/archive ({n} records)"),
        Scenario("credential", Target(f"{node}/api/v1/me/credentials/{some}", headers=auth),
                 Target(f"{raw}/credentials/{some}"), 0.5,
                 note="GET /api/v1/me/credentials/{id} (signed; raw: + one Ed25519 signature)"),
        Scenario("transcript", Target(node + "/api/v1/me/transcript", headers=auth), Target(raw + "/transcript"),
                 0.5, note=f"GET /api/v1/me/transcript ({n} credentials; raw: + one signature)"),
        Scenario("discovery", Target(node + "/.well-known/credit-node"), Target(raw + "/discovery"), 0.5,
                 note="GET /.well-known/credit-node (raw: bare Starlette, same bytes)"),
        Scenario("401", Target(node + "/api/v1/me/archive", expect=401),
                 Target(raw + "/unauthorised", expect=401), None,
                 note="GET /api/v1/me/archive without a token (raw: bare Starlette 401)"),
    ]


def peer_results(args: argparse.Namespace) -> list[tuple[Scenario, Result, Result | None]]:
    """The signed vs unsigned `POST /federation/v1/inbox` comparison of bench/_http_peer.py, as one row of this
    table ("peer"): node = signed, baseline = unsigned (goal ≥ 0.7). It runs on a node of its own (a membership
    of fake peers, one connection each, so that each peer's messages arrive in stream order; requests signed
    before wrk starts), with the same kind of database and the same seconds per side, best of 2 rounds; the CPU
    figures are the node's CPU time per message it accepted."""
    path = Path(__file__).with_name("_http_peer.py")
    spec = importlib.util.spec_from_file_location("bench_http_peer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_http_peer"] = module  # dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(module)
    url = PG_SERVER + "/postgres" if args.database == "postgresql" else None
    connections = min(args.connections, 32)
    unsigned, signed = module.scenarios(database_url=url, seconds=args.seconds, connections=connections)

    def result(row: dict) -> Result:
        done = row["ok"] + row["bad"]
        return Result(rps=row["rate"], p50_ms=row["p50_ms"], p99_ms=row["p99_ms"], errors=row["bad"] + row["over"],
                      requests=done, cpu_ms=row["cpu_ms"])

    scenario = Scenario("peer", Target(f"(bench/_http_peer.py) {signed['name']}"), None, 0.7,
                        baseline_label="unsigned",
                        note=f"signed POST /federation/v1/inbox vs unsigned ({connections} peers, 1 KiB; "
                             f"per round: {', '.join(f'{x:.2f}' for x in signed['paired'])})")
    return [(scenario, result(signed), result(unsigned))]


SCENARIOS: list[Callable[[Bench], list[Scenario]]] = [read_scenarios]


# -- the node, its data and the baseline --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'data' / 'node.db'}"
        return
    import psycopg

    name = f"bench_http_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(PG_SERVER + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _initialise(tmp: Path, base_url: str, database_url: str) -> Path:
    from node.cli import initialise_node

    saved = dict(os.environ)
    try:
        config, _password = initialise_node(region="shanghai", data_dir=tmp / "data", base_url=base_url,
                                            database_url=database_url)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return config


_TYPES = ("degree_course", "self_study_course", "vocational_qualification", "skill_level", "training", "community")


def _seed(config: Path, achievements: int) -> tuple[int, str, list[int]]:
    """One learner (opened at the desk, as an outlet does) with `achievements` deposited achievements, each with
    its `achievement.deposited` ledger event. Returns (learner id, account number, achievement ids)."""
    saved = dict(os.environ)
    os.environ["CREDITNODE_CONFIG"] = str(config)
    try:
        from config.settings import Settings
        from node.context import NodeContext
        from node.db import session_scope
        from node.learners.service import open_account
        from node.ledger.service import EventSpec, append_events
        from node.models import Achievement
        from node.security.idnumbers import gb11643_check_char

        ctx = NodeContext.build(Settings())
        first = "31010119900307" + "512"
        ids: list[int] = []
        with session_scope(ctx.engine) as s:
            learner, _ = open_account(s, ctx, id_type="resident_id", id_number=first + gb11643_check_char(first),
                                      name="压测学员", password="bench-pass-1234")
            for i in range(achievements):
                type_ = _TYPES[i % len(_TYPES)]
                a = Achievement(learner_id=learner.id, type=type_, issuer_code="10280", issuer_name="上海大学",
                                code=f"C{i:04d}", title=f"课程 {i}", credits=Decimal("2.5"), hours=Decimal(32),
                                score_text="85", score_value=Decimal(85), earned_on=dt.date(2020 + i % 5, 6, 30),
                                term=f"{2020 + i % 5}06", source="individual", status="deposited")
                s.add(a)
                s.flush()
                append_events(s, [EventSpec(kind="achievement.deposited", learner_id=learner.id,
                                            achievement_id=a.id, pseudonym=learner.pseudonym,
                                            data={"achievement": a.id, "title": a.title, "credits": "2.5"})])
                ids.append(a.id)
            learner_id, account_no = learner.id, learner.account_no
        ctx.engine.dispose()
        return learner_id, account_no, ids
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _wait(url: str, proc: subprocess.Popen, what: str) -> None:
    with httpx.Client(timeout=5, trust_env=False) as http:
        for _ in range(3000):  # up to ~5 minutes: on a loaded shared machine the node's start alone took > 60 s
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with {proc.returncode}")
            try:
                http.get(url)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


@contextlib.contextmanager
def _process(cmd: list[str], env: dict[str, str], url: str, what: str, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(url, proc, what)
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _warm(bench: Bench, scenarios: list[Scenario]) -> None:
    """Each read once (the first credential export assigns the status index), checking the answers."""
    with httpx.Client(timeout=120, trust_env=False) as http:
        for scenario in scenarios:
            for target in (scenario.node, scenario.baseline):
                if target is None or target.script is not None:
                    continue
                r = http.request(target.method, target.url, headers=target.headers, content=target.body)
                if r.status_code != target.expect:
                    raise SystemExit(f"{scenario.name}: {target.url} answered {r.status_code}, not {target.expect}: "
                                     f"{r.text[:300]}")
        for i in bench.achievement_ids:
            http.get(f"{bench.node_url}/api/v1/me/credentials/{i}", headers=bench.learner_headers)


@contextlib.contextmanager
def _profiling(pid: int, out: Path | None, name: str, seconds: float) -> Iterator[None]:
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                             "--rate", "250", "--gil", "--nonblocking", "--format", "raw", "-o", str(out / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.wait(timeout=seconds + 30)


def _settle(pid: int, seconds: float = 120.0) -> None:
    """Wait until the server has worked off what the last run left in flight (wrk stops; the requests it sent
    run on): until it uses under 5 % of a core over a quarter of a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = _cpu_seconds(pid)
        time.sleep(0.25)
        if not _cpu_seconds(pid) - before > 0.0125:
            return


def _fmt(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"


def run(args: argparse.Namespace) -> list[tuple[Scenario, Result, Result | None]]:
    results = []
    wanted = set(args.only.split(",")) if args.only else None
    if wanted == {"peer"}:
        return peer_results(args)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        with _database(args.database, tmp) as database_url:
            port, raw_port = _free_port(), _free_port()
            node_url, raw_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{raw_port}"
            config = _initialise(tmp, node_url, database_url)
            learner_id, account_no, achievement_ids = _seed(config, args.achievements)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
            env["CREDITNODE_CONFIG"] = str(config)
            env.update(dict(item.split("=", 1) for item in args.env))
            serve = [sys.executable, "-c", "from node.cli import app; app()", "serve", "--port", str(port)]
            with _process(serve, env, node_url + "/health", "the node", tmp / "node.log") as node:
                with httpx.Client(timeout=60, trust_env=False) as http:
                    r = http.post(node_url + "/api/v1/auth/token",
                                  data={"username": account_no, "password": "bench-pass-1234"})
                    r.raise_for_status()
                    token = r.json()["access_token"]
                    discovery = http.get(node_url + "/.well-known/credit-node").content
                raw_config = tmp / "raw.json"
                raw_config.write_text(json.dumps({"database_url": database_url, "learner_id": learner_id,
                                                  "discovery": discovery.decode("latin-1")}))
                raw_cmd = [sys.executable, str(Path(__file__).with_name("_http_raw.py")), str(raw_config),
                           str(raw_port)]
                with _process(raw_cmd, env, raw_url + "/discovery", "the raw baseline", tmp / "raw.log") as raw:
                    bench = Bench(node_url=node_url, raw_url=raw_url, database_url=database_url,
                                  config_path=config, tmp=tmp, learner_id=learner_id,
                                  achievement_ids=achievement_ids, token=token, args=args)
                    bench.extras["node_pid"], bench.extras["raw_pid"] = node.pid, raw.pid
                    scenarios = [s for make in SCENARIOS for s in make(bench) if not wanted or s.name in wanted]
                    _warm(bench, scenarios)
                    load = dict(seconds=args.seconds, connections=args.connections, threads=args.threads, tmp=tmp)
                    for scenario in scenarios:
                        with _profiling(node.pid, args.profile, f"{args.database}-{scenario.name}", args.seconds):
                            mine = run_wrk(scenario.node, pid=scenario.node_pid or node.pid, **load)
                        _settle(scenario.node_pid or node.pid)
                        theirs = (run_wrk(scenario.baseline, pid=scenario.baseline_pid or raw.pid, **load)
                                  if scenario.baseline else None)
                        results.append((scenario, mine, theirs))
                        print(f"  {scenario.name}: node {mine.rps:,.0f} req/s"
                              + (f", {scenario.baseline_label} {theirs.rps:,.0f} req/s" if theirs else ""),
                              file=sys.stderr, flush=True)
                if args.keep_log:
                    shutil.copy(tmp / "node.log", args.keep_log)
    if not wanted or "peer" in wanted:
        try:
            results += peer_results(args)
        except Exception as exc:  # the reads' rows are still printed
            print(f"  peer: not measured ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
    return results


def print_table(args: argparse.Namespace, results: list[tuple[Scenario, Result, Result | None]]) -> None:
    print(f"\nbench/request_path.py · {args.database} · 1 worker · {args.connections} connections · {args.seconds:g} s "
          f"per scenario · {args.achievements} achievements · {os.cpu_count()} cores")
    print("| scenario | node req/s | p50 ms | p99 ms | errors | baseline req/s | ratio | goal | | "
          "node CPU ms/req | baseline CPU ms/req | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for scenario, mine, theirs in results:
        ratio = mine.rps / theirs.rps if theirs and theirs.rps else float("nan")
        cpu_ratio = theirs.cpu_ms / mine.cpu_ms if theirs and mine.cpu_ms else float("nan")
        met = "" if scenario.goal is None or ratio != ratio else ("met" if ratio >= scenario.goal else "below")
        base = f"{_fmt(theirs.rps)} ({scenario.baseline_label})" if theirs else "-"
        goal = f"≥ {scenario.goal:g}" if scenario.goal is not None else "-"
        print(f"| {scenario.note or scenario.name} | {_fmt(mine.rps)} | {_fmt(mine.p50_ms, 1)} | "
              f"{_fmt(mine.p99_ms, 1)} | {mine.shown_errors} | {base} | {_fmt(ratio, 2)} | {goal} | {met} | "
              f"{_fmt(mine.cpu_ms, 2)} | {_fmt(theirs.cpu_ms, 2) if theirs else '-'} | {_fmt(cpu_ratio, 2)} |")
    print("ratio: node req/s ÷ baseline req/s in this run. CPU ratio: baseline CPU ms/req ÷ node CPU ms/req (the "
          "server processes' own CPU time, all threads, from /proc: robust to other load on the machine).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario and side")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--achievements", type=int, default=20)
    parser.add_argument("--only", help="comma-separated scenario names (archive,credential,transcript,discovery,401,"
                                       "peer)")
    parser.add_argument("--profile", type=Path, help="write a py-spy profile of the node per scenario here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the node (e.g. CREDITNODE_NODE__LOG_LEVEL=WARNING)")
    parser.add_argument("--keep-log", type=Path, help="copy the node's log here")
    args = parser.parse_args(argv)
    print_table(args, run(args))


if __name__ == "__main__":
    main()
