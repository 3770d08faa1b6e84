"""Prometheus metrics of the HTTP face and of intake, the database pool gauge, and the exposition ``/metrics``
serves — in one process, or summed over every worker process of ``gateway serve --workers N``.

Several processes: each worker counts in its own memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode), which ``gateway serve`` creates empty and exports before any worker
starts — prometheus_client reads the variable when it is first imported, so it must be set before that. A
scrape, answered by whichever worker the kernel hands it to, sums the files of all of them
(:class:`~prometheus_client.multiprocess.MultiProcessCollector`). Counters and histograms of a worker that
exited stay counted (they are cumulative); gauges say how to combine processes (``multiprocess_mode``), and a
worker that stops removes its live gauges (:func:`process_exiting`). Without the variable (one process, the
tests, ``gateway worker``) the default registry is served, as before.

Label values are bounded: a route is its template (``/v1/documents/{id}``, never the path asked for), an
unknown path is ``unmatched``, a method outside the standard ones is ``other``; a problem is a stable slug.
What is read from the database at scrape time (deliveries by state, the ledger's head …) is composed by
:mod:`gateway.health.endpoints` from :mod:`gateway.health.figures`.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:  # FastAPI >= 0.165 keeps included routers as branches; older versions list every route in app.routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover
    iter_route_contexts = None  # type: ignore[assignment]  # the plain route list is read instead
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "gateway_http_requests", "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and status code",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DOCUMENTS_ACCEPTED = Counter(
    "gateway_documents_accepted", "Documents and statuses accepted (stored, ledgered), by kind: document, status",
    ["kind"],
)
DOCUMENTS_REFUSED = Counter(
    "gateway_documents_refused",
    "Documents and statuses refused (the ledger's envelope.refused / status.refused), by kind and problem slug",
    ["kind", "problem"],
)
POOL_IN_USE = Gauge(
    "gateway_db_pool_connections_in_use", "Database connections checked out of the pool, summed over processes",
    multiprocess_mode="livesum",
)

#: the refusal events of the ledger that are refusals of a document or a status, and the kind each counts as
REFUSAL_KINDS = {"envelope.refused": "document", "status.refused": "status"}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: Path) -> None:
    """For ``gateway serve`` before it starts its workers: ``path`` made empty (files of an earlier run would be
    summed into this one's) and exported to the workers."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)


def process_exiting() -> None:
    """A worker stops: its live gauges no longer count (its counters and histograms do)."""
    if multiprocess_dir() is not None:
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # prometheus_client: untyped


def count_refusal(event_type: str, slug: str) -> None:
    kind = REFUSAL_KINDS.get(event_type)
    if kind is not None:
        DOCUMENTS_REFUSED.labels(kind=kind, problem=slug).inc()


def watch_pool(engine: AsyncEngine) -> None:
    """Count ``engine``'s connections in use in :data:`POOL_IN_USE` (pool events; the gauge is per process)."""

    def checked_out(*_: Any) -> None:
        POOL_IN_USE.inc()

    def checked_in(*_: Any) -> None:
        POOL_IN_USE.dec()

    event.listen(engine.sync_engine, "checkout", checked_out)
    event.listen(engine.sync_engine, "checkin", checked_in)


class _ThisProcess:
    """The default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*extra: Collector) -> bytes:
    """The text exposition: every process's metrics (or this process's), then ``extra`` (figures read now)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client: untyped
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Routes:
    """An application's route templates as clients reach them (the prefixes of included routers applied), read
    once: by route object (a routed request), and as patterns (a request answered before routing)."""

    def __init__(self, app: Any) -> None:
        self.by_route: dict[int, str] = {}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        routes = list(getattr(app, "routes", ()))
        if iter_route_contexts is not None:  # FastAPI keeps included routers as branches: their routes, prefixed
            flat = [(ctx.original_route, ctx.path) for ctx in iter_route_contexts(routes)]
        else:
            flat = [(route, getattr(route, "path", None)) for route in routes]
        for route, path in flat:
            if not isinstance(path, str):
                continue
            mount = isinstance(route, Mount)
            template = f"{path}/{{path}}" if mount else path
            self.by_route.setdefault(id(route), template)
            self.patterns.append((compile_path(f"{path}/{{path:path}}" if mount else path)[0], template))

    def template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            known = self.by_route.get(id(route))
            if known is not None:
                return known
            path = getattr(route, "path", None)  # a route added after the table was read
            if isinstance(path, str):
                return f"{path}/{{path}}" if isinstance(route, Mount) else path
        path, root = str(scope["path"]), str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root):]
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


_tables: weakref.WeakKeyDictionary[Any, _Routes] = weakref.WeakKeyDictionary()


def route_template(scope: Scope) -> str:
    """The template of the route that answered (or would answer) the request; :data:`UNMATCHED` for none."""
    app = scope.get("app")
    if app is None:
        return UNMATCHED
    table = _tables.get(app)
    if table is None:
        table = _tables[app] = _Routes(app)
    return table.template(scope)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status (outermost: a request shed by
    admission control is counted too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started: the server error middleware answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            labels = {"method": method, "route": route_template(scope), "status": str(status)}
            HTTP_REQUESTS.labels(**labels).inc()
            HTTP_DURATION.labels(**labels).observe(time.perf_counter() - started)
