"""RFC 9162 Merkle trees: transparency-dev vectors and generated proofs."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import MerkleError
from crypto.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tests.crypto.conftest import vector_path

D = "transparency-dev-merkle"


def _b64(value):
    return base64.b64decode(value) if value is not None else None


def test_mth_vectors() -> None:
    mv = json.loads(vector_path(D, "mth-vectors.json").read_text())
    leaves = [leaf_hash(bytes.fromhex(x)) for x in mv["leaf_inputs_hex"]]
    roots = [root_from_leaf_hashes(leaves[:n]).hex() for n in range(len(mv["root_hashes_hex"]))]
    assert roots == mv["root_hashes_hex"] and len(roots) == 9
    cr = CompactRange()
    for n, h in enumerate(leaves, 1):
        cr.append(h)
        assert cr.root().hex() == mv["root_hashes_hex"][n]


def _cases(kind: str):
    return [(p, json.loads(p.read_text())) for p in sorted(vector_path(D, "testdata", kind).rglob("*.json"))]


def test_inclusion_vectors() -> None:
    cases = _cases("inclusion")
    passed = 0
    for path, c in cases:
        args = (_b64(c["leafHash"]), c["leafIdx"], c["treeSize"], [_b64(p) for p in c.get("proof") or []],
                _b64(c["root"]))
        if c.get("wantErr"):
            with pytest.raises(MerkleError):
                verify_inclusion(*args)
        else:
            verify_inclusion(*args)
        passed += 1
    print(f"inclusion vectors: {passed}/{len(cases)}")
    assert passed == len(cases) == 98


def test_consistency_vectors() -> None:
    cases = _cases("consistency")
    passed = 0
    for path, c in cases:
        args = (c["size1"], c["size2"], _b64(c["root1"]), _b64(c["root2"]), [_b64(p) for p in c.get("proof") or []])
        if c.get("wantErr"):
            with pytest.raises(MerkleError):
                verify_consistency(*args)
        else:
            verify_consistency(*args)
        passed += 1
    print(f"consistency vectors: {passed}/{len(cases)}")
    assert passed == len(cases) == 98


HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(200)]


def test_all_proofs_small_trees() -> None:
    for n in range(1, 40):
        root = root_from_leaf_hashes(HASHES[:n])
        for i in range(n):
            verify_inclusion(HASHES[i], i, n, inclusion_proof(HASHES, i, n), root)
        for m in range(1, n + 1):
            verify_consistency(m, n, root_from_leaf_hashes(HASHES[:m]), root, consistency_proof(HASHES, m, n))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, n))))
def test_generated_proofs_verify(args) -> None:
    n, i, m = args
    root = root_from_leaf_hashes(HASHES[:n])
    proof = inclusion_proof(HASHES, i, n)
    verify_inclusion(HASHES[i], i, n, proof, root)
    if proof:
        bad = list(proof)
        bad[0] = hashlib.sha256(bad[0]).digest()
        with pytest.raises(MerkleError):
            verify_inclusion(HASHES[i], i, n, bad, root)
        with pytest.raises(MerkleError):
            verify_inclusion(HASHES[i], i, n, proof[:-1], root)
    cproof = consistency_proof(HASHES, m, n)
    verify_consistency(m, n, root_from_leaf_hashes(HASHES[:m]), root, cproof)
    if cproof:
        with pytest.raises(MerkleError):
            verify_consistency(m, n, root_from_leaf_hashes(HASHES[:m]), root, cproof + [HASHES[0]])


def test_large_tree_no_recursion_issue() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]
    cr = CompactRange()
    cr.extend(hashes)
    assert cr.root() == root_from_leaf_hashes(hashes)
    verify_inclusion(hashes[4321], 4321, 5000, inclusion_proof(hashes, 4321), cr.root())


def test_compact_range_serialisation() -> None:
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT and cr.to_list() == []
    for n, h in enumerate(HASHES[:77], 1):
        cr.append(h)
        restored = CompactRange.from_list(cr.to_list(), size=n)
        assert restored.root() == root_from_leaf_hashes(HASHES[:n]) == cr.root()
        assert len(cr.to_list()) == bin(n).count("1")
    restored.append(HASHES[77])
    assert restored.root() == root_from_leaf_hashes(HASHES[:78])
    with pytest.raises(MerkleError):
        CompactRange.from_list(cr.to_list(), size=79)


def test_argument_errors() -> None:
    with pytest.raises(MerkleError):
        inclusion_proof(HASHES[:4], 4, 4)
    with pytest.raises(MerkleError):
        consistency_proof(HASHES[:4], 5, 4)
    with pytest.raises(MerkleError):
        verify_inclusion(b"short", 0, 1, [], b"x" * 32)
