"""Where the CLI finds its server, token and organization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobyard.client.profile import Profile, resolve


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("JOBYARD_URL", "JOBYARD_TOKEN", "JOBYARD_ORG", "JOBYARD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".jobyard").mkdir()
    (tmp_path / ".jobyard" / "credentials.json").write_text(
        json.dumps({"url": "http://local:8400", "token": "LOCAL", "org": "main"})
    )
    return tmp_path


def test_flags_win_and_borrow_no_organization(here: Path) -> None:
    assert resolve("http://s", "T", None) == Profile("http://s", "T", None)
    assert resolve("http://s", "T", "acme") == Profile("http://s", "T", "acme")


def test_environment_token_borrows_no_organization(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBYARD_URL", "http://e")
    monkeypatch.setenv("JOBYARD_TOKEN", "E")
    assert resolve(None, None, None) == Profile("http://e", "E", None)


def test_local_credentials_of_jobyard_up(here: Path) -> None:
    assert resolve(None, None, None) == Profile("http://local:8400", "LOCAL", "main")


def test_nothing_to_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOBYARD_URL", "JOBYARD_TOKEN", "JOBYARD_ORG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    assert resolve(None, "T", None) is None
    assert resolve(None, None, None) is None
