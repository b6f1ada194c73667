"""The pytest plugin behind the suite: options, the `harness` fixture, protocol rules, prerequisites, results.

- `@pytest.mark.rule("docs/federation.md §3 replayed")` names the protocol rule a test checks (required).
- `@pytest.mark.provides("membership")` / `@pytest.mark.requires("membership")`: a test whose prerequisite
  did not pass is **skipped** with that reason, not reported as a second failure.
- Results are collected per test (rule, outcome, message, duration) and, with `--report-dir`, written as
  JSON, JUnit XML, HTML and a signed conformance report (conformance.reports) when the session ends.

Use it as `pytest -p conformance.plugin conformance-tests/conformance/suite --target URL --admin-token T`, or
through `creditnode-conformance` (conformance.cli), which does exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.client import NodeClient
from conformance.peer import MockPeer

__all__ = ["Harness", "Result"]


@dataclass
class Result:
    test: str
    rule: str
    outcome: str  # passed | failed | skipped
    message: str = ""
    duration: float = 0.0


@dataclass
class Harness:
    """Shared by the tests of one run: the node client, the mock peer and what earlier tests established."""

    node: NodeClient
    peer: MockPeer
    facts: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # the harness's outgoing stream to the node

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def ping(self, label: str, *, token: str = "ping", message_id: str | None = None, seq: int | None = None,
             **kwargs: Any):
        """Send a correctly signed `conformance.ping` (consuming the next seq unless `seq` is given)."""
        envelope = self.node.envelope(self.peer.node_id, seq if seq is not None else self.next_seq(),
                                      body={"token": token}, message_id=message_id)
        return envelope, self.node.send_signed(label, envelope, sign=self.peer.sign, **kwargs)


@dataclass
class RunState:
    target: str
    admin_token: str
    report_dir: Path | None
    signing_key: Path | None
    signing_key_id: str | None
    results: dict[str, Result] = field(default_factory=dict)
    provided: set[str] = field(default_factory=set)
    failed_prereq: dict[str, str] = field(default_factory=dict)
    harness: Harness | None = None
    started: float = field(default_factory=time.time)


_STATE = pytest.StashKey[RunState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--target", help="base URL of the node under test")
    group.addoption("--admin-token", help="bearer token of a federation_admin (+ centre_reviewer) account")
    group.addoption("--report-dir", default=None, help="write JSON, JUnit XML, HTML and the signed report here")
    group.addoption("--signing-key", default=None,
                    help="file with the Ed25519 key signing the report (default: the harness's own key)")
    group.addoption("--signing-key-id", default=None, help="verification method id of --signing-key")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("rule(text): the protocol rule the test checks",
                 "provides(name): the test establishes a prerequisite",
                 "requires(*names): skip unless these prerequisites were established"):
        config.addinivalue_line("markers", line)
    target = config.getoption("--target")
    if not target:
        return
    config.stash[_STATE] = RunState(
        target=target, admin_token=config.getoption("--admin-token") or "",
        report_dir=Path(config.getoption("--report-dir")) if config.getoption("--report-dir") else None,
        signing_key=Path(config.getoption("--signing-key")) if config.getoption("--signing-key") else None,
        signing_key_id=config.getoption("--signing-key-id"),
    )


def _state(config: pytest.Config) -> RunState:
    try:
        return config.stash[_STATE]
    except KeyError:
        raise pytest.UsageError("give --target URL (and --admin-token) to run the conformance suite") from None


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    state = _state(request.config)
    node = NodeClient(state.target, state.admin_token)
    peer = MockPeer()
    peer.resolve_node_key = node.resolver("authentication")
    try:
        peer.node_under_test = node.node_id
    except Exception:  # noqa: BLE001 - discovery is tested (and reported) by test_01
        peer.node_under_test = None
    peer.start()
    state.harness = Harness(node, peer)
    try:
        yield state.harness
    finally:
        try:  # leave the node as we found it
            node.admin("POST", "/api/v1/testing/reset", {"node_ids": [peer.node_id]})
        except Exception as exc:  # noqa: BLE001 - best effort; the node may be gone
            state.facts_reset_error = str(exc)  # type: ignore[attr-defined]
        peer.stop()
        node.close()


def _rule(item: pytest.Item) -> str:
    mark = item.get_closest_marker("rule")
    return str(mark.args[0]) if mark and mark.args else ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is None:
        return
    for mark in item.iter_markers("requires"):
        for name in mark.args:
            if name not in state.provided:
                culprit = state.failed_prereq.get(name)
                reason = (f"prerequisite {name!r} failed in {culprit}" if culprit
                          else f"prerequisite {name!r} was not established")
                pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    state = item.config.stash.get(_STATE, None)
    if state is None:
        return report
    name = item.nodeid.split("::", 1)[-1] if "::" in item.nodeid else item.nodeid
    module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    test = f"{module}::{name}"
    provides = [m.args[0] for m in item.iter_markers("provides") if m.args]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if report.skipped:
            outcome, message = "skipped", _skip_reason(report)
        elif report.failed:
            outcome, message = "failed", _failure_message(report)
        else:
            outcome, message = "passed", ""
        state.results[test] = Result(test, _rule(item), outcome, message, round(report.duration, 3))
        for name in provides:
            if outcome == "passed":
                state.provided.add(name)
            else:
                state.failed_prereq.setdefault(name, test)
    elif report.when == "teardown" and report.failed and test in state.results:
        state.results[test].outcome = "failed"
        state.results[test].message = _failure_message(report)
    return report


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:2000]
    return str(report.longreprtext)[-2000:]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.results:
        return
    from conformance.reports import write_reports

    if state.report_dir is not None:
        written = write_reports(state, state.report_dir)
        session.config._conformance_written = written  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.results:
        return
    counts: dict[str, int] = {}
    for r in state.results.values():
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    terminalreporter.write_sep("=", "conformance")
    for r in state.results.values():
        terminalreporter.write_line(f"{r.outcome.upper():8} {r.test}  [{r.rule}]"
                                    + (f"  -- {r.message.splitlines()[0][:160]}" if r.message else ""))
    terminalreporter.write_line(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for path in getattr(config, "_conformance_written", []):
        terminalreporter.write_line(f"report: {path}")
