"""`creditnode import FILE --institution CODE`: the same import path, in process, with a summary."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from node.cli import app as cli_app
from tests.conftest import TEST_SECURITY
from tests.imports.conftest import INSTITUTION, count, sh_csv, sh_row


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "creditnode.toml"
    sec = "\n".join(f'{k} = "{v}"' for k, v in TEST_SECURITY.items())
    path.write_text(
        f'[node]\nregion = "shanghai"\ndata_dir = "{tmp_path / "cli-data"}"\nmode = "test"\n\n'
        f'[database]\nurl = "{database_url}"\n\n[security]\n{sec}\n',
        encoding="utf-8",
    )
    return path


def test_cli_import_prints_a_summary(tmp_path, database_url, institution, engine, monkeypatch) -> None:
    config = _config(tmp_path, database_url)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))  # restored after the test
    monkeypatch.setenv("COLUMNS", "200")
    data = tmp_path / "grades.csv"
    data.write_bytes(sh_csv([sh_row("111"), sh_row("112"), sh_row("113", score="200")], encoding="gb18030"))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["import", str(data), "--institution", INSTITUTION, "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    for line in ("rows read   3", "deposited   2", "updated     0", "duplicates  0", "rejected    1",
                 "learners created 2"):
        assert line in out, out
    report = tmp_path / "cli-data" / "imports" / "reports"
    files = list(report.glob("*.csv"))
    assert len(files) == 1 and str(files[0].name) in out.replace("\n", "")
    assert "成绩" in files[0].read_text(encoding="utf-8-sig")
    assert count(engine, "achievement") == 2

    again = runner.invoke(cli_app, ["import", str(data), "--institution", INSTITUTION, "--config", str(config)])
    assert again.exit_code == 0 and "duplicates  2" in again.output and "learners created 0" in again.output


def test_cli_refuses_an_unknown_institution(tmp_path, database_url, institution, monkeypatch) -> None:
    config = _config(tmp_path, database_url)
    monkeypatch.setenv("CREDITNODE_CONFIG", str(config))
    data = tmp_path / "grades.csv"
    data.write_bytes(sh_csv([sh_row("111")]))
    result = CliRunner().invoke(cli_app, ["import", str(data), "--institution", "NOPE", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown institution 'NOPE'" in result.output
