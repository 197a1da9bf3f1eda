"""Log lines carry job_id, node and org: given with the call or bound for a block."""

from __future__ import annotations

import asyncio
import json
import logging

from jobyard.logs import JsonFormatter, TextFormatter, bind


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("jobyard.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_fields_given_with_the_call_and_bound() -> None:
    assert "node" not in json.loads(JsonFormatter().format(_record()))
    with bind(node="web1", org="acme"):
        line = json.loads(JsonFormatter().format(_record(job_id=7)))
        text = TextFormatter("%(message)s").format(_record(job_id=7))
    assert line["message"] == "hello x"
    assert (line["job_id"], line["node"], line["org"]) == (7, "web1", "acme")
    assert text == "hello x [job_id=7 node=web1 org=acme]"
    # Outside the block nothing is bound any more.
    assert "node" not in json.loads(JsonFormatter().format(_record()))


def test_a_binding_follows_the_tasks_started_inside_it() -> None:
    async def in_task() -> str:
        return JsonFormatter().format(_record())

    async def main() -> str:
        return await asyncio.create_task(in_task())

    with bind(node="web2"):
        line = json.loads(asyncio.run(main()))
    assert line["node"] == "web2"
