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
    document cannot be forwarded there: no upstream is configured (``GATEWAY_UPSTREAM_URL``), or its large
    attachments travel as multipart parts, which the VXP protocol cannot carry. Refused rather than accepted and
    left undelivered. Extension ``recipients``: their codes."""

    status = 422
    slug = "recipient-upstream-not-forwarded"
    title = "A recipient is reached through the upstream axis, and this document cannot be forwarded to it"


class UpstreamSenderUnknown(GatewayError):
    """A message from the upstream axis names a sender (``from``, the edXML ``From``) that the register does not
    hold: run ``gateway upstream agencies sync``. Acknowledged ``fail`` upstream. Extension ``sender``."""

    status = 422
    slug = "upstream-sender-unknown"
    title = "A message from the upstream axis names a sender the register does not know"


class UpstreamSenderLocal(GatewayError):
    """A message from the upstream axis names a LOCAL agency as its sender, and it is not a copy of a message
    that agency sent through this gateway: a local agency's messages enter here, never from the upstream.
    Extension ``sender``."""

    status = 403
    slug = "upstream-sender-local"
    title = "A message from the upstream axis names a local agency as its sender"


class UpstreamNoLocalRecipient(GatewayError):
    """A document from the upstream axis names no active local agency among its recipients (the upstream
    delivers to its own and to other gateways' agencies itself): nothing here to deliver it to."""

    status = 422
    slug = "upstream-no-local-recipient"
    title = "A document from the upstream axis has no recipient in this gateway's register"


class StatusDuplicate(Conflict):
    slug = "status-duplicate"
    title = "This agency already reported this status code for this document (only 05 may repeat)"


class StatusCodeNotAllowed(GatewayError):
    status = 422
    slug = "status-code-not-allowed"
    title = "Recipients report statuses; the sender may only recall (13)"
