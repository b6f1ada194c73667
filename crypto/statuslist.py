"""W3C Bitstring Status List v1.0: a bitstring of at least 131,072 entries, bit 0 = most significant bit of the
first byte; ``encodedList`` = ``"u"`` (multibase base64url) + base64url-no-padding(GZIP(bitstring)).

``decode`` also accepts a value without the ``u`` prefix (older StatusList2021 lists), bounds the decompressed
size (default 16 MiB) against gzip bombs, and by default refuses lists shorter than the 131,072-entry minimum.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib

from crypto.errors import StatusListError

__all__ = ["MAX_BYTES", "MIN_SIZE", "StatusList", "StatusListError"]

MIN_SIZE = 131_072
MAX_BYTES = 16 * 1024 * 1024


class StatusList:
    """A mutable bitstring status list (status size 1)."""

    __slots__ = ("_bits", "size")

    def __init__(self, size: int = MIN_SIZE) -> None:
        if not isinstance(size, int) or size < MIN_SIZE or size % 8:
            raise StatusListError(f"size must be a multiple of 8 and at least {MIN_SIZE}")
        self.size = size
        self._bits = bytearray(size // 8)

    def _check(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.size:
            raise StatusListError(f"status index {index!r} out of range 0..{self.size - 1}")

    def set(self, index: int, value: bool = True) -> None:
        self._check(index)
        mask = 0x80 >> (index & 7)
        if value:
            self._bits[index >> 3] |= mask
        else:
            self._bits[index >> 3] &= ~mask & 0xFF

    def get(self, index: int) -> bool:
        self._check(index)
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    __getitem__ = get

    def set_indices(self) -> list[int]:
        return [i for i in range(self.size) if self._bits[i >> 3] and self.get(i)]

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def encode(self) -> str:
        compressed = gzip.compress(bytes(self._bits), compresslevel=9, mtime=0)
        return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes, *, min_size: int = MIN_SIZE) -> StatusList:
        if len(data) * 8 < min_size:
            raise StatusListError(f"the list has {len(data) * 8} entries, fewer than the minimum {min_size}")
        obj = cls.__new__(cls)
        obj.size = len(data) * 8
        obj._bits = bytearray(data)
        return obj

    @classmethod
    def decode(cls, encoded: str, *, min_size: int = MIN_SIZE, max_bytes: int = MAX_BYTES) -> StatusList:
        if not isinstance(encoded, str) or not encoded:
            raise StatusListError("encodedList must be a non-empty string")
        body = encoded[1:] if encoded[0] == "u" else encoded
        try:
            compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise StatusListError(f"encodedList is not base64url: {exc}") from exc
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(compressed, max_bytes + 1)
        except zlib.error as exc:
            raise StatusListError(f"encodedList is not GZIP data: {exc}") from exc
        if len(data) > max_bytes:
            raise StatusListError(f"decompressed list is larger than {max_bytes} bytes")
        if not d.eof:
            raise StatusListError("truncated GZIP data")
        return cls.from_bytes(data, min_size=min_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusList) and self._bits == other._bits

    def __repr__(self) -> str:
        return f"StatusList(size={self.size})"
