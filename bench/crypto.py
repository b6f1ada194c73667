"""Throughput of the crypto package (a script, not a test).

    python bench/crypto.py [--seconds 2]

Prints raw Ed25519 sign/s and verify/s with `cryptography` (the issue's baseline) and with libsodium (PyNaCl,
which `crypto/` uses, so the like-for-like ratio is printed too), Data Integrity eddsa-jcs-2022 issue/s and
verify/s on a ~700-byte Open Badges 3.0 AchievementCredential (each as a ratio of both raw rates), and
canonicalize/s for the orjson fast path vs the `rfc8785` package. Then eddsa-rdfc-2022 (PyLD, bundled contexts)
issue/s and verify/s beside JCS on the same credential and on a credential as the node issues it (OB 3.0 with the
federation context, ~3 KB), and for a learner with 20 records: the signed transcript (every credential and the
presentation with both proofs) per second, and the PDF rendering alone per second.
Single core; each figure is the best of 3 runs. Run it on a quiet machine: concurrent load moves the ratios by
tens of percent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.dataintegrity import RDFC, sign, verify
from crypto.jcs import canonicalize
from crypto.keys import Ed25519Key

CREDENTIAL = {
    "@context": [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ],
    "id": "urn:uuid:8a4c1f0e-2b7d-4c1a-9a51-3f6e2d9c7b10",
    "type": ["VerifiableCredential", "OpenBadgeCredential"],
    "issuer": {"id": "did:web:creditbank.sh.example", "type": ["Profile"], "name": "上海市终身教育学分银行"},
    "validFrom": "2025-03-01T00:00:00Z",
    "name": "大学物理（一）",
    "credentialSubject": {
        "type": ["AchievementSubject"],
        "achievement": {
            "id": "https://creditbank.sh.example/achievements/course/PHY101",
            "type": ["Achievement"],
            "name": "大学物理（一）",
            "criteria": {"narrative": "考试合格"},
            "creditsAvailable": "4.0",
        },
        "creditsEarned": "4.0",
        "result": [{"type": ["Result"], "value": "良"}],
    },
}

SECONDS = 2.0


def rate(fn, seconds: float) -> float:
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(50):
                fn()
            n += 50
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help="seconds per run (best of 3 runs)")
    args = parser.parse_args()
    secs = args.seconds

    raw_key = Ed25519PrivateKey.generate()
    raw_pub = raw_key.public_key()
    msg = b"\x5a" * 64
    raw_sig = raw_key.sign(msg)
    raw_sign = rate(lambda: raw_key.sign(msg), secs)
    raw_verify = rate(lambda: raw_pub.verify(raw_sig, msg), secs)
    # crypto/ signs and verifies with libsodium (PyNaCl): its own raw rates, for the like-for-like ratios
    import nacl.bindings

    _, sodium_sk = nacl.bindings.crypto_sign_seed_keypair(b"\x22" * 32)
    sodium_pk = sodium_sk[32:]
    sodium_signed = nacl.bindings.crypto_sign(msg, sodium_sk)
    sodium_sign = rate(lambda: nacl.bindings.crypto_sign(msg, sodium_sk), secs)
    sodium_verify = rate(lambda: nacl.bindings.crypto_sign_open(sodium_signed, sodium_pk), secs)

    key = Ed25519Key.from_seed(b"\x11" * 32)
    vm = "did:web:creditbank.sh.example#key-1"
    signed = sign(CREDENTIAL, key, vm, created="2025-03-01T00:00:00Z")
    size = len(canonicalize(CREDENTIAL))
    public = key.public_key
    assert verify(signed, lambda _: public).ok

    issue = rate(lambda: sign(CREDENTIAL, key, vm, created="2025-03-01T00:00:00Z"), secs)
    check = rate(lambda: verify(signed, lambda _: public), secs)
    fast = rate(lambda: canonicalize(CREDENTIAL), secs)
    slow = rate(lambda: rfc8785.dumps(CREDENTIAL), secs)
    assert canonicalize(CREDENTIAL) == rfc8785.dumps(CREDENTIAL)

    print(f"credential: {size} bytes canonical; each figure best of 3 runs of {secs:.2f}s, one core")
    print(f"raw Ed25519 sign   (cryptography): {raw_sign:10,.0f} /s")
    print(f"raw Ed25519 verify (cryptography): {raw_verify:10,.0f} /s")
    print(f"raw Ed25519 sign   (libsodium)   : {sodium_sign:10,.0f} /s")
    print(f"raw Ed25519 verify (libsodium)   : {sodium_verify:10,.0f} /s")
    print(f"DI eddsa-jcs-2022 issue          : {issue:10,.0f} /s  = {issue / raw_sign:6.0%} of raw sign   "
          f"(target >= 70%), {issue / sodium_sign:6.0%} of libsodium's")
    print(f"DI eddsa-jcs-2022 verify         : {check:10,.0f} /s  = {check / raw_verify:6.0%} of raw verify "
          f"(target >= 80%), {check / sodium_verify:6.0%} of libsodium's")
    print(f"canonicalize fast path (orjson)  : {fast:10,.0f} /s")
    print(f"rfc8785.dumps                    : {slow:10,.0f} /s  (fast path is {fast / slow:.1f}x)")
    rdfc_and_transcripts(key, vm, secs)


def node_credential(index: int) -> dict:
    """An unsigned credential as the node issues it (node.credentials.service), built from in-memory rows."""
    import datetime as dt
    from decimal import Decimal

    from node.credentials.service import build_achievement_credential
    from node.models import Achievement, Learner, LedgerEvent

    achievement = Achievement(id=1000 + index, learner_id=1, type="degree_course", issuer_code="U001",
                              issuer_name="上海开放大学", code=f"C{index:03d}", title=f"专业课程（{index}）",
                              credits=Decimal("2.5") + index % 3, hours=Decimal(48), score_text=str(70 + index),
                              earned_on=dt.date(2024, 6, 30), term="202406", source="import",
                              created_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    event = LedgerEvent(seq=500 + index, kind="achievement.deposited", hash=b"\x07" * 32)
    learner = Learner(pseudonym="urn:uuid:6f1c0f7e-1d9b-4f7e-9a0a-2f1f6b2d9c11")
    return build_achievement_credential(base_url="https://creditbank.sh.example", did="did:web:creditbank.sh.example",
                                        issuer_name="上海市终身教育学分银行", achievement=achievement, learner=learner,
                                        institution=None, event=event, status_index=index)


def rdfc_and_transcripts(key: Ed25519Key, vm: str, secs: float) -> None:
    from node.credentials.pdf import render_transcript_pdf
    from node.credentials.service import transcript_totals

    public = key.public_key
    created = "2025-03-01T00:00:00Z"
    for label, document in (("bench credential", CREDENTIAL), ("node credential ", node_credential(1))):
        jcs_signed = sign(document, key, vm, created=created)
        rdfc_signed = sign(document, key, vm, created=created, cryptosuite=RDFC)
        assert verify(rdfc_signed, lambda _: public).ok
        jcs_issue = rate(lambda d=document: sign(d, key, vm, created=created), secs)
        jcs_check = rate(lambda d=jcs_signed: verify(d, lambda _: public), secs)
        rdfc_issue = rate(lambda d=document: sign(d, key, vm, created=created, cryptosuite=RDFC), secs)
        rdfc_check = rate(lambda d=rdfc_signed: verify(d, lambda _: public), secs)
        print(f"{label}: JCS issue {jcs_issue:8,.0f} /s verify {jcs_check:8,.0f} /s | "
              f"RDFC issue {rdfc_issue:6,.0f} /s verify {rdfc_check:6,.0f} /s "
              f"({jcs_issue / rdfc_issue:.0f}x / {jcs_check / rdfc_check:.0f}x slower)")

    unsigned = [node_credential(i) for i in range(20)]

    def signed_transcript() -> dict:
        credentials = []
        for credential in unsigned:
            proofs = [sign(credential, key, vm, created=created)["proof"],
                      sign(credential, key, vm, created=created, cryptosuite=RDFC)["proof"]]
            credentials.append({**credential, "proof": proofs})
        presentation = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/yangtze-credit-bank/v2"],
                        "type": ["VerifiablePresentation", "CreditBankTranscript"],
                        "id": "https://creditbank.sh.example/verify/Ab3dEf5gH7jK9mN1",
                        "holder": "urn:uuid:6f1c0f7e-1d9b-4f7e-9a0a-2f1f6b2d9c11", "learnerName": "测试学员",
                        "issuerName": "上海市终身教育学分银行", "issuedAt": created,
                        "totals": transcript_totals(credentials), "verifiableCredential": credentials}
        proofs = [sign(presentation, key, vm, created=created)["proof"],
                  sign(presentation, key, vm, created=created, cryptosuite=RDFC)["proof"]]
        return {**presentation, "proof": proofs}

    vp = signed_transcript()
    assert verify(vp, lambda _: public).ok

    def render() -> bytes:
        return render_transcript_pdf(vp, issuer_name_zh="上海市终身教育学分银行",
                                     issuer_name_en="Shanghai Lifelong Education Credit Bank")

    pdf_size = len(render())
    signing = slow_rate(signed_transcript, secs)
    pdfs = slow_rate(render, secs)
    print(f"20-record transcript, signed (JCS + RDFC on 20 credentials and the presentation): {signing:6.1f} /s")
    print(f"20-record transcript PDF rendering (reportlab + segno + pypdf attachment)       : {pdfs:6.1f} /s "
          f"({pdf_size:,} bytes)")
    print(f"so a PDF transcript end to end (without the database reads): {1 / (1 / signing + 1 / pdfs):6.1f} /s")


def slow_rate(fn, seconds: float) -> float:
    """Like rate() for calls that take tens of milliseconds: best of 3 runs, at least 3 calls each."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - start < seconds:
            fn()
            n += 1
        best = max(best, n / (time.perf_counter() - start))
    return best


if __name__ == "__main__":
    main()
