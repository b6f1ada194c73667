"""Issue 11.21: what a non-editable install and the Docker image contain.

- The wheel (what `deploy/Dockerfile`'s `pip install /opt/creditnode` builds) carries every data file of the
  packages, in particular the conformance suite's conversion vectors (it used to drop them: 0 cases from the
  wheel, 9 from the checkout, and test_10_conversion silently ran nothing). The wheel is built from exactly the
  Docker build context that the .dockerignore lets through, then imported in an isolated interpreter.
- No vector found is an error, not an empty pass.
- `.dockerignore` (BuildKit's `deploy/Dockerfile.dockerignore`, the classic builder's root copy) keeps .venv,
  .git, local data, keys and secrets out, and the Dockerfile's COPY lines copy only what it lets in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conformance.nodes import CONFORMANCE_PATH

ROOT = Path(__file__).resolve().parents[2]
IGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
PACKAGES = ("node", "federation", "crypto", "config", "conformance")


# -- .dockerignore semantics (moby patternmatcher: last matching rule wins; a rule matching a parent folder
# matches everything in it; `**` any number of folders, `*` within one) -------------------------------------


def _rules(text: str) -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return excluded


def _context(rules) -> list[str]:
    """The files of the checkout (tracked and untracked, .venv and .git included) the builder would send."""
    files = []
    for path in ROOT.rglob("*"):
        if path.is_file():
            rel = path.relative_to(ROOT).as_posix()
            if not _excluded(rel, rules):
                files.append(rel)
    return sorted(files)


def test_both_dockerignore_files_are_the_same() -> None:
    assert (ROOT / ".dockerignore").read_text(encoding="utf-8") == IGNORE.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [".venv/bin/python", ".git/config", "data/shanghai/creditnode.toml",
                                  "node.db", "node/__pycache__/app.cpython-311.pyc", "reports/x.json",
                                  "node-keys-shanghai.json", "deploy/.env", "tests/conftest.py", "bench/x.py",
                                  "config/secrets.toml", "node/identity/private.key", "node/app.db-wal",
                                  "creditnode.egg-info/PKG-INFO", "federation/.venv/x", ".ci/run"])
def test_the_context_leaves_out_local_and_secret_files(path: str) -> None:
    assert _excluded(path, _rules(IGNORE.read_text(encoding="utf-8"))), path


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "node/app.py", "config/regions/shanghai.toml",
                                  "conformance-tests/conformance/vectors/conversion/agreement-recognition.json",
                                  "node/migrations/versions/2026_11_23_0008_transfers.py"])
def test_the_context_keeps_what_the_install_needs(path: str) -> None:
    assert not _excluded(path, _rules(IGNORE.read_text(encoding="utf-8"))), path


def test_the_dockerfile_copies_only_what_the_context_holds() -> None:
    rules = _rules(IGNORE.read_text(encoding="utf-8"))
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    sources = [s for sources in copies for s in sources]
    assert sources, "no COPY line"
    assert "." not in sources, "COPY . copies the whole context; name what the image needs"
    for source in sources:
        assert not _excluded(source, rules), f"COPY {source}: the .dockerignore keeps it out of the context"
    allowed = {line.strip()[1:] for line in IGNORE.read_text(encoding="utf-8").splitlines()
               if line.strip().startswith("!")}
    assert set(sources) == allowed, "the COPY lines and the .dockerignore allowlist differ"


# -- the wheel ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install` builds from the Docker build context (the files the .dockerignore lets in)."""
    work = tmp_path_factory.mktemp("wheel")
    context = work / "context"
    for rel in _context(_rules(IGNORE.read_text(encoding="utf-8"))):
        target = context / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, target)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                           str(context)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [built] = (work / "dist").glob("creditnode-*.whl")
    return built


def test_the_wheel_holds_every_data_file_of_the_packages(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    missing = []
    for rel in tracked.decode().split("\0"):
        installed = rel.removeprefix("conformance-tests/")
        if installed.split("/")[0] in PACKAGES and installed not in names:
            missing.append(rel)
    assert missing == []
    tops = {n.split("/")[0] for n in names}
    assert tops == {*PACKAGES, "creditnode-0.1.0.dist-info"}, "a folder that is not one of the packages"
    vectors = [n for n in names if n.startswith("conformance/vectors/conversion/") and n.endswith(".json")]
    assert vectors, sorted(n for n in names if n.startswith("conformance/"))


def test_the_installed_suite_finds_as_many_vector_cases_as_the_checkout(wheel: Path, tmp_path: Path) -> None:
    if str(CONFORMANCE_PATH) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE_PATH))
    from conformance.vectors import cases

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # -I: isolated, neither the working directory nor PYTHONPATH on the path: only the unpacked wheel
    probe = ("import json, sys; sys.path.insert(0, sys.argv[1]); import conformance.vectors as v; "
             "print(json.dumps([v.__file__, len(v.cases())]))")
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(unpacked)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    location, count = json.loads(done.stdout)
    assert Path(location).is_relative_to(unpacked)
    assert count == len(cases()) >= 8


def test_no_vector_case_is_an_error_not_an_empty_pass(tmp_path: Path) -> None:
    if str(CONFORMANCE_PATH) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE_PATH))
    from conformance.vectors import MissingVectors, cases

    with pytest.raises(MissingVectors, match="package data"):
        cases(tmp_path)
