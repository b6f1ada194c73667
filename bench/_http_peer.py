"""The signed peer request: `POST /federation/v1/inbox` signed vs the same POST unsigned (issue 13).

    python bench/_http_peer.py                              # SQLite, 16 connections, 10 s a round, 2 rounds
    python bench/_http_peer.py --database postgresql://postgres@127.0.0.1:5432/test --seconds 15
    python bench/_http_peer.py --serve                      # (internal) the bench server, see below

`bench/request_path.py` calls `scenarios(...)` from here and prints its rows in its own table (scenario "peer");
run alone, this script prints them itself.

What is compared. One node (`creditnode init` in a temporary directory, base URL http://127.0.0.1:<free port>,
SQLite or a fresh PostgreSQL database) is started by `--serve`: the production app of `create_app`, served by
uvicorn exactly as `creditnode serve` does, plus two things that are never mounted in production: a no-op
message type `bench.noop` (its handler returns `{"accepted": true}`), and the route
`POST /bench/v1/inbox-unsigned`, which does the inbox's own work without the signature layer: it reads the body
under the same limit, parses it as I-JSON, validates the envelope and runs `federation.inbox.receive_message`
(dedupe on (origin, id), the stream's seq lock and advance, the stored first response) in the request's session,
and answers the same JSON unsigned. The peer it acts for is named by an `x-bench-peer` header. The ratio
signed/unsigned is therefore the cost of RFC 9421: digest, key lookup, Ed25519 verification, the replay cache
(nonce insert), the signed response.

The node holds a membership of itself and one fake peer per connection (keys made here, DID documents stored in
its `peer_did_document` cache, so no peer is ever fetched). Connection i sends peer i's messages in its stream's
order (seq 1, 2, ...), so no message is refused as a gap; every message has a fresh id and every signed one a
fresh nonce. Both scenarios send byte-for-byte the same envelope size (`--body-bytes` of padding in `body`).

How the client's signing is kept out of the figure: every request is built, signed and written to disk as raw
HTTP bytes BEFORE wrk starts; wrk (one thread per connection, so each connection's messages stay in order) only
replays the bytes from a Lua script (`init` loads them, `request` returns the next one). The number needed is
taken from a warm-up round (4x its rate); a round that would run past the end of its list is reported, not
counted. Any answer other than 200 is counted and printed; a round with any is flagged.

Signatures use the largest window the node accepts (`signature_window_seconds`, 300 s), signed just before the
round starts. Prints; asserts nothing.
"""

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["PeerBench", "Round", "bench_app", "print_rows", "scenarios"]

UNSIGNED_PATH = "/bench/v1/inbox-unsigned"
INBOX_PATH = "/federation/v1/inbox"
MESSAGE_TYPE = "bench.noop"
PEER_HEADER = "x-bench-peer"
_SEPARATOR = b"\n\x00\x00BENCH-REQUEST\x00\x00\n"

_LUA = r"""
-- one wrk thread = one connection = one peer: its requests are replayed in order
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local nreq = 0
local idx = 0
ok = 0
bad = 0
over = 0
statuses = ""
local seen = {}

function init(args)
  local sep = "\n\0\0BENCH-REQUEST\0\0\n"
  local f = assert(io.open(args[1] .. "/" .. id .. ".req", "rb"))
  local data = f:read("*a")
  f:close()
  local start = 1
  while true do
    local i, j = string.find(data, sep, start, true)
    if not i then break end
    nreq = nreq + 1
    reqs[nreq] = string.sub(data, start, i - 1)
    start = j + 1
  end
end

function request()
  idx = idx + 1
  if idx > nreq then
    over = over + 1
    return reqs[nreq]
  end
  return reqs[idx]
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
    if not seen[status] then
      seen[status] = true
      statuses = statuses .. status .. ":" .. string.sub(body or "", 1, 160) .. "\n"
    end
  end
end

function done(summary, latency, requests)
  local tok, tbad, tover = 0, 0, 0
  local st = ""
  for _, t in ipairs(threads) do
    tok = tok + t:get("ok")
    tbad = tbad + t:get("bad")
    tover = tover + t:get("over")
    st = st .. t:get("statuses")
  end
  io.write(string.format("BENCH ok=%d bad=%d over=%d\n", tok, tbad, tover))
  io.write("BENCH-STATUSES\n" .. st .. "BENCH-END\n")
end
"""


# -- the bench server (run in its own process by `--serve`) ---------------------------------------------------


def bench_app() -> Any:
    """The production app (settings from CREDITNODE_CONFIG) plus the bench-only message type and unsigned route.

    The unsigned route is built like the signed one (`federation.transport.inbound.peer_endpoint`) minus the
    signature: the body is read under the same limit by an async dependency, then one worker thread parses it
    as I-JSON, validates the envelope, runs `receive_message` in a session of its own and commits."""
    from fastapi import Depends, Request, Response
    from fastapi.responses import JSONResponse
    from pydantic import ValidationError
    from sqlmodel import Session

    from config.settings import Settings
    from federation.errors import EnvelopeInvalid
    from federation.inbox import InboxEnvelope, receive_message, register_handler
    from federation.transport import inbound
    from node.app import create_app
    from node.deps import CtxDep

    register_handler(MESSAGE_TYPE, lambda session, ctx, peer, message: {"accepted": True})
    app = create_app(Settings())

    async def unsigned_body(request: Request, ctx: CtxDep) -> bytes:
        return await inbound._read_body(request, ctx)

    def inbox_unsigned(request: Request, ctx: CtxDep, body: bytes = Depends(unsigned_body)) -> Response:
        value, error = inbound._parse_body(body)
        if error is not None:
            raise error
        node_id = request.headers.get(PEER_HEADER, "")
        peer = inbound.PeerIdentity(node_id=node_id, did=f"did:web:bench:{node_id}", key_id="", nonce="")
        with Session(ctx.engine, expire_on_commit=False) as session:
            try:
                envelope = InboxEnvelope.model_validate(value)
            except ValidationError:
                raise EnvelopeInvalid("the envelope is not valid") from None
            status, response = receive_message(session, ctx, peer, envelope)
            session.commit()
        return JSONResponse(response, status_code=status)

    app.add_api_route(UNSIGNED_PATH, inbox_unsigned, methods=["POST"], include_in_schema=False)
    return app


def _serve(port: int) -> None:
    import uvicorn

    from config.settings import Settings
    from node.logging import uvicorn_log_config

    settings = Settings()
    uvicorn.run(bench_app(), host="127.0.0.1", port=port, log_level=None,
                log_config=uvicorn_log_config(settings.node.log_level, settings.node.log_format),
                proxy_headers=False)


# -- the client side --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Peer:
    node_id: str
    identity: Any  # node.identity.service.NodeIdentity
    next_seq: int = 1


@dataclass
class Round:
    """One wrk run of one scenario."""

    name: str
    connections: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    ok: int
    bad: int
    over: int
    statuses: str = ""
    cpu_ms: float = float("nan")  # the node's CPU time (all threads, /proc) per message it accepted
    accepted: int = 0  # messages the node accepted (its streams' advance), those wrk left in flight included

    @property
    def clean(self) -> bool:
        return self.bad == 0 and self.over == 0


@dataclass
class PeerBench:
    """A running bench node and its fake peers. Use `PeerBench.start(...)` as a context manager."""

    base_url: str
    node_id: str
    database_url: str
    workdir: Path
    peers: list[Peer]
    server: subprocess.Popen
    body_bytes: int
    window: int
    unsigned_round: int = 0
    rounds: list[Round] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, database_url: str | None = None, connections: int = 16,
              body_bytes: int = 1024) -> Iterator["PeerBench"]:
        tmp = Path(tempfile.mkdtemp(prefix="bench-peer-"))
        pg_name = None
        try:
            if database_url and not database_url.startswith("sqlite"):
                pg_name, database_url = _create_pg_database(database_url)
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            config = _initialise(tmp / "node", base, database_url)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITNODE_")}
            env["CREDITNODE_CONFIG"] = str(config)
            settings, peers = _join(config, connections)
            # `-c` from the project root, so the project and `bench` import alike
            server = subprocess.Popen([sys.executable, "-c", "from bench._http_peer import _serve; "
                                       f"_serve({port})"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            bench = cls(base_url=base, node_id=settings.node_id, database_url=settings.database_url,
                        workdir=tmp, peers=peers, server=server, body_bytes=body_bytes,
                        window=settings.federation.signature_window_seconds)
            try:
                bench._wait_ready()
                yield bench
            finally:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        finally:
            if pg_name:
                _drop_pg_database(pg_name)
            shutil.rmtree(tmp, ignore_errors=True)

    def _wait_ready(self) -> None:
        import httpx

        with httpx.Client(timeout=5, trust_env=False) as http:
            for _ in range(3000):  # up to ~5 minutes: a loaded shared machine starts the node slowly
                if self.server.poll() is not None:
                    raise RuntimeError("the bench server exited; run `python bench/_http_peer.py --serve PORT` "
                                       "with CREDITNODE_CONFIG to see why")
                try:
                    if http.get(self.base_url + "/.well-known/did.json").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("the bench server did not come up in 5 minutes")

    # -- requests -------------------------------------------------------------------------------------

    def _envelope(self, origin: str, seq: int) -> bytes:
        envelope = {"id": uuid.uuid4().hex, "origin": origin, "destination": self.node_id, "seq": seq,
                    "type": MESSAGE_TYPE, "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "body": {"pad": ""}}
        size = len(json.dumps(envelope, separators=(",", ":")).encode())
        envelope["body"]["pad"] = "x" * max(0, self.body_bytes - size)
        return json.dumps(envelope, separators=(",", ":")).encode()

    def _first(self) -> bytes:
        """Each list starts with a GET of the DID document: wrk calls `request()` once on thread 0 to check the
        script before the run (that call must not use up a message, or its stream would see a gap); on the
        other threads it is sent, one cheap GET per connection."""
        host = self.base_url.removeprefix("http://")
        return f"GET /.well-known/did.json HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def _raw(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        host = self.base_url.removeprefix("http://")
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _write_signed(self, directory: Path, per_connection: int) -> None:
        import httpx

        from crypto import httpsig
        from federation.transport.inbound import PROTOCOL_TAG

        directory.mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        for i, peer in enumerate(self.peers):
            parts = [self._first()]
            for _ in range(per_connection):
                body = self._envelope(peer.node_id, peer.next_seq)
                peer.next_seq += 1
                request = httpx.Request("POST", self.base_url + INBOX_PATH, content=body,
                                        headers={"content-type": "application/json"})
                httpsig.sign_request(request, key=peer.identity.signing_key, key_id=peer.identity.key_id,
                                     tag=PROTOCOL_TAG, nonce=secrets.token_urlsafe(24), created=now,
                                     expires_in=self.window)
                headers = {k: v for k, v in request.headers.items()}
                parts.append(self._raw(INBOX_PATH, headers, body))
            (directory / f"{i}.req").write_bytes(b"".join(p + _SEPARATOR for p in parts))

    def _write_unsigned(self, directory: Path, per_connection: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.unsigned_round += 1
        for i in range(len(self.peers)):
            origin = f"bench-u{self.unsigned_round}-{i:02d}"  # a fresh stream per round
            parts = [self._first()]
            for seq in range(1, per_connection + 1):
                body = self._envelope(origin, seq)
                parts.append(self._raw(UNSIGNED_PATH, {"content-type": "application/json", PEER_HEADER: origin},
                                       body))
            (directory / f"{i}.req").write_bytes(b"".join(p + _SEPARATOR for p in parts))

    def _settle(self) -> None:
        """Wait until the node has finished the requests wrk left in flight (their streams stop moving)."""
        import sqlalchemy as sa

        from node.db import make_engine

        engine = make_engine(self.database_url)
        try:
            last, still = None, 0
            for _ in range(120):
                with engine.connect() as conn:
                    now = conn.execute(sa.text("SELECT count(*), coalesce(sum(next_in_seq), 0) FROM peer_stream")
                                       ).one()
                    conn.rollback()
                still = still + 1 if now == last else 0
                if still >= 2:
                    return
                last = now
                time.sleep(0.5)
        finally:
            engine.dispose()

    def _accepted(self) -> int:
        """How many messages the node's streams have accepted so far (each stream starts at next seq 1)."""
        import sqlalchemy as sa

        from node.db import make_engine

        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT coalesce(sum(next_in_seq - 1), 0) FROM peer_stream"))
                           .scalar())
        finally:
            engine.dispose()

    def _sync_seqs(self) -> None:
        """After a round, continue each peer's stream where the node is (a round may stop mid-list)."""
        import sqlalchemy as sa

        from node.db import make_engine

        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = dict(conn.execute(sa.text("SELECT peer, next_in_seq FROM peer_stream")).all())
        finally:
            engine.dispose()
        for peer in self.peers:
            peer.next_seq = int(rows.get(peer.node_id, 1))

    # -- rounds ---------------------------------------------------------------------------------------

    def round(self, scenario: str, *, seconds: float, per_connection: int) -> "Round":
        """One wrk run of `scenario` ("signed" or "unsigned") with `per_connection` requests prepared."""
        directory = self.workdir / f"{scenario}-{len(self.rounds)}"
        if scenario == "signed":
            self._sync_seqs()
            self._write_signed(directory, per_connection)
        else:
            self._write_unsigned(directory, per_connection)
        script = self.workdir / "replay.lua"
        script.write_text(_LUA)
        n = len(self.peers)
        accepted_before, cpu_before = self._accepted(), _cpu_seconds(self.server.pid)
        out = subprocess.run(["wrk", "-t", str(n), "-c", str(n), "-d", f"{seconds:g}s", "--latency", "--timeout",
                              "30s", "-s", str(script), self.base_url, "--", str(directory)],
                             capture_output=True, text=True, check=True).stdout
        shutil.rmtree(directory, ignore_errors=True)
        self._settle()
        # CPU over the run and the settling (the node finishes what wrk left in flight), per message accepted
        cpu, accepted = _cpu_seconds(self.server.pid) - cpu_before, self._accepted() - accepted_before
        if os.environ.get("BENCH_DEBUG"):
            print(out)
        result = _parse_wrk(scenario, out, n, seconds)
        result.accepted = accepted
        result.cpu_ms = 1000.0 * cpu / accepted if accepted > 0 else float("nan")
        self.rounds.append(result)
        return result

    def compare(self, *, seconds: float = 10.0, rounds: int = 2, warmup: float = 3.0) -> list[tuple[Round, Round]]:
        """A warm-up of each scenario (sizes the request lists), then `rounds` x (unsigned, signed)."""
        n = len(self.peers)
        guess = {"unsigned": 0.0, "signed": 0.0}
        for scenario in ("unsigned", "signed"):
            warm = self.round(scenario, seconds=warmup, per_connection=max(100, int(3000 * warmup / n)))
            guess[scenario] = warm.rate
        pairs = []
        for _ in range(rounds):
            got = []
            for scenario in ("unsigned", "signed"):
                per = max(200, int(4 * max(guess[scenario], 50) * seconds / n))
                result = self.round(scenario, seconds=seconds, per_connection=per)
                guess[scenario] = max(guess[scenario], result.rate)
                got.append(result)
            pairs.append((got[0], got[1]))
        return pairs


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parse_wrk(name: str, out: str, connections: int, seconds: float) -> Round:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"BENCH ok=(\d+) bad=(\d+) over=(\d+)", out)
    statuses = out.split("BENCH-STATUSES\n", 1)[1].split("BENCH-END", 1)[0].strip() if "BENCH-STATUSES" in out else ""
    return Round(name, connections, seconds, rate, latency("50"), latency("99"), int(m.group(1)), int(m.group(2)),
                 int(m.group(3)), statuses)


# -- node set-up ------------------------------------------------------------------------------------------


def _initialise(data_dir: Path, base_url: str, database_url: str | None) -> Path:
    from node.cli import initialise_node

    saved = dict(os.environ)
    try:
        config, _password = initialise_node(region="shanghai", data_dir=data_dir, base_url=base_url,
                                            database_url=database_url)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return config


def _join(config: Path, count: int) -> tuple[Any, list[Peer]]:
    """Install a genesis of the node and `count` fake peers (their DID documents stored in the node's cache)."""
    from config.settings import Settings
    from crypto.did import did_web_from_url
    from federation.membership import install_membership, sign_membership
    from federation.runtime import runtime
    from node.context import NodeContext
    from node.db import session_scope
    from node.identity.keyring import KeyRing, NodeKey
    from node.identity.service import NodeIdentity
    from node.models import PeerDidDocument, utcnow

    saved = dict(os.environ)
    os.environ["CREDITNODE_CONFIG"] = str(config)
    try:
        settings = Settings()
        ctx = NodeContext.build(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    peers = []
    members = [{"node_id": settings.node_id, "did": ctx.identity.did, "base_url": settings.base_url}]
    for i in range(count):
        node_id = f"bench-peer-{i:02d}"
        base = f"http://127.0.0.1:9/{node_id}"  # never contacted: the DID document is in the cache
        seed = base64.b64encode(secrets.token_bytes(32)).decode()
        identity = NodeIdentity.of(base, KeyRing(current="key-1", keys=[NodeKey("key-1", seed,
                                                                                  "2026-01-01T00:00:00Z")]))
        assert identity.did == did_web_from_url(base)
        peers.append(Peer(node_id, identity))
        members.append({"node_id": node_id, "did": identity.did, "base_url": base})
    genesis = {"type": "FederationMembership", "federation": "bench", "version": 1, "previous": None,
               "threshold": len(members) // 2 + 1, "members": members}
    genesis = sign_membership(genesis, ctx.identity)
    for peer in peers[: len(members) // 2]:
        genesis = sign_membership(genesis, peer.identity)
    with session_scope(ctx.engine) as session:
        for peer in peers:
            session.add(PeerDidDocument(did=peer.identity.did, node_id=peer.node_id,
                                        document=peer.identity.did_document(), fetched_at=utcnow()))
        session.flush()
        install_membership(session, genesis, resolve_did=runtime(ctx).directory.resolver(session))
    ctx.engine.dispose()
    return settings, peers


def _create_pg_database(url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    from node.db import normalise_url

    name = f"bench_peer_{secrets.token_hex(4)}"
    admin = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, sa.make_url(normalise_url(url)).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(name: str) -> None:
    import sqlalchemy as sa

    from node.db import normalise_url

    url = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    admin = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# -- the entry points -------------------------------------------------------------------------------------


def scenarios(*, database_url: str | None = None, seconds: float = 10.0, connections: int = 16, rounds: int = 2,
              body_bytes: int = 1024, warmup: float = 3.0) -> list[dict]:
    """Runs the comparison on a node of its own and returns the rows, one per scenario (the best round of each,
    by rate), the ratio of signed to unsigned on the signed row: {"name", "scenario", "rate", "p50_ms",
    "p99_ms", "ok", "bad", "over", "clean", "statuses", "rounds", "baseline", "goal", "ratio", "paired",
    "cpu_ms", "cpu_ratio"}. `cpu_ms`: the node's CPU time per accepted message, the lowest of the rounds;
    `cpu_ratio`: unsigned cpu_ms ÷ signed cpu_ms. `database_url` None: SQLite; a PostgreSQL URL: a fresh
    database is created beside it and dropped afterwards. bench/request_path.py calls this and prints the rows in its
    table."""
    with PeerBench.start(database_url=database_url, connections=connections, body_bytes=body_bytes) as peer_bench:
        pairs = peer_bench.compare(seconds=seconds, rounds=rounds, warmup=warmup)
    unsigned = max((u for u, _s in pairs), key=lambda r: r.rate)
    signed = max((s for _u, s in pairs), key=lambda r: r.rate)
    rows = []
    for r, label, baseline in ((unsigned, f"unsigned POST {UNSIGNED_PATH} (same inbox work, bench-only route)",
                                None),
                               (signed, f"signed POST {INBOX_PATH}", "unsigned")):
        rows.append({"name": label, "scenario": r.name, "rate": r.rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                     "ok": r.ok, "bad": r.bad, "over": r.over, "clean": r.clean, "statuses": r.statuses,
                     "rounds": [x.rate for pair in pairs for x in pair if x.name == r.name],
                     "baseline": baseline, "goal": 0.7 if baseline else None,
                     "ratio": (r.rate / unsigned.rate) if baseline else None,
                     "paired": [s_.rate / u.rate for u, s_ in pairs if u.rate] if baseline else [],
                     "cpu_ms": min((x.cpu_ms for pair in pairs for x in pair if x.name == r.name
                                    and x.cpu_ms == x.cpu_ms), default=float("nan"))})
    rows[1]["cpu_ratio"] = rows[0]["cpu_ms"] / rows[1]["cpu_ms"] if rows[1]["cpu_ms"] else float("nan")
    rows[0]["cpu_ratio"] = None
    return rows


def print_rows(rows: list[dict], *, title: str) -> None:
    print(title)
    for row in rows:
        ratio = f"  ratio {row['ratio']:.2f} (goal >= {row['goal']}; per round: " \
                f"{', '.join(f'{x:.2f}' for x in row['paired'])})" if row["ratio"] is not None else ""
        rounds = ", ".join(f"{x:.0f}" for x in row["rounds"])
        flag = "" if row["clean"] else f"  NOT CLEAN: {row['bad']} non-200, {row['over']} past the list"
        cpu = f"  CPU {row['cpu_ms']:.2f} ms/message" + (
            f" (CPU ratio {row['cpu_ratio']:.2f})" if row.get("cpu_ratio") is not None else "")
        print(f"  {row['name']:72} {row['rate']:8.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
              f"p99 {row['p99_ms']:7.1f} ms  (rounds: {rounds}){ratio}{cpu}{flag}")
        if row["statuses"]:
            print("    " + row["statuses"].replace("\n", "\n    "))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (a fresh database is made beside it); "
                                                         "default SQLite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--body-bytes", type=int, default=1024)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    rows = scenarios(database_url=args.database, seconds=args.seconds, connections=args.connections,
                     rounds=args.rounds, body_bytes=args.body_bytes)
    db = "PostgreSQL" if args.database else "SQLite"
    print_rows(rows, title=f"peer request, {db}, {args.connections} connections, {args.seconds:g} s x "
                           f"{args.rounds} rounds, {args.body_bytes}-byte envelope; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
