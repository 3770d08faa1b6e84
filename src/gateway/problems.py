"""Typed errors and their RFC 9457 ``application/problem+json`` rendering.

Every expected failure the gateway can answer with is a :class:`GatewayError` subclass carrying its
HTTP status and a stable ``type`` slug. Services and pure modules raise these; only this module knows
about HTTP. The ``type`` member of a problem document is ``urn:gateway:problem:<slug>``; slugs never change
once published (integrators switch on them), and each belongs to exactly one class (a test fails on a second
one): two rules never share a ``type``, and one rule raised from two places uses the one class.

The tree::

    GatewayError
    ├── RequestInvalid                      400/422 request shape (field-level ``errors``)
    ├── Unauthenticated                     401 no or unknown bearer token
    ├── Forbidden                           403 authenticated but not allowed (operator roles)
    ├── AgencySuspended                     403 an agency credential of a suspended agency
    ├── NotFound                            404 (also: "exists but is not yours")
    ├── Conflict                            409 duplicate registrations, changed resubmissions
    ├── TooManyRequests                     429 an agency over its request rate
    ├── ServiceUnavailable                  503 not ready (scanner down, …)
    │   ├── Overloaded                      503 more requests in flight than the process takes
    │   └── DatabaseUnavailable             503 no connection in time, or the database restarted
    ├── AgencyError                         register rules (code pattern, parent, endpoint, PEM ...)
    ├── EnvelopeError                       edXML intake rules (gateway.envelope raises these)
    └── ... subclasses declared next to the rule they enforce

Never echo hostile input back: ``detail`` names the field and the rule, not the offending bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:gateway:problem:"


class GatewayError(Exception):
    """Base of every expected failure. Subclasses set ``status``, ``slug`` and ``title``."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions: dict[str, Any] = dict(extensions)

    @classmethod
    def type_uri(cls) -> str:
        return PROBLEM_TYPE_PREFIX + cls.slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        for key, value in self.extensions.items():
            if key not in body:
                body[key] = value
        return body


class RequestInvalid(GatewayError):
    status = 422
    slug = "request-invalid"
    title = "The request does not match the expected shape"


class BodyTooLarge(GatewayError):
    status = 413
    slug = "body-too-large"
    title = "The request body exceeds the configured limit"


class UnsupportedMediaType(GatewayError):
    status = 415
    slug = "unsupported-media-type"
    title = "The request's content type is not accepted here"


class Unauthenticated(GatewayError):
    status = 401
    slug = "unauthenticated"
    title = "A valid bearer token is required"


class Forbidden(GatewayError):
    status = 403
    slug = "forbidden"
    title = "The credential does not allow this action"


class AgencySuspended(GatewayError):
    """The credential is an agency's, and the agency is suspended in the register (every route that
    authenticates can answer it, so it lives here with the other credential problems)."""

    status = 403
    slug = "agency-suspended"
    title = "The agency is suspended"


class NotFound(GatewayError):
    status = 404
    slug = "not-found"
    title = "No such resource"


class Conflict(GatewayError):
    status = 409
    slug = "conflict"
    title = "The request conflicts with what is already stored"


class TooManyRequests(GatewayError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class ServiceUnavailable(GatewayError):
    status = 503
    slug = "unavailable"
    title = "The gateway is not ready"


class Overloaded(ServiceUnavailable):
    """More requests than the process takes at once (``gateway.admission``); answered with Retry-After."""

    slug = "overloaded"
    title = "The gateway is overloaded; retry later"


class DatabaseUnavailable(ServiceUnavailable):
    """No database connection came free in time, or the database went away mid-request (a restart):
    nothing of the request was committed; retrying it is safe."""

    slug = "database-unavailable"
    title = "The database is unavailable or busy; retry later"


def problem_types(errors: Mapping[str, type[GatewayError]] | None = None) -> list[type[GatewayError]]:
    """All GatewayError subclasses currently defined (for the OpenAPI description and docs)."""
    seen: dict[str, type[GatewayError]] = {}
    stack: list[type[GatewayError]] = [GatewayError]
    while stack:
        cls = stack.pop()
        seen.setdefault(cls.slug, cls)
        stack.extend(cls.__subclasses__())
    if errors:
        seen.update(errors)
    return sorted(seen.values(), key=lambda c: c.slug)
