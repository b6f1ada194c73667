"""`creditnode-conformance --target URL --admin-token TOKEN [--report-dir DIR]`: run the suite against a node.

It is a programmatic `pytest.main` over the suite's own modules (conformance/suite) with the conformance plugin,
isolated from any project configuration (its own empty ini, no cache). Exit status: 0 when every executed test
passed, 1 when one failed, 2 on a usage or contract error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pytest

from conformance import SUITE_NAME, SUITE_VERSION

__all__ = ["main", "run"]

SUITE_DIR = Path(__file__).resolve().parent / "suite"


def run(target: str, admin_token: str, *, report_dir: Path | None = None, signing_key: Path | None = None,
        signing_key_id: str | None = None, select: str | None = None, quiet: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        args = [str(SUITE_DIR), "-c", str(ini), "--rootdir", str(SUITE_DIR.parent), "-p", "no:cacheprovider",
                "-p", "conformance.plugin", "--target", target, "--admin-token", admin_token,
                "-W", "ignore::DeprecationWarning", "-rN"]
        args += ["-q"] if quiet else ["-v"]
        if report_dir is not None:
            args += ["--report-dir", str(report_dir)]
        if signing_key is not None:
            args += ["--signing-key", str(signing_key)]
        if signing_key_id:
            args += ["--signing-key-id", signing_key_id]
        if select:
            args += ["-k", select]
        code = pytest.main(args)
    return {pytest.ExitCode.OK: 0, pytest.ExitCode.TESTS_FAILED: 1}.get(code, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="creditnode-conformance",
                                     description=f"{SUITE_NAME} {SUITE_VERSION}: certify a credit-bank node")
    parser.add_argument("--target", required=True, help="base URL of the node under test")
    parser.add_argument("--admin-token", default=os.environ.get("CREDITNODE_CONFORMANCE_TOKEN"),
                        help="bearer token of the node's test account (or $CREDITNODE_CONFORMANCE_TOKEN)")
    parser.add_argument("--report-dir", type=Path, help="write results.json, junit.xml, report.html and "
                                                        "conformance-report.json here")
    parser.add_argument("--signing-key", type=Path, help="Ed25519 key file signing the conformance report")
    parser.add_argument("--signing-key-id", help="verification method id of --signing-key")
    parser.add_argument("-k", dest="select", help="only tests matching this pytest -k expression")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.admin_token:
        parser.error("--admin-token is required (or set CREDITNODE_CONFORMANCE_TOKEN)")
    code = run(args.target, args.admin_token, report_dir=args.report_dir, signing_key=args.signing_key,
               signing_key_id=args.signing_key_id, select=args.select, quiet=not args.verbose)
    return code


if __name__ == "__main__":
    sys.exit(main())
