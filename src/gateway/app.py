"""``create_app()``: settings, database, the gateway key and the routers, wired in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import gateway
from gateway import docs, logs, metrics, openapi_spec, problem_handlers, supervision
from gateway.admission import Admission, AdmissionMiddleware
from gateway.agency.endpoints import router as agency_router
from gateway.auth.endpoints import operators_router
from gateway.auth.endpoints import router as tokens_router
from gateway.blobs import blob_store
from gateway.config import Settings
from gateway.db import create_database
from gateway.delivery.endpoints import router as delivery_router
from gateway.delivery.service import DeliveryService
from gateway.delivery.worker import delivery_workers
from gateway.documents.endpoints import router as documents_router
from gateway.health.endpoints import router as health_router
from gateway.intake.endpoints import router as intake_router
from gateway.intake.service import IntakeService
from gateway.ledger.checkpointer import checkpoint_task
from gateway.ledger.endpoints import router as ledger_router
from gateway.ledger.events_endpoint import router as events_router
from gateway.ledger.feed import StreamSlots
from gateway.ledger.refusals import RefusalLog
from gateway.ledger.stamping import TimestampGate
from gateway.malware import ClamdScanner
from gateway.ratelimit import AgencyRateLimiter
from gateway.reports.endpoints import router as reports_router
from gateway.signing import load_or_create
from gateway.upstream.client import UpstreamClient
from gateway.upstream.forwarder import UpstreamForwarder
from gateway.upstream.poller import upstream_poller
from gateway.vxp.admin import router as vxp_admin_router
from gateway.vxp.face import router as vxp_face_router
from gateway.vxp.secrets import SecretBox
from gateway.vxp.systems import VxpSystems
from gateway.webconsole import errors as console_errors
from gateway.webconsole.router import STATIC as CONSOLE_STATIC
from gateway.webconsole.router import router as console_router

DESCRIPTION = """\
The gateway between the document-management systems (QLVB&ĐHTN) of state agencies: it takes signed edXML
envelopes, proves who sent them and that nothing changed, fixes the sent and received instants, delivers
to every recipient by push or pull, and records every step in an append-only, hash-chained ledger.

Errors are RFC 9457 `application/problem+json` documents; `type` is `urn:gateway:problem:<slug>` and
stable. Authentication: `Authorization: Bearer <token>` (agency or operator token).
"""


def scanner_of(settings: Settings) -> ClamdScanner | None:
    if settings.clamd_socket is None and settings.clamd_host is None:
        return None
    return ClamdScanner(socket_path=settings.clamd_socket, host=settings.clamd_host, port=settings.clamd_port,
                        timeout=settings.clamd_timeout_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    supervision.follow_supervisor()  # a worker of `serve --workers N` ends with its supervisor
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = create_database(settings.effective_database_url, pool_size=settings.database_pool_size,
                             pool_timeout=settings.database_pool_timeout_seconds,
                             pre_ping=settings.database_pool_pre_ping)
        metrics.watch_pool(db.engine)
        app.state.db = db
        app.state.admission = Admission(settings.max_concurrent_requests, settings.admission_wait_seconds)
        app.state.event_streams = StreamSlots(settings.events_max_streams)
        app.state.gateway_key = load_or_create(settings)
        app.state.blobs = blob_store(settings)
        app.state.rate_limiter = AgencyRateLimiter(settings.agency_rate_limit) if settings.agency_rate_limit else None
        app.state.timestamp_gate = TimestampGate(db, settings) if settings.tsa_url else None
        app.state.intake = IntakeService(db, app.state.blobs, app.state.gateway_key, settings.envelope_limits(),
                                         scanner=scanner_of(settings), forwarding=bool(settings.upstream_url),
                                         gate=app.state.timestamp_gate)
        app.state.delivery = DeliveryService(db, app.state.blobs, app.state.gateway_key)
        app.state.refusals = RefusalLog(db)
        # The key that opens the VXP secrets is read (or generated) at the first call that needs it.
        app.state.vxp_systems = VxpSystems(db, SecretBox.from_settings(settings))
        # The upstream axis (issue 15), when configured: the worker forwards to it, the poller fetches from it.
        upstream = UpstreamClient.from_settings(settings) if settings.upstream_url else None
        forwarder = UpstreamForwarder(upstream) if upstream is not None else None
        try:
            # Push workers and the upstream poller run when settings.run_workers; they stop before the database
            # is disposed.
            async with (
                checkpoint_task(db, app.state.gateway_key, settings),
                delivery_workers(settings, db, app.state.blobs, app.state.gateway_key, forwarder) as worker,
                upstream_poller(settings, db, app.state.intake, upstream if settings.run_workers else None,
                                wake=worker.notify if worker is not None else None),
            ):
                app.state.worker = worker
                yield
        finally:
            if upstream is not None:
                await upstream.aclose()
            app.state.blobs.close()
            await db.dispose()
            metrics.process_exiting()

    logs.configure(settings.log_level, json=settings.log_json)
    app = FastAPI(
        title="Document interoperability gateway",
        version=gateway.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are gateway.docs (no CDN), and only when settings.api_docs
        docs_url=None,
        redoc_url=None,
        servers=openapi_spec.SERVERS,
        license_info=openapi_spec.LICENSE,
    )
    app.state.settings = settings
    problem_handlers.install(app)
    console_errors.install(app)  # console pages answer errors with HTML; the API keeps problem+json
    app.add_middleware(logs.RequestContext)
    app.add_middleware(AdmissionMiddleware)  # a shed request costs nothing else
    app.add_middleware(metrics.HttpMetricsMiddleware)  # outermost: every request is counted, shed ones too
    app.include_router(health_router)
    app.include_router(agency_router)
    app.include_router(tokens_router)
    app.include_router(operators_router)
    app.include_router(intake_router)
    app.include_router(documents_router)
    app.include_router(delivery_router)
    app.include_router(ledger_router)
    app.include_router(events_router)
    app.include_router(reports_router)
    app.include_router(vxp_admin_router)
    app.include_router(vxp_face_router)
    app.mount("/console/static", StaticFiles(directory=CONSOLE_STATIC), name="console-static")
    app.include_router(console_router)
    if settings.api_docs:
        docs.install(app)
    openapi_spec.install(app)
    return app
