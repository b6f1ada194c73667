"""The encrypted container of a node backup (`creditnode backup` / `creditnode restore`, docs/operations.md).

A backup file is a tar stream (its members: the manifest first, then the parts it lists) encrypted with a key
derived from a passphrase. Format, version 1::

    file   = "CNBACKUP" || u8 version (1) || u32 len(header) || header || chunk 0 || chunk 1 || ...
    header = JSON {"cipher": "AES-256-GCM", "chunk": 1 MiB, "check": base64 16 bytes,
                   "kdf": {"name": "scrypt", "n": 2^17, "r": 8, "p": 1, "salt": base64 16 random bytes}}
    key    = scrypt(passphrase, salt, n, r, p) → 32 bytes;  enc key, check = HKDF-SHA256(key) with two infos
    chunk i = AES-256-GCM(enc key, nonce = u88 i || u8 last, plaintext chunk, associated data = the file's first
              13 bytes and header)

It is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár), as in `node.security.filecrypt`: the last
chunk is sealed with `last = 1`, so a file cut anywhere, chunks reordered, or a changed header fail
authentication. `check` tells a wrong passphrase (refused at once, before anything is read) from a damaged file
(refused when the damaged chunk is read). The KDF's cost parameters are stored, so stronger settings stay
readable; a header asking for more than `MAX_SCRYPT_N` is refused (it would only exhaust memory).
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import os
import struct
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.security.filecrypt import StreamSealer, stream_nonce

__all__ = [
    "BackupCorrupt",
    "BackupError",
    "DecryptingReader",
    "EncryptingWriter",
    "MIN_PASSPHRASE",
    "WrongPassphrase",
    "open_backup",
]

MAGIC = b"CNBACKUP"
VERSION = 1
CHUNK = 1024 * 1024
SCRYPT_N = 2**17  # 128 MiB and ~0.3 s on this project's machines
MIN_SCRYPT_N, MAX_SCRYPT_N = 2**14, 2**20
MAX_HEADER = 4096
MIN_PASSPHRASE = 12
_TAG = 16
_ENC_INFO = b"creditnode/backup/v1/encryption"
_CHECK_INFO = b"creditnode/backup/v1/passphrase-check"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is one line with what to do."""


class WrongPassphrase(BackupError):
    pass


class BackupCorrupt(BackupError):
    """The file is not a backup, is damaged or truncated."""


def _keys(passphrase: str, kdf: dict) -> tuple[bytes, bytes]:
    salt = base64.b64decode(kdf["salt"])
    master = Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(passphrase.encode("utf-8"))
    enc = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_ENC_INFO).derive(master)
    check = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=_CHECK_INFO).derive(master)
    return enc, check


class EncryptingWriter(StreamSealer):
    """A write-only stream that encrypts into `out`; `close()` seals the last chunk (call it exactly once)."""

    def __init__(self, out: BinaryIO, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> None:
        if len(passphrase) < MIN_PASSPHRASE:
            raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
        kdf = {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": base64.b64encode(os.urandom(16)).decode()}
        enc, check = _keys(passphrase, kdf)
        header = json.dumps({"cipher": "AES-256-GCM", "chunk": CHUNK, "check": base64.b64encode(check).decode(),
                             "kdf": kdf}, sort_keys=True).encode()
        aad = MAGIC + bytes([VERSION]) + struct.pack(">I", len(header)) + header
        out.write(aad)
        super().__init__(out, AESGCM(enc), aad, CHUNK)


class DecryptingReader(io.RawIOBase):
    """The plaintext of a backup, read forward only. Raises `BackupCorrupt` on a chunk that fails
    authentication and on an end of file before the last chunk (truncated); `done` is true once the last chunk
    was read and nothing follows it."""

    def __init__(self, fh: BinaryIO, aad: bytes, enc: bytes, chunk: int) -> None:
        self._fh = fh
        self._aad = aad
        self._aead = AESGCM(enc)
        self._chunk = chunk
        self._index = 0
        self._plain = b""
        self._pos = 0
        self.done = False
        self.read_bytes = len(aad)  # ciphertext consumed, for progress

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        sealed = self._fh.read(self._chunk + _TAG)
        self.read_bytes += len(sealed)
        if len(sealed) < _TAG:
            raise BackupCorrupt("the backup file is truncated (it ends before its last part)")
        # the last chunk is short, or exactly full and followed by nothing
        last = len(sealed) < self._chunk + _TAG or not self._peek()
        try:
            plain = self._aead.decrypt(stream_nonce(self._index, last), sealed, self._aad)
        except InvalidTag:
            if last:
                raise BackupCorrupt("the backup file is truncated or damaged (its last part fails "
                                    "authentication)") from None
            raise BackupCorrupt(f"the backup file is damaged (part {self._index} fails authentication)") from None
        self._index += 1
        self._plain, self._pos = plain, 0
        if last:
            self.done = True

    def _peek(self) -> bool:
        here = self._fh.tell()
        more = bool(self._fh.read(1))
        self._fh.seek(here)
        return more

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._plain):
            if self.done:
                return 0
            self._next()
        n = min(len(buffer), len(self._plain) - self._pos)
        buffer[:n] = self._plain[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def open_backup(fh: BinaryIO, passphrase: str) -> DecryptingReader:
    """Check the header and the passphrase of an open backup file; the plaintext stream. Closes `fh` on a
    refusal."""
    try:
        head = fh.read(len(MAGIC) + 5)
        if len(head) < len(MAGIC) + 5 or head[:len(MAGIC)] != MAGIC:
            raise BackupCorrupt("not a creditnode backup file")
        if head[len(MAGIC)] != VERSION:
            raise BackupCorrupt(f"backup format version {head[len(MAGIC)]} is not known to this creditnode "
                                "(install a newer one)")
        (length,) = struct.unpack(">I", head[len(MAGIC) + 1:])
        if length > MAX_HEADER:
            raise BackupCorrupt("the backup file's header is damaged")
        raw = fh.read(length)
        try:
            header = json.loads(raw)
            kdf = header["kdf"]
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            chunk, check = int(header["chunk"]), base64.b64decode(header["check"])
            valid = (kdf["name"] == "scrypt" and header["cipher"] == "AES-256-GCM" and n & (n - 1) == 0
                     and MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and 1 <= r <= 32 and 1 <= p <= 16
                     and 1024 <= chunk <= 16 * CHUNK)
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise BackupCorrupt("the backup file's header is damaged")
        enc, expected = _keys(passphrase, kdf)
        if not hmac.compare_digest(check, expected):
            raise WrongPassphrase("wrong passphrase (or the backup file's header is damaged)")
        return DecryptingReader(fh, head + raw, enc, chunk)
    except BaseException:
        fh.close()
        raise
