"""Bounded fuzzing of a running node with schemathesis (issue 11, "Keep them fixed"); run by `.ci/run`.

    python -m tests.fuzz [--database-url URL] [--max-examples N] [--max-time SECONDS]

Starts a node like the conformance suite does (uvicorn subprocess on a free 127.0.0.1 port, its own database,
test mode off), opens a staff account holding every staff role and a learner account, then runs schemathesis
against the node's own OpenAPI twice: as the all-roles admin over every operation except `/api/v1/me…`, and as
the learner over `/api/v1/me…`. Each run is bounded (examples per operation and a time budget). It fails on any
5xx (`not_a_server_error`) and on any response that breaks the documented schema or status codes
(`response_schema_conformance`, `status_code_conformance`), and prints how many
operations and test cases ran. Exit status: 0 when both runs pass.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from node.roles import ALL_STAFF_ROLES, ROLE_ORGANISATION_KINDS
from tests.conformance.nodes import PASSWORD, launch_node, subprocess_env, wait_ready

# (Not content_type_conformance: DID documents, JSON-LD contexts, CSV/NDJSON exports and status lists declare
# their media types in their responses, not yet in the OpenAPI.)
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
LEARNER_ID = "310101199003071230"  # synthetic, valid GB 11643 check character


def _accounts(url: str) -> tuple[str, str]:
    """(bearer token of a staff member holding every staff role, bearer token of a learner)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        admin = http.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        admin.raise_for_status()
        headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        centre = next(o["code"] for o in http.get("/api/v1/admin/organisations", headers=headers).json()
                      if o["kind"] == "centre")
        r = http.post("/api/v1/admin/staff", headers=headers, json={
            "username": "fuzzer", "display_name": "Fuzzer", "password": PASSWORD,
            # every role a member of the centre may hold (institution_uploader sits at an institution; the centre's
            # node_admin and centre_reviewer reach the same import routes)
            "roles": sorted(r for r in ALL_STAFF_ROLES if "centre" in ROLE_ORGANISATION_KINDS[r]),
            "organisation_code": centre})
        r.raise_for_status()
        everyone = http.post("/api/v1/auth/token", data={"username": "fuzzer", "password": PASSWORD})
        everyone.raise_for_status()
        # an account opened at the outlet, the password typed at the desk (online registration opens nothing
        # until the person's identity is checked: docs/accounts.md)
        r = http.post("/api/v1/learners", headers={"Authorization": f"Bearer {everyone.json()['access_token']}"},
                      json={"id_number": LEARNER_ID, "name": "测试", "password": PASSWORD})
        r.raise_for_status()
        learner = http.post("/api/v1/auth/token", data={"username": r.json()["account_no"], "password": PASSWORD})
        learner.raise_for_status()
        return everyone.json()["access_token"], learner.json()["access_token"]


def _run(url: str, token: str, report: Path, *, filters: list[str], max_examples: int, max_time: int,
         seed: int) -> tuple[int, dict]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--url", url,
        "--checks", CHECKS, "--max-examples", str(max_examples), "--max-time", str(max_time),
        # one worker: with two threads, CPython 3.11's ast.parse races inside hypothesis (a tool error)
        "--phases", "examples,coverage,fuzzing", "--seed", str(seed), "--workers", "1",
        "--request-timeout", "30", "--suppress-health-check", "all", "--no-shrink",
        "-H", f"Authorization: Bearer {token}", "--report", "ndjson", "--report-ndjson-path", str(report),
        *filters,
    ]
    started = time.monotonic()
    # in the temporary directory: schemathesis keeps a .schemathesis cache in its working directory
    done = subprocess.run(command, cwd=report.parent, env=subprocess_env(), capture_output=True, text=True,
                          check=False)
    out = done.stdout
    marks = [i for i in (out.find("= ERRORS ="), out.find("= FAILURES =")) if i >= 0]
    start = min(marks) - 40 if marks else -1
    print(out[start:] if start >= 0 else out[out.find("SUMMARY") - 40:])
    if done.returncode not in (0, 1):
        print(done.stderr[-3000:])
    return done.returncode, {"seconds": round(time.monotonic() - started), **_figures(report)}


def _figures(report: Path) -> dict:
    operations, cases = set(), 0
    if not report.exists():
        return {"operations": 0, "cases": 0}
    for line in report.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for kind, body in event.items():
            if not isinstance(body, dict):
                continue
            label = body.get("label") or (body.get("recorder") or {}).get("label")
            if kind == "ScenarioFinished" and label:
                operations.add(label)
                cases += len((body.get("recorder") or {}).get("cases", {}))
    return {"operations": len(operations), "cases": cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--max-examples", type=int, default=10, help="test cases per operation and phase")
    parser.add_argument("--max-time", type=int, default=180, help="seconds per run (two runs)")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--only", choices=["staff", "learner"], help="one of the two runs")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-node-"))
    node = wait_ready(launch_node(tmp / "node", args.database_url or f"sqlite:///{tmp / 'node.db'}",
                                  test_mode=False), timeout=60)
    try:
        admin, learner = _accounts(node.url)
        results = {}
        for name, token, filters in (
            ("all staff roles", admin, ["--exclude-path-regex", "^/api/v1/me(/|$)"]),
            ("learner", learner, ["--include-path-regex", "^/api/v1/me(/|$)"]),
        ):
            if args.only and not name.startswith({"staff": "all", "learner": "learner"}[args.only]):
                continue
            code, figures = _run(node.url, token, tmp / f"{name.replace(' ', '-')}.ndjson", filters=filters,
                                 max_examples=args.max_examples, max_time=args.max_time, seed=args.seed)
            results[name] = (code, figures)
        log = node.stop()
    finally:
        if node.process.poll() is None:
            node.stop()
    failed = False
    for name, (code, figures) in results.items():
        print(f"fuzz as {name}: {figures['operations']} operations, {figures['cases']} test cases, "
              f"{figures['seconds']} s: {'passed' if code == 0 else 'FAILED'}")
        failed |= code != 0
    errors = [line for line in log.splitlines() if "unhandled error" in line or "Traceback" in line]
    if errors:
        print("server errors logged by the node:\n" + "\n".join(errors[:50]))
        failed = True
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
