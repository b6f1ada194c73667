"""Throughput at 1 and 2 worker processes (issue 13 item 3), on PostgreSQL, measured with wrk.

    python bench/workers.py                                     # 32 connections, 15 s per measurement
    python bench/workers.py --pg postgresql://postgres@127.0.0.1:5432/test --connections 64 --seconds 30

For each worker count it builds a fresh node in a throwaway database (bench/load.py's node: the example file
imported, five learners activated), starts `creditnode serve --workers N` on a free port of 127.0.0.1, and runs
wrk (/usr/bin/wrk) against

    read   GET  /api/v1/me/archive                 (a learner's token)
    write  POST /api/v1/me/deposit-applications    (a draft application: one insert, its audit entry)

printing requests per second, p50/p99 latency and non-2xx answers, then the ratio of 2 workers to 1. The machine
has 2 cores shared by wrk, PostgreSQL and the workers, so 2 workers can at best approach 2x when the node, not the
database or wrk, is the limit. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", HERE / "load.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_load"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _wrk(url: str, *, connections: int, seconds: int, script: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    done = subprocess.run([WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s",
                           "-s", lua.name, url], capture_output=True, text=True, timeout=seconds + 120, check=False)
    Path(lua.name).unlink(missing_ok=True)
    out = done.stdout

    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {"rps": float(rate.group(1)) if rate else float("nan"), "p50": latency("50"), "p99": latency("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": (errors.group(1).strip() if errors
                                                                              else ""), "raw": out}


def _lua(method: str, headers: dict[str, str], body: str | None) -> str:
    lines = [f'wrk.method = "{method}"']
    for key, value in headers.items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    return "\n".join(lines) + "\n"


def measure(load, pg: str, workers: int, *, connections: int, seconds: int) -> dict[str, dict]:
    with load.node_for_load(None, pg_server=pg, workers=workers,
                            settings={"CREDITNODE_NODE__LOG_LEVEL": "WARNING"}) as (node, fx):
        token = fx.learners[0]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        read = _wrk(node.base_url + "/api/v1/me/archive", connections=connections, seconds=seconds,
                    script=_lua("GET", auth, None))
        write = _wrk(node.base_url + "/api/v1/me/deposit-applications", connections=connections, seconds=seconds,
                     script=_lua("POST", {**auth, "Content-Type": "application/json"}, json.dumps(load.DEPOSIT)))
        return {"read": read, "write": write, "rss": {"MiB": node.rss_mib()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server (a throwaway database is made on it)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2,4")
    args = parser.parse_args()
    load = _load_bench()
    counts = [int(n) for n in args.workers.split(",")]
    results = {n: measure(load, args.pg, n, connections=args.connections, seconds=args.seconds) for n in counts}
    print(f"== creditnode serve --workers N on PostgreSQL, wrk -t2 -c{args.connections} -d{args.seconds}s")
    print(f"{'request':42} {'workers':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  vs 1 worker")
    for kind, what in (("read", "GET /api/v1/me/archive"), ("write", "POST /api/v1/me/deposit-applications")):
        base = results[counts[0]][kind]["rps"]
        for n in counts:
            r = results[n][kind]
            ratio = r["rps"] / base if base else float("nan")
            print(f"{what:42} {n:7d} {r['rps']:8.1f} {r['p50']:8.1f} {r['p99']:8.1f} {r['non2xx']:8d}  {ratio:.2f}"
                  + (f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""))
    for n in counts:
        print(f"server RSS after the runs, {n} worker(s): {results[n]['rss']['MiB']:.0f} MiB")


if __name__ == "__main__":
    main()
