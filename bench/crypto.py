"""Throughput of the crypto package (a script, not a test).

    python bench/crypto.py [--seconds 2]

Prints raw Ed25519 sign/s and verify/s with `cryptography` (the issue's baseline) and with libsodium (PyNaCl,
which `crypto/` uses, so the like-for-like ratio is printed too), Data Integrity eddsa-jcs-2022 issue/s and
verify/s on a ~700-byte Open Badges 3.0 AchievementCredential (each as a ratio of both raw rates), and
canonicalize/s for the orjson fast path vs the `rfc8785` package. Single core; each figure is the best of 3 runs.
Run it on a quiet machine: concurrent load moves the ratios by tens of percent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.dataintegrity import sign, verify
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


if __name__ == "__main__":
    main()
