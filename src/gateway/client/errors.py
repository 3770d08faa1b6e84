"""Every failure the client library raises, as one small tree of types (no bare ``httpx`` or ``lxml``
errors escape a public call).

The tree::

    ClientError
    ├── GatewayUnreachable          the connection failed or timed out (the request may not have arrived)
    ├── ProblemResponse             the gateway refused: an RFC 9457 problem (status, type, slug, detail)
    ├── UnexpectedResponse          an answer that is neither the expected success nor a problem document
    ├── ReceiptInvalid              the receipt's signature does not verify, or it does not match what was sent
    ├── DeliverySignatureInvalid    a download's X-Gateway-* signature does not verify, or names another party
    ├── MessageInvalid              a downloaded message cannot be read (malformed edXML, bad attachment)
    ├── KeyLoadError                the agency's key or certificate cannot be read, or they do not match
    └── WaitTimeout                 a ``wait_*`` call gave up before its condition held
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ClientError",
    "DeliverySignatureInvalid",
    "GatewayUnreachable",
    "KeyLoadError",
    "MessageInvalid",
    "ProblemResponse",
    "ReceiptInvalid",
    "UnexpectedResponse",
    "WaitTimeout",
]

_PROBLEM_PREFIX = "urn:gateway:problem:"


class ClientError(Exception):
    """Base of every error the client library raises."""


class GatewayUnreachable(ClientError):
    """The gateway could not be reached, or did not answer in time."""


class ProblemResponse(ClientError):
    """The gateway answered with an ``application/problem+json`` document (RFC 9457).

    ``slug`` is the stable last part of ``type`` (``urn:gateway:problem:<slug>``): switch on it, never on
    ``title`` or ``detail``, which are for people.
    """

    def __init__(self, status: int, problem: Mapping[str, Any], *, retry_after: str | None = None) -> None:
        self.status = status
        #: the answer's Retry-After header (429, 503), as sent
        self.retry_after = retry_after
        self.problem: dict[str, Any] = dict(problem)
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or "")
        self.detail: str | None = str(problem["detail"]) if problem.get("detail") is not None else None
        text = f"{status} {self.slug}: {self.title}"
        if self.detail and self.detail != self.title:
            text += f" ({self.detail})"
        super().__init__(text)

    @property
    def slug(self) -> str:
        return self.type.removeprefix(_PROBLEM_PREFIX)


class UnexpectedResponse(ClientError):
    """An answer the client does not know how to read (wrong status, not a problem document, bad JSON)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class ReceiptInvalid(ClientError):
    """The receipt does not verify against the gateway certificate, or it records something other than
    what this client sent (digest, sender, recipients, attachments)."""


class DeliverySignatureInvalid(ClientError):
    """A downloaded delivery's gateway signature (``X-Gateway-Signature``) does not verify."""


class MessageInvalid(ClientError):
    """A downloaded edXML message or one of its attachments cannot be read."""


class KeyLoadError(ClientError):
    """The agency's signing key or certificate cannot be loaded, or the key does not match the certificate."""


class WaitTimeout(ClientError):
    """A polling call reached its time limit before its condition held."""
