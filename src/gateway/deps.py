"""FastAPI dependencies as ``Annotated`` aliases: who is calling, the settings, the services, the request
body read within its limit, and the ledgering of refusals.

Endpoints take everything they use from here, never from ``request.app.state``: the lifespan in
``gateway.app`` puts it there, and this module is the only reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.service import AuthService
from gateway.blobs import BlobStore
from gateway.config import Settings
from gateway.db import Database
from gateway.delivery.service import DeliveryService
from gateway.intake.service import IntakeService
from gateway.ledger.feed import StreamSlots
from gateway.ledger.refusals import RefusalLog
from gateway.ledger.stamping import TimestampGate
from gateway.principal import Principal
from gateway.problems import BodyTooLarge, Forbidden, GatewayError, RequestInvalid, Unauthenticated
from gateway.ratelimit import AgencyRateLimiter
from gateway.signing import GatewayKey
from gateway.vxp.systems import VxpSystems


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_gateway_key(request: Request) -> GatewayKey:
    key: GatewayKey = request.app.state.gateway_key
    return key


async def get_session(db: Annotated[Database, Depends(get_database)]) -> AsyncIterator[AsyncSession]:
    """A session for an endpoint's reads. Endpoints never write or commit through it: a state change is a
    call to a service, whose unit of work commits before the endpoint answers (CONTRIBUTING.md)."""
    async with db.sessionmaker() as session:
        yield session


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def get_intake(request: Request) -> IntakeService:
    service: IntakeService = request.app.state.intake
    return service


def get_delivery(request: Request) -> DeliveryService:
    service: DeliveryService = request.app.state.delivery
    return service


def get_refusals(request: Request) -> RefusalLog:
    refusals: RefusalLog = request.app.state.refusals
    return refusals


def get_vxp_systems(request: Request) -> VxpSystems:
    systems: VxpSystems = request.app.state.vxp_systems
    return systems


def get_wake_worker(request: Request) -> Callable[[], None]:
    """Tell the in-process push worker that work was queued (it claims it now rather than at its next poll);
    does nothing where no worker runs in this process."""
    worker = getattr(request.app.state, "worker", None)
    return worker.notify if worker is not None else _nothing


def get_stream_slots(request: Request) -> StreamSlots:
    """The process's cap on open event streams (``GET /v1/events``, ``/console/events``)."""
    slots: StreamSlots = request.app.state.event_streams
    return slots


def get_timestamp_gate(request: Request) -> TimestampGate | None:
    """The RFC 3161 stamping rule (``GATEWAY_TSA_URL``), or None when no authority is configured."""
    gate: TimestampGate | None = request.app.state.timestamp_gate
    return gate


def _nothing() -> None:
    return None


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
GatewayKeyDep = Annotated[GatewayKey, Depends(get_gateway_key)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
IntakeDep = Annotated[IntakeService, Depends(get_intake)]
DeliveryDep = Annotated[DeliveryService, Depends(get_delivery)]
RefusalsDep = Annotated[RefusalLog, Depends(get_refusals)]
WakeWorker = Annotated[Callable[[], None], Depends(get_wake_worker)]
VxpSystemsDep = Annotated[VxpSystems, Depends(get_vxp_systems)]
StreamSlotsDep = Annotated[StreamSlots, Depends(get_stream_slots)]
TimestampGateDep = Annotated[TimestampGate | None, Depends(get_timestamp_gate)]

_bearer = HTTPBearer(auto_error=False, description="an agency or operator token issued by an admin")


def _proxied_client_certificate(request: Request) -> str | None:
    """The client certificate a trusted reverse proxy verified and passed on, or None.

    Believed only when the direct peer is one of ``settings.trusted_proxies``: anyone else could write the
    header themselves.
    """
    settings: Settings = request.app.state.settings
    value = request.headers.get(settings.client_cert_header)
    if not value or request.client is None or request.client.host not in settings.trusted_proxies:
        return None
    pem = unquote(value)
    return pem if "-----BEGIN CERTIFICATE-----" in pem else None


async def current_principal(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    client_pem = _proxied_client_certificate(request)
    if (credentials is None or credentials.scheme.lower() != "bearer") and client_pem is None:
        raise Unauthenticated()
    # Reads only, ended before the endpoint runs (no BEGIN/COMMIT on PostgreSQL; on SQLite no writer lock,
    # which the endpoint's own transactions would otherwise wait behind).
    async with db.read() as session:
        if credentials is not None and credentials.scheme.lower() == "bearer":
            principal = await AuthService(session).authenticate(credentials.credentials)
        else:
            assert client_pem is not None
            principal = await AuthService(session).authenticate_certificate(client_pem)
    request.state.principal = principal
    limiter: AgencyRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and principal.kind == "agency":
        limiter.check(principal.name)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_admin(principal: CurrentPrincipal) -> Principal:
    if principal.role != "admin":
        raise Forbidden("this action needs an admin operator token")
    return principal


async def current_operator(principal: CurrentPrincipal) -> Principal:
    if not principal.is_operator:
        raise Forbidden("this action needs an operator token")
    return principal


async def current_agency(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "agency":
        raise Forbidden("this action needs an agency token")
    return principal


CurrentAdmin = Annotated[Principal, Depends(current_admin)]
CurrentOperator = Annotated[Principal, Depends(current_operator)]
CurrentAgency = Annotated[Principal, Depends(current_agency)]


# -- refusals and bodies -----------------------------------------------------------------------------------------

class RefusalScope:
    """What a refusal of this request is recorded with: the ledger event and its details (which the body
    dependency and the endpoint complete as they learn them: an envelope's digest, a delivery id)."""

    def __init__(self, event: str, details: dict[str, Any]) -> None:
        self.event = event
        self.details = details

    def note(self, **details: Any) -> None:
        self.details.update(details)


def ledgered_refusals(event: str, **details: Any) -> Any:
    """A dependency that records, through :class:`~gateway.ledger.refusals.RefusalLog`, every refusal
    (:class:`~gateway.problems.GatewayError`) raised after it by the endpoint or by a dependency declared
    after it. Declare it after the caller's credential: a request that is not authenticated, or whose
    credential may not call this endpoint, is not ledgered."""

    async def scope(principal: CurrentPrincipal, refusals: RefusalsDep) -> AsyncIterator[RefusalScope]:
        current = RefusalScope(event, dict(details))
        try:
            yield current
        except GatewayError as error:
            await refusals.record(event=current.event, actor=principal.actor, sender=principal.agency_code,
                                  error=error, details=current.details)
            raise

    return Depends(scope)


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` (Content-Length is not trusted)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body exceeds {limit} bytes")
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > limit:
            raise BodyTooLarge(f"the body exceeds {limit} bytes")
    return bytes(buffer)


M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request, model: type[M], *, required: bool, limit: int = 64 * 1024) -> M | None:
    """A JSON body validated here rather than by FastAPI, so that it may be absent where optional (no body keeps
    working) and a malformed one is the request-invalid problem, a refusal like any other, naming the fields and
    never echoing the values."""
    raw = await read_limited(request, limit)
    if not raw.strip():
        if required:
            raise RequestInvalid("a JSON body is required", errors=[{"field": "body", "message": "missing"}])
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                  for e in exc.errors(include_input=False)]
        fields = ", ".join(sorted({e["field"] for e in errors}))
        raise RequestInvalid(f"invalid fields: {fields}", errors=errors) from None


def json_request_body(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a body read with :func:`json_body`."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": model.model_json_schema()}}}}
