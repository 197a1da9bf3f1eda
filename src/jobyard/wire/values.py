"""Values the database can hold, checked where requests come in.

Every integer a request carries, at any depth (a job's ``count``, a task argument's
``default``, a number inside ``retry`` or a dialect's loosely typed body), must fit in 64
signed bits, and every number must be finite: a larger integer would be refused by an
integer column or, inside a JSON column, saved and then fail every read of the row. The
request models use ``Int64`` for integer fields and ``JsonValue`` for free-form values; the
dialects and dashboard forms, which read loose JSON themselves, call ``unstorable``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]


def unstorable(value: Any, where: str = "") -> str | None:
    """What in ``value`` (a decoded JSON value) the database cannot hold, in words, or None."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return f"{path or 'a number'}: {_short(item)} is out of range (at most 64 bits)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path or 'a number'}: {item} is not a finite number"
        elif isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
    return None


def check_int64(value: int, where: str) -> int:
    """``value`` itself, or ValueError when it does not fit in 64 signed bits."""
    problem = unstorable(value, where)
    if problem is not None:
        raise ValueError(problem)
    return value


def _short(number: int) -> str:
    bits = number.bit_length()
    return str(number) if bits <= 128 else f"a {bits}-bit number"


def _storable_json(value: Any) -> Any:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A free-form JSON value (an argument's default, ``retry``, ``meta``): any shape, but only
# numbers the database can hold.
JsonValue = Annotated[Any, AfterValidator(_storable_json)]


# The error type of a null refused by a Patch model (the API names the fields).
NOT_NULL = "not_null"


class Patch(BaseModel):
    """A change: fields left out stay as they are. ``null`` is refused (422 "name may not be
    null") for the fields in ``not_null``, which the database keeps NOT NULL; the others
    take ``null`` as their meaning (none, or back to the default)."""

    not_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_nulls(self) -> Self:
        nulls = sorted(f for f in self.model_fields_set & self.not_null if getattr(self, f) is None)
        if nulls:
            raise PydanticCustomError(
                NOT_NULL, "{fields} may not be null", {"fields": ", ".join(nulls)}
            )
        return self


M = TypeVar("M", bound=BaseModel)


def described(texts: Mapping[str, str]) -> Callable[[type[M]], type[M]]:
    """Give every field of a request or response model its OpenAPI description: the field's
    own ``Field(description=...)``, else ``texts[name]`` (one table shared by a model and its
    Patch). A field left with none is an error when the module loads, not a gap in /docs."""

    def apply(model: type[M]) -> type[M]:
        missing = []
        for name, info in model.model_fields.items():
            if not info.description:
                info.description = texts.get(name)
            if not info.description:
                missing.append(name)
        if missing:
            raise TypeError(f"{model.__name__}: no description for {', '.join(missing)}")
        model.model_rebuild(force=True)
        return model

    return apply


class ProblemField(BaseModel):
    """One field of a request that was refused."""

    field: str = Field(description="The field, dotted for nested ones.", examples=["nodes"])
    message: str = Field(description="What is wrong with it and what to send instead.")


class ProblemOut(BaseModel):
    """An error, as RFC 9457 problem+json: every native 4xx and 5xx answer."""

    type: str = Field(description="Always about:blank.", examples=["about:blank"])
    title: str = Field(description="The kind of error.", examples=["Invalid request"])
    status: int = Field(description="The HTTP status code.", examples=[422])
    detail: str = Field(
        description="What went wrong and how to fix it, in words.",
        examples=["count: must be at least 1"],
    )
    errors: list[ProblemField] | None = Field(
        default=None, description="The refused fields, for a request that did not validate."
    )
