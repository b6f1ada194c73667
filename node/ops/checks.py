"""Checks an operator meets before anything goes wrong quietly, in the CLI and in `/ready`: whether `serve`'s
port agrees with the base URL (the configuration itself: `config.settings.find_settings`; the database and its
schema: `node.db.database_problem`, `node.db.schema_problem`). Each answers `None` or one line with the fix.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["direct_port", "is_loopback_host", "port_problem"]


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def direct_port(base_url: str, host: str) -> int | None:
    """The port this process must listen on for `base_url` to reach it, when the base URL names this process
    directly (plain http on a loopback name, or on the `--host` it binds); None when it names a reverse proxy
    (https: the node itself serves plain http; another host name)."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    if not (is_loopback_host(parts.hostname) or parts.hostname == host.strip("[]").lower()):
        return None
    return parts.port or 80


def port_problem(*, base_url: str, did: str, host: str, port: int, config: Path | None) -> str | None:
    """`serve --port` that disagrees with the base URL: credentials issued so name an address nobody serves."""
    expected = direct_port(base_url, host)
    if expected is None or expected == port:
        return None
    where = f"in {config}" if config is not None else "(CREDITNODE_NODE__BASE_URL)"
    return (f"--port {port} disagrees with the node's base URL {base_url} ({did}): credentials and DID documents "
            f"would name an address nobody serves. Run `creditnode serve --port {expected}`, or, before anything "
            f"is issued, set node.base_url = \"{urlsplit(base_url).scheme}://{urlsplit(base_url).hostname}:{port}\" "
            f"{where}; behind a reverse proxy that serves {base_url}, add --behind-proxy")
