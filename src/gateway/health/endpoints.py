"""``/healthz``, ``/readyz``, ``/metrics`` and ``/v1/gateway/certificate``."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from gateway import metrics as gateway_metrics
from gateway.db.migrate import current_revision, head_revision
from gateway.deps import DatabaseDep, GatewayKeyDep, TimestampGateDep
from gateway.health.figures import Figures, operational_figures
from gateway.logs import get_logger
from gateway.problem_handlers import problems
from gateway.problems import ServiceUnavailable

router = APIRouter(tags=["health"])
_log = get_logger("gateway.health")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    revision: str | None


@router.get("/healthz", response_model=Health, responses=problems())
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=problems(ServiceUnavailable))
async def readyz(db: DatabaseDep, gate: TimestampGateDep) -> Ready:
    try:
        async with db.engine.connect() as conn:
            revision = await conn.run_sync(current_revision)
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable("the database is not reachable") from exc
    if revision != head_revision():
        raise ServiceUnavailable("the database schema is not at the latest migration; run `gateway migrate`")
    if gate is not None and await gate.failing():
        raise ServiceUnavailable(f"checkpoints have gone without an RFC 3161 timestamp for "
                                 f"{int(await gate.failing_for())} s (GATEWAY_TSA_MAX_FAILURE_SECONDS "
                                 f"{int(gate.max_failure)} s): the timestamping authority is failing")
    return Ready(status="ok", database=db.dialect, revision=revision)


class FiguresCollector:
    """The operational figures as gauges (README "Metrics"); when they could not be read, only
    ``gateway_operational_figures_up 0``."""

    def __init__(self, figures: Figures | None) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("gateway_operational_figures_up",
                               "1: the figures below were read from the database for this scrape; 0: it failed")
        up.add_metric([], 0 if self.figures is None else 1)
        yield up
        figures = self.figures
        if figures is None:
            return
        states = GaugeMetricFamily("gateway_deliveries_in_state", "Deliveries in each state, now", labels=["state"])
        for state, count in sorted(figures.deliveries_by_state.items()):
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily(
            "gateway_delivery_oldest_pending_seconds",
            "How long the oldest delivery not yet handed over (pending, in_flight, retry_wait) has waited since "
            "it was created or re-queued; 0 when none waits",
            value=figures.oldest_pending_seconds or 0.0)
        if figures.ledger_head_seq >= 0:
            yield GaugeMetricFamily("gateway_ledger_head_sequence", "Sequence number of the ledger's last entry",
                                    value=figures.ledger_head_seq)
        if figures.last_checkpoint_size is not None and figures.last_checkpoint_age_seconds is not None:
            yield GaugeMetricFamily("gateway_ledger_last_checkpoint_size", "Entries covered by the last checkpoint",
                                    value=figures.last_checkpoint_size)
            yield GaugeMetricFamily("gateway_ledger_last_checkpoint_age_seconds",
                                    "Seconds since the last checkpoint was signed",
                                    value=figures.last_checkpoint_age_seconds)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problems()})
async def metrics(db: DatabaseDep) -> Response:
    """Prometheus text exposition: every worker process's counters, and figures read from the database now."""
    figures: Figures | None
    try:
        async with db.read() as session:
            figures = await operational_figures(session)
    except (SQLAlchemyError, OSError) as exc:  # the scrape still answers, with the process metrics
        _log.warning("operational figures could not be read", error_type=type(exc).__name__)
        figures = None
    return Response(gateway_metrics.exposition(FiguresCollector(figures)), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/gateway/certificate",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                     "description": "the gateway's certificate (PEM): verifies receipts and push deliveries"},
               **problems()},
)
async def gateway_certificate(key: GatewayKeyDep) -> Response:
    return Response(key.certificate_pem, media_type="application/x-pem-file")
