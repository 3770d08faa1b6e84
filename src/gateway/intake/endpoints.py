"""``POST /v1/envelopes``: an edXML document as ``application/xml``, or multipart with large attachments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from gateway.deps import CurrentAgency
from gateway.envelope import envelope_error_types
from gateway.intake.body import read_limited
from gateway.intake.errors import (
    DocumentChanged,
    EnvelopePartMissing,
    MultipartInvalid,
    MultipartTruncated,
    NotADocument,
    PartTooLarge,
    RecipientUnknown,
)
from gateway.intake.multipart import MultipartUpload, read_multipart
from gateway.intake.service import IntakeService
from gateway.malware import MalwareFound, ScannerUnavailable
from gateway.problem_handlers import problems
from gateway.problems import BodyTooLarge, Forbidden, GatewayError, Unauthenticated, UnsupportedMediaType

router = APIRouter(tags=["envelopes"])

XML_TYPES = ("application/xml", "text/xml", "application/edxml+xml")
RECEIPT_MEDIA_TYPE = "application/xml"


def get_intake(request: Request) -> IntakeService:
    service: IntakeService = request.app.state.intake
    return service


IntakeDep = Annotated[IntakeService, Depends(get_intake)]

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
    responses={
        201: _RECEIPT,
        200: {**_RECEIPT, "description": "an identical resubmission: the receipt given the first time"},
        **problems(Unauthenticated, Forbidden, BodyTooLarge, UnsupportedMediaType, MultipartInvalid, MalwareFound,
                   ScannerUnavailable,
                   MultipartTruncated, EnvelopePartMissing, PartTooLarge, NotADocument,
                   RecipientUnknown, DocumentChanged, *envelope_error_types()),
    },
)
async def submit_envelope(request: Request, agency: CurrentAgency, intake: IntakeDep) -> Response:
    """Submit a signed edXML document. The answer's commit instant is the sent instant (Điều 11.1)."""
    settings = request.app.state.settings
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    upload: MultipartUpload | None = None
    try:
        if media in XML_TYPES:
            data = await read_limited(request, settings.max_envelope_bytes)
        elif media == "multipart/form-data":
            upload = await read_multipart(
                request.stream(), content_type, request.app.state.blobs,
                max_envelope_bytes=settings.max_envelope_bytes, max_part_bytes=settings.max_part_bytes,
                max_parts=settings.max_attachments,
            )
            data = upload.envelope
        else:
            raise UnsupportedMediaType("send application/xml, or multipart/form-data with an 'envelope' part")
    except GatewayError as error:
        await intake.record_refusal(agency, None, None, error)
        raise
    result = await intake.submit(agency, data, upload)
    worker = getattr(request.app.state, "worker", None)
    if result.created and result.push and worker is not None:
        worker.notify()  # push deliveries start now rather than at the next poll
    return Response(
        result.receipt,
        status_code=201 if result.created else 200,
        media_type=RECEIPT_MEDIA_TYPE,
        headers={"Location": f"/v1/documents/{result.document}", "X-Gateway-Document-Id": result.document},
    )
