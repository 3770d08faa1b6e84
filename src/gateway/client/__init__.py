"""The Python client for agencies' systems: build, sign, send and receive edXML through the gateway.

An agency's QLVB system uses it to:

- build an edXML document from metadata and files (:class:`OutgoingDocument`, :class:`Attachment`):
  small files inline (base64 of a ZIP, the standard encoding), files above ``inline_limit`` as multipart
  parts declared by SHA-256 and size (the gateway's profile);
- sign it with the agency's key (:class:`AgencyKey`: PEM or PKCS#12);
- submit it and verify the gateway's signed receipt against the gateway certificate (pinned, or fetched
  from ``GET /v1/gateway/certificate``), and that the receipt records what was sent;
- follow the document (:meth:`GatewayClient.document`, :meth:`GatewayClient.wait_until_received`);
- read its pull inbox, download (checking the gateway's signature on each download), acknowledge;
- send statuses (:meth:`GatewayClient.send_status`) and recalls (:meth:`GatewayClient.recall`);
- check a push delivery it received on its own endpoint (:func:`verify_delivery`).

Example::

    from pathlib import Path
    from gateway.client import AgencyKey, Attachment, GatewayClient, OutgoingDocument

    key = AgencyKey.load(Path("g22.key.pem"), Path("g22.cert.pem"))
    with GatewayClient("http://127.0.0.1:8080", token, key=key, agency="000.00.00.G22") as gw:
        sent = gw.send_document(OutgoingDocument(
            to=["000.00.00.H41"], type_name="Công văn", code_number="12", code_notation="VPCP-TTĐT",
            subject="Về việc triển khai liên thông văn bản", files=[Attachment.from_path("cong-van.pdf")],
        ))
        print(sent.receipt.sent_at_local, sent.receipt.ledger_sequence)   # verified before it is returned
        state = gw.wait_until_received(sent.document, timeout=60)

Nothing is global: two clients for two agencies live side by side. Every failure is a
:class:`ClientError` (the tree is drawn in :mod:`gateway.client.errors`).
"""

from __future__ import annotations

from gateway.envelope import Organ, ReceiptAttachment, ReceiptData, SignerInfo, StaffInfo

from .client import GatewayClient, verify_delivery
from .compose import DEFAULT_INLINE_LIMIT, Attachment, OutgoingDocument, PreparedEnvelope, PreparedFile
from .errors import (
    ClientError,
    DeliverySignatureInvalid,
    GatewayUnreachable,
    KeyLoadError,
    MessageInvalid,
    ProblemResponse,
    ReceiptInvalid,
    UnexpectedResponse,
    WaitTimeout,
)
from .keys import TEST_ONLY, AgencyKey, agency_code_of, agency_name_of, generate_test_key, load_certificate
from .models import (
    AckResult,
    DocumentState,
    FetchResult,
    InboxEntry,
    InboxPage,
    LedgerVerification,
    RecipientState,
    SavedFile,
    SendResult,
)
from .transfer import Progress

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "TEST_ONLY",
    "AckResult",
    "AgencyKey",
    "Attachment",
    "ClientError",
    "DeliverySignatureInvalid",
    "DocumentState",
    "FetchResult",
    "GatewayClient",
    "GatewayUnreachable",
    "InboxEntry",
    "InboxPage",
    "KeyLoadError",
    "LedgerVerification",
    "MessageInvalid",
    "Organ",
    "OutgoingDocument",
    "PreparedEnvelope",
    "PreparedFile",
    "ProblemResponse",
    "Progress",
    "ReceiptAttachment",
    "ReceiptData",
    "ReceiptInvalid",
    "RecipientState",
    "SavedFile",
    "SendResult",
    "SignerInfo",
    "StaffInfo",
    "UnexpectedResponse",
    "WaitTimeout",
    "agency_code_of",
    "agency_name_of",
    "generate_test_key",
    "load_certificate",
    "verify_delivery",
]
