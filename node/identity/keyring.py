"""The node's Ed25519 signing keys.

The key ring lives in one file (settings.node_key_file, default `<data_dir>/node-keys.json`), written with mode
0600 and encrypted with the node's database key (AES-256-GCM; the file names the key id), so a copied file alone
reveals nothing. After a database-key rotation it is read with the retired key of its id until
`creditnode keys reencrypt` rewrites it. Rotation
adds a new current key and keeps the old ones with an `expires` time, so signatures made with them still verify
against the published DID document; a compromised key is marked `revoked` instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import Settings
from crypto.keys import Ed25519Key
from node.security.fields import key_bytes

__all__ = [
    "KeyRing",
    "KeyringLocked",
    "NodeKey",
    "create_keyring",
    "keyring_key_id",
    "load_keyring",
    "reencrypt_keyring",
    "revoke_key",
    "rotate_keyring",
]

_AAD = b"creditnode-keyring-v1"


@functools.lru_cache(maxsize=64)
def _key_of_seed(seed_b64: str) -> Ed25519Key:
    # A key object per seed, built once: every signed credential's cache key reads the signing key, and building
    # it from the seed each time cost ~40 µs (docs/performance.md, "Fourth pass"). Keyed by the seed itself, so
    # a rotated or reloaded ring gets its own keys.
    return Ed25519Key.from_seed(base64.b64decode(seed_b64))


class KeyringLocked(RuntimeError):
    """The key ring file is encrypted with a database key that is not configured."""


@dataclass
class NodeKey:
    key_id: str  # the DID fragment, e.g. "key-1"
    seed_b64: str
    created: str
    expires: str | None = None
    revoked: str | None = None

    @property
    def signing_key(self) -> Ed25519Key:
        return _key_of_seed(self.seed_b64)


@dataclass
class KeyRing:
    current: str
    keys: list[NodeKey]

    def get(self, key_id: str) -> NodeKey:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise KeyError(key_id)

    @property
    def current_key(self) -> NodeKey:
        return self.get(self.current)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _database_keys(settings: Settings) -> dict[str, bytes]:
    """The current database key and the retired ones still configured, by key id."""
    sec = settings.security
    keys = {kid: key_bytes(v.get_secret_value()) for kid, v in sec.retired_database_keys.items()}
    keys[sec.database_key_id] = key_bytes(sec.database_key.get_secret_value())
    return keys


def _aead(settings: Settings) -> AESGCM:
    return AESGCM(key_bytes(settings.security.database_key.get_secret_value()))


def keyring_key_id(settings: Settings) -> str | None:
    """The id of the database key the key ring file is encrypted with (None: written before key ids were
    recorded, i.e. under whatever was the database key then)."""
    return json.loads(settings.node_key_file.read_text()).get("key_id")


def _write(settings: Settings, ring: KeyRing) -> None:
    path: Path = settings.node_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = json.dumps({"current": ring.current, "keys": [asdict(k) for k in ring.keys]}).encode()
    nonce = os.urandom(12)
    blob = {"format": "creditnode-keyring-v1", "key_id": settings.security.database_key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(_aead(settings).encrypt(nonce, plain, _AAD)).decode()}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(blob, fh)
    os.replace(tmp, path)


def load_keyring(settings: Settings) -> KeyRing:
    path: Path = settings.node_key_file
    if not path.is_file():
        raise FileNotFoundError(f"no node key ring at {path}; run `creditnode init` or `creditnode keys create`")
    blob = json.loads(path.read_text())
    keys = _database_keys(settings)
    # the key named in the file; a file from before key ids were recorded: the current key, then retired ones
    # (so a database-key rotation never locks the node out of its signing keys; `creditnode keys reencrypt`
    # rewrites the file under the current key)
    candidates = [blob["key_id"]] if blob.get("key_id") else [settings.security.database_key_id, *keys]
    nonce, ciphertext = base64.b64decode(blob["nonce"]), base64.b64decode(blob["ciphertext"])
    for key_id in dict.fromkeys(candidates):
        if key_id not in keys:
            continue
        try:
            plain = AESGCM(keys[key_id]).decrypt(nonce, ciphertext, _AAD)
        except InvalidTag:
            continue
        data = json.loads(plain)
        return KeyRing(current=data["current"], keys=[NodeKey(**k) for k in data["keys"]])
    raise KeyringLocked(f"{path} is encrypted with database key {blob.get('key_id') or '(unrecorded)'}, which "
                        "is not configured (security.database_key or security.retired_database_keys)")


def reencrypt_keyring(settings: Settings) -> bool:
    """Rewrite the key ring file under the current database key; False if it already was."""
    if keyring_key_id(settings) == settings.security.database_key_id:
        return False
    _write(settings, load_keyring(settings))
    return True


def create_keyring(settings: Settings, *, exist_ok: bool = True) -> KeyRing:
    if settings.node_key_file.is_file():
        if exist_ok:
            return load_keyring(settings)
        raise FileExistsError(f"{settings.node_key_file} exists")
    key = NodeKey("key-1", base64.b64encode(os.urandom(32)).decode(), _now())
    ring = KeyRing(current=key.key_id, keys=[key])
    _write(settings, ring)
    return ring


def rotate_keyring(settings: Settings, *, keep_old_days: int = 365) -> KeyRing:
    """A new current key; the old one stays published, expiring after `keep_old_days`."""
    ring = load_keyring(settings)
    old = ring.current_key
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=keep_old_days)
    old.expires = old.expires or expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    number = max(int(k.key_id.rsplit("-", 1)[-1]) for k in ring.keys) + 1
    new = NodeKey(f"key-{number}", base64.b64encode(os.urandom(32)).decode(), _now())
    ring.keys.append(new)
    ring.current = new.key_id
    _write(settings, ring)
    return ring


def revoke_key(settings: Settings, key_id: str) -> KeyRing:
    """Mark a key compromised: signatures by it no longer verify. The current key cannot be revoked."""
    ring = load_keyring(settings)
    if key_id == ring.current:
        raise ValueError("rotate first: the current key cannot be revoked")
    ring.get(key_id).revoked = _now()
    _write(settings, ring)
    return ring
