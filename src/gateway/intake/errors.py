"""Intake rules that belong to the HTTP request rather than to the edXML content."""

from __future__ import annotations

from gateway.problems import Conflict, GatewayError


class MultipartInvalid(GatewayError):
    status = 400
    slug = "multipart-invalid"
    title = "The multipart body is malformed"


class MultipartTruncated(GatewayError):
    status = 400
    slug = "multipart-truncated"
    title = "The multipart body ended before its closing boundary"


class EnvelopePartMissing(GatewayError):
    status = 400
    slug = "envelope-part-missing"
    title = "The multipart body has no 'envelope' part"


class PartTooLarge(GatewayError):
    status = 413
    slug = "part-too-large"
    title = "A multipart part exceeds the configured limit"


class DocumentChanged(Conflict):
    slug = "document-changed"
    title = "A different envelope was already accepted under this DocumentId (Điều 12.8: a sent document never changes)"


class NotADocument(GatewayError):
    status = 422
    slug = "not-a-document"
    title = "This endpoint takes documents; statuses go to /v1/statuses"


class NotAStatus(GatewayError):
    status = 422
    slug = "not-a-status"
    title = "This endpoint takes status messages; documents go to /v1/envelopes"


class RecipientUnknown(GatewayError):
    status = 422
    slug = "recipient-unknown"
    title = "A recipient is not a registered, active agency"


class RecipientNotForwarded(GatewayError):
    """A recipient is an agency of the upstream axis (imported by ``gateway upstream agencies sync``) and this
    gateway cannot forward to it yet: refused rather than accepted and left undelivered. Extension
    ``recipients``: their codes."""

    status = 422
    slug = "recipient-upstream-not-forwarded"
    title = "A recipient is reached through the upstream axis, and forwarding to it is not available yet"


class StatusDuplicate(Conflict):
    slug = "status-duplicate"
    title = "This agency already reported this status code for this document (only 05 may repeat)"


class StatusCodeNotAllowed(GatewayError):
    status = 422
    slug = "status-code-not-allowed"
    title = "Recipients report statuses; the sender may only recall (13)"
