"""The printable transcript (成绩证明): `Accept: application/pdf`, text a person reads (extracted with pypdf),
the signed presentation embedded and verifying, one altered byte failing; `POST /api/v1/verify` with a PDF
(body or form); `creditnode verify transcript.pdf`; the public page `GET /verify` (form, QR link, languages)."""

from __future__ import annotations

import io
import json
import re

import pypdf
import pytest

from node.credentials.pdf import ATTACHMENT_NAME, MAX_PDF_BYTES, extract_presentation
from node.credentials.verify import verify_document
from node.db import session_scope
from node.models import Achievement, IssuedTranscript
from tests.conftest import valid_id

PDF = {"Accept": "application/pdf"}


def _login(client, ctx, learner_id: int) -> dict:
    from node.models import Learner

    with session_scope(ctx.engine) as s:
        account = s.get(Learner, learner_id).account_no
    r = client.post("/api/v1/auth/token", data={"username": account, "password": "learner-pass-1"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def printed(client, ctx, deposit):
    """(learner id, achievement ids, PDF bytes) of a learner with a course and a certificate."""
    learner_id, course = deposit(title="高等数学", credits="4")
    _, certificate = deposit(title="数控铣工", credits="3", type="vocational_qualification", level="三级",
                             learner_id=learner_id)
    r = client.get("/api/v1/me/transcript", headers={**_login(client, ctx, learner_id), **PDF})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
    return learner_id, (course, certificate), r.content


def _reembed(pdf: bytes, data: bytes) -> bytes:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.add_attachment(ATTACHMENT_NAME, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_the_pdf_reads_as_a_transcript_and_embeds_the_signed_presentation(client, ctx, printed) -> None:
    _, _, pdf = printed
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    content = "".join(page.extract_text() for page in reader.pages)
    for expected in ("成绩证明", "Academic Transcript", "上海市终身教育学分银行", "测试学员", "高等数学", "数控铣工",
                     "学历教育", "职业资格证书", "分类合计", "Totals by category", "/verify/"):
        assert expected in content, expected
    assert not re.search(r"\d{17}[\dXx]", content), "an ID number is printed"
    assert valid_id(serial="100") not in pdf.decode("latin-1")

    presentation = extract_presentation(pdf)
    assert presentation["learnerName"] == "测试学员" and len(presentation["verifiableCredential"]) == 2
    url = presentation["id"]
    assert url.startswith(f"{ctx.settings.base_url}/verify/") and url in content
    did = ctx.identity.did_document()
    report = verify_document(presentation, resolve_did={did["id"]: did}.get)
    assert report.valid, report.to_dict()
    with session_scope(ctx.engine) as s:  # kept under the token of its QR link
        assert s.get(IssuedTranscript, url.rsplit("/", 1)[1]).document == presentation


def test_one_altered_byte_in_the_attachment_fails(client, ctx, printed) -> None:
    _, _, pdf = printed
    data = json.dumps(extract_presentation(pdf), ensure_ascii=False, indent=1).encode()
    altered = data.replace(b'"credits": "4"', b'"credits": "5"', 1)
    assert altered != data and len(altered) == len(data)
    did = ctx.identity.did_document()
    report = verify_document(extract_presentation(_reembed(pdf, altered)), resolve_did={did["id"]: did}.get)
    assert not report.valid
    assert client.post("/api/v1/verify", content=_reembed(pdf, altered),
                       headers={"Content-Type": "application/pdf"}).json()["valid"] is False


def test_verify_endpoint_takes_the_pdf_as_body_or_upload(client, printed) -> None:
    _, _, pdf = printed
    verdict = client.post("/api/v1/verify", content=pdf, headers={"Content-Type": "application/pdf"}).json()
    assert verdict["valid"] and verdict["kind"] == "presentation" and len(verdict["credentials"]) == 2
    upload = client.post("/api/v1/verify", files={"file": ("transcript.pdf", pdf, "application/pdf")})
    assert upload.status_code == 200 and upload.json()["valid"]
    broken = client.post("/api/v1/verify", content=b"%PDF-1.7 not really", headers={"Content-Type": "application/pdf"})
    assert broken.status_code == 400 and broken.json()["code"] == "unreadable_pdf"
    flipped = bytearray(pdf)
    flipped[len(pdf) // 2] ^= 0x01
    answer = client.post("/api/v1/verify", content=bytes(flipped), headers={"Content-Type": "application/pdf"})
    assert answer.status_code == 400 or answer.json()["valid"] is False
    too_big = client.post("/api/v1/verify", content=b"%PDF-" + b"0" * (MAX_PDF_BYTES + 70 * 1024),
                          headers={"Content-Type": "application/pdf"})
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    other = client.post("/api/v1/verify", content=b"hello", headers={"Content-Type": "text/plain"})
    assert other.status_code == 415 and other.json()["code"] == "unsupported_media_type"
    bad_json = client.post("/api/v1/verify", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_json"  # refused at the edge


def test_cli_verifies_the_pdf_offline_and_fails_an_altered_one(client, ctx, printed, tmp_path) -> None:
    from typer.testing import CliRunner

    from node.cli import app as cli_app

    _, _, pdf = printed
    (tmp_path / "did.json").write_text(json.dumps(ctx.identity.did_document()), encoding="utf-8")
    (tmp_path / "transcript.pdf").write_bytes(pdf)
    result = CliRunner().invoke(cli_app, ["verify", str(tmp_path / "transcript.pdf"),
                                          "--did-document", str(tmp_path / "did.json")])
    assert result.exit_code == 0 and "VALID" in result.output and "测试学员" in result.output, result.output
    data = json.dumps(extract_presentation(pdf), ensure_ascii=False, indent=1).encode()
    (tmp_path / "altered.pdf").write_bytes(_reembed(pdf, data.replace(b'"score": "85"', b'"score": "95"', 1)))
    result = CliRunner().invoke(cli_app, ["verify", str(tmp_path / "altered.pdf"),
                                          "--did-document", str(tmp_path / "did.json")])
    assert result.exit_code == 1 and "INVALID" in result.output


def test_the_qr_link_shows_the_result_for_a_person_in_both_languages(client, ctx, printed) -> None:
    _, (course, _), pdf = printed
    path = extract_presentation(pdf)["id"].removeprefix(ctx.settings.base_url)
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh-CN">' in html and "有效" in html and "测试学员" in html and "高等数学" in html
    assert "上海市终身教育学分银行" in html and "<script" not in html
    assert "default-src 'none'" in page.headers["content-security-policy"]
    english = client.get(path, params={"lang": "en"}).text
    assert '<html lang="en">' in english and "Valid" in english and "Shanghai Lifelong Education Credit Bank" in english
    assert '<html lang="en">' in client.get(path, headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="zh-CN">' in client.get(path, headers={"Accept-Language": "zh-CN,en;q=0.5"}).text
    # revoked afterwards: the same link now says so
    from node.credentials.status import revoke_achievement

    with session_scope(ctx.engine) as s:
        revoke_achievement(s, ctx, s.get(Achievement, course), cause={"test": 1}, because="test")
    assert "已撤销" in client.get(path).text
    missing = client.get("/verify/not-a-token")
    assert missing.status_code == 404 and "未找到" in missing.text
    for junk in ("x" * 300, "%E4%B8%AD", "a.b"):  # oversize, non-ASCII: 404, never 500
        assert client.get(f"/verify/{junk}").status_code == 404, junk
    assert client.get("/verify/%00abc").status_code == 422  # NUL: refused at the edge (node/middleware.py)


def test_the_page_verifies_a_pasted_credential_or_an_uploaded_pdf(client, ctx, printed, deposit) -> None:
    learner_id, (course, _), pdf = printed
    form = client.get("/verify")
    assert form.status_code == 200
    for marker in ('<form method="post"', 'enctype="multipart/form-data"', '<label for="file">',
                   '<label for="document">', "<h1>"):
        assert marker in form.text, marker
    credential = client.get(f"/api/v1/me/credentials/{course}", headers=_login(client, ctx, learner_id)).text
    pasted = client.post("/verify", data={"document": credential})
    assert pasted.status_code == 200 and "有效" in pasted.text and "高等数学" in pasted.text
    uploaded = client.post("/verify?lang=en", files={"file": ("t.pdf", pdf, "application/pdf")})
    assert uploaded.status_code == 200 and "Valid" in uploaded.text and "测试学员" in uploaded.text
    junk = client.post("/verify", data={"document": "{not json"})
    assert junk.status_code == 400 and "无法读取" in junk.text
    empty = client.post("/verify", data={"document": ""})
    assert empty.status_code == 400
    tampered = json.loads(credential)
    tampered["credentialSubject"]["creditBank"]["credits"] = "40"
    assert "无效" in client.post("/verify", data={"document": json.dumps(tampered)}).text


def test_transcript_json_stays_the_default(client, ctx, printed) -> None:
    learner_id, _, _ = printed
    h = _login(client, ctx, learner_id)
    assert client.get("/api/v1/me/transcript", headers=h).headers["content-type"].startswith("application/ld+json")
    both = {**h, "Accept": "application/json, application/pdf;q=0.5"}
    assert client.get("/api/v1/me/transcript", headers=both).headers["content-type"].startswith("application/ld")
    pdf_first = {**h, "Accept": "application/pdf, application/json;q=0.9"}
    assert client.get("/api/v1/me/transcript", headers=pdf_first).headers["content-type"] == "application/pdf"


def test_online_verification_resolves_did_web_and_the_status_list(client, ctx, printed) -> None:
    """Without --did-document the CLI resolves the issuer's did:web: https first, http for a loopback host (the
    demo), never another origin for the status list."""
    import httpx

    from node.credentials.resolvers import web_resolvers

    _, _, pdf = printed
    seen: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.scheme == "https":
            raise httpx.ConnectError("no TLS here", request=request)
        answer = client.get(request.url.path)
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers.multi_items())

    with httpx.Client(transport=httpx.MockTransport(route)) as http:
        online = web_resolvers(http)
        report = verify_document(extract_presentation(pdf), **online)
        assert report.valid, report.to_dict()
        statuses = [c for r in report.credentials for c in r.checks if c.check == "status"]
        assert statuses and all(c.ok for c in statuses)
        assert online["fetch_status"]("http://evil.example/status/0") is None
    assert seen[0] == "https://127.0.0.1:8101/.well-known/did.json" and "http://127.0.0.1:8101/.well-known/did.json" in seen
    assert not any("evil.example" in url for url in seen)
    with httpx.Client(transport=httpx.MockTransport(route)) as http:  # a public host: https only
        assert web_resolvers(http)["resolve_did"]("did:web:creditbank.example.sh.cn") is None
