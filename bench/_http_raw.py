"""The raw baseline of bench/request_path.py: a minimal async Starlette app that runs the same SQL as the node's reads on
the same database (sqlite3 or psycopg directly, one connection, no ORM, no validation), answers with orjson, and
signs the signed reads once with Ed25519 (`cryptography`). Run by bench/request_path.py as

    python bench/_http_raw.py CONFIG.json PORT

CONFIG.json: {"database_url": ..., "learner_id": ..., "discovery": "<the node's discovery bytes, latin-1>"}.
Not part of the node; a yardstick only.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # the project root, not bench/, is where imports start (the bench is run from the root)

import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_ITEMS = """
SELECT a.id, a.type, a.issuer_code, a.issuer_name, a.code, a.title, a.credits, a.hours, a.score_text, a.level,
       a.certificate_no, a.earned_on, a.term, d.id
FROM achievement a LEFT OUTER JOIN deposit_application d ON d.achievement_id = a.id
WHERE a.learner_id = {p} AND a.status = 'deposited'
ORDER BY a.earned_on DESC NULLS LAST, a.term DESC NULLS LAST, a.id DESC
"""
_TOTALS = """
SELECT a.type, count(*), sum(a.credits), sum(a.hours) FROM achievement a
WHERE a.learner_id = {p} AND a.status = 'deposited' GROUP BY a.type
"""
_LEARNER = "SELECT id, account_no, id_type, id_masked, name_cipher, pseudonym, created_at, token_version " \
           "FROM learner WHERE id = {p}"
_CREDENTIAL = """
SELECT a.id, a.learner_id, a.type, a.issuer_code, a.issuer_name, a.code, a.title, a.credits, a.hours, a.score_text,
       a.level, a.earned_on, a.term, a.status, a.status_index, a.created_at, l.pseudonym, e.seq, e.hash
FROM achievement a JOIN learner l ON l.id = a.learner_id
LEFT OUTER JOIN ledger_event e ON e.achievement_id = a.id AND e.kind = 'achievement.deposited'
WHERE a.id = {p}
"""
_TRANSCRIPT = """
SELECT a.id, a.type, a.issuer_code, a.issuer_name, a.code, a.title, a.credits, a.hours, a.score_text, a.level,
       a.earned_on, a.term, a.status_index, a.created_at, e.seq, e.hash
FROM achievement a LEFT OUTER JOIN ledger_event e ON e.achievement_id = a.id AND e.kind = 'achievement.deposited'
WHERE a.learner_id = {p} AND a.status = 'deposited' ORDER BY a.id
"""
GROUPS = {"degree_course": "degree", "self_study_course": "degree", "vocational_qualification": "certificate",
          "skill_level": "certificate", "training": "training"}
UNAUTHORISED = orjson.dumps({"code": "unauthorized", "message": "sign in first (bearer token or X-API-Key)"})


def _plain(value):
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, int | str | float):
        return value
    return str(value)


class Database:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            self.conn = sqlite3.connect(url.split("///", 1)[1], check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.placeholder = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
            self.placeholder = "%s"

    def rows(self, sql: str, *args) -> list[tuple]:
        cur = self.conn.execute(sql.format(p=self.placeholder), args)
        return cur.fetchall()


def build(config: dict) -> Starlette:
    db = Database(config["database_url"])
    learner_id = int(config["learner_id"])
    discovery = config["discovery"].encode("latin-1")
    key = Ed25519PrivateKey.generate()

    def signed(doc: dict) -> bytes:
        doc["proof"] = {"type": "DataIntegrityProof", "proofValue": key.sign(orjson.dumps(doc)).hex()}
        return orjson.dumps(doc)

    def learner() -> dict:
        row = db.rows(_LEARNER, learner_id)[0]
        return dict(zip(("id", "account_no", "id_type", "id_number_masked", "name", "pseudonym", "created_at",
                         "token_version"), map(_plain, row), strict=True))

    async def archive(_request: Request) -> Response:
        who = learner()
        groups: dict[str, dict] = {}
        for row in db.rows(_ITEMS, learner_id):
            group = groups.setdefault(GROUPS.get(row[1], "other"), {"items": []})
            group["items"].append(dict(zip(("id", "type", "issuer_code", "issuer_name", "code", "title", "credits",
                                            "hours", "score", "level", "certificate_no", "earned_on", "term",
                                            "application_id"), map(_plain, row), strict=True)))
        for type_, count, credits, hours in db.rows(_TOTALS, learner_id):
            group = groups.setdefault(GROUPS.get(type_, "other"), {"items": []})
            group["totals"] = {"count": count, "credits": _plain(credits), "hours": _plain(hours)}
        return Response(orjson.dumps({"learner": who, "groups": groups}), media_type="application/json")

    async def credential(request: Request) -> Response:
        rows = db.rows(_CREDENTIAL, int(request.path_params["id"]))
        if not rows or rows[0][1] != learner_id:
            return Response(b'{"code":"not_found"}', status_code=404, media_type="application/json")
        names = ("id", "learner_id", "type", "issuer_code", "issuer_name", "code", "title", "credits", "hours",
                 "score", "level", "earned_on", "term", "status", "status_index", "created_at", "subject",
                 "event_seq", "event_hash")
        return Response(signed({"credentialSubject": dict(zip(names, map(_plain, rows[0]), strict=True))}),
                        media_type="application/ld+json")

    async def transcript(_request: Request) -> Response:
        who = learner()
        names = ("id", "type", "issuer_code", "issuer_name", "code", "title", "credits", "hours", "score", "level",
                 "earned_on", "term", "status_index", "created_at", "event_seq", "event_hash")
        records = [dict(zip(names, map(_plain, row), strict=True)) for row in db.rows(_TRANSCRIPT, learner_id)]
        return Response(signed({"holder": who["pseudonym"], "verifiableCredential": records}),
                        media_type="application/ld+json")

    async def discovery_doc(_request: Request) -> Response:
        return Response(discovery, media_type="application/json")

    async def unauthorised(_request: Request) -> Response:
        return Response(UNAUTHORISED, status_code=401, media_type="application/json",
                        headers={"www-authenticate": "Bearer"})

    return Starlette(routes=[
        Route("/archive", archive), Route("/credentials/{id:int}", credential), Route("/transcript", transcript),
        Route("/discovery", discovery_doc), Route("/unauthorised", unauthorised),
    ])


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    uvicorn.run(build(cfg), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
