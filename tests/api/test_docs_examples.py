"""docs/examples.md, executed: every request block is sent as written, in order."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Account

DOC = Path(__file__).resolve().parents[2] / "docs" / "examples.md"
BLOCK = re.compile(r"```http\n(.*?)```", re.S)
PLACEHOLDER = re.compile(r"\{([a-z_]+)\.([a-z_.]+)\}")


def blocks() -> list[tuple[str, str, str, str]]:
    """(label, method, path, body) of each request block."""
    out = []
    for text in BLOCK.findall(DOC.read_text()):
        lines = text.strip().splitlines()
        label = lines[0].removeprefix("# ").split(":", 1)[0]
        method, path = lines[1].split(" ", 1)
        out.append((label, method, path, "\n".join(lines[2:])))
    return out


def fill(text: str, answers: dict[str, Any]) -> str:
    def value(m: re.Match[str]) -> str:
        found: Any = answers[m.group(1)]
        for key in m.group(2).split("."):
            found = found[key]
        return str(found)

    return PLACEHOLDER.sub(value, text)


async def test_every_example_runs_as_written(client: httpx.AsyncClient, admin: Account) -> None:
    examples = blocks()
    assert len(examples) >= 12
    answers: dict[str, Any] = {}
    for label, method, path, body in examples:
        content = fill(body, answers).strip()
        r = await client.request(
            method,
            fill(path, answers),
            json=json.loads(content) if content else None,
            headers=admin.headers,
        )
        assert r.status_code < 300, (label, r.status_code, r.text)
        answers[label] = r.json()
    assert answers["run"]["command"] == "./deploy.sh staging 4"
    assert answers["run"]["nodes"] == ["web1", "web2"]
    assert len(answers["preview"]["next_times"]) == 3
    assert answers["fired"]["trigger_id"] == answers["trigger"]["id"]
    assert answers["waiting"]["status"] == "onhold"
    assert (answers["approved"]["status"], answers["approved"]["state"]) == ("complete", "success")
