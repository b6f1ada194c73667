"""Per-node federation resources, kept in `ctx.extras["federation"]`: the HTTP client used to reach peers
(injectable: tests route it to peer apps) and the `PeerDirectory`."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from federation.peers import PeerDirectory
from node.context import NodeContext

__all__ = ["FederationRuntime", "runtime", "use_http_client"]

_KEY = "federation"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class FederationRuntime:
    ctx: NodeContext
    http: httpx.Client | None = None
    owns_http: bool = False
    directory: PeerDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.directory = PeerDirectory(
            own_did=self.ctx.identity.did,
            own_document=lambda: self.ctx.identity.did_document(),
            http=self.client,
        )

    def client(self) -> httpx.Client:
        if self.http is None:
            self.http = httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
            self.owns_http = True
        return self.http

    def close(self) -> None:
        if self.http is not None and self.owns_http:
            self.http.close()
            self.http = None


def runtime(ctx: NodeContext) -> FederationRuntime:
    rt = ctx.extras.get(_KEY)
    if rt is None:
        rt = ctx.extras.setdefault(_KEY, FederationRuntime(ctx))
    return rt


def use_http_client(ctx: NodeContext, client: httpx.Client) -> None:
    """Send this node's federation traffic (DID fetches, peer requests) through `client`."""
    rt = runtime(ctx)
    rt.close()
    rt.http = client
    rt.owns_http = False
