"""Files at rest encrypted with the node's database key: stored import uploads and evidence files.

A file is encrypted in chunks as it streams in (never whole in memory, never in clear on disk) and can be read
back as a seekable stream (openpyxl and zipfile need to seek), each chunk authenticated on its own.

Format, version 1::

    header  = "CNF1" || u8 len(key_id) || key_id || salt (16 random bytes) || u32 chunk size (64 KiB)
    chunk i = AES-256-GCM(file key, nonce = u88 i || u8 last, plaintext chunk, associated data = header)

The file key is HKDF-SHA256 of the database key named by `key_id` with the file's salt, so every file has its own
key and the chunk counter is a safe nonce. The last chunk (possibly empty) is sealed with `last = 1`: a file cut at
a chunk boundary, chunks reordered or swapped between files, or a changed header all fail authentication (the
STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár). The key id in the header lets keys rotate like the
encrypted columns: the current key writes, retired keys (`security.retired_database_keys`) still read, and
`reencrypt` rewrites a file under the current key.

Evidence files are content-addressed; their names on disk are keyed (`name_for`: HMAC of the plaintext SHA-256
under a key derived from the blind-index key, which does not rotate), so a listing of the storage directory does
not reveal which known documents it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.settings import Settings
from node.security.fields import key_bytes

__all__ = ["CHUNK", "FileCipher", "FileCorrupt", "file_cipher", "StreamSealer", "reencrypt_stored_files",
           "stored_files", "stream_nonce"]

MAGIC = b"CNF1"
CHUNK = 64 * 1024
_TAG = 16
_INFO = b"creditnode/file-encryption/v1"
_NAME_INFO = b"creditnode/evidence-name/v1"
EXTRA_KEY = "security.file_cipher"


class FileCorrupt(ValueError):
    """A stored file failed authentication (tampered, truncated) or names a key that is not configured."""


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(key))


def stream_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class FileCipher:
    def __init__(self, current_key_id: str, keys: dict[str, bytes], name_key: bytes) -> None:
        if current_key_id not in keys:
            raise ValueError("the current key id has no key")
        self.current_key_id = current_key_id
        self._keys = dict(keys)
        self._name_key = name_key

    @classmethod
    def from_settings(cls, settings: Settings) -> FileCipher:
        sec = settings.security
        keys = {kid: key_bytes(v.get_secret_value()) for kid, v in sec.retired_database_keys.items()}
        keys[sec.database_key_id] = key_bytes(sec.database_key.get_secret_value())
        blind = key_bytes(sec.blind_index_key.get_secret_value())
        name_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_NAME_INFO).derive(blind)
        return cls(sec.database_key_id, keys, name_key)

    # -- names ------------------------------------------------------------------------------------

    def name_for(self, sha256_hex: str) -> str:
        """The keyed name of a content-addressed file."""
        return hmac.new(self._name_key, sha256_hex.encode(), hashlib.sha256).hexdigest()

    # -- writing ----------------------------------------------------------------------------------

    def encrypting(self, out: BinaryIO) -> _Encryptor:
        return _Encryptor(out, self.current_key_id, self._keys[self.current_key_id])

    @contextlib.contextmanager
    def create(self, target: Path, *, tmp_dir: Path | None = None) -> Iterator[_Encryptor]:
        """Write an encrypted file at `target` atomically: the block writes plaintext; on success the file
        appears whole (fsynced, renamed into place), on an exception nothing is left behind."""
        directory = tmp_dir or target.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".enc-")
        try:
            with os.fdopen(fd, "wb") as out:
                enc = self.encrypting(out)
                yield enc
                enc.close()
                out.flush()
                os.fsync(out.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    # -- reading ----------------------------------------------------------------------------------

    def open(self, path: Path) -> io.BufferedReader:
        """A seekable binary stream of the file's plaintext; raises FileCorrupt on a bad header or key, and
        on reading a chunk that fails authentication."""
        return io.BufferedReader(_Decryptor(path.open("rb"), self._keys), buffer_size=CHUNK)

    @staticmethod
    def key_id_of(path: Path) -> str | None:
        """The key id a file was written with, or None for a file that is not in this format (legacy clear)."""
        with path.open("rb") as fh:
            head = fh.read(5)
            if len(head) < 5 or head[:4] != MAGIC:
                return None
            return fh.read(head[4]).decode("ascii", "replace")

    def reencrypt(self, path: Path) -> bool:
        """Rewrite a file under the current key (or encrypt a legacy clear file); False when already current.
        Crash-safe: the new file replaces the old one atomically."""
        if self.key_id_of(path) == self.current_key_id:
            return False
        source = self.open(path) if self.key_id_of(path) is not None else path.open("rb")
        with source, self.create(path) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return True


class StreamSealer:
    """The writing half of the STREAM construction shared by stored files and backups (node.ops.backupfile):
    plaintext is cut into `chunk`-byte pieces, each sealed with AES-GCM under nonce = u88 index || u8 last and the
    container's header as associated data; a full chunk is sealed only once more data follows it, so `close()`
    (call it exactly once) always seals a last chunk, possibly empty. `written` counts plaintext bytes."""

    def __init__(self, out: BinaryIO, aead: AESGCM, aad: bytes, chunk: int) -> None:
        self._out = out
        self._aead = aead
        self._aad = aad
        self._chunk = chunk
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        self.written = 0

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed encrypting stream")
        self._buf += data
        self.written += len(data)
        while len(self._buf) > self._chunk:
            self._seal(bytes(self._buf[:self._chunk]), last=False)
            del self._buf[:self._chunk]
        return len(data)

    def _seal(self, piece: bytes, *, last: bool) -> None:
        self._out.write(self._aead.encrypt(stream_nonce(self._index, last), piece, self._aad))
        self._index += 1

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
            self._closed = True


class _Encryptor(StreamSealer):
    def __init__(self, out: BinaryIO, key_id: str, key: bytes) -> None:
        kid = key_id.encode("ascii")
        if len(kid) > 255:
            raise ValueError("key id too long")
        salt = os.urandom(16)
        header = MAGIC + bytes([len(kid)]) + kid + salt + struct.pack(">I", CHUNK)
        super().__init__(out, _file_key(key, salt), header, CHUNK)
        self._header = header
        out.write(header)


class _Decryptor(io.RawIOBase):
    def __init__(self, fh: BinaryIO, keys: dict[str, bytes]) -> None:
        self._fh = fh
        try:
            head = fh.read(5)
            if len(head) < 5 or head[:4] != MAGIC:
                raise FileCorrupt("not an encrypted file of this node")
            kid = fh.read(head[4])
            salt = fh.read(16)
            (chunk,) = struct.unpack(">I", fh.read(4))
            key = keys.get(kid.decode("ascii", "replace"))
            if key is None:
                raise FileCorrupt(f"no database key with id {kid.decode('ascii', 'replace')!r} is configured")
            self._header = head + kid + salt + struct.pack(">I", chunk)
            self._aead = _file_key(key, salt)
            self._chunk = chunk
            body = fh.seek(0, io.SEEK_END) - len(self._header)
            sealed = chunk + _TAG
            self._count = max(1, -(-body // sealed))
            self._size = body - _TAG * self._count
            if body < _TAG or self._size < 0:
                raise FileCorrupt("the encrypted file is truncated")
        except BaseException:
            fh.close()
            raise
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _plain(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        sealed = self._chunk + _TAG
        self._fh.seek(len(self._header) + index * sealed)
        data = self._fh.read(sealed)
        try:
            plain = self._aead.decrypt(stream_nonce(index, index == self._count - 1), data, self._header)
        except InvalidTag:
            raise FileCorrupt("a stored file failed authentication (tampered or truncated)") from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        index, offset = divmod(self._pos, self._chunk)
        plain = self._plain(index)
        n = min(len(buffer), len(plain) - offset)
        buffer[:n] = plain[offset : offset + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def stored_files(settings: Settings) -> Iterator[Path]:
    """Every file the node keeps encrypted with the database key: import uploads and evidence files."""
    uploads = settings.node.data_dir / "imports"
    if uploads.is_dir():
        yield from sorted(uploads.glob("*.upload"))
    if settings.evidence_dir.is_dir():
        yield from sorted(p for p in settings.evidence_dir.glob("??/*") if p.is_file())


def reencrypt_stored_files(settings: Settings) -> dict[str, int]:
    """Rewrite every stored file still under a retired key under the current key: the hook for
    `creditnode keys reencrypt`. Resumable: a re-run skips files already current. (Clear evidence files of an
    earlier version are encrypted by `node.evidence.storage.encrypt_legacy`, which also gives them keyed names.)"""
    cipher = FileCipher.from_settings(settings)
    done = skipped = 0
    for path in stored_files(settings):
        if cipher.key_id_of(path) not in (None, cipher.current_key_id) and cipher.reencrypt(path):
            done += 1
        else:
            skipped += 1
    return {"reencrypted": done, "other": skipped}


def file_cipher(ctx: Any) -> FileCipher:
    """The node's file cipher (built once per context)."""
    cipher = ctx.extras.get(EXTRA_KEY)
    if cipher is None:
        cipher = ctx.extras[EXTRA_KEY] = FileCipher.from_settings(ctx.settings)
    return cipher
