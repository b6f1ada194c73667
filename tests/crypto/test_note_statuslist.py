"""C2SP signed notes, checkpoints, cosignatures; W3C Bitstring Status List."""

from __future__ import annotations

import json

import pytest

from crypto.errors import NoteError, StatusListError
from crypto.keys import Ed25519Key
from crypto.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    cosign,
    format_checkpoint,
    parse_checkpoint,
    sign_note,
    verify_cosignature,
    verify_note,
)
from crypto.statuslist import StatusList
from tests.crypto.conftest import vector_path


def test_c2sp_example() -> None:
    ex = json.loads(vector_path("c2sp-signed-note", "example.json").read_text())
    verifier = NoteVerifier.from_vkey(ex["vkey"])
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.verifier_key() == ex["vkey"]
    verified = verify_note(ex["note"], [verifier])
    assert verified.text == ex["expected_text"] and list(verified.signatures) == ["example.com/foo"]
    tampered = ex["note"].replace("example message", "example massage")
    with pytest.raises(NoteError):
        verify_note(tampered, [verifier])


SIGNER = NoteSigner("sh.example/creditnode/shanghai/ledger", Ed25519Key.from_seed(b"\x01" * 32))
WITNESS = NoteSigner("witness.zj.example", Ed25519Key.from_seed(b"\x02" * 32))
ROOT = bytes(range(32))


def test_checkpoint_round_trip() -> None:
    body = format_checkpoint(SIGNER.name, 42, ROOT, extensions=["ext line"])
    assert body == f"{SIGNER.name}\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\next line\n"
    note = sign_note(body, [SIGNER])
    verifier = NoteVerifier.from_vkey(SIGNER.verifier_key())
    assert verifier.key_id == SIGNER.key_id
    cp = parse_checkpoint(verify_note(note, [verifier]).text)
    assert cp == Checkpoint(SIGNER.name, 42, ROOT, ("ext line",))
    assert cp.text() == body


def test_unknown_signatures_ignored_and_known_required() -> None:
    body = format_checkpoint(SIGNER.name, 1, ROOT)
    note = sign_note(body, [SIGNER, WITNESS])
    v = verify_note(note, [SIGNER.verifier()])
    assert list(v.signatures) == [SIGNER.name] and [s.name for s in v.unverified] == [WITNESS.name]
    with pytest.raises(NoteError, match="no signature from a known key"):
        verify_note(note, [NoteSigner("other", Ed25519Key.generate()).verifier()])
    # a known key with a bad signature is an error, not ignored
    imposter = NoteSigner(SIGNER.name, Ed25519Key.generate())
    forged = body + "\n" + SIGNER.signature_line(body).replace(SIGNER.signature_line(body).split()[-1],
                                                               imposter.signature_line(body).split()[-1])
    with pytest.raises(NoteError):
        verify_note(forged, [SIGNER.verifier()])


@pytest.mark.parametrize("bad", ["", "no newline", "text\n", "text\n\nnot a sig\n", "text\n\n\u2014 x !!!\n"])
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(NoteError):
        verify_note(bad, [SIGNER.verifier()])


@pytest.mark.parametrize("bad", ["o\n01\n" + "A" * 44 + "\n", "o\n1\nnotbase64\n", "o\n1\n", "o\n-1\nAA==\n"])
def test_bad_checkpoints(bad: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(bad)


def test_cosignature() -> None:
    body = format_checkpoint(SIGNER.name, 7, ROOT)
    line = cosign(body, WITNESS, 1_700_000_000)
    assert line.startswith(f"\u2014 {WITNESS.name} ")
    assert verify_cosignature(body, line, WITNESS.cosignature_verifier()) == 1_700_000_000
    assert verify_cosignature(body, line, NoteVerifier.from_vkey(WITNESS.cosigner_verifier_key())) == 1_700_000_000
    with pytest.raises(NoteError):
        verify_cosignature(format_checkpoint(SIGNER.name, 8, ROOT), line, WITNESS.cosignature_verifier())
    note = add_signatures(sign_note(body, [SIGNER]), [line, line])
    assert note.count("\u2014") == 2
    v = verify_note(note, [SIGNER.verifier(), WITNESS.cosignature_verifier()])
    assert len(v.signatures) == 2
    # the cosignature key ID differs from the note key ID (type 0x04 vs 0x01)
    assert WITNESS.cosignature_key_id != WITNESS.key_id


def test_status_list_vectors() -> None:
    data = json.loads(vector_path("bitstring-status-list", "cases.json").read_text())
    for case in data["cases"]:
        sl = StatusList.decode(case["encodedList"])
        assert sl.size == case["bit_length"]
        assert sl.set_indices() == case["set_indices"]
        for index, bit in case["check"].items():
            assert sl.get(int(index)) is bool(bit)
        assert StatusList.decode(sl.encode()) == sl
    cred = json.loads(vector_path("bitstring-status-list", "1edtech-testlist.json").read_text())
    assert StatusList.decode(cred["credentialSubject"]["encodedList"]).get(23)


def test_status_list_round_trip_and_bit_order() -> None:
    sl = StatusList()
    assert sl.size == 131072
    sl.set(0)
    sl.set(9)
    sl.set(131071)
    assert sl.to_bytes()[0] == 0x80 and sl.to_bytes()[1] == 0x40 and sl.to_bytes()[-1] == 0x01
    encoded = sl.encode()
    assert encoded.startswith("uH4sI") and "=" not in encoded
    back = StatusList.decode(encoded)
    assert back.set_indices() == [0, 9, 131071]
    back.set(9, False)
    assert back.set_indices() == [0, 131071]


def test_status_list_errors() -> None:
    sl = StatusList()
    for bad in (-1, 131072, True, "1"):
        with pytest.raises(StatusListError):
            sl.get(bad)  # type: ignore[arg-type]
    with pytest.raises(StatusListError):
        StatusList(size=1000)
    small = StatusList.__new__(StatusList)
    small.size, small._bits = 64, bytearray(8)
    with pytest.raises(StatusListError, match="minimum"):
        StatusList.decode(small.encode())
    for bad in ("", "u!!!", "uAAAA"):
        with pytest.raises(StatusListError):
            StatusList.decode(bad)
    with pytest.raises(StatusListError, match="larger"):
        StatusList.decode(StatusList(size=131072 * 8).encode(), max_bytes=16384)


def test_verifier_key_whose_base64_contains_plus_parses() -> None:
    """The vkey's base64 part may itself contain '+': only the first two '+' separate fields."""
    signer = next(
        s for i in range(256)
        if "+" in (s := NoteSigner("example.org/log", Ed25519Key.from_seed(bytes([i]) * 32))).verifier_key().split("+", 2)[2]
    )
    parsed = NoteVerifier.from_vkey(signer.verifier_key())
    assert parsed.name == "example.org/log"
    assert parsed.key_id == signer.key_id
