"""The operator's first hour: `init` gives a working node, and a command that cannot work says why in one line,
creating nothing (issue 12 items 3 and 4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from node.cli import app as cli_app
from tests.conftest import TEST_SECURITY


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CREDITNODE_* variable, a fresh working directory; returns the directory under test."""
    for name in list(os.environ):
        if name.startswith("CREDITNODE_"):
            monkeypatch.delenv(name)
    # commands set CREDITNODE_CONFIG for the process: set-then-delete makes monkeypatch remove it afterwards
    monkeypatch.setenv("CREDITNODE_CONFIG", "unset")
    monkeypatch.delenv("CREDITNODE_CONFIG")
    root = tmp_path / "root"
    (root / "cwd").mkdir(parents=True)
    (root / "grades.csv").write_text("x\n", encoding="utf-8")
    monkeypatch.chdir(root / "cwd")
    return root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run(*args: str):
    return CliRunner().invoke(cli_app, list(args))


def _one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert result.stdout.strip() == "", result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _write_config(path: Path, *, database_url: str | None, data_dir: Path, region: str = "shanghai",
                  base_url: str | None = None) -> Path:
    sec = "\n".join(f'{k} = "{v}"' for k, v in TEST_SECURITY.items())
    node = f'region = "{region}"\ndata_dir = "{data_dir}"\nmode = "test"\n'
    if base_url:
        node += f'base_url = "{base_url}"\n'
    db = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    path.write_text(f"[node]\n{node}\n{db}[security]\n{sec}\n", encoding="utf-8")
    return path


NODE_COMMANDS = [
    ("serve",),
    ("serve", "--port", "19999"),
    ("import", "../grades.csv", "--institution", "U001"),
    ("keys", "list"),
    ("keys", "rotate"),
    ("ledger", "verify"),
    ("standards", "load", "../grades.csv"),
    ("db", "upgrade"),
    ("jobs", "run", "federation.flush_outbox"),
]


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_no_configuration_is_one_line_and_creates_nothing(bare: Path, command: tuple[str, ...],
                                                          no_server: _NoServer) -> None:
    before = _tree(bare)
    result = _run(*command)
    assert no_server.calls == []
    _one_error_line(result, "no configuration found", "--config", "$CREDITNODE_CONFIG", "./creditnode.toml",
                    "creditnode init --region", "export CREDITNODE_CONFIG=")
    assert _tree(bare) == before


def test_a_named_configuration_that_does_not_exist(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _tree(bare)
    _one_error_line(_run("ledger", "verify", "--config", "missing.toml"), "--config missing.toml: no such file")
    monkeypatch.setenv("CREDITNODE_CONFIG", str(bare / "nowhere.toml"))
    _one_error_line(_run("serve"), f"CREDITNODE_CONFIG={bare / 'nowhere.toml'}: no such file")
    assert _tree(bare) == before


def test_a_configuration_with_a_wrong_value(bare: Path) -> None:
    config = _write_config(bare / "cwd" / "creditnode.toml", database_url=None, data_dir=bare / "data",
                           region="atlantis")
    _one_error_line(_run("serve"), str(config), "unknown region 'atlantis'")
    config.write_text("[node\nregion = 1", encoding="utf-8")
    _one_error_line(_run("serve"), "not valid TOML")
    assert not (bare / "data").exists()


def test_a_missing_sqlite_database_is_not_created(bare: Path) -> None:
    """Before: `./data/shanghai.db` was created and ~200 lines of `no such table` tracebacks followed."""
    _write_config(bare / "cwd" / "creditnode.toml", database_url=None, data_dir=bare / "data")
    before = _tree(bare)
    for command in (("serve",), ("import", "../grades.csv", "--institution", "U001"), ("ledger", "verify")):
        _one_error_line(_run(*command), f"no database at {bare / 'data' / 'shanghai.db'}", "creditnode db upgrade")
    assert _tree(bare) == before
    # the fix it names works, and ./creditnode.toml is found on its own
    assert _run("db", "upgrade").exit_code == 0
    result = _run("ledger", "verify")
    assert result.exit_code == 0, result.output


def test_a_schema_that_is_not_current(bare: Path, database_url: str, engine: sa.Engine) -> None:
    config = _write_config(bare / "node.toml", database_url=database_url, data_dir=bare / "data")
    assert _run("ledger", "verify", "--config", str(config)).exit_code == 0
    with engine.begin() as conn:
        current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009'"))
    _one_error_line(_run("serve", "--config", str(config)), "revision 0009", f"needs {current}",
                    "creditnode db upgrade")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    _one_error_line(_run("import", "../grades.csv", "--institution", "U001", "--config", str(config)),
                    "revision 9999", "newer than this creditnode knows")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
    _one_error_line(_run("keys", "list", "--config", str(config)), "no schema", "creditnode db upgrade")


def test_an_unreachable_database(bare: Path) -> None:
    config = _write_config(bare / "node.toml", database_url="postgresql://creditnode:s3cret@127.0.0.1:1/nowhere",
                           data_dir=bare / "data")
    line = _one_error_line(_run("serve", "--config", str(config)), "cannot reach the database",
                           "postgresql+psycopg://creditnode:***@127.0.0.1:1/nowhere")
    assert "s3cret" not in line


class _NoServer:
    """Stands in for uvicorn.run: records the call instead of serving."""

    calls: list[dict]

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, app, **kw) -> None:
        self.calls.append(kw)


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> _NoServer:
    """No test here starts a server: a regression fails (the call is recorded) instead of serving forever."""
    import uvicorn

    fake = _NoServer()
    monkeypatch.setattr(uvicorn, "run", fake)
    return fake


def test_serve_refuses_a_port_that_disagrees_with_the_base_url(bare: Path, database_url: str,
                                                                no_server: _NoServer) -> None:
    """Before: `serve --port 19120` on a node set up for 8101 served, and issued credentials as
    did:web:127.0.0.1%3A8101, which fail verification at the real address."""
    config = _write_config(bare / "node.toml", database_url=database_url, data_dir=bare / "data",
                           base_url="http://127.0.0.1:8101")
    _one_error_line(_run("serve", "--config", str(config), "--port", "19120"),
                    "--port 19120 disagrees with the node's base URL http://127.0.0.1:8101",
                    "did:web:127.0.0.1%3A8101", "creditnode serve --port 8101",
                    f'node.base_url = "http://127.0.0.1:19120" in {config}', "--behind-proxy")
    assert no_server.calls == []
    # without --port: the base URL's port
    assert _run("serve", "--config", str(config)).exit_code == 0
    assert no_server.calls[-1]["port"] == 8101 and no_server.calls[-1]["host"] == "127.0.0.1"
    # a reverse proxy in front: the operator says so
    assert _run("serve", "--config", str(config), "--port", "8111", "--behind-proxy").exit_code == 0
    assert no_server.calls[-1]["port"] == 8111
    # a public https base URL is always served through a proxy: any port
    _write_config(config, database_url=database_url, data_dir=bare / "data",
                  base_url="https://creditbank.example.sh.cn")
    result = _run("serve", "--config", str(config), "--port", "8111")
    assert result.exit_code == 0, result.output
    assert "did:web:creditbank.example.sh.cn" in result.stderr


def test_direct_port() -> None:
    from node.ops.checks import direct_port

    assert direct_port("http://127.0.0.1:8101", "127.0.0.1") == 8101
    assert direct_port("http://localhost:9000", "0.0.0.0") == 9000
    assert direct_port("http://[::1]:9000", "::1") == 9000
    assert direct_port("http://10.0.0.5", "10.0.0.5") == 80
    assert direct_port("http://node.internal:8101", "127.0.0.1") is None  # a proxy's name
    assert direct_port("https://127.0.0.1:8443", "127.0.0.1") is None  # TLS ends at a proxy


def test_init_loads_the_standards_and_prints_the_next_commands(bare: Path, database_url: str,
                                                               engine: sa.Engine) -> None:
    result = _run("init", "--region", "shanghai", "--data-dir", str(bare / "sh"), "--database-url", database_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "standards loaded: framework.json, shanghai-pilot-2016.json" in out
    assert "administrator: admin  password (shown once): " in out
    lines = out.strip().splitlines()
    assert lines[lines.index("next:") + 1] == f"  export CREDITNODE_CONFIG={bare / 'sh' / 'creditnode.toml'}"
    assert any(line.startswith("  creditnode serve") for line in lines)
    assert any("creditnode import scores.csv --institution U001" in line for line in lines)
    with engine.connect() as conn:
        rules = conn.execute(sa.text("SELECT count(*) FROM standard_rule")).scalar_one()
        loads = conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'standards.load'")).scalar_one()
    assert rules > 10 and loads == 2


def test_init_without_standards_names_the_command_that_loads_them(bare: Path, tmp_path: Path) -> None:
    result = _run("init", "--region", "shanghai", "--data-dir", str(bare / "sh"), "--no-standards")
    assert result.exit_code == 0, result.output
    command = next(line.strip() for line in result.stdout.splitlines() if "creditnode standards load" in line)
    files = command.split("#")[0].split()[3:]
    assert [Path(f).name for f in files] == ["framework.json", "shanghai-pilot-2016.json"]
    assert all(Path(f).is_file() for f in files)
    # that command, run as printed, loads them
    os.environ.pop("CREDITNODE_CONFIG", None)
    loaded = _run("standards", "load", *files, "--config", str(bare / "sh" / "creditnode.toml"))
    assert loaded.exit_code == 0, loaded.output
    assert "rules" in loaded.stdout and " new" in loaded.stdout


def test_the_example_file_imports_cleanly(bare: Path, database_url: str, engine: sa.Engine) -> None:
    from node.db import session_scope
    from node.org.service import create_organisation

    config = _write_config(bare / "node.toml", database_url=database_url, data_dir=bare / "data")
    with session_scope(engine) as s:
        create_organisation(s, code="U001", name="示例大学", kind="institution", institution_type="university")
    written = _run("example", "scores.csv")
    assert written.exit_code == 0, written.output
    _one_error_line(_run("example", "scores.csv"), "scores.csv exists")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli_app, ["import", "scores.csv", "--institution", "U001", "--config", str(config)])
    assert result.exit_code == 0, result.output
    for line in ("rows read   12", "deposited   12", "rejected    0"):
        assert line in result.stdout, result.stdout
    with engine.connect() as conn:
        learners = conn.execute(sa.text("SELECT count(*) FROM learner")).scalar_one()
    assert learners == 5
