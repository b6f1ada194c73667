"""The conversion golden vectors (`conversion/*.json` next to this file, package data of the suite; format in
README.md here): loading, substituting the placeholder party names, and turning a vector record into the credential the origin
issues. Shared by the suite (test_10_conversion, against a node) and by tests/conformance/test_vectors.py (the
same vectors through the reference implementation's `recognise()`), so both read a vector the same way."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["VECTORS", "MissingVectors", "cases", "credential_fields", "normalise", "substitute"]

VECTORS = Path(__file__).resolve().parent / "conversion"


class MissingVectors(RuntimeError):
    """No conversion vector was found: the suite was installed without its data. Never a silent pass."""


def cases(directory: Path | None = None) -> list[tuple[str, dict, dict]]:
    """(id, vector, case) for every case of every vector file. Raises MissingVectors when there is none (an
    install that dropped the package data would otherwise run test_10_conversion with no case at all)."""
    directory = directory or VECTORS
    found = []
    for path in sorted(directory.glob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        found += [(f"{path.stem}:{case['id']}", vector, case) for case in vector["cases"]]
    if not found:
        raise MissingVectors(f"no conversion vector case in {directory}: the conformance suite is installed "
                             "without its package data (conformance/vectors/conversion/*.json)")
    return found


def substitute(value: Any, names: dict[str, str]) -> Any:
    """`value` with every string equal to a placeholder (`vector["placeholders"]` values) replaced by the real
    node id (`names`: placeholder -> node id) — as party names, map keys and `from.node`."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {names.get(k, k): substitute(v, names) for k, v in value.items()}
    return value


def credential_fields(record: dict) -> dict:
    """The keyword arguments of `MockOrigin.issue` for a vector record (credits and hours as decimal strings,
    absent when null; `reference_level` → `creditBank.referenceLevel`)."""
    return {"title": record["title"], "credits": record.get("credits"), "hours": record.get("hours"),
            "course_code": record["code"], "kind": record["type"], "level": record.get("level"),
            "reference_level": record.get("reference_level")}


def normalise(credits: Any) -> str:
    """A decimal string in its plain normal form ("4.000" and "4" → "4"; "2.50" → "2.5"), for exact comparison."""
    d = Decimal(str(credits)).normalize()
    return format(d.quantize(Decimal(1)) if d == d.to_integral_value() else d, "f")
