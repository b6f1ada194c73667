"""docs/errors.md lists every code the node can return: the codes of the error classes (node.errors,
federation.errors and their subclasses everywhere), every `code="..."` given to an error, every code passed to a
`...Refused("...")` error, and the edge's own (node.middleware, node.app)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PATTERNS = [
    re.compile(r"""\bcode\s*=\s*["']([a-z][a-z0-9_]*)["']"""),  # code="..." and class attribute code = "..."
    re.compile(r"""Refused\(\s*["']([a-z][a-z0-9_]*)["']"""),  # TransportRefused("unsigned", ...) and kin
    re.compile(r"""\b_error\(\s*["']([a-z][a-z0-9_]*)["']"""),  # node.middleware's own answers
]


def _documented() -> set[str]:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    return set(re.findall(r"`([a-z][a-z0-9_]*)`", text))


def _error_classes() -> set[str]:
    from node.errors import NodeError

    for package in ("node", "federation"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" in info.name or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
    found, stack = set(), [NodeError]
    while stack:
        cls = stack.pop()
        found.add(cls.code)
        stack.extend(cls.__subclasses__())
    return found


def _codes_in_source() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in ("node", "federation"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for pattern in _PATTERNS:
                for match in pattern.finditer(path.read_text(encoding="utf-8")):
                    found.setdefault(match[1], str(path.relative_to(ROOT)))
    return found


def test_every_code_is_documented() -> None:
    from node.app import _HTTP_CODES

    documented = _documented()
    in_source = _codes_in_source()
    assert len(in_source) > 80  # the scan found the codes (not a broken pattern)
    codes = set(in_source) | _error_classes() | set(_HTTP_CODES.values())
    # a `code=` that is not an error code: catalogue entry codes, organisation codes given by keyword
    not_errors = {c for c in codes if c in {"code"}}
    missing = sorted((codes - not_errors) - documented)
    assert missing == [], "codes missing from docs/errors.md: " + ", ".join(
        f"{c} ({in_source.get(c, 'error class')})" for c in missing)
