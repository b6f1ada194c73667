"""Evidence uploads: content-addressed and stored once, encrypted at rest under keyed names, size and type limits
(magic bytes), access."""

from __future__ import annotations

import hashlib

import pytest

import sqlalchemy as sa

from node.security.filecrypt import FileCipher, FileCorrupt, file_cipher, reencrypt_stored_files

from tests.deposits.helpers import (
    JPEG,
    PDF,
    PNG,
    decide,
    draft,
    ok,
    refused,
    register_learner,
    submitted,
    upload,
)


def _stored_files(ctx) -> list:
    root = ctx.settings.evidence_dir
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


def _tmp_files(ctx) -> list:
    tmp = ctx.settings.evidence_dir / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def test_identical_uploads_are_stored_once(client, ctx, engine) -> None:
    learner = register_learner(client)
    a, b = draft(client, learner), draft(client, learner, code="OTHER")
    first = ok(upload(client, a["id"], learner.headers), 201)
    assert first["sha256"] == hashlib.sha256(PDF).hexdigest() and first["size"] == len(PDF)
    again = ok(upload(client, a["id"], learner.headers, name="copy.pdf"), 200)  # already attached
    assert again["sha256"] == first["sha256"]
    ok(upload(client, b["id"], learner.headers), 201)
    files = _stored_files(ctx)
    assert len(files) == 1 and files[0].name == file_cipher(ctx).name_for(first["sha256"])
    assert _tmp_files(ctx) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM evidence_file")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM application_evidence")).scalar_one() == 2
    ok(upload(client, a["id"], learner.headers, content=PNG, name="photo.png", content_type="image/png"), 201)
    ok(upload(client, a["id"], learner.headers, content=JPEG, name="photo.jpg", content_type="image/jpeg"), 201)
    assert len(_stored_files(ctx)) == 3
    mine = ok(client.get(f"/api/v1/me/deposit-applications/{a['id']}", headers=learner.headers))
    assert len(mine["evidence"]) == 3


def test_size_limit_is_413_and_leaves_nothing_behind(client, ctx, engine) -> None:
    learner = register_learner(client)
    app = draft(client, learner)
    ctx.settings.imports.max_evidence_bytes = 1000
    at_limit = PDF + b"%" * (1000 - len(PDF))
    ok(upload(client, app["id"], learner.headers, content=at_limit), 201)
    body = refused(upload(client, app["id"], learner.headers, content=at_limit + b"x"), 413, "payload_too_large")
    assert body["detail"]["max_bytes"] == 1000
    assert len(_stored_files(ctx)) == 1 and _tmp_files(ctx) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM evidence_file")).scalar_one() == 1


def test_types_are_checked_by_declaration_and_by_magic_bytes(client, ctx) -> None:
    learner = register_learner(client)
    app = draft(client, learner)
    cases = [
        (b"MZ\x90\x00 not a pdf", "application/pdf"),  # a Windows executable declared as PDF
        (PNG, "application/pdf"),  # a PNG declared as PDF
        (PDF, "image/png"),
        (b"hello", "text/plain"),  # declared type outside the allow-list
        (PDF, "application/octet-stream"),
        (b"", "application/pdf"),
    ]
    for content, declared in cases:
        refused(upload(client, app["id"], learner.headers, content=content, content_type=declared), 415,
                "unsupported_media_type")
    assert _stored_files(ctx) == [] and _tmp_files(ctx) == []
    ctx.settings.imports.evidence_types = ["image/png"]
    refused(upload(client, app["id"], learner.headers), 415, "unsupported_media_type")
    ok(upload(client, app["id"], learner.headers, content=PNG, content_type="image/png"), 201)


def test_download_by_owner_and_reviewers_only(client, staff_headers, engine) -> None:
    owner, other = register_learner(client, "401"), register_learner(client, "402")
    app = submitted(client, owner)
    sha = app["evidence"][0]["sha256"]
    r = client.get(f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}", headers=owner.headers)
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"].startswith("application/pdf")
    assert r.headers["x-content-type-options"] == "nosniff"
    refused(client.get(f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}", headers=other.headers),
            404, "not_found")
    for role in ("branch_reviewer", "centre_reviewer"):
        r = client.get(f"/api/v1/deposit-applications/{app['id']}/evidence/{sha}", headers=staff_headers(role))
        assert r.status_code == 200 and r.content == PDF
    for headers in (staff_headers("outlet_staff"), staff_headers("auditor"), owner.headers):
        refused(client.get(f"/api/v1/deposit-applications/{app['id']}/evidence/{sha}", headers=headers),
                403, "forbidden")
    missing = "0" * 64
    refused(client.get(f"/api/v1/deposit-applications/{app['id']}/evidence/{missing}",
                       headers=staff_headers("branch_reviewer")), 404, "not_found")
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'evidence.download' "
                                 "AND outcome = 'ok'")).scalar_one()
    assert n == 2


def test_evidence_is_frozen_under_review_and_reopens_after_a_rejection(client, staff_headers) -> None:
    learner = register_learner(client)
    app = submitted(client, learner)
    refused(upload(client, app["id"], learner.headers, content=PNG, content_type="image/png"), 409,
            "illegal_transition")
    first = ok(decide(client, staff_headers("branch_reviewer"), app, "approve"))
    refused(upload(client, app["id"], learner.headers, content=PNG, content_type="image/png"), 409,
            "illegal_transition")
    ok(decide(client, staff_headers("centre_reviewer"), first, "reject", reason="请补充原件照片"))
    ok(upload(client, app["id"], learner.headers, content=PNG, content_type="image/png"), 201)


def test_evidence_is_encrypted_at_rest_under_a_keyed_name(client, ctx) -> None:
    """Issue 11 item 10: evidence files were stored in clear, named by the plaintext SHA-256 (anyone holding a
    document could check whether the node stores it)."""
    learner = register_learner(client)
    app = draft(client, learner)
    secret_pdf = PDF + b"\n% 310101199003071234 \xe5\xbc\xa0\xe4\xb8\x89" + b"%" * 200_000  # several chunks
    body = ok(upload(client, app["id"], learner.headers, content=secret_pdf), 201)
    sha = hashlib.sha256(secret_pdf).hexdigest()
    assert body["sha256"] == sha and body["size"] == len(secret_pdf)
    (stored,) = _stored_files(ctx)
    raw = stored.read_bytes()
    assert sha not in str(stored) and b"%PDF" not in raw and b"310101199003071234" not in raw
    assert FileCipher.key_id_of(stored) == "t1"
    assert _tmp_files(ctx) == []
    r = client.get(f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}", headers=learner.headers)
    assert r.status_code == 200 and r.content == secret_pdf
    assert r.headers["content-length"] == str(len(secret_pdf))
    # tampering with the stored bytes is detected, not served
    stored.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    with file_cipher(ctx).open(stored) as fh, pytest.raises(FileCorrupt):
        fh.read()


def test_legacy_clear_files_are_read_and_then_encrypted(client, ctx) -> None:
    from node.evidence.storage import encrypt_legacy, evidence_path

    learner = register_learner(client)
    app = submitted(client, learner)
    sha = app["evidence"][0]["sha256"]
    root = ctx.settings.evidence_dir
    cipher = file_cipher(ctx)
    # what an earlier version stored: the clear file named by its SHA-256
    evidence_path(root, sha, cipher).unlink()
    legacy = root / sha[:2] / sha
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_bytes(PDF)
    url = f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}"
    assert client.get(url, headers=learner.headers).content == PDF
    assert encrypt_legacy(root, cipher) == 1 and encrypt_legacy(root, cipher) == 0
    assert not legacy.exists() and FileCipher.key_id_of(evidence_path(root, sha, cipher)) == "t1"
    assert client.get(url, headers=learner.headers).content == PDF


def test_a_rotated_key_still_reads_and_reencrypt_moves_files_on(client, ctx) -> None:
    import base64

    learner = register_learner(client)
    app = submitted(client, learner)
    sha = app["evidence"][0]["sha256"]
    (stored,) = _stored_files(ctx)
    security = ctx.settings.security
    old_key = security.database_key
    security.retired_database_keys = {"t1": old_key}
    security.database_key = type(old_key)(base64.urlsafe_b64encode(b"n" * 32).decode())
    security.database_key_id = "t2"
    ctx.extras.pop("security.file_cipher", None)
    rotated = file_cipher(ctx)
    url = f"/api/v1/me/deposit-applications/{app['id']}/evidence/{sha}"
    assert client.get(url, headers=learner.headers).content == PDF  # read with the retired key
    assert reencrypt_stored_files(ctx.settings) == {"reencrypted": 1, "other": 0}
    assert reencrypt_stored_files(ctx.settings) == {"reencrypted": 0, "other": 1}  # resumable: done files are skipped
    assert not rotated.reencrypt(stored) and FileCipher.key_id_of(stored) == "t2"
    security.retired_database_keys = {}
    ctx.extras.pop("security.file_cipher", None)
    assert client.get(url, headers=learner.headers).content == PDF  # the old key is no longer needed
