"""Rendering every error as RFC 9457 problem+json, and declaring problems on routes for OpenAPI.

Kept apart from ``gateway.problems`` so that the pure modules can raise typed errors without importing
the web framework.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.logs import get_logger
from gateway.problems import (
    PROBLEM_MEDIA_TYPE,
    AgencySuspended,
    DatabaseUnavailable,
    GatewayError,
    Overloaded,
    RequestInvalid,
    TooManyRequests,
    Unauthenticated,
)

_log = get_logger("gateway.errors")


class Problem(BaseModel):
    """RFC 9457 problem details; extension members (e.g. ``field``, ``errors``) appear at the top level."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["urn:gateway:problem:agency-code-invalid"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_response(error: GatewayError, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    body = error.to_problem(instance=request.url.path)
    hdrs = dict(headers or {})
    if error.status == 401:
        hdrs.setdefault("WWW-Authenticate", 'Bearer realm="gateway"')
    retry_after = error.extensions.get("retry_after")
    if retry_after is not None:
        hdrs.setdefault("Retry-After", str(int(retry_after)))
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_MEDIA_TYPE, headers=hdrs)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _on_gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return problem_response(exc, request)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem_response(RequestInvalid(f"invalid fields: {fields}", errors=errors), request)


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "No such resource"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("body-too-large", "The request body exceeds the configured limit"),
    415: ("unsupported-media-type", "The request's content type is not accepted here"),
}


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    body = {
        "type": f"urn:gateway:problem:{slug}",
        "title": title,
        "status": exc.status_code,
        "detail": title,
        "instance": request.url.path,
    }
    return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE,
                        headers=dict(exc.headers or {}))


#: seconds a client is asked to wait after a 503 for a busy or restarting database
DATABASE_RETRY_AFTER = 2


async def _on_pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    _log.warning("database pool exhausted", path=request.url.path)
    return problem_response(DatabaseUnavailable("no database connection came free in time",
                                                 retry_after=DATABASE_RETRY_AFTER), request)


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        # The connection died under the request (a database restart, a network cut). SQLAlchemy has
        # already invalidated the pool's older connections, so the retry gets a fresh one; the request's
        # transaction never committed.
        _log.warning("database connection lost", path=request.url.path, error_type=type(exc.orig).__name__)
        return problem_response(DatabaseUnavailable("the database connection was lost; nothing was stored",
                                                    retry_after=DATABASE_RETRY_AFTER), request)
    if _sqlite_busy(exc):
        # SQLite's writer lock stayed taken past the busy timeout (another process writing, a backup): the
        # request's transaction never began its write, so nothing was stored and a retry is safe.
        _log.warning("database busy", path=request.url.path)
        return problem_response(DatabaseUnavailable("the database is busy; nothing was stored",
                                                    retry_after=DATABASE_RETRY_AFTER), request)
    return await _on_unexpected(request, exc)


def _sqlite_busy(exc: DBAPIError) -> bool:
    # sqlite3's OperationalError, as the aiosqlite adapter passes it on (its message is the SQLITE_BUSY text)
    orig = exc.orig
    return type(orig).__name__ == "OperationalError" and str(orig).startswith(
        ("database is locked", "database table is locked"))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    body = {
        "type": "urn:gateway:problem:internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "The gateway failed to handle the request; it has been logged with the request id.",
        "instance": request.url.path,
    }
    return JSONResponse(body, status_code=500, media_type=PROBLEM_MEDIA_TYPE)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(PoolTimeout, _on_pool_timeout)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


def problems(*errors: type[GatewayError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each status with the problem types it can answer."""
    by_status: dict[int, list[type[GatewayError]]] = defaultdict(list)
    # Every route can answer 422 (request shape) and 400 (a body that is not even JSON), and 503 when the
    # process is past its admission limit (gateway.admission) or the database is busy or restarting.
    everything: tuple[type[GatewayError], ...] = (RequestInvalid, GatewayError, Overloaded, DatabaseUnavailable,
                                                  *errors)
    if Unauthenticated in errors:
        # Authenticated routes: an agency over its request rate gets 429 (gateway.ratelimit), a suspended
        # agency's credential 403.
        everything = (*everything, TooManyRequests, AgencySuspended)
    for err in everything:
        by_status[err.status].append(err)
    out: dict[int | str, dict[str, Any]] = {}
    for status, errs in sorted(by_status.items()):
        listed = "; ".join(f"`{e.type_uri()}` ({e.title})" for e in sorted(set(errs), key=lambda e: e.slug))
        out[status] = {
            "model": Problem,
            "description": f"Problem types: {listed}",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out
