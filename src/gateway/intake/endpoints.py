"""The two ways to submit: ``POST /v1/envelopes`` (an edXML document, as ``application/xml`` or multipart with
large attachments) and ``POST /v1/statuses`` (an edXML status message). Both end in
:class:`~gateway.intake.service.IntakeService`; every refusal is ledgered (``envelope.refused``,
``status.refused``) by :func:`gateway.deps.ledgered_refusals`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from gateway.deps import (
    BlobsDep,
    CurrentAgency,
    IntakeDep,
    RefusalScope,
    SettingsDep,
    WakeWorker,
    ledgered_refusals,
    read_limited,
)
from gateway.documents.service import DocumentNotFound
from gateway.envelope import envelope_error_types
from gateway.envelope import envelope_sha256 as digest_of
from gateway.intake.errors import (
    DocumentChanged,
    EnvelopePartMissing,
    MultipartInvalid,
    MultipartTruncated,
    NotADocument,
    NotAStatus,
    PartTooLarge,
    RecipientNotForwarded,
    RecipientUnknown,
    StatusCodeNotAllowed,
    StatusDuplicate,
)
from gateway.intake.multipart import MultipartUpload, read_multipart
from gateway.intake.service import IntakeResult
from gateway.ledger.errors import TimestampingUnavailable
from gateway.malware import MalwareFound, ScannerUnavailable
from gateway.problem_handlers import problems
from gateway.problems import BodyTooLarge, Forbidden, Unauthenticated, UnsupportedMediaType

router = APIRouter()

XML_TYPES = ("application/xml", "text/xml", "application/edxml+xml")
RECEIPT_MEDIA_TYPE = "application/xml"

EnvelopeRefusals = Annotated[RefusalScope, ledgered_refusals("envelope.refused", envelope_sha256=None,
                                                               envelope_size=None)]
StatusRefusals = Annotated[RefusalScope, ledgered_refusals("status.refused", envelope_sha256=None,
                                                             envelope_size=None)]


async def envelope_body(request: Request, refusals: EnvelopeRefusals, settings: SettingsDep,
                        blobs: BlobsDep) -> AsyncIterator[tuple[bytes, MultipartUpload | None, str]]:
    """The edXML bytes, for multipart the staged large parts (discarded when the request ends; those the
    document references were committed to the blob store by then), and the bytes' SHA-256 (hashed once)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    upload: MultipartUpload | None = None
    if media in XML_TYPES:
        data = await read_limited(request, settings.max_envelope_bytes)
    elif media == "multipart/form-data":
        upload = await read_multipart(
            request.stream(), content_type, blobs, max_envelope_bytes=settings.max_envelope_bytes,
            max_part_bytes=settings.max_part_bytes, max_parts=settings.max_attachments,
        )
        data = upload.envelope
    else:
        raise UnsupportedMediaType("send application/xml, or multipart/form-data with an 'envelope' part")
    digest = digest_of(data)
    refusals.note(envelope_sha256=digest, envelope_size=len(data))
    try:
        yield data, upload, digest
    finally:
        if upload is not None:
            upload.discard()


async def status_body(request: Request, refusals: StatusRefusals, settings: SettingsDep) -> tuple[bytes, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in XML_TYPES:
        raise UnsupportedMediaType("send the status message as application/xml")
    data = await read_limited(request, settings.max_envelope_bytes)
    digest = digest_of(data)
    refusals.note(envelope_sha256=digest, envelope_size=len(data))
    return data, digest


def _receipt_response(result: IntakeResult) -> Response:
    return Response(
        result.receipt,
        status_code=201 if result.created else 200,
        media_type=RECEIPT_MEDIA_TYPE,
        headers={"Location": f"/v1/documents/{result.document}", "X-Gateway-Document-Id": result.document},
    )

_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/xml": {
            "schema": {"type": "string", "format": "binary",
                       "description": "an edXML document with inline attachments (schemas/edxml.xsd)"}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["envelope"],
                "properties": {
                    "envelope": {"type": "string", "format": "binary",
                                 "description": "the edXML document; large attachments declared by digest"},
                },
                "additionalProperties": {
                    "type": "string", "format": "binary",
                    "description": "one part per large attachment, named (or Content-ID'd) by its ContentId",
                },
            }
        },
    },
}

_RECEIPT = {"content": {RECEIPT_MEDIA_TYPE: {"schema": {"type": "string"}}},
            "description": "the gateway's signed receipt (XMLDSig, verifiable with GET /v1/gateway/certificate)"}


@router.post(
    "/v1/envelopes",
    status_code=201,
    response_class=Response,
    openapi_extra={"requestBody": _REQUEST_BODY},
    tags=["envelopes"],
    responses={
        201: _RECEIPT,
        200: {**_RECEIPT, "description": "an identical resubmission: the receipt given the first time"},
        **problems(Unauthenticated, Forbidden, BodyTooLarge, UnsupportedMediaType, MultipartInvalid, MalwareFound,
                   ScannerUnavailable,
                   MultipartTruncated, EnvelopePartMissing, PartTooLarge, NotADocument,
                   RecipientUnknown, RecipientNotForwarded, DocumentChanged, TimestampingUnavailable,
                   *envelope_error_types()),
    },
)
async def submit_envelope(
    agency: CurrentAgency,
    body: Annotated[tuple[bytes, MultipartUpload | None, str], Depends(envelope_body)],
    intake: IntakeDep,
    wake_worker: WakeWorker,
) -> Response:
    """Submit a signed edXML document. The answer's commit instant is the sent instant (Điều 11.1)."""
    assert agency.agency_code is not None
    data, upload, digest = body
    result = await intake.submit(agency.agency_code, data, upload, digest=digest)
    if result.created and result.push:
        wake_worker()  # push deliveries start now rather than at the next poll
    return _receipt_response(result)


_STATUS_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/xml": {"schema": {
        "type": "string", "format": "binary",
        "description": "an edXML status message (no body, no attachments), signed per the agency's policy"}}},
}
_STATUS_RECEIPT = {"content": {"application/xml": {"schema": {"type": "string"}}},
                   "description": "the gateway's signed receipt (kind status; recipients: where the status goes)"}


@router.post(
    "/v1/statuses",
    status_code=201,
    response_class=Response,
    openapi_extra={"requestBody": _STATUS_BODY},
    responses={
        201: _STATUS_RECEIPT,
        200: {**_STATUS_RECEIPT, "description": "an identical resubmission: the receipt given the first time"},
        **problems(Unauthenticated, Forbidden, BodyTooLarge, UnsupportedMediaType, NotAStatus, DocumentNotFound,
                   TimestampingUnavailable,
                   StatusCodeNotAllowed, StatusDuplicate, *envelope_error_types()),
    },
    tags=["statuses"],
)
async def submit_status(
    agency: CurrentAgency,
    body: Annotated[tuple[bytes, str], Depends(status_body)],
    intake: IntakeDep,
    wake_worker: WakeWorker,
) -> Response:
    """Report what the caller did with a document it received (EDXML.md status codes), or, as its sender,
    recall it (13). Routed to the other party like a document (push or pull), ledgered."""
    assert agency.agency_code is not None
    data, digest = body
    result = await intake.submit_status(agency.agency_code, data, digest=digest)
    if result.created:
        wake_worker()
    return _receipt_response(result)
