"""The OpenAPI document: what FastAPI derives from the routes, completed where it is the same for every route,
and rendered the same way by ``gateway openapi`` and the drift test.

Completed here (:func:`install`), so that a new route gets it without saying so:

- ``servers`` (this gateway, relative) and ``tags``, each with a description (:data:`TAGS`);
- a security decision on every operation: FastAPI writes the bearer requirement on every route that
  depends on ``deps.current_principal``; every other route is public or authenticates in its own way (the
  VXP face: HMAC headers, declared as its parameters), and says so with ``security: []``;
- the headers of answers: ``Retry-After`` on 429 and 503, ``WWW-Authenticate`` on 401;
- the push delivery, the POST the gateway sends to a recipient's endpoint, as the webhook ``delivery``.

What is specific to a route (its problems, the headers of its 200) stays in its decorator.
``tests/test_openapi_lint.py`` holds the document to Redocly's recommended rules.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from gateway.envelope import push_signature as push

__all__ = ["LICENSE", "SERVERS", "TAGS", "install", "render"]

#: every tag an operation may carry, with its description; a tag missing here fails tests/test_openapi_lint.py
TAGS: dict[str, str] = {
    "health": "Liveness, readiness, metrics and the gateway's certificate: public, for probes and for "
              "verifying what the gateway signs.",
    "agencies": "The register of agencies, their certificates and their API tokens (operators).",
    "operators": "Operators (admin, auditor) and their tokens (admins).",
    "envelopes": "Sending a signed edXML document (agencies).",
    "statuses": "Sending a processing status or a recall about a document (agencies).",
    "documents": "Finding documents and reading one's trace, receipt and proof.",
    "delivery": "Delivery to recipients: the pull inbox and acknowledgements, deliveries by state, an "
                "operator's re-queue; the push POST is the webhook `delivery`.",
    "ledger": "The append-only, hash-chained ledger: entries, the event feed, verification, signed checkpoints, "
              "proofs and witnesses.",
    "events": "The ledger as a Server-Sent Events feed.",
    "reports": "The monthly figures (Điều 15.11), for operators.",
    "vxp": "The national axis protocol (VXP): the face the axis SDK calls (HMAC headers) and its systems "
           "(operators).",
}

SERVERS: list[dict[str, str]] = [
    {"url": "/", "description": "this gateway (the host that served this document)"},
]

LICENSE: dict[str, str] = {"name": "Apache-2.0", "identifier": "Apache-2.0"}

_RETRY_AFTER = {
    "description": "seconds to wait before trying again (overloaded, database unavailable, rate limited)",
    "schema": {"type": "integer", "minimum": 0},
}
_WWW_AUTHENTICATE = {
    "description": "the scheme to authenticate with: `Bearer realm=\"gateway\"`",
    "schema": {"type": "string"},
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for section in ("paths", "webhooks") for item in spec.get(section, {}).values()
            for method, op in item.items() if method in _METHODS]


def _complete(spec: dict[str, Any]) -> None:
    """What :func:`install` adds to FastAPI's document (see the module docstring), in place."""
    used: set[str] = set()
    for op in _operations(spec):
        op.setdefault("security", [])
        used.update(op.get("tags", ()))
        for status, response in op.get("responses", {}).items():
            headers = response.setdefault("headers", {})
            if str(status) in ("429", "503"):
                headers.setdefault("Retry-After", _RETRY_AFTER)
            if str(status) == "401":
                headers.setdefault("WWW-Authenticate", _WWW_AUTHENTICATE)
            if not headers:
                del response["headers"]
    spec["tags"] = [{"name": name, "description": text} for name, text in TAGS.items() if name in used]


_SIGNED = "signed by `X-Gateway-Signature`"
_PUSH_HEADERS: dict[str, tuple[str, bool]] = {
    push.H_DELIVERY: (f"the delivery's id (one per document and recipient; stable across retries); {_SIGNED}", True),
    push.H_DOCUMENT: (f"the gateway document id: the idempotency key (delivery is at least once); {_SIGNED}", True),
    push.H_KIND: (f"`document` or `status`; {_SIGNED}", True),
    push.H_SENDER: (f"OrganId of the sender (for a status: of the agency reporting it); {_SIGNED}", True),
    push.H_RECIPIENT: (f"OrganId of the recipient this delivery is for: check that it is you; {_SIGNED}", True),
    push.H_SENT_AT: (f"the sent instant (Điều 11.1), RFC 3339, UTC, microseconds; {_SIGNED}", True),
    push.H_TIMESTAMP: (f"the instant this attempt started, same form; {_SIGNED}", True),
    push.H_CONTENT: (f"lower-case hex SHA-256 of the edXML bytes (the part `envelope` of a multipart body); "
                     f"{_SIGNED}", True),
    push.H_SIGNATURE: ("`alg=<rsa-sha256|ecdsa-sha256>, cert=<hex SHA-256 of the signing certificate's DER>, "
                       "sig=<base64>` over the lines `gateway-push-v1` and the eight signed values, joined by LF; "
                       "verify it with `GET /v1/gateway/certificate`", True),
    push.H_ATTEMPT: ("the attempt number, from 1 (not signed)", True),
    push.H_REFERS_TO: ("for a status: the gateway id of the document it is about (not signed)", False),
}


def _push_webhook(webhooks: APIRouter) -> None:
    """The push delivery, as a webhook: what a recipient's endpoint receives and what its answer means."""
    body = {"schema": {"type": "string", "format": "binary"}}
    retry = {"description": "tried again later with backoff (a `Retry-After` is the least wait); dead once the "
                            "attempts or the age are used up",
             "headers": {"Retry-After": {"description": "seconds or an HTTP-date: the least wait before the next "
                                                        "attempt (at most 7 days)",
                                         "schema": {"type": "string"}}}}

    @webhooks.post(
        "delivery", tags=["delivery"], operation_id="push_delivery", response_class=Response, status_code=200,
        summary="Push delivery: the gateway POSTs a document or a status to a recipient's endpoint",
        responses={
            200: {"description": "any 2xx: delivered; the instant this answer arrived is the received instant "
                                 "(Điều 11.2)"},
            "4XX": {"description": "any other 4xx (and any 1xx or 3xx: redirects are not followed): dead at once, "
                                   "with the status and the start of the answer as the reason"},
            408: retry,
            429: retry,
            "5XX": retry,
        },
        openapi_extra={
            "parameters": [{"name": name, "in": "header", "required": required, "description": text,
                            "schema": {"type": "string"}} for name, (text, required) in _PUSH_HEADERS.items()],
            "requestBody": {"required": True, "content": {"application/xml": body, "multipart/form-data": body}},
        },
    )
    def delivery() -> None:  # documentation only: a webhook is the gateway's request, never called here
        """The body is the original edXML bytes (`application/xml`), or, for a document whose large attachments
        travelled as multipart parts, `multipart/form-data` with part `envelope` (the edXML) and one part per
        large attachment named by its Content-ID. The recipient verifies the signature with the gateway's
        certificate, that `X-Gateway-Recipient` is itself, and that the SHA-256 of the edXML bytes is
        `X-Gateway-Content-SHA256`."""


def install(app: FastAPI) -> None:
    """Complete ``app``'s OpenAPI document (see the module docstring); call it after the routes are added."""
    _push_webhook(app.webhooks)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _complete(generate())  # FastAPI caches the document it returns in app.openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def render() -> str:
    from gateway.app import create_app  # here: gateway.app imports this module
    from gateway.config import Settings

    spec = create_app(Settings()).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
