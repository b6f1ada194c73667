import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.settings import InsecureConfiguration, Settings, load_region, region_names


def test_four_founding_regions() -> None:
    assert region_names() == ["anhui", "jiangsu", "shanghai", "zhejiang"]
    for name in region_names():
        profile = load_region(name)
        assert profile.node_id == name
        assert profile.base_url.startswith("http://127.0.0.1:")
        assert {lv.reference_level for lv in profile.framework_levels} == {"R2", "R3", "R4"}


def test_production_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITNODE_NODE__MODE", "production")
    with pytest.raises(InsecureConfiguration) as err:
        Settings()
    assert "database_key" in str(err.value) and "token_secret" in str(err.value)


def test_production_refuses_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITNODE_NODE__MODE", "production")
    monkeypatch.setenv("CREDITNODE_DATABASE__URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.setenv("CREDITNODE_SECURITY__DATABASE_KEY", "")
    monkeypatch.setenv("CREDITNODE_SECURITY__BLIND_INDEX_KEY", "A" * 43)
    monkeypatch.setenv("CREDITNODE_SECURITY__TOKEN_SECRET", "B" * 43)
    with pytest.raises(InsecureConfiguration) as err:
        Settings()
    assert "database_key is missing" in str(err.value)


def test_init_writes_working_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from node.cli import initialise_node

    monkeypatch.delenv("CREDITNODE_CONFIG", raising=False)
    config_path, password = initialise_node(region="jiangsu", data_dir=tmp_path / "js", mode="production",
                                            base_url="https://creditbank.js.example.cn",
                                            database_url=f"sqlite:///{tmp_path / 'js' / 'js.db'}")
    assert oct(config_path.stat().st_mode & 0o777) == "0o600"
    assert len(password) >= 12 and password not in config_path.read_text()
    settings = Settings()  # reads CREDITNODE_CONFIG set by init; production mode accepts fresh secrets
    assert settings.node_id == "jiangsu" and settings.insecure_secrets() == []
    with pytest.raises(FileExistsError):
        initialise_node(region="jiangsu", data_dir=tmp_path / "js")
    # operator commands are audited like any staff action
    from typer.testing import CliRunner

    from node.cli import app as cli_app

    try:
        result = CliRunner().invoke(cli_app, ["keys", "rotate", "--config", str(config_path)])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(cli_app, ["keys", "revoke", "key-1", "--config", str(config_path)])
        assert result.exit_code == 0, result.output
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'js' / 'js.db'}")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT action, actor_kind, target_id FROM audit_log ORDER BY id")).all()
        engine.dispose()
        operator = [tuple(r) for r in rows if r[1] == "operator"]
        assert operator == [("node.init", "operator", "jiangsu"), ("keys.rotate", "operator", "key-2"),
                            ("keys.revoke", "operator", "key-1")]
    finally:
        os.environ.pop("CREDITNODE_CONFIG", None)


def test_the_configuration_is_found_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--config`, else `$CREDITNODE_CONFIG`, else `./creditnode.toml`, else an environment holding the secrets."""
    from config.settings import ConfigurationProblem, find_config

    for name in [n for n in os.environ if n.startswith("CREDITNODE_")]:
        monkeypatch.delenv(name)
    explicit, named, local = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "creditnode.toml"
    for path in (explicit, named, local):
        path.write_text("", encoding="utf-8")
    monkeypatch.setenv("CREDITNODE_CONFIG", str(named))
    assert find_config(explicit, cwd=tmp_path) == explicit
    assert find_config(None, cwd=tmp_path) == named
    monkeypatch.delenv("CREDITNODE_CONFIG")
    assert find_config(None, cwd=tmp_path) == local
    local.unlink()
    with pytest.raises(ConfigurationProblem, match="no configuration found"):
        find_config(None, cwd=tmp_path)
    monkeypatch.setenv("CREDITNODE_SECURITY__DATABASE_KEY", "A" * 43)
    assert find_config(None, cwd=tmp_path) is None  # configured by the environment alone


def test_settings_refuse_unknown_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("CREDITNODE_NODE__REGION", "atlantis")
    with pytest.raises(ValidationError, match="unknown region 'atlantis'"):
        Settings()
    monkeypatch.setenv("CREDITNODE_NODE__REGION", "anhui")
    monkeypatch.setenv("CREDITNODE_NODE__LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()
    monkeypatch.setenv("CREDITNODE_NODE__LOG_FORMAT", "json")
    monkeypatch.setenv("CREDITNODE_OPS__METRICS_TOKEN", "scrape-token")
    settings = Settings()
    assert settings.node.log_format == "json" and settings.ops.metrics_token.get_secret_value() == "scrape-token"
    assert settings.region.standards_files[0].name == "framework.json"
    assert all(load_region(name).standards_files[0].is_file() for name in region_names())


def test_production_refuses_an_http_base_url_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """did:web requires https: production mode with an http:// base URL is refused, at init and at start,
    unless node.allow_http_base_url says the node serves a private network."""
    from node.cli import initialise_node

    monkeypatch.setenv("CREDITNODE_NODE__MODE", "production")
    monkeypatch.setenv("CREDITNODE_DATABASE__URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.setenv("CREDITNODE_SECURITY__DATABASE_KEY", "A" * 43)
    monkeypatch.setenv("CREDITNODE_SECURITY__BLIND_INDEX_KEY", "B" * 43)
    monkeypatch.setenv("CREDITNODE_SECURITY__TOKEN_SECRET", "C" * 43)
    monkeypatch.setenv("CREDITNODE_NODE__BASE_URL", "http://creditbank.internal")
    with pytest.raises(InsecureConfiguration, match="not https"):
        Settings()
    monkeypatch.setenv("CREDITNODE_NODE__ALLOW_HTTP_BASE_URL", "true")
    assert Settings().insecure_secrets() == []
    monkeypatch.setenv("CREDITNODE_NODE__BASE_URL", "https://creditbank.example.gov.cn/creditbank")
    monkeypatch.setenv("CREDITNODE_NODE__ALLOW_HTTP_BASE_URL", "false")
    assert Settings().insecure_secrets() == []
    monkeypatch.delenv("CREDITNODE_CONFIG", raising=False)
    with pytest.raises(ValueError, match="https"):
        initialise_node(region="jiangsu", data_dir=tmp_path / "js", mode="production",
                        database_url=f"sqlite:///{tmp_path / 'js.db'}")
    assert not (tmp_path / "js" / "creditnode.toml").exists()
