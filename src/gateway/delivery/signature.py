"""The gateway's signed push headers, under the server's name for them.

The code lives in the pure core, :mod:`gateway.envelope.push_signature` (the signed string, the headers,
signing and verification are documented there), because the agency client verifies what the server
signs and must import nothing of the server. This module keeps delivery's own imports
(``from .signature import …``) reading as before.
"""

from __future__ import annotations

from gateway.envelope.push_signature import (
    H_ATTEMPT,
    H_CONTENT,
    H_DELIVERY,
    H_DOCUMENT,
    H_KIND,
    H_RECIPIENT,
    H_REFERS_TO,
    H_SENDER,
    H_SENT_AT,
    H_SIGNATURE,
    H_TIMESTAMP,
    PREFIX,
    SIGNED_HEADERS,
    PushHeaders,
    PushSignatureError,
    format_instant,
    sign_push,
    signed_string,
    verify_push,
)

__all__ = [
    "H_ATTEMPT",
    "H_CONTENT",
    "H_DELIVERY",
    "H_DOCUMENT",
    "H_KIND",
    "H_RECIPIENT",
    "H_REFERS_TO",
    "H_SENDER",
    "H_SENT_AT",
    "H_SIGNATURE",
    "H_TIMESTAMP",
    "PREFIX",
    "SIGNED_HEADERS",
    "PushHeaders",
    "PushSignatureError",
    "format_instant",
    "sign_push",
    "signed_string",
    "verify_push",
]
