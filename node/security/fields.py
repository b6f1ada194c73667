"""Encryption of personal data at rest and the keyed blind index used to look it up.

`FieldCipher` encrypts with AES-256-GCM; a ciphertext is `nonce (12 bytes) || ciphertext+tag` and the row keeps
the id of the key that wrote it (`key_id`), so keys can rotate: new rows use the current key, old rows are read
with the retired key of their id until re-encrypted (`creditnode keys reencrypt`: `node.security.reencrypt`,
docs/operations.md). The key id is bound as associated data. `BlindIndex` is HMAC-SHA256 over "type:number"
with a separate key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import DEV_SECRET_MARK, Settings

__all__ = ["BlindIndex", "FieldCipher", "key_bytes"]


def key_bytes(secret: str) -> bytes:
    """A 32-byte key from its configured form: urlsafe base64 of 32 random bytes (what `creditnode init`
    writes). Development defaults are stretched with SHA-256 so a demo can run without configuration."""
    if DEV_SECRET_MARK in secret:
        return hashlib.sha256(secret.encode()).digest()
    try:
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError("a key must be urlsafe base64 of 32 bytes (see `creditnode init`)")
    return raw


class FieldCipher:
    def __init__(self, current_key_id: str, keys: dict[str, bytes]) -> None:
        if current_key_id not in keys:
            raise ValueError("the current key id has no key")
        self.current_key_id = current_key_id
        self._aead = {kid: AESGCM(k) for kid, k in keys.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        sec = settings.security
        keys = {kid: key_bytes(v.get_secret_value()) for kid, v in sec.retired_database_keys.items()}
        keys[sec.database_key_id] = key_bytes(sec.database_key.get_secret_value())
        return cls(sec.database_key_id, keys)

    def encrypt(self, plaintext: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead[self.current_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), self.current_key_id.encode()
        )

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this cipher can read with (current and retired)."""
        return frozenset(self._aead)

    def reencrypt(self, blob: bytes, key_id: str) -> bytes:
        """`blob`, written under key `key_id`, written again under the current key (a fresh nonce). Works on any
        payload in this format (`nonce || ciphertext+tag`, key id as associated data), text or file bytes."""
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeyError(f"no database key with id {key_id!r} is configured")
        plain = aead.decrypt(blob[:12], blob[12:], key_id.encode())
        nonce = os.urandom(12)
        return nonce + self._aead[self.current_key_id].encrypt(nonce, plain, self.current_key_id.encode())

    def decrypt(self, blob: bytes, key_id: str) -> str:
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeyError(f"no database key with id {key_id!r} is configured")
        return aead.decrypt(blob[:12], blob[12:], key_id.encode()).decode("utf-8")


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> BlindIndex:
        return cls(key_bytes(settings.security.blind_index_key.get_secret_value()))

    def __call__(self, id_type: str, normalised_number: str) -> str:
        msg = f"{id_type}:{normalised_number}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()
