"""The four reports of a run: `results.json`, `junit.xml`, `report.html`, and `conformance-report.json`, the
signed conformance report a membership proposal carries (`admission.conformanceReport`, docs/federation.md §2).

The signed report is an `eddsa-jcs-2022`-proved JSON document (crypto.dataintegrity) of type
`ConformanceReport` naming the suite and its version, the node (id, DID, base URL) and every executed result;
`passed` is true when at least one test ran and none failed. Tests skipped because the node does not offer a
feature (or the suite cannot test it yet) are listed under `skipped` with their reasons, not under `results`,
so that an admission can require every listed result to be `passed`. It is signed by the harness's key, or
by `--signing-key FILE` (for admission: the candidate's own node key, with `--signing-key-id` its
verification method in the candidate's DID document).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance import PROTOCOL, SUITE_NAME, SUITE_VERSION
from crypto.dataintegrity import sign as di_sign
from crypto.keys import Ed25519Key

__all__ = ["build_report", "load_signing_key", "write_reports"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_signing_key(path: Path) -> tuple[Ed25519Key, str | None]:
    """A key file: JSON `{"secretKeyMultibase": "z…", "id": "did:…#key-1"}`, or the secret multikey alone."""
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        data = json.loads(text)
        return Ed25519Key.from_multikey(data["secretKeyMultibase"]), data.get("id")
    return Ed25519Key.from_multikey(text), None


def build_report(state: Any) -> dict:
    """The unsigned ConformanceReport of a finished run."""
    harness = state.harness
    node: dict[str, Any] = {"base_url": state.target}
    if harness is not None:
        try:
            discovery = harness.node.discovery()
            node.update(node_id=discovery.get("node_id"), did=discovery.get("did"))
        except Exception as exc:  # noqa: BLE001 - a node without discovery still gets a report
            node["error"] = f"discovery failed: {exc}"
    executed = [r for r in state.results.values() if r.outcome in ("passed", "failed")]
    skipped = [r for r in state.results.values() if r.outcome == "skipped"]
    counts = {k: sum(1 for r in state.results.values() if r.outcome == k) for k in ("passed", "failed", "skipped")}
    return {
        "type": "ConformanceReport",
        "id": f"urn:uuid:{uuid.uuid4()}",
        "suite": {"name": SUITE_NAME, "version": SUITE_VERSION, "protocol": PROTOCOL},
        "node": node,
        "issued": _now(),
        "passed": bool(executed) and counts["failed"] == 0,
        "summary": counts,
        "results": [{"test": r.test, "rule": r.rule, "outcome": r.outcome,
                     **({"message": r.message[:500]} if r.message else {})} for r in executed],
        "skipped": [{"test": r.test, "rule": r.rule, "reason": r.message[:500]} for r in skipped],
    }


def _sign(report: dict, state: Any) -> dict:
    if state.signing_key is not None:
        key, key_id = load_signing_key(state.signing_key)
        key_id = state.signing_key_id or key_id
        if not key_id:
            raise ValueError("--signing-key needs --signing-key-id (or an \"id\" in the key file)")
    else:
        key, key_id = state.harness.peer.key, state.harness.peer.key_id
        report = {**report, "signer": {"did": state.harness.peer.did,
                                       "didDocument": state.harness.peer.did_document()}}
    return di_sign(report, key, key_id, proof_purpose="assertionMethod", created=_now())


def _junit(state: Any) -> bytes:
    results = list(state.results.values())
    suite = ET.Element("testsuite", name=SUITE_NAME, tests=str(len(results)),
                       failures=str(sum(r.outcome == "failed" for r in results)),
                       skipped=str(sum(r.outcome == "skipped" for r in results)),
                       time=f"{sum(r.duration for r in results):.3f}", timestamp=_now())
    for r in results:
        module, _, name = r.test.partition("::")
        case = ET.SubElement(suite, "testcase", classname=module, name=name, time=f"{r.duration:.3f}")
        ET.SubElement(ET.SubElement(case, "properties"), "property", name="rule", value=r.rule)
        if r.outcome == "failed":
            ET.SubElement(case, "failure", message=r.message.splitlines()[0][:300] if r.message else "").text = \
                r.message
        elif r.outcome == "skipped":
            ET.SubElement(case, "skipped", message=r.message[:300])
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _html(report: dict, state: Any) -> str:
    colour = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}
    rows = "\n".join(
        f"<tr><td style='color:{colour[r.outcome]};font-weight:bold'>{r.outcome}</td>"
        f"<td><code>{html.escape(r.test)}</code></td><td>{html.escape(r.rule)}</td>"
        f"<td><pre>{html.escape(r.message[:1500])}</pre></td></tr>"
        for r in state.results.values())
    node = report["node"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conformance report · {html.escape(str(node.get("node_id")))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}} pre{{margin:0;white-space:pre-wrap}}</style>
</head><body>
<h1>{SUITE_NAME} {SUITE_VERSION}: {verdict}</h1>
<p>Node <b>{html.escape(str(node.get("node_id")))}</b> · {html.escape(str(node.get("did")))} ·
{html.escape(str(node.get("base_url")))} · protocol {PROTOCOL} · {report["issued"]}</p>
<p>{report["summary"]["passed"]} passed, {report["summary"]["failed"]} failed, {report["summary"]["skipped"]} skipped.
The signed report is <code>conformance-report.json</code>.</p>
<table><tr><th>outcome</th><th>test</th><th>rule</th><th>detail</th></tr>
{rows}
</table></body></html>
"""


def write_reports(state: Any, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report(state)
    paths = {
        "results.json": json.dumps({**report, "durations": {r.test: r.duration for r in state.results.values()},
                                    "messages": {r.test: r.message for r in state.results.values() if r.message}},
                                   ensure_ascii=False, indent=2),
        "junit.xml": _junit(state),
        "report.html": _html(report, state),
    }
    if state.harness is not None:
        paths["conformance-report.json"] = json.dumps(_sign(report, state), ensure_ascii=False, indent=2)
    written = []
    for name, content in paths.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
