"""Structured logs: JSON lines (or console in development), each carrying the request id.

Nothing here logs headers or bodies: tokens, keys and document content never reach a log line.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"


def _print_logger(to_stderr: bool) -> Callable[..., structlog.PrintLogger]:
    """A logger factory that writes to the process's stream AS IT IS when each logger is made (never a stream
    captured once: a test's capture, or a console command's, is closed afterwards)."""
    def factory(*_args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr if to_stderr else sys.stdout)

    return factory


def configure(level: str = "info", *, json: bool = True, to_stderr: bool = False) -> None:
    """Every setting of structlog, each time (nothing is inherited from an earlier call): the level, JSON or
    console lines, and the stream (standard output; standard error for console commands, whose standard
    output carries their answer)."""
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=_print_logger(to_stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


_log = get_logger("gateway.http")


def _safe_request_id(value: str | None) -> str:
    if value and 8 <= len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value):
        return value
    return uuid.uuid4().hex


class RequestContext:
    """Pure ASGI middleware: a request id for every HTTP request (the client's ``X-Request-ID`` when it is a
    sane token, else a new one), bound to the log context, answered back in the same header, and one
    ``request`` log line when the answer starts (method, path, status, duration, actor).

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs every request
    in a task group of its own and pipes the answer through memory streams, a cost the profile of issue 17
    showed on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _safe_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
                principal = state.get("principal")
                _log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=message["status"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    actor=principal.actor if principal is not None else None,
                )
            await send(message)

        await self.app(scope, receive, send_with_id)
