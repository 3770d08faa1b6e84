"""``/healthz``, ``/readyz``, ``/metrics`` and ``/v1/gateway/certificate``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from gateway.db.migrate import current_revision, head_revision
from gateway.deps import DatabaseDep, GatewayKeyDep
from gateway.ledger.stamping import TimestampGate
from gateway.problem_handlers import problems
from gateway.problems import ServiceUnavailable

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    revision: str | None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=problems(ServiceUnavailable))
async def readyz(db: DatabaseDep, request: Request) -> Ready:
    try:
        async with db.engine.connect() as conn:
            revision = await conn.run_sync(current_revision)
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable("the database is not reachable") from exc
    if revision != head_revision():
        raise ServiceUnavailable("the database schema is not at the latest migration; run `gateway migrate`")
    gate: TimestampGate | None = request.app.state.timestamp_gate
    if gate is not None and await gate.failing():
        raise ServiceUnavailable(f"checkpoints have gone without an RFC 3161 timestamp for "
                                 f"{int(await gate.failing_for())} s (GATEWAY_TSA_MAX_FAILURE_SECONDS "
                                 f"{int(gate.max_failure)} s): the timestamping authority is failing")
    return Ready(status="ok", database=db.dialect, revision=revision)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/gateway/certificate",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                     "description": "the gateway's certificate (PEM): verifies receipts and push deliveries"}},
)
async def gateway_certificate(key: GatewayKeyDep) -> Response:
    return Response(key.certificate_pem, media_type="application/x-pem-file")
