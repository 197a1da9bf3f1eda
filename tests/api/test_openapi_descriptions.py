"""Every field of the native API's models says what it is: in the OpenAPI document (what
/docs shows) and in every pydantic model of ``jobyard.wire`` and ``jobyard.api``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from pydantic import BaseModel

import jobyard.api
import jobyard.wire
from jobyard.api.app import create_app
from jobyard.settings import Settings


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def test_every_property_of_the_native_api_has_a_description() -> None:
    spec = create_app(Settings(), migrate=False, run_loops=False).openapi()
    schemas = spec["components"]["schemas"]
    native: set[str] = set()
    for path, operations in spec["paths"].items():
        if not path.startswith("/compat/"):
            _refs(operations, native)
    todo = list(native)
    while todo:  # the schemas those refer to, and so on
        found: set[str] = set()
        _refs(schemas[todo.pop()], found)
        todo += sorted(found - native)
        native |= found
    assert {"JobIn", "JobOut", "TaskIn", "TriggerIn", "PageOut"} <= native
    missing = [
        f"{name}.{prop}"
        for name in sorted(native)
        for prop, schema in schemas[name].get("properties", {}).items()
        if not schema.get("description")
    ]
    assert not missing, missing


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for package in (jobyard.wire, jobyard.api):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseModel)
                    and value.__module__ == module.__name__
                ):
                    found[f"{module.__name__}.{name}"] = value
    return found


def test_every_field_of_the_native_models_has_a_description() -> None:
    models = _models()
    assert "jobyard.wire.jobs.JobIn" in models and "jobyard.api.nodes.ClusterIn" in models
    missing = [
        f"{name}.{field}"
        for name, model in sorted(models.items())
        for field, info in model.model_fields.items()
        if not info.description
    ]
    assert not missing, missing
