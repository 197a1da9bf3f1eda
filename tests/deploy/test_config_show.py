"""``jobyard config show``: effective settings with their source; secrets never printed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jobyard.cli.main import app


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
