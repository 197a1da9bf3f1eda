"""``jobyard config show``: effective settings with their source; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobyard.cli.main import app
from jobyard.settings import Settings


def test_config_show_hides_secrets_and_names_sources() -> None:
    env = {
        "JOBYARD_SMTP_PASSWORD": "canary-smtp-5b1f",
        "JOBYARD_SESSION_SECRET": "canary-session-77aa",
        "JOBYARD_PORT": "8999",
    }
    url = "postgresql://jobyard:canary-db-9c2e@db.example/jobyard"
    runner = CliRunner()
    shown = runner.invoke(app, ["config", "show", "--database-url", url, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    for canary in ("canary-smtp-5b1f", "canary-session-77aa", "canary-db-9c2e"):
        assert canary not in shown.output
    values = json.loads(shown.output)
    assert values["port"] == 8999
    assert values["smtp_password"] == "••••"
    assert values["database_url"].startswith("postgresql://jobyard:***@db.example")

    table = runner.invoke(app, ["config", "show"], env=env)
    assert table.exit_code == 0, table.output
    assert "canary" not in table.output
    assert "env" in table.output and "default" in table.output


def test_config_show_names_a_bad_value() -> None:
    shown = CliRunner().invoke(app, ["config", "show"], env={"JOBYARD_PORT": "eighty"})
    assert shown.exit_code != 0
    assert "JOBYARD_PORT" in shown.output


def test_a_config_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "jobyard.toml"
    config.write_text('port = 9100\nsmtp_host = "mail.internal"\nnode_ttl = 30\n')
    secret = tmp_path / "smtp-password"
    secret.write_text("canary-file-41d0\n")
    env = {
        "JOBYARD_CONFIG": str(config),
        "JOBYARD_SMTP_HOST": "mail.env",
        "JOBYARD_SMTP_PASSWORD_FILE": str(secret),
    }
    settings = Settings.from_env(env, port=9200)
    assert settings.port == 9200  # the flag wins
    assert settings.smtp_host == "mail.env"  # the environment beats the file
    assert settings.node_ttl == 30.0  # from the config file, as a float
    assert settings.smtp_password == "canary-file-41d0"  # no final newline
    sources = Settings.sources(env, {"port"})
    assert sources["port"] == "flag"
    assert sources["smtp_host"] == "env"
    assert sources["node_ttl"] == f"config file {config}"
    assert sources["smtp_password"] == f"env file {secret}"
    assert sources["host"] == "default"
    shown = CliRunner().invoke(app, ["config", "show", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "canary-file-41d0" not in shown.output


def test_a_bad_config_file_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "jobyard.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting 'prot'"):
        Settings.from_env({"JOBYARD_CONFIG": str(config)})
    config.write_text('port = "eighty"\n')
    with pytest.raises(ValueError, match="JOBYARD_PORT"):
        Settings.from_env({"JOBYARD_CONFIG": str(config)})
    config.write_text("port = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        Settings.from_env({"JOBYARD_CONFIG": str(config)})
    with pytest.raises(ValueError, match="cannot read"):
        Settings.from_env({"JOBYARD_SMTP_PASSWORD_FILE": str(tmp_path / "missing")})


def test_config_show_lists_the_sign_in_settings_with_the_client_secret_hidden(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "oidc-secret"
    secret.write_text("canary-oidc-6e0a\n")
    env = {
        "JOBYARD_OIDC_ISSUER": "https://sso.example/realms/corp",
        "JOBYARD_OIDC_CLIENT_ID": "jobyard",
        "JOBYARD_OIDC_CLIENT_SECRET_FILE": str(secret),
        "JOBYARD_OIDC_ROLE_CLAIM": "groups",
        "JOBYARD_OIDC_ROLE_MAP": "ops=acme:admin",
        "JOBYARD_PASSWORD_SIGN_IN": "false",
    }
    shown = CliRunner().invoke(app, ["config", "show", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "canary-oidc-6e0a" not in shown.output
    values = json.loads(shown.output)
    assert values["oidc_client_secret"] == "••••"
    assert values["oidc_issuer"] == "https://sso.example/realms/corp"
    assert values["oidc_role_map"] == "ops=acme:admin"
    assert values["oidc_scopes"] == "openid email profile"
    assert values["password_sign_in"] is False  # a switch, not a secret
    table = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["config", "show"], env=env)
    assert f"env file {secret}" in table.output
    assert "canary" not in table.output
