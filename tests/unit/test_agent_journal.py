"""The agent's journal, one per server identity (agent/journal.py, on a temp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobyard.agent.journal import Journal, every_journal, server_journal


def test_each_server_identity_has_its_own_journal(tmp_path: Path) -> None:
    x = server_journal(tmp_path, "x1")
    x.mark_started(1, 1, {"marker": "m"})
    y = server_journal(tmp_path, "y1")
    assert x.started(1, 1) == {"marker": "m"}
    assert y.started(1, 1) is None  # job 1 of another database is another job
    assert server_journal(tmp_path, "x1").started(1, 1) == {"marker": "m"}
    assert sorted(j.root.name for j in every_journal(tmp_path)) == ["x1", "y1"]


def test_an_older_agents_journal_is_adopted_by_the_first_server(tmp_path: Path) -> None:
    old = Journal(tmp_path)
    old.mark_started(7, 1, {"marker": "m"})
    old.keep_result(7, 1, {"job": 7, "attempt": 1, "status": "succeeded", "exit_code": 0})
    assert [j.root for j in every_journal(tmp_path)] == [tmp_path]
    first = server_journal(tmp_path, "first")
    assert first.started(7, 1) == {"marker": "m"}
    assert [p["job"] for p in first.pending()] == [7]  # re-sent to that server
    assert not (tmp_path / "runs").exists()
    assert server_journal(tmp_path, "second").pending() == []


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 65, "é"])
def test_an_unusable_server_identity_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="identity"):
        server_journal(tmp_path, bad)
