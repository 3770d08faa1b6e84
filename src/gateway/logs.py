"""Structured logs: JSON lines (or console in development), each carrying the request id.

Nothing here logs headers or bodies: tokens, keys and document content never reach a log line.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

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


async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    request_id = _safe_request_id(request.headers.get(REQUEST_ID_HEADER))
    request.state.request_id = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    response = await call_next(request)
    response.headers[REQUEST_ID_HEADER] = request_id
    principal = getattr(request.state, "principal", None)
    _log.info(
        "request",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        actor=principal.actor if principal is not None else None,
    )
    return response
