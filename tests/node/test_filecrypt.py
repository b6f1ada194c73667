"""node.security.filecrypt: chunked AES-GCM files — round trips at chunk boundaries, seeking, and every way a
stored file can be cut, reordered or altered is detected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.security.filecrypt import CHUNK, FileCipher, FileCorrupt


def _cipher(kid: str = "k1", key: bytes = b"k" * 32, retired: dict[str, bytes] | None = None) -> FileCipher:
    return FileCipher(kid, {kid: key, **(retired or {})}, b"n" * 32)


def _write(cipher: FileCipher, path: Path, data: bytes) -> bytes:
    with cipher.create(path) as out:
        for i in range(0, len(data), 5000):
            out.write(data[i : i + 5000])
    return path.read_bytes()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
def test_round_trip_and_seek(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    cipher = _cipher()
    _write(cipher, tmp_path / "f", data)
    with cipher.open(tmp_path / "f") as fh:
        assert fh.read() == data
        fh.seek(max(0, size - 3))
        assert fh.read() == data[max(0, size - 3):]
        fh.seek(size // 2)
        assert fh.read(10) == data[size // 2 : size // 2 + 10]
        assert fh.seek(0, os.SEEK_END) == size
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]  # no temporary file left


def test_cut_reordered_or_altered_files_fail(tmp_path: Path) -> None:
    cipher = _cipher()
    raw = _write(cipher, tmp_path / "f", os.urandom(3 * CHUNK + 5))
    header = 4 + 1 + 2 + 16 + 4
    sealed = CHUNK + 16
    chunks = [raw[header + i * sealed : header + (i + 1) * sealed] for i in range(4)]
    cases = {
        "cut at a chunk boundary": raw[: header + 3 * sealed],
        "last chunk dropped and a full one made last": raw[: header + 2 * sealed],
        "reordered": raw[:header] + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "a flipped bit": raw[:-1] + bytes([raw[-1] ^ 1]),
        "another salt": raw[:7] + bytes(16) + raw[23:],
    }
    for name, damaged in cases.items():
        (tmp_path / "d").write_bytes(damaged)
        with pytest.raises(FileCorrupt), cipher.open(tmp_path / "d") as fh:  # noqa: PT012 - read is the check
            fh.read()
            pytest.fail(name)
    # a chunk from another file with the same key does not fit either
    other = _write(cipher, tmp_path / "o", os.urandom(3 * CHUNK + 5))
    (tmp_path / "d").write_bytes(raw[: header + sealed] + other[header + sealed :])
    with pytest.raises(FileCorrupt), cipher.open(tmp_path / "d") as fh:
        fh.read()


def test_unknown_key_and_foreign_files(tmp_path: Path) -> None:
    _write(_cipher("old"), tmp_path / "f", b"data")
    with pytest.raises(FileCorrupt, match="no database key"):
        _cipher("new").open(tmp_path / "f")
    with _cipher("new", retired={"old": b"k" * 32}).open(tmp_path / "f") as fh:
        assert fh.read() == b"data"
    (tmp_path / "clear").write_bytes(b"%PDF-1.4 clear")
    assert FileCipher.key_id_of(tmp_path / "clear") is None
    with pytest.raises(FileCorrupt, match="not an encrypted file"):
        _cipher().open(tmp_path / "clear")


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), _cipher().create(tmp_path / "f") as out:
        out.write(b"partial")
        raise RuntimeError("upload broke off")
    assert list(tmp_path.iterdir()) == []
