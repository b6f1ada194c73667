"""RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256: hashes, roots, inclusion and consistency
proofs with their verification, and a compact range (Merkle frontier) for O(log n) appends.

* ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``, empty root = SHA-256("").
* Everything is iterative (no recursion depth issues); computing a root or a proof over n leaf hashes is O(n).
* ``CompactRange`` keeps the roots of the perfect subtrees that make up the tree (one per set bit of the size,
  largest first); ``to_list()``/``from_list(hashes, size=)`` persist it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from crypto.errors import MerkleError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleError",
    "MerkleFrontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (O(n) time, O(log n) extra memory)."""
    if not len(hashes):
        return EMPTY_ROOT
    stack: list[bytes] = []  # perfect subtree roots, sizes strictly decreasing
    sizes: list[int] = []
    for h in hashes:
        stack.append(h)
        sizes.append(1)
        while len(sizes) > 1 and sizes[-1] == sizes[-2]:
            right = stack.pop()
            sizes.pop()
            stack[-1] = node_hash(stack[-1], right)
            sizes[-1] *= 2
    root = stack[-1]
    for h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return root


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """The audit path PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf to root order."""
    size = len(leaf_hashes) if size is None else size
    if not 0 <= index < size <= len(leaf_hashes):
        raise MerkleError(f"need 0 <= index < size <= {len(leaf_hashes)}, got index={index} size={size}")
    proof: list[bytes] = []
    lo, hi, m = 0, size, index  # current subtree D[lo:hi], target at offset m
    while hi - lo > 1:
        k = _largest_pow2_below(hi - lo)
        if m < k:
            proof.append(root_from_leaf_hashes(leaf_hashes[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root_from_leaf_hashes(leaf_hashes[lo:lo + k]))
            lo, m = lo + k, m - k
    proof.reverse()
    return proof


def consistency_proof(leaf_hashes: Sequence[bytes], m: int, n: int | None = None) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1 (empty when m == n or m == 0)."""
    n = len(leaf_hashes) if n is None else n
    if not 0 <= m <= n <= len(leaf_hashes):
        raise MerkleError(f"need 0 <= m <= n <= {len(leaf_hashes)}, got m={m} n={n}")
    if m == 0 or m == n:
        return []
    proof: list[bytes] = []
    lo, hi, mm, complete = 0, n, m, True  # SUBPROOF(mm, D[lo:hi], complete)
    while True:
        size = hi - lo
        if mm == size:
            if not complete:
                proof.append(root_from_leaf_hashes(leaf_hashes[lo:hi]))
            break
        k = _largest_pow2_below(size)
        if mm <= k:
            proof.append(root_from_leaf_hashes(leaf_hashes[lo + k:hi]))
            hi = lo + k
        else:
            proof.append(root_from_leaf_hashes(leaf_hashes[lo:lo + k]))
            lo, mm, complete = lo + k, mm - k, False
    proof.reverse()
    return proof


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for h in proof:
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise MerkleError(f"{what}: every proof element must be {HASH_SIZE} bytes")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2); raises MerkleError if malformed."""
    if not isinstance(index, int) or not isinstance(size, int) or not 0 <= index < size:
        raise MerkleError(f"leaf index {index} out of range for tree size {size}")
    if not isinstance(leaf, (bytes, bytearray)) or len(leaf) != HASH_SIZE:
        raise MerkleError("the leaf hash must be 32 bytes")
    _check_hashes(proof, "inclusion proof")
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        if sn == 0:
            raise MerkleError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("inclusion proof is too short")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise MerkleError unless ``proof`` shows leaf ``index`` of a tree of ``size`` leaves has root ``root``."""
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != bytes(root):
        raise MerkleError("inclusion proof does not lead to the expected root")


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> None:
    """Raise MerkleError unless ``proof`` shows the tree of size m (root_m) is a prefix of size n (root_n)."""
    if not isinstance(m, int) or not isinstance(n, int) or not 0 < m <= n:
        raise MerkleError(f"need 0 < first size <= second size, got {m}, {n} (RFC 9162 defines no proof from 0)")
    _check_hashes(proof, "consistency proof")
    root_m, root_n = bytes(root_m), bytes(root_n)
    if m == n:
        if proof:
            raise MerkleError("consistency proof between equal sizes must be empty")
        if root_m != root_n:
            raise MerkleError("equal sizes but different roots")
        return
    if not proof:
        raise MerkleError("consistency proof is empty")
    path = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: root_m is the first node
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("consistency proof is too short")
    if fr != root_m:
        raise MerkleError("consistency proof does not match the first root")
    if sr != root_n:
        raise MerkleError("consistency proof does not match the second root")


class CompactRange:
    """The Merkle frontier of a tree: roots of its perfect subtrees, largest first. O(log n) append."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        if not isinstance(leaf_hash, (bytes, bytearray)) or len(leaf_hash) != HASH_SIZE:
            raise MerkleError("a leaf hash is 32 bytes")
        h = bytes(leaf_hash)
        size = self._size
        # each trailing 1-bit of size is a subtree of the same height as the carry: merge
        while size & 1:
            h = node_hash(self._hashes.pop(), h)
            size >>= 1
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def to_list(self) -> list[bytes]:
        return list(self._hashes)

    @classmethod
    def from_list(cls, hashes: Sequence[bytes], size: int) -> CompactRange:
        if not isinstance(size, int) or size < 0:
            raise MerkleError("size must be a non-negative int")
        if len(hashes) != bin(size).count("1"):
            raise MerkleError(f"a frontier of size {size} has {bin(size).count('1')} hashes, got {len(hashes)}")
        _check_hashes(hashes, "frontier")
        obj = cls()
        obj._size = size
        obj._hashes = [bytes(h) for h in hashes]
        return obj

    def copy(self) -> CompactRange:
        return CompactRange.from_list(self._hashes, self._size)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size})"


MerkleFrontier = CompactRange
