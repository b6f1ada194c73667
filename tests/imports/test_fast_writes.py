"""The bulk-import write path stores exactly what the ORM would: achievements (sqlite3 `executemany`, or one
preformatted PostgreSQL COPY text buffer per chunk) and ledger events (COPY on PostgreSQL from 64 events on),
including awkward text (tabs, newlines, carriage returns, backslashes, a literal ``\\N``, quotes, Chinese,
astral characters, empty strings next to NULLs) and exact decimals. Runs on SQLite and on PostgreSQL
(CREDITNODE_TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from crypto.jcs import canonicalize
from crypto.leaf import open_leaf
from crypto.merkle import leaf_hash
from node.db import session_scope
from node.imports import repository as repo
from node.imports.validate import VALUE_COLUMNS, decimal_text, read_decimal, stored_decimal, stored_values
from node.ledger.log import verify_log
from node.ledger.service import EventSpec, append_events, event_data
from node.models import Achievement, Organisation
from node.models.types import ExactDecimal
from node.pgcopy import NULL, copy_rows, copy_text, escape
from tests.imports.conftest import INSTITUTION, sh_csv, sh_row

AWKWARD = [
    "tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "\\", "\\.", "ends with \\",
    "\"double\" and 'single' quotes", "课程名称：高等数学（上）", "emoji 🙂 𠀋", "", " lead and trail ",
    "\t\n\r\\", "comma, semicolon; pipe|", "\x0b\x0c\x1f DEL\x7f", "\u2028\u2029",
]


def _decode(text: str) -> list[list[str | None]]:
    """A reference reader of COPY text format (PostgreSQL docs, COPY "Text Format")."""
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    rows = []
    assert text == "" or text.endswith("\n")
    for line in text.split("\n")[:-1]:
        fields: list[str | None] = []
        for raw in line.split("\t"):
            if raw == NULL:
                fields.append(None)
                continue
            out, i = [], 0
            while i < len(raw):
                if raw[i] == "\\":
                    out.append(escapes[raw[i + 1]])
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            fields.append("".join(out))
        rows.append(fields)
    return rows


def test_copy_text_escapes_exactly_what_needs_it() -> None:
    clean = [["1", "课程", "", None, "2.5"], ["2", "plain", None, "x", "0"]]
    text = copy_text(clean)
    assert text == "1\t课程\t\t\\N\t2.5\n2\tplain\t\\N\tx\t0\n"  # no value needed escaping: used as built
    assert _decode(text) == clean
    for value in AWKWARD:
        rows = [["1", value, None], ["2", "clean", ""]]
        text = copy_text(rows)
        assert _decode(text) == rows, value
        assert text == "".join("\t".join(escape(v) for v in row) + "\n" for row in rows)
    assert copy_text([]) == ""
    assert escape(None) == "\\N" and escape("\\N") == "\\\\N" and escape("a\tb\nc\rd\\") == "a\\tb\\nc\\rd\\\\"


def test_copy_text_round_trips_through_postgresql(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    rows = [[str(i), value, None if i % 2 else "", value[::-1]] for i, value in enumerate(AWKWARD)]
    rows += [[str(100 + i), f"clean {i}", "课程", None] for i in range(2500)]  # several chunks, most clean
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("CREATE TEMP TABLE copy_probe (n bigint, a text, b text, c text)")
        copy_rows(cursor, "copy_probe", ("n", "a", "b", "c"), rows)
        cursor.execute("SELECT n, a, b, c FROM copy_probe ORDER BY n")
        got = [[str(r[0]), r[1], r[2], r[3]] for r in cursor.fetchall()]
        cursor.close()
    assert got == rows


def _learner_and_org(upload, uploader, engine) -> tuple[int, int, str]:
    body = upload(uploader, sh_csv([sh_row("901")])).json()
    assert body["status"] == "done", body
    with engine.connect() as conn:
        learner_id = conn.exec_driver_sql("SELECT learner_id FROM achievement").scalar_one()
        org_id, org_name = conn.execute(sa.select(Organisation.id, Organisation.name)
                                        .where(Organisation.code == INSTITUTION)).one()
    return learner_id, org_id, org_name


def _achievement_values(i: int, text: str, learner_id: int, org_id: int, org_name: str,
                        created: dt.datetime, job: str | None) -> dict:
    decimals = [Decimal("2.5"), Decimal("0.001"), Decimal("1234567.999"), Decimal(0), Decimal("4.000"),
                Decimal("99.999"), None]
    return {
        "learner_id": learner_id, "type": "degree_course", "issuer_org_id": org_id, "issuer_code": INSTITUTION,
        "issuer_name": org_name, "code": text[:64], "title": text or "title", "programme_name": text,
        "credits": decimals[i % 6], "hours": decimals[(i + 3) % 7], "score_text": (text or "优")[:20],
        "score_value": decimals[(i + 5) % 7], "level": None if i % 2 else text[:20],
        "earned_on": dt.date(1950 + i, 1 + i % 12, 1), "term": f"{1950 + i}{1 + i % 12:02d}",
        "expires_on": None if i % 3 else dt.date(2099, 12, 31), "student_no": text[:40] or None,
        "education_level_code": "20", "education_type_code": "30" if i % 2 else None, "graduation_year": "2024",
        "graduation_status": None, "graduation_season": "50", "remark": text, "source": "bulk",
        "status": "deposited", "import_job_id": job, "status_index": None, "created_at": created,
    }


def _fast_rows(values: list[dict], ids: list[int], first: int) -> tuple[list[tuple], dict]:
    """`values` as bulk import hands them to `insert_achievements`: rows of id, learner, key and
    `stored_values`, and the values of the columns the rows share."""
    rows = [(ids[i], v["learner_id"], f"fast-{first + i}", *stored_values(**{c: v[c] for c in VALUE_COLUMNS}))
            for i, v in enumerate(values)]
    return rows, {c: values[0][c] for c in repo.COMMON_COLUMNS}


def test_fast_achievement_rows_equal_orm_rows(upload, uploader, engine) -> None:
    learner_id, org_id, org_name = _learner_and_org(upload, uploader, engine)
    created = dt.datetime(2026, 11, 23, 1, 2, 3, tzinfo=dt.UTC)
    texts = [*AWKWARD, "plain", "纯中文课程名称"]
    source = [_achievement_values(i, t, learner_id, org_id, org_name, created, "job-1") for i, t in enumerate(texts)]
    clean = [_achievement_values(i, f"clean {i} 课程", learner_id, org_id, org_name, created, None) for i in range(5)]
    with session_scope(engine) as s:
        ids = repo.next_achievement_ids(s, len(source) + len(clean))
        repo.insert_achievements(s, *_fast_rows(source, ids, 0))  # a batch with special characters (escaped)
        repo.insert_achievements(s, *_fast_rows(clean, ids[len(source):], len(source)))  # a clean batch (as built)
    with session_scope(engine) as s:
        for i, v in enumerate(source + clean):
            s.add(Achievement(**v, dedupe_key=f"orm-{i}"))

    columns = [c for c in (col.name for col in Achievement.__table__.columns) if c not in ("id", "dedupe_key")]
    select = f"SELECT {', '.join(columns)} FROM achievement WHERE dedupe_key = %s" if engine.dialect.name \
        != "sqlite" else f"SELECT {', '.join(columns)} FROM achievement WHERE dedupe_key = ?"
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for i, v in enumerate(source + clean):
            cursor.execute(select, (f"fast-{i}",))
            stored_fast = cursor.fetchone()
            cursor.execute(select, (f"orm-{i}",))
            stored_orm = cursor.fetchone()
            assert stored_fast == stored_orm, (i, v["title"])  # the raw stored values, column by column
        cursor.close()
        # and read through the column types, they are the source values exactly
        for i, v in enumerate(source + clean):
            table = Achievement.__table__
            row = conn.execute(sa.select(table).where(table.c.dedupe_key == f"fast-{i}")).one()._mapping
            for c in columns:
                want = v.get(c)  # a column the import does not write (certificate_no) stays NULL
                got = row[c].astimezone(dt.UTC) if c == "created_at" and row[c].tzinfo else row[c]
                assert got == want or (c == "created_at" and got == want.replace(tzinfo=None)), (i, c)
                if isinstance(want, Decimal):
                    assert str(row[c].normalize()) == str(want.normalize())


def test_stored_decimals_and_their_event_text() -> None:
    """Cells are converted to their stored form once (thousandths, as the column type converts them); a ledger
    event's text of a stored decimal is what the import wrote before (`format(d.normalize(), "f")`); more than
    three decimals are refused as by the column type."""
    for text in ("2.5", "4.000", "10", "0", "0.001", "1234567.999", "100", "99.990"):
        value = Decimal(text)
        stored = stored_decimal(value)
        assert stored == ExactDecimal().process_bind_param(value, None)
        assert decimal_text(stored) == format(value.normalize(), "f")
        assert read_decimal(stored) == value
    assert stored_decimal(None) is None and decimal_text(None) is None and read_decimal(None) is None
    with pytest.raises(ValueError, match="three decimal"):
        stored_decimal(Decimal("2.0005"))


def _specs(learner_id: int, n: int) -> list[EventSpec]:
    kinds = ["achievement.deposited", "achievement.corrected", "odd\\kind\tx"]
    about = [None if i % 4 == 0 else learner_id for i in range(n)]
    return [
        EventSpec(kind=kinds[i % 3], learner_id=about[i],
                  pseudonym=None if about[i] is None else f"urn:uuid:{AWKWARD[i % len(AWKWARD)]}",
                  public=about[i] is None and i % 8 == 0, achievement_id=None if i % 2 else 1000 + i,
                  data={"title": AWKWARD[i % len(AWKWARD)], "credits": "2.5", "n": i, "none": None,
                        "nested": {"old": {"score": "88"}, "list": [1, "二", None]}})
        for i in range(n)
    ]


def test_copied_ledger_events_equal_inserted_ones_and_verify(upload, uploader, engine) -> None:
    learner_id, _, _ = _learner_and_org(upload, uploader, engine)
    n = 150  # ≥ 64: COPY on PostgreSQL
    with session_scope(engine) as s:
        first = append_events(s, _specs(learner_id, n))
    with session_scope(engine) as s:  # the same events in small appends: executemany on both databases
        specs = _specs(learner_id, n)
        second = [seq for i in range(0, n, 10) for seq in append_events(s, specs[i : i + 10])]
    assert len(first) == len(second) == n
    with engine.connect() as conn:
        rows = {r.seq: r for r in conn.execute(sa.text(
            "SELECT seq, kind, learner_id, achievement_id, leaf, hash, salt, opening, created_at FROM ledger_event"))}
    for a, b in zip(first, second, strict=True):
        x, y = rows[a], rows[b]
        assert (x.kind, x.learner_id, x.achievement_id, x.opening) == (y.kind, y.learner_id, y.achievement_id,
                                                                       y.opening)
        if x.opening is not None:  # committed: a fresh salt per event, opening the leaf it was written with
            assert len(bytes(x.salt)) == len(bytes(y.salt)) == 16 and bytes(x.salt) != bytes(y.salt)
            for r in (x, y):
                opened = open_leaf(r.leaf, {"salt": bytes(r.salt).hex(), **json.loads(r.opening)})
                assert opened.data["title"] == AWKWARD[(a - first[0]) % len(AWKWARD)]
                assert canonicalize(json.loads(r.opening)) == r.opening.encode("utf-8")
        for r in (x, y):
            leaf = json.loads(r.leaf)
            assert canonicalize(leaf) == r.leaf.encode("utf-8")  # stored text is the canonical leaf, exactly
            assert bytes(r.hash) == leaf_hash(r.leaf.encode("utf-8"))
            created = r.created_at if isinstance(r.created_at, dt.datetime) else dt.datetime.fromisoformat(
                r.created_at)
            assert created.replace(tzinfo=None) == dt.datetime.strptime(leaf["at"], "%Y-%m-%dT%H:%M:%SZ")
        lx, ly = json.loads(x.leaf), json.loads(y.leaf)
        for leaf in (lx, ly):
            del leaf["seq"], leaf["prev"], leaf["at"]
            leaf.pop("commitment", None)
        assert lx == ly
        assert event_data(x)["title"] == AWKWARD[(a - first[0]) % len(AWKWARD)]
    with session_scope(engine) as s:
        assert verify_log(s) == []


def test_fast_learner_rows_equal_orm_rows(upload, uploader, engine) -> None:
    """New learners of a batch go in by COPY (PostgreSQL) or `executemany` (SQLite) with ids reserved first:
    stored exactly as the ORM stores them (bytea, timestamps), readable through the model, ids distinct."""
    from node.models import Learner

    _learner_and_org(upload, uploader, engine)  # the tables are not empty: reserved ids follow existing ones

    def row(tag: str, i: int) -> dict:
        return {"account_no": f"{tag}{i:06d}", "id_type": "resident_id", "id_blind": f"{tag}-blind-{i}",
                "id_cipher": bytes([i, 0, 92, 255]) + tag.encode(), "id_masked": "310101********123X",
                "name_cipher": b"\\x00\t\n" + bytes([i]), "key_id": "k1", "pseudonym": f"urn:uuid:{tag}-{i}",
                "leaf_salt": bytes(range(i, i + 16))}
    with session_scope(engine) as s:
        ids = repo.insert_learners(s, [row("F", i) for i in range(7)])
    assert len(set(ids.values())) == 7
    with session_scope(engine) as s:
        for i in range(7):
            s.add(Learner(**row("O", i)))
    with session_scope(engine) as s:
        for i in range(7):
            fast = s.get(Learner, ids[f"F-blind-{i}"])
            orm = s.execute(sa.select(Learner).where(Learner.id_blind == f"O-blind-{i}")).scalar_one()
            for column in (col.name for col in Learner.__table__.columns):
                if column in ("id", "created_at"):
                    continue
                want = getattr(orm, column)
                got = getattr(fast, column)
                if column in ("account_no", "id_blind", "pseudonym", "id_cipher"):
                    want = row("F", i)[column]
                assert (bytes(got) if isinstance(got, (bytes, memoryview)) else got) == \
                    (bytes(want) if isinstance(want, (bytes, memoryview)) else want), (i, column)
            assert fast.created_at is not None and type(fast.created_at) is type(orm.created_at)
            assert abs((fast.created_at.replace(tzinfo=None) - orm.created_at.replace(tzinfo=None))
                       .total_seconds()) < 60
        # a learner opened afterwards through the ORM gets a fresh id (the sequence / max moved on)
        later = Learner(**row("L", 1))
        s.add(later)
        s.flush()
        assert later.id not in ids.values()


def test_ledger_fast_leaf_and_plain_openings_are_rfc8785() -> None:
    """append_events builds committed leaves by formatting and bulk-import openings with orjson alone
    (`plain_data`): byte for byte what crypto.leaf's canonical builders give, for awkward values too."""
    from crypto.leaf import committed_leaf, opening_body
    from node.ledger.service import _LEAF, _plain_body

    import orjson

    for kind in ("achievement.deposited", "learner.opened", 'odd "kind"\\\t\u2028'):
        for seq in (0, 1, 2**53 - 1):
            at, prev, com = "2026-12-03T07:00:00Z", "ab" * 32, "cd" * 32
            fast = _LEAF % (orjson.dumps(at), com.encode(), orjson.dumps(kind), prev.encode(), seq)
            assert fast == committed_leaf(seq=seq, prev=prev, at=at, kind=kind, commitment=com)
    data = {"achievement": 2**53 - 1, "title": "课程\U0001F600\x00\x1f\u2028\"\\/", "score": None, "credits": "2.5",
            "old": {"score": "良", "credits": None}, "new": {"score": "95", "hours": "64"}, "z": True, "a": [1, "x"],
            "code": "", "\u00e9t\u00e9": "non-ASCII key in the BMP"}
    for subject in ("urn:uuid:1", None):
        assert _plain_body(subject, data) == opening_body(subject, data)
    with pytest.raises(orjson.JSONEncodeError):
        _plain_body("s", {"n": 2**53})  # beyond RFC 8785's integers: refused, never written differently


def test_collection_per_batch_restores_the_collector() -> None:
    """Jobs pause automatic garbage collection while they run (collecting after each batch); nested or parallel
    jobs in one process give it back only when the last one ends, and never turn on a collector that was off."""
    import gc

    from node.imports.service import _collections_per_batch

    assert gc.isenabled()
    with _collections_per_batch() as first:
        assert not gc.isenabled()
        with _collections_per_batch() as second:
            second.collect()
            assert not gc.isenabled()
        first.collect()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _collections_per_batch():
        raise RuntimeError("a failing job")
    assert gc.isenabled()
    gc.disable()
    try:
        with _collections_per_batch() as job:
            job.collect()
        assert not gc.isenabled()
    finally:
        gc.enable()
