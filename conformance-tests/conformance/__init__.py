"""The conformance suite of the `creditnode-federation/1` protocol (docs/federation.md).

It certifies a node by URL, over HTTP only: it never imports `node` or `federation`, only `crypto`, whose
correctness the official vectors establish. `creditnode-conformance --target URL --admin-token TOKEN` runs it
(see conformance-tests/README.md for the contract a node must meet and the reports it writes).
"""

SUITE_NAME = "creditnode-conformance"
SUITE_VERSION = "0.1.0"
PROTOCOL = "creditnode-federation/1"

__all__ = ["PROTOCOL", "SUITE_NAME", "SUITE_VERSION"]
