"""Shared helpers for the crypto tests: the official test vectors, copied with their attribution into
`tests/vectors/` (see its README). `CREDITNODE_VECTORS` points elsewhere, e.g. at the shared set."""

from __future__ import annotations

import os
from pathlib import Path

VECTORS = Path(os.environ.get("CREDITNODE_VECTORS", Path(__file__).resolve().parents[1] / "vectors"))


def vector_path(*parts: str) -> Path:
    path = VECTORS.joinpath(*parts)
    if not path.exists():  # a missing vector is a failure, never a silent skip
        raise FileNotFoundError(f"test vector missing: {path}")
    return path
