"""The node-to-node protocol `creditnode-federation/1` (docs/federation.md).

Layout (transport, protocol logic, outbound sender and persistence kept apart):

- `membership`   the signed member list: document, hash, validation, store, proposals
- `peers`        `PeerDirectory`: key ids → public keys, only for members, from their DID documents
- `transport/`   `inbound.VerifiedPeer` (the one dependency verifying peer requests), signed responses,
                 `outbound.FederationAuth` (the one `httpx.Auth` signing requests) and `PeerClient`
- `inbox`        inbound messages: dedupe, in-order processing, handler registry
- `outbox`       reliable delivery: enqueue, claim, send, back off, dead-letter, re-sync
- `jobs`         the `federation.*` jobs, run from the CLI or the scheduler
- `router`       HTTP: discovery, `/federation/v1/*`, admin endpoints
"""
