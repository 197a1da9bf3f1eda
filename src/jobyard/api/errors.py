"""Every failure of the native API becomes RFC 9457 problem+json, in one table.

The app is installed with each dialect's renderer for its path prefix (see ``api/app``
and ``api/compat``); this module handles everything else, including malformed JSON,
validation errors and unknown routes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from jobyard.api.responses import problem
from jobyard.domain.errors import JobyardError
from jobyard.wire.values import NOT_NULL, ProblemOut

log = logging.getLogger("jobyard.api")


class ErrorRenderer(Protocol):
    """A dialect's error shape: (request, status, message, extra) -> its platform's response."""

    def __call__(
        self, request: Request, status: int, detail: str, extra: dict[str, Any]
    ) -> Response: ...


def render_error(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    """The failure in the shape of the dialect whose prefix the path is under (the renderers
    the app was installed with), else as problem+json."""
    path = request.url.path
    renderers: tuple[tuple[str, ErrorRenderer], ...] = getattr(
        request.app.state, "error_renderers", ()
    )
    for prefix, renderer in renderers:
        if path.startswith(prefix):
            return renderer(request, status, detail, extra)
    return problem(status, title, detail, **extra)


# Where FastAPI found the value; the field name alone reads better.
_PLACES = {("body",), ("query",), ("path",), ("header",), ("cookie",)}


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for err in exc.errors():
        raw_loc = tuple(err.get("loc", ()))
        loc = [str(p) for p in raw_loc[1:]] if raw_loc[:1] in _PLACES else list(map(str, raw_loc))
        where = ".".join(loc) or "body"
        kind = err.get("type", "")
        if kind == "json_invalid":
            # loc is ("body", <character position>)
            where = "body"
            msg = (
                f"the body is not valid JSON: {err.get('ctx', {}).get('error', '')} "
                f"(at character {loc[0] if loc else 0})"
            )
        elif raw_loc == ("body",) and kind in ("model_attributes_type", "dict_type"):
            msg = "the body must be a JSON object ({...})"
        elif raw_loc == ("body",) and kind == "missing":
            msg = "this needs a JSON body"
        elif kind == "extra_forbidden":
            msg = f"unknown field {where!r}: remove it"
        elif kind == "missing":
            msg = f"{where} is required"
        elif kind == NOT_NULL:
            where = err["ctx"]["fields"]
            msg = f"{where} may not be null"
        else:
            msg = f"{where}: {err.get('msg', 'invalid')}"
        errors.append({"field": where, "message": msg})
    detail = "; ".join(e["message"] for e in errors) or "the request is invalid"
    return detail, errors


def _non_json_body(request: Request, exc: RequestValidationError) -> str | None:
    """The declared content type, when a JSON body was expected but another type was sent
    (FastAPI then hands the raw bytes to validation, whose message would be cryptic)."""
    declared = request.headers.get("content-type")
    if not declared:
        return None
    media = declared.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    for err in exc.errors():
        if tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes):
            return declared
    return None


def _unstorable(exc: Exception) -> bool:
    """A value the database (or the JSON text of a JSON column) cannot hold."""
    if isinstance(exc, OverflowError):
        return True
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith("22")
    # A bound value that failed to convert before reaching the driver.
    return isinstance(exc, StatementError) and isinstance(
        exc.orig, (OverflowError, orjson.JSONEncodeError)
    )


def _document_problems(app: FastAPI) -> None:
    """The OpenAPI document names FastAPI's validation error for every 422; the answer is
    problem+json (``on_validation``): the document says so."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas.pop("ValidationError", None)
                schemas["HTTPValidationError"] = ProblemOut.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                defs = schemas["HTTPValidationError"].pop("$defs", {})
                schemas.update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI, renderers: Sequence[tuple[str, ErrorRenderer]] = ()) -> None:
    """Answer every failure of ``app``: under a dialect's path prefix with that dialect's
    renderer (``renderers``: (prefix, renderer) pairs), elsewhere as problem+json."""
    app.state.error_renderers = tuple(renderers)
    _document_problems(app)

    @app.exception_handler(JobyardError)
    async def on_domain_error(request: Request, exc: JobyardError) -> Response:
        extra: dict[str, Any] = dict(exc.extra)
        field = getattr(exc, "field", None)
        if field:
            extra["errors"] = [{"field": field, "message": exc.detail}]
        return render_error(request, exc.status_code, exc.title, exc.detail, **extra)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        declared = _non_json_body(request, exc)
        if declared is not None:
            return render_error(
                request,
                415,
                "Unsupported media type",
                f"the body must be JSON sent with 'Content-Type: application/json' "
                f"(this request declares {declared!r})",
            )
        detail, errors = _validation_detail(exc)
        status = (
            400
            if any(e["message"].startswith("the body is not valid JSON") for e in errors)
            else 422
        )
        title = "Malformed request" if status == 400 else "Invalid request"
        return render_error(request, status, title, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {
            404: "Not found",
            405: "Method not allowed",
            413: "Too large",
            401: "Unauthenticated",
        }
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        resp = render_error(request, exc.status_code, titles.get(exc.status_code, "Error"), detail)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(OverflowError)
    @app.exception_handler(StatementError)
    async def on_unstorable(request: Request, exc: Exception) -> Response:
        # A value no check caught reached the database, which refused it (and the
        # transaction rolled back): SQLite's driver raises OverflowError for integers over
        # 64 bits; PostgreSQL answers with an error of class 22, "data exception" (out of
        # range, NUL in text, too long); a JSON column refuses what orjson cannot write.
        # Any other database failure is the server's.
        if not _unstorable(exc):
            return await on_crash(request, exc)
        log.warning("unstorable value on %s %s: %s", request.method, request.url.path, exc)
        return render_error(
            request,
            422,
            "Invalid request",
            "a value in the request cannot be stored: a number is out of range "
            "or a text contains a NUL character",
        )

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render_error(request, 500, "Internal error", "the server failed; see its log")
