"""The resources a running node owns: built once by `create_app`'s lifespan (or a CLI command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from config.settings import Settings
from node.db import make_engine
from node.identity.keyring import create_keyring, load_keyring
from node.identity.service import NodeIdentity
from node.security.fields import BlindIndex, FieldCipher, key_bytes
from node.security.passwords import PasswordGate
from node.security.ratelimit import RateLimits

__all__ = ["NodeContext"]


@dataclass
class NodeContext:
    settings: Settings
    engine: Engine
    cipher: FieldCipher
    blind_index: BlindIndex
    token_secret: bytes
    identity: NodeIdentity
    rate_limits: RateLimits
    password_gate: PasswordGate
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, engine: Engine | None = None) -> NodeContext:
        engine = engine or make_engine(settings.database_url, echo=settings.database.echo,
                                       pool_size=settings.database.pool_size)
        return cls(
            settings=settings,
            engine=engine,
            cipher=FieldCipher.from_settings(settings),
            blind_index=BlindIndex.from_settings(settings),
            token_secret=key_bytes(settings.security.token_secret.get_secret_value()),
            identity=NodeIdentity.of(settings.base_url, _keyring(settings)),
            rate_limits=RateLimits(settings.ratelimit, engine=engine),
            password_gate=PasswordGate(settings.accounts.password_hash_concurrency,
                                       settings.accounts.password_hash_queue),
        )

    def reload_identity(self) -> None:
        """Re-read the key ring (after `creditnode keys rotate`)."""
        self.identity = NodeIdentity.of(self.settings.base_url, load_keyring(self.settings))

    @property
    def node_id(self) -> str:
        return self.settings.node_id


def _keyring(settings: Settings):
    """Production nodes must have run `creditnode init`; development and test nodes create keys on first use."""
    if settings.node.mode == "production":
        return load_keyring(settings)
    return create_keyring(settings)
