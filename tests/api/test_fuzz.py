"""Fuzzing every native operation of the OpenAPI document: no input may produce a 5xx.

Hypothesis draws an operation, values for its path and query parameters (real ids, junk
text, huge and negative numbers) and a JSON body (random values, or objects built from the
operation's own field names), and sends it as an admin or a viewer. Bounded to a few
hundred requests so it runs in seconds.
"""

from __future__ import annotations

import json
import urllib.parse
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobyard.api.app import create_app
from jobyard.service.context import Services
from tests.api.asgi import asgi_request, schema_app
from tests.api.conftest import Tenant

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate Operation ID:UserWarning")

text = st.text(st.characters(codec="utf-8"), max_size=40)
edges = st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 10**18, 10**30])
numbers = st.one_of(edges, st.integers(-(2**70), 2**70))
# Words a parameter may be checked against, and characters that fool str.isdigit().
words = st.sampled_from(["", "true", "me", "asc", "desc", "-created_at", "²", "٣", "1e3", "0x1"])
param_values = st.one_of(edges.map(str), words, numbers.map(str), text)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, st.floats(allow_nan=False, allow_infinity=False), text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def operations(app: Any) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        doc = app.openapi()
    out = []
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in ops.items():
            params = op.get("parameters", [])
            body_props: list[str] = []
            if "requestBody" in op:
                schema = op["requestBody"]["content"].get("application/json", {}).get("schema", {})
                ref = schema.get("$ref") or next(
                    (s.get("$ref") for s in schema.get("anyOf", []) if "$ref" in s), None
                )
                if ref:
                    body_props = list(
                        doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
                        .get("properties", {})
                        .keys()
                    )
            out.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "path_params": [p["name"] for p in params if p["in"] == "path"],
                    "query": [p["name"] for p in params if p["in"] == "query"],
                    "has_body": "requestBody" in op,
                    "body_props": body_props,
                }
            )
    return out


OPERATIONS = operations(schema_app())
_apps: dict[int, Any] = {}


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_input_makes_a_5xx(svc: Services, tenant: Tenant, data: st.DataObject) -> None:
    app = _apps.get(id(svc))
    if app is None:
        _apps.clear()
        app = _apps[id(svc)] = create_app(services=svc, migrate=False, run_loops=False)
    op = data.draw(st.sampled_from(OPERATIONS), label="operation")
    real_ids = ["1", "2", "3"]
    url = op["path"]
    for name in op["path_params"]:
        value = data.draw(st.one_of(st.sampled_from(real_ids), param_values), label=name)
        url = url.replace("{" + name + "}", urllib.parse.quote(value, safe="") or "x")
    query = {
        name: data.draw(param_values, label=name)
        for name in op["query"]
        if data.draw(st.booleans(), label=f"send {name}")
    }
    if query:
        url += "?" + urllib.parse.urlencode(query)
    body: Any = None
    if op["has_body"] or data.draw(st.booleans(), label="body anyway"):
        shaped = st.fixed_dictionaries({}, optional=dict.fromkeys(op["body_props"], json_values))
        value = data.draw(st.one_of(shaped, json_values), label="body")
        body = json.dumps(value).encode()
    who = data.draw(st.sampled_from([tenant.admin, tenant.viewer, tenant.agent]), label="caller")
    r = await asgi_request(app, op["method"], url, {"Authorization": f"Bearer {who.token}"}, body)
    assert r.status_code < 500, f"{op['method']} {url} {body!r}: {r.status_code} {r.text}"
