"""The national axis face: ``/vxp/<operation>``, every operation of ``../shared/VXP.md`` as the axis SDK calls it.

Software built on the axis SDK connects by changing one setting, the SDK's base URL, to
``https://<gateway>/vxp``. This module is an adapter (CONTRIBUTING.md "Where a message goes"): it reads the
call (:mod:`gateway.vxp.protocol`: headers, HMAC, signed parameters), authenticates the system
(:class:`gateway.vxp.systems.VxpSystems`), and hands the work to the same services as the native API —
intake (:class:`gateway.intake.service.IntakeService`: the one acceptance path, the same checks, problem types,
deviations, ledger events and signed receipt) and delivery (:class:`gateway.delivery.service.DeliveryService`:
pull, fetch, acknowledgement, the received instant). Nothing here writes a row itself.

Every call, in order:

1. ``parse_request`` → ``authenticate(systemid)`` (unknown or revoked: ``vxp-system-unknown``) →
   ``verify_hmac`` over the sign-header as received (``vxp-hmac-invalid``);
2. the rate limit of the system's agency (``too-many-requests``);
3. the operation, reading only signed parameters.

Answers are JSON ``{"status", "ErrorCode", "ErrorDesc", …}`` in ASCII; a refusal is ``FAIL`` with the native
problem slug as ``ErrorCode``, its detail as ``ErrorDesc`` and the native HTTP status (the SDK reads only the
body). Every refusal is ledgered (``envelope.refused`` / ``status.refused`` for sendEdoc, like the native
intake; ``vxp.refused`` for the others, with the operation), and nothing else is stored.

What each operation does:

- ``sendEdoc``: ``from`` must be an agency the system serves (its code, or an alias of it) and the edXML
  ``From`` must name it (intake checks that); ``hash-file`` binds the body (minus its trailing CRLF) to the
  HMAC. ``messagetype`` ``edoc`` → a document, ``status`` → a status message. ``DocId`` is the gateway id.
- ``getReceivedEdocList``: the pull deliveries waiting for every agency the system serves, documents
  (``messagetype`` edoc) or statuses, most urgent then oldest; ``docId`` is the delivery's id.
- ``getEdoc`` (base64 in JSON) / ``downloadEdoc`` (raw): the original bytes; the first download is the
  native ``fetched``. A document whose large attachments travelled as multipart parts cannot be carried
  here: refused ``vxp-large-attachments`` (fetch it through ``/v1/inbox``).
- ``updateStatus``: ``done`` is the received instant (Điều 11.2) exactly as the native ``ack``; ``fail``
  records the failure with ``description``; ``processing`` changes nothing.
- ``getSentEdocList``: one row per recipient of a document the system's agencies sent, with its state
  and received instant.
- ``countReceiveEdoc`` / ``countReceiveStatus``: how many wait.
- ``getAgenciesList``, ``getAgenciesListQD20``, ``getSynchronizeUnit``: the register.
- ``registerAgency``, ``deleteAgency``: refused (the register is an operator's job).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.agency.repository import AgencyRepository
from gateway.delivery.errors import AckConflict, DeliveryNotFetched, DeliveryNotFound
from gateway.deps import BlobsDep, DeliveryDep, IntakeDep, SessionDep, SettingsDep, WakeWorker, read_limited
from gateway.documents.models import Delivery, Document
from gateway.documents.repository import DocumentRepository
from gateway.documents.service import DocumentNotFound
from gateway.envelope import envelope_sha256
from gateway.principal import Principal
from gateway.problems import BodyTooLarge, Conflict, GatewayError, TooManyRequests
from gateway.ratelimit import AgencyRateLimiter
from gateway.vxp import protocol
from gateway.vxp.errors import (
    VxpAgencyNotServed,
    VxpHashFileMismatch,
    VxpHmacInvalid,
    VxpOperationNotSupported,
    VxpOperationUnknown,
    VxpParameterAmbiguous,
    VxpParameterMissing,
    VxpSignatureHeadersMissing,
    VxpSystemUnknown,
)
from gateway.vxp.protocol import SignedRequest, answer, failure, format_time, param, require_param
from gateway.vxp.systems import AuthenticatedSystem, VxpSystems

router = APIRouter(prefix="/vxp", tags=["vxp"])
_log = logging.getLogger("gateway.vxp")

#: the most a list answer holds (the SDK pages nothing: what is left is listed by the next call)
LIST_LIMIT = 500


class VxpLargeAttachments(Conflict):
    status = 409
    slug = "vxp-large-attachments"
    title = "The document's large attachments travel only through the native API (/v1/inbox)"


# -- answers (documentation of the JSON the SDK reads; the bodies are built by protocol.answer) ---------------

class VxpAnswer(BaseModel):
    status: str = Field(examples=["OK"], description="OK or FAIL")
    ErrorCode: str = Field(examples=["0"], description='"0" on success; else the problem type slug of the '
                                                       'native API (e.g. signature-invalid)')
    ErrorDesc: str = Field(description="what a person must read when it failed")


class VxpSendAnswer(VxpAnswer):
    DocId: str = Field(description="the gateway document id (empty on failure)")


class VxpReceivedItem(BaseModel):
    docId: str = Field(description="the id of this recipient's delivery (getEdoc, updateStatus)")
    serviceType: str
    messageType: str
    # "from" is a Python keyword: the field is named from_ and written as "from"
    from_: str = Field(alias="from")
    to: str
    status: str
    status_desc: str
    created_time: str
    updated_time: str


class VxpReceivedList(VxpAnswer):
    data: list[VxpReceivedItem]


class VxpEdocAnswer(VxpAnswer):
    data: str = Field(description="base64 of the original edXML bytes")


class VxpSentItem(BaseModel):
    serviceType: str
    messageType: str
    fromCode: str
    toCode: str
    senderDocId: str
    receiverDocId: str
    sendStatus: str
    sendStatusDesc: str
    receiveStatus: str
    receiveStatusDesc: str
    sentTime: str
    receivedTime: str
    notation: str
    title: str


class VxpSentList(VxpAnswer):
    data: list[VxpSentItem]


class VxpCount(VxpAnswer):
    count: int


class VxpList(VxpAnswer):
    data: list[dict[str, Any]]


def _headers(*names: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    credentials = ["systemid", "timestamp", "sign-header-key", "sign-header", "hash-header"]
    return [
        {"name": f"{protocol.PREFIX}{name}", "in": "header",
         "required": name in credentials or name in required,
         "schema": {"type": "string"},
         "description": "credential (VXP.md, Authentication)" if name in credentials else "signed parameter"}
        for name in (*credentials, *names)
    ]


#: refusals every operation may answer (credentials, HMAC, system, rate)
_ALWAYS: tuple[type[GatewayError], ...] = (VxpSignatureHeadersMissing, VxpHmacInvalid, VxpSystemUnknown,
                                           TooManyRequests, VxpParameterAmbiguous)


def _doc(model: type[BaseModel], *names: str, required: tuple[str, ...] = (), body: dict[str, Any] | None = None,
         errors: tuple[type[GatewayError], ...] = (), note: str = "") -> dict[str, Any]:
    """The operation's OpenAPI: its signed header parameters and its JSON answers. A FAIL is the same JSON
    with ``ErrorCode`` = the problem type's slug and the native HTTP status, listed per status."""
    extra: dict[str, Any] = {"parameters": _headers(*names, required=required)}
    if body is not None:
        extra["requestBody"] = body
    responses: dict[int | str, dict[str, Any]] = {200: {"model": model, "description": "the answer the SDK reads"}}
    by_status: dict[int, list[str]] = {}
    for error in (*_ALWAYS, *errors):
        by_status.setdefault(error.status, []).append(error.slug)
    for status, slugs in sorted(by_status.items()):
        listed = ", ".join(f"`{slug}` (urn:gateway:problem:{slug})" for slug in slugs)
        responses[status] = {"model": VxpAnswer, "description": f"FAIL, ErrorCode one of: {listed}{note}"}
    return {"openapi_extra": extra, "responses": responses, "response_class": Response}


# -- the call ------------------------------------------------------------------------------------------------

Handler = Callable[[SignedRequest, AuthenticatedSystem], Awaitable[bytes | Response]]


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


async def _call(request: Request, operation: str, handler: Handler, *, on_fail: dict[str, Any] | None = None,
                refusal_event: Callable[[SignedRequest | None], str] | None = None,
                details: dict[str, Any] | None = None) -> Response:
    """Steps 1-3 of the module docstring around ``handler``; every refusal ledgered and answered as JSON."""
    systems: VxpSystems = request.app.state.vxp_systems  # deps.py reads app.state; this adapter too (one call)
    signed: SignedRequest | None = None
    system: AuthenticatedSystem | None = None
    noted: dict[str, Any] = dict(details or {})
    try:
        # The HMAC is over the sign-header's UTF-8 bytes as received: decode as UTF-8 (bytes that are not
        # UTF-8 become U+FFFD and then fail the HMAC, never pass it).
        signed = protocol.parse_request([(k.decode("latin-1"), v.decode("utf-8", "replace"))
                                         for k, v in request.headers.raw])
        system = await systems.authenticate(signed.system_id)
        if system is None:
            raise VxpSystemUnknown("the system id is unknown or revoked")
        protocol.verify_hmac(signed, system.secret)
        limiter: AgencyRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            limiter.check(system.agency)
        result = await handler(signed, system)
        return result if isinstance(result, Response) else _json(result)
    except GatewayError as error:
        event = refusal_event(signed) if refusal_event is not None else "vxp.refused"
        claimed = signed.system_id[:64] if signed is not None else None
        await request.app.state.refusals.record(
            event=event,
            actor=f"vxp:{system.system_id}" if system is not None else "unauthenticated",
            sender=system.agency if system is not None else None,
            error=error,
            details={"operation": operation, "system_id": claimed, **noted, **getattr(request.state, "vxp", {})},
        )
        response = _json(failure(error, **(on_fail or {})), error.status)
        retry_after = error.extensions.get("retry_after")
        if retry_after is not None:  # 429 (rate limit) and 503: the same Retry-After the API sends
            response.headers["Retry-After"] = str(int(retry_after))
        return response


def _note(request: Request, **details: Any) -> None:
    """What a refusal of this call is recorded with (the envelope's digest, a delivery id …)."""
    current: dict[str, Any] = getattr(request.state, "vxp", {})
    current.update(details)
    request.state.vxp = current


def _served(system: AuthenticatedSystem, code: str) -> str:
    if code not in system.served:
        raise VxpAgencyNotServed("from: the system does not serve this agency")
    return code


def _principal(code: str) -> Principal:
    return Principal(kind="agency", name=code)


def _messagetype(signed: SignedRequest) -> str:
    value = (param(signed, "messagetype") or "edoc").strip().lower()
    if value not in ("edoc", "status"):
        raise VxpParameterMissing("messagetype: edoc or status", parameter="messagetype")
    return value


def _intake_refusal(signed: SignedRequest | None) -> str:
    kind = "edoc"
    if signed is not None:
        try:
            kind = _messagetype(signed)
        except GatewayError:
            kind = "edoc"
    return "status.refused" if kind == "status" else "envelope.refused"


async def _own_delivery(delivery: DeliveryDep, system: AuthenticatedSystem, delivery_id: str) -> tuple[Delivery,
                                                                                                      Document]:
    found = await delivery.located(delivery_id) if _looks_like_id(delivery_id) else None
    # Another system's delivery answers exactly like a missing one.
    if found is None or found[0].recipient not in system.served or found[0].mode != "pull":
        raise DeliveryNotFound()
    return found


def _looks_like_id(value: str) -> bool:
    return len(value) == 36 and all(c in "0123456789abcdef-" for c in value)


# -- operations ----------------------------------------------------------------------------------------------

@router.post("/sendEdoc", summary="sendEdoc: a document or a status message",
             **_doc(VxpSendAnswer, "from", "servicetype", "messagetype", "hash-file", required=("from", "hash-file"),
                    body={"required": True, "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    errors=(VxpAgencyNotServed, VxpHashFileMismatch, VxpParameterMissing, BodyTooLarge),
                    note="; and every refusal of POST /v1/envelopes (messagetype edoc) or POST /v1/statuses "
                         "(status), with the same slug and status"))
async def send_edoc(request: Request, intake: IntakeDep, settings: SettingsDep, wake_worker: WakeWorker) -> Response:
    """The edXML bytes as the body, then ``\\r\\n``; the same acceptance as ``POST /v1/envelopes`` (or
    ``/v1/statuses`` with ``messagetype: status``)."""

    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        raw = await read_limited(request, settings.max_envelope_bytes + 2)
        data = protocol.strip_trailing_crlf(raw)
        digest = envelope_sha256(data)
        _note(request, envelope_sha256=digest, envelope_size=len(data))
        sender = await _sender(request, system, require_param(signed, "from").strip())
        protocol.verify_hash_file(signed, data)
        if _messagetype(signed) == "status":
            result = await intake.submit_status(sender, data, digest=digest)
        else:
            result = await intake.submit(sender, data, digest=digest)
        if result.push:
            wake_worker()
        return answer(ok=True, DocId=result.document)

    return await _call(request, "sendEdoc", handle, on_fail={"DocId": ""}, refusal_event=_intake_refusal)


async def _sender(request: Request, system: AuthenticatedSystem, written: str) -> str:
    """The ``from`` header as an agency the system serves: its code, or an alias of it."""
    if written in system.served:
        return written
    async with request.app.state.db.read() as session:
        resolved = (await AgencyRepository(session).alias_map()).get(written)
    return _served(system, resolved if resolved is not None else written)


_STATES = {"pending": ("initial", "waiting to be received"), "fetched": ("processing", "downloaded, not yet "
                                                                          "acknowledged")}


@router.post("/getReceivedEdocList", summary="getReceivedEdocList: what waits for the system's agencies",
             **_doc(VxpReceivedList, "servicetype", "messagetype", errors=(VxpParameterMissing,)))
async def get_received_edoc_list(request: Request, delivery: DeliveryDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        kind = _messagetype(signed)
        items = await delivery.waiting(sorted(system.served), "status" if kind == "status" else "document",
                                       LIST_LIMIT)
        return answer(ok=True, data=[{
            "docId": i.delivery.id, "serviceType": "eDoc", "messageType": kind, "from": i.document.sender,
            "to": i.delivery.recipient, "status": _STATES[i.delivery.state][0],
            "status_desc": _STATES[i.delivery.state][1], "created_time": format_time(i.document.sent_at),
            "updated_time": format_time(i.delivery.updated_at),
        } for i in items])

    return await _call(request, "getReceivedEdocList", handle, on_fail={"data": []})


async def _download(request: Request, delivery: DeliveryDep, blobs: BlobsDep, signed: SignedRequest,
                    system: AuthenticatedSystem) -> bytes:
    # Not unanimous: the SDK's never-cleared header map still carries the docid of the updateStatus before.
    delivery_id = require_param(signed, "docId", "docid").strip()
    _note(request, delivery=delivery_id)
    row, _document = await _own_delivery(delivery, system, delivery_id)
    if _document.multipart:
        raise VxpLargeAttachments("its large attachments travel as multipart parts: use GET /v1/inbox/{id}")
    _row, document = await delivery.fetch(_principal(row.recipient), delivery_id)
    return await asyncio.to_thread(blobs.read, document.envelope_sha256)


@router.post("/getEdoc", summary="getEdoc: the original bytes, base64 in JSON",
             **_doc(VxpEdocAnswer, "docId", "filePath", required=("docId",),
                    errors=(VxpParameterMissing, DeliveryNotFound, VxpLargeAttachments)))
async def get_edoc(request: Request, delivery: DeliveryDep, blobs: BlobsDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        data = await _download(request, delivery, blobs, signed, system)
        return answer(ok=True, data=base64.b64encode(data).decode("ascii"))

    return await _call(request, "getEdoc", handle, on_fail={"data": ""})


@router.get("/downloadEdoc", summary="downloadEdoc: the original bytes, raw",
            **_doc(VxpAnswer, "docId", "filePath", required=("docId",),
                   errors=(VxpParameterMissing, DeliveryNotFound, VxpLargeAttachments)))
async def download_edoc(request: Request, delivery: DeliveryDep, blobs: BlobsDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> Response:
        data = await _download(request, delivery, blobs, signed, system)
        return Response(data, media_type="application/xml")

    return await _call(request, "downloadEdoc", handle)


@router.post("/updateStatus", summary="updateStatus: the transport acknowledgement (done is the received instant)",
             **_doc(VxpAnswer, "docId", "docid", "status", "description", required=("status",),
                    errors=(VxpParameterMissing, DeliveryNotFound, DeliveryNotFetched, AckConflict)))
async def update_status(request: Request, delivery: DeliveryDep, wake_worker: WakeWorker) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        delivery_id = require_param(signed, "docId", "docid", unanimous=True).strip()
        _note(request, delivery=delivery_id)
        status = require_param(signed, "status").strip().lower()
        if status not in ("done", "fail", "processing"):
            raise VxpParameterMissing("status: done, fail or processing", parameter="status")
        row, _document = await _own_delivery(delivery, system, delivery_id)
        if status == "processing":
            return answer(ok=True)
        description = (param(signed, "description") or "").strip()
        result = await delivery.ack(_principal(row.recipient), delivery_id, status,
                                    description or "refused by the recipient's system (no description)")
        if result.changed:
            wake_worker()
        return answer(ok=True)

    return await _call(request, "updateStatus", handle)


@router.post("/getSentEdocList", summary="getSentEdocList: each recipient's state of a document sent",
             **_doc(VxpSentList, "servicetype", "messagetype", "docId", required=("docId",),
                    errors=(VxpParameterMissing, DocumentNotFound)))
async def get_sent_edoc_list(request: Request, session: SessionDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        document_id = require_param(signed, "docId", "docid").strip()
        repo = DocumentRepository(session)
        document = await repo.get(document_id) if _looks_like_id(document_id) else None
        if document is None or document.sender not in system.served:
            raise DocumentNotFound()
        kind = "status" if document.kind == "status" else "edoc"
        return answer(ok=True, data=[{
            "serviceType": "eDoc", "messageType": kind, "fromCode": document.sender, "toCode": d.recipient,
            "senderDocId": document.id, "receiverDocId": d.id, "sendStatus": "done",
            "sendStatusDesc": "accepted by the gateway", "receiveStatus": d.state,
            "receiveStatusDesc": _receive_desc(d), "sentTime": format_time(document.sent_at),
            "receivedTime": format_time(d.received_at) if d.received_at is not None else "",
            "notation": document.code or "", "title": document.subject or "",
        } for d in await repo.deliveries(document.id)])

    return await _call(request, "getSentEdocList", handle, on_fail={"data": []})


def _receive_desc(d: Delivery) -> str:
    if d.state == "delivered":
        return "received"
    if d.state in ("dead", "failed"):
        return f"not delivered: {d.last_error or d.state}"
    return "on its way"


def _counter(name: str, kind: str) -> Callable[[Request, DeliveryDep], Awaitable[Response]]:
    async def count(request: Request, delivery: DeliveryDep) -> Response:
        async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
            return answer(ok=True, count=await delivery.count_waiting(sorted(system.served), kind))

        return await _call(request, name, handle, on_fail={"count": 0})

    count.__name__ = name
    return count


router.post("/countReceiveEdoc", summary="countReceiveEdoc: documents waiting",
            **_doc(VxpCount))(_counter("countReceiveEdoc", "document"))
router.post("/countReceiveStatus", summary="countReceiveStatus: statuses waiting",
            **_doc(VxpCount))(_counter("countReceiveStatus", "status"))


async def _register(session: SessionDep) -> tuple[list[Any], dict[str, list[str]]]:
    repo = AgencyRepository(session)
    agencies = list(await repo.all())
    return agencies, await repo.aliases_for([a.code for a in agencies])


@router.post("/getAgenciesList", summary="getAgenciesList: the register", **_doc(VxpList))
async def get_agencies_list(request: Request, session: SessionDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        agencies, aliases = await _register(session)
        return answer(ok=True, data=[{
            "id": a.code, "pid": a.parent_code or "", "code": a.code, "name": a.name, "mail": "",
            "oldCode": (aliases.get(a.code) or [a.alt_code or ""])[0],
        } for a in agencies if a.active])

    return await _call(request, "getAgenciesList", handle, on_fail={"data": []})


@router.post("/getAgenciesListQD20", summary="getAgenciesListQD20: the register with QĐ 20 identifiers",
             **_doc(VxpList, "level"))
async def get_agencies_list_qd20(request: Request, session: SessionDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        agencies, _aliases = await _register(session)
        return answer(ok=True, data=[{
            "id": a.code, "code": a.alt_code or a.code, "name": a.name, "mail": "", "code102": a.code,
        } for a in agencies if a.active])

    return await _call(request, "getAgenciesListQD20", handle, on_fail={"data": []})


@router.post("/getSynchronizeUnit", summary="getSynchronizeUnit: the register for synchronisation",
             **_doc(VxpList))
async def get_synchronize_unit(request: Request, session: SessionDep) -> Response:
    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        agencies, _aliases = await _register(session)
        return answer(ok=True, data=[{
            "id": a.code, "pid": a.parent_code or "", "code": a.code, "name": a.name, "mail": "",
            "version": str(int(a.updated_at.timestamp())), "centerCode": "", "deleted": not a.active,
            "modifyDate": format_time(a.updated_at), "isAgency": True,
        } for a in agencies])

    return await _call(request, "getSynchronizeUnit", handle, on_fail={"data": []})


def _refused(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def refuse(request: Request) -> Response:
        async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
            protocol.resolve_operation(name)  # raises VxpOperationNotSupported
            raise AssertionError("unreachable")

        return await _call(request, name, handle)

    refuse.__name__ = name
    return refuse


router.post("/registerAgency", summary="registerAgency: refused (the register is an operator's job)",
            **_doc(VxpAnswer, errors=(VxpOperationNotSupported,)))(_refused("registerAgency"))
router.post("/deleteAgency", summary="deleteAgency: refused (the register is an operator's job)",
            **_doc(VxpAnswer, "AgencyCode", errors=(VxpOperationNotSupported,)))(_refused("deleteAgency"))


@router.post("/{operation}", summary="any other operation: FAIL (never an HTML 404)",
             **_doc(VxpAnswer, errors=(VxpOperationUnknown,)))
@router.get("/{operation}", include_in_schema=False)
async def unknown_operation(operation: str, request: Request) -> Response:
    """Any other path answers like the SDK expects an answer: JSON FAIL (never an HTML 404)."""

    async def handle(signed: SignedRequest, system: AuthenticatedSystem) -> bytes:
        protocol.resolve_operation(operation[:100])  # raises VxpOperationUnknown (or not supported)
        raise VxpOperationUnknown("no such VXP operation")

    return await _call(request, "unknown", handle)
