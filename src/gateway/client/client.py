"""``GatewayClient``: one agency's (or operator's) connection to a gateway, over HTTP with ``httpx``.

The client holds no global state: everything it knows (the base URL, the token, the agency's key, the
gateway certificate once fetched or pinned) lives on the instance, and every call is one or a few HTTP
requests of the contract in DESIGN.md. Verification fails closed: a receipt that does not verify, or that
records something other than what was sent, raises :class:`~gateway.client.errors.ReceiptInvalid`; a
download whose gateway signature does not verify raises
:class:`~gateway.client.errors.DeliverySignatureInvalid` and nothing of it is written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.envelope import (
    DS_NS,
    EnvelopeError,
    LargePart,
    Limits,
    Organ,
    ReceiptData,
    ResponseFor,
    StaffInfo,
    StatusSpec,
    build_status,
    message_kind,
    parse_envelope,
    read_attachments,
    read_status,
    verify_receipt,
)
from gateway.envelope.attachments import normalize_content_id
from gateway.envelope.push_signature import PushHeaders, PushSignatureError, verify_push

from .compose import DEFAULT_INLINE_LIMIT, OutgoingDocument, PreparedEnvelope, prepare_document
from .errors import (
    ClientError,
    DeliverySignatureInvalid,
    GatewayUnreachable,
    MessageInvalid,
    ProblemResponse,
    ReceiptInvalid,
    UnexpectedResponse,
    WaitTimeout,
)
from .keys import AgencyKey, agency_code_of, agency_name_of, load_certificate
from .models import (
    AckResult,
    DocumentState,
    FetchResult,
    InboxEntry,
    InboxPage,
    LedgerVerification,
    SavedFile,
    SendResult,
)
from .transfer import Progress, ReceivedPart, counted, multipart_upload, read_multipart

__all__ = ["GatewayClient", "verify_delivery"]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PROBLEM = "application/problem+json"
#: what a recipient accepts from the gateway: as large as the gateway itself accepts
_RECEIVE_LIMITS = Limits(max_envelope_bytes=64 * 1024 * 1024, max_elements=200_000, max_recipients=1000)


def _quote(value: str) -> str:
    return quote(value, safe="")


def verify_delivery(headers: Mapping[str, str], envelope: bytes, gateway_certificate: x509.Certificate, *,
                    recipient: str | None = None) -> PushHeaders:
    """Check the gateway's signature on a push delivery (or a pull download): the ``X-Gateway-*`` headers
    signed with the gateway key, the edXML bytes matching ``X-Gateway-Content-SHA256`` and, with
    ``recipient``, addressed to that agency. Returns the signed values; raises
    :class:`~gateway.client.errors.DeliverySignatureInvalid`.

    A push recipient's own HTTP endpoint calls this on every POST it gets (``envelope`` is the body, or
    the ``envelope`` part of a multipart body).
    """
    try:
        return verify_push(headers, envelope, gateway_certificate, recipient=recipient)
    except PushSignatureError as exc:
        raise DeliverySignatureInvalid(str(exc)) from None


def _retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait after a 429: the gateway's Retry-After (delta-seconds), else 2^attempt; at most 30."""
    try:
        seconds = float(value) if value is not None else float(2**attempt)
    except ValueError:
        seconds = float(2**attempt)
    return min(max(seconds, 0.0), 30.0)


def _safe_name(name: str, fallback: str) -> str:
    """A file name that stays inside the target directory whatever the sender wrote."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*')
    return cleaned[:200] or fallback


def _unique(directory: Path, name: str) -> Path:
    target = directory / name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    n = 2
    while target.exists():
        target = directory / (f"{stem} ({n}).{suffix}" if dot else f"{stem} ({n})")
        n += 1
    return target


def _signer_sha256(root: etree._Element) -> str | None:
    for el in root.iter(f"{{{DS_NS}}}X509Certificate"):
        try:
            der = base64.b64decode("".join((el.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        return hashlib.sha256(der).hexdigest()
    return None


@dataclass(frozen=True)
class _Download:
    headers: PushHeaders
    refers_to: str | None
    envelope: bytes
    parts: dict[str, ReceivedPart]


class GatewayClient:
    """A connection to one gateway, as one agency (or as an operator).

    ``token`` is the agency's (or operator's) bearer token. ``key`` signs what the agency sends; without
    it documents and statuses go unsigned (accepted only under the ``channel`` signature policy).
    ``agency`` is the sending agency's code (or its ``Organ`` block, with the name written as
    ``From/OrganName``); by default it is read from the key's certificate. ``gateway_certificate`` pins the
    gateway's certificate; without it the certificate is fetched once from ``GET /v1/gateway/certificate``
    (trust on first use: pin it in production). Files larger than ``inline_limit`` bytes travel as
    multipart parts. ``verify`` is an ``ssl.SSLContext`` for TLS (your CA bundle; with
    ``load_cert_chain`` for mutual TLS) or a bool. A 429 (rate limited) answer is retried up to
    ``rate_limit_retries`` times after its ``Retry-After``. ``transport`` lets tests plug in an ``httpx``
    transport.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        key: AgencyKey | None = None,
        agency: str | Organ | None = None,
        gateway_certificate: x509.Certificate | None = None,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        timeout: float = 60.0,
        verify: ssl.SSLContext | bool = True,
        rate_limit_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "gateway-client/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, verify=verify,
                                  transport=transport, follow_redirects=False)
        self.rate_limit_retries = rate_limit_retries
        self.key = key
        self.inline_limit = inline_limit
        self._agency = Organ(agency) if isinstance(agency, str) else agency
        self._gateway_certificate = gateway_certificate

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    # -- identity and trust ----------------------------------------------------------------------------------

    @property
    def agency(self) -> Organ:
        """The agency this client sends as (``From``)."""
        if self._agency is None:
            code = agency_code_of(self.key.certificate) if self.key is not None else None
            if code is None:
                raise ClientError("the sending agency is unknown: give its code (agency=CODE, or --agency CODE); "
                                  "no key, or its certificate names none")
            self._agency = Organ(code, agency_name_of(self.key.certificate) if self.key is not None else None)
        if self._agency.name is None:
            name = agency_name_of(self.key.certificate) if self.key is not None else None
            self._agency = Organ(self._agency.organ_id, name or self._agency.organ_id)
        return self._agency

    @property
    def agency_code(self) -> str | None:
        """The agency's code if known (given, or read from the key's certificate), else None."""
        if self._agency is not None:
            return self._agency.organ_id
        return agency_code_of(self.key.certificate) if self.key is not None else None

    def gateway_certificate(self) -> x509.Certificate:
        """The gateway's certificate: the pinned one, else ``GET /v1/gateway/certificate`` (fetched once)."""
        if self._gateway_certificate is None:
            response = self._request("GET", "/v1/gateway/certificate")
            self._gateway_certificate = load_certificate(response.content)
        return self._gateway_certificate

    @property
    def gateway_certificate_sha256(self) -> str:
        der = self.gateway_certificate().public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _raise_for(self, response: httpx.Response) -> None:
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == _PROBLEM:
            try:
                problem = response.json()
            except ValueError:
                problem = None
            if isinstance(problem, dict):
                raise ProblemResponse(response.status_code, problem, retry_after=response.headers.get("retry-after"))
        text = " ".join(response.text[:200].split()) if media.startswith(("text/", "application/json")) else media
        raise UnexpectedResponse(response.status_code, text or "an empty answer")

    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        # A streamed body cannot be sent twice; everything else here is safe to repeat (an identical
        # resubmission of an envelope or status returns the same receipt, an identical ack changes nothing).
        repeatable = not isinstance(kwargs.get("content"), Iterator)
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise GatewayUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 429 and repeatable and attempt < self.rate_limit_retries:
                attempt += 1
                time.sleep(_retry_after(response.headers.get("retry-after"), attempt))
                continue
            if response.status_code not in ok:
                self._raise_for(response)
            return response

    def _json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, ok=ok, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise UnexpectedResponse(response.status_code, "the answer is not JSON") from None
        if not isinstance(data, dict):
            raise UnexpectedResponse(response.status_code, "the answer is not a JSON object")
        return data

    # -- sending ---------------------------------------------------------------------------------------------

    def prepare_document(self, document: OutgoingDocument) -> PreparedEnvelope:
        """Build and sign the edXML for ``document`` without sending it."""
        return prepare_document(document, self.agency, self.key, inline_limit=self.inline_limit)

    def send_document(self, document: OutgoingDocument, *, progress: Progress | None = None) -> SendResult:
        """Build, sign, submit (``POST /v1/envelopes``) and verify the receipt of ``document``."""
        return self.submit(self.prepare_document(document), progress=progress)

    def submit(self, prepared: PreparedEnvelope, *, progress: Progress | None = None) -> SendResult:
        """Submit a prepared envelope: ``application/xml`` when every file is inline, else
        ``multipart/form-data``. Returns the verified receipt; an identical resubmission returns the first."""
        attempt = 0
        while True:
            # The body streams from disk, so each attempt builds it afresh.
            if prepared.large_files:
                content_type, length, chunks = multipart_upload(prepared)
            else:
                content_type, length, chunks = "application/xml", len(prepared.xml), iter((prepared.xml,))
            try:
                response = self._request(
                    "POST", "/v1/envelopes", ok=(200, 201), content=counted(chunks, length, progress),
                    headers={"Content-Type": content_type, "Content-Length": str(length)},
                )
                break
            except ProblemResponse as exc:
                if exc.status != 429 or attempt >= self.rate_limit_retries:
                    raise
                attempt += 1
                time.sleep(_retry_after(exc.retry_after, attempt))
        receipt = self.verify_receipt(response.content)
        self._check_receipt(receipt, prepared.xml, "document", prepared.recipients)
        expected = {f.content_id.removeprefix("cid:"): (f.sha256, f.size) for f in prepared.files}
        got = {a.content_id.removeprefix("cid:"): (a.sha256, a.size) for a in receipt.attachments}
        if got != expected:
            raise ReceiptInvalid("the receipt's attachments differ from the files sent")
        return SendResult(receipt, response.content, response.status_code == 201, prepared.xml)

    def verify_receipt(self, receipt_xml: bytes) -> ReceiptData:
        """Verify a receipt's signature against the gateway certificate and return what it signs."""
        try:
            return verify_receipt(receipt_xml, self.gateway_certificate())
        except EnvelopeError as exc:
            raise ReceiptInvalid(f"the receipt does not verify: {exc.slug}") from None

    def _check_receipt(self, receipt: ReceiptData, sent: bytes, kind: str, recipients: tuple[str, ...] | None) -> None:
        if receipt.envelope_sha256 != hashlib.sha256(sent).hexdigest():
            raise ReceiptInvalid("the receipt is for other bytes than those sent")
        if receipt.kind != kind:
            raise ReceiptInvalid(f"the receipt is for a {receipt.kind}, not a {kind}")
        if self.agency_code is not None and receipt.sender != self.agency_code:
            raise ReceiptInvalid("the receipt names another sender")
        if recipients is not None and sorted(receipt.recipients) != sorted(recipients):
            raise ReceiptInvalid("the receipt names other recipients than those addressed")

    def resolve_document(self, document: str) -> DocumentState:
        """A document by its gateway id, or by its edXML DocumentId (which must name exactly one)."""
        if _UUID.match(document):
            return self.document(document)
        found = [d for d in self.find_documents(document) if d.kind == "document"]
        if len(found) != 1:
            raise ClientError(f"no single document with DocumentId {document!r} is visible to this agency")
        return found[0]

    def send_status(self, document: str, code: str, description: str | None = None, *,
                    staff: StaffInfo | None = None, timestamp: datetime | None = None) -> SendResult:
        """Report a status (EDXML.md codes: 02 refused … 06 done, 15/16 answers to a recall) about a
        document this agency received, by its gateway id or its edXML DocumentId (``POST /v1/statuses``)."""
        original = self.resolve_document(document)
        xml = build_status(StatusSpec(
            response_for=ResponseFor(organ_id=original.sender, document_id=original.document_id,
                                     code=original.code, promulgation_date=original.promulgation_date),
            sender=self.agency, status_code=code, description=description, staff=staff, timestamp=timestamp,
        ))
        signed = self.key.sign(xml) if self.key is not None else xml
        response = self._request("POST", "/v1/statuses", ok=(200, 201), content=signed,
                                 headers={"Content-Type": "application/xml"})
        receipt = self.verify_receipt(response.content)
        self._check_receipt(receipt, signed, "status", None)
        return SendResult(receipt, response.content, response.status_code == 201, signed)

    def recall(self, document: str, reason: str) -> SendResult:
        """Ask the recipients of a document this agency sent to give it back (status 13, thu hồi); they
        answer 15 (accept) or 16 (refuse). The original is never altered (Điều 12.8)."""
        return self.send_status(document, "13", reason)

    # -- tracking --------------------------------------------------------------------------------------------

    def document(self, id: str) -> DocumentState:
        """``GET /v1/documents/{id}``: sent instant, and per recipient the state, received instant and
        latest status."""
        return DocumentState.from_json(self._json("GET", f"/v1/documents/{_quote(id)}"))

    def find_documents(self, document_id: str) -> list[DocumentState]:
        """``GET /v1/documents?document_id=``: everything visible to the caller under that DocumentId."""
        data = self._json("GET", "/v1/documents", params={"document_id": document_id})
        items = data.get("items")
        if not isinstance(items, list):
            raise UnexpectedResponse(200, "the document list lacks its items")
        return [DocumentState.from_json(i) for i in items]

    def wait_for(self, id: str, condition: Callable[[DocumentState], bool], *, timeout: float = 60.0,
                 interval: float = 0.5) -> DocumentState:
        """Poll the document until ``condition`` holds; :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.document(id)
            if condition(state):
                return state
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"document {id}: the condition did not hold within {timeout:g} s")
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def wait_until_received(self, id: str, *, timeout: float = 60.0, interval: float = 0.5) -> DocumentState:
        """Poll until every recipient's received instant is fixed."""
        return self.wait_for(id, lambda d: d.all_received, timeout=timeout, interval=interval)

    # -- receiving (pull) ------------------------------------------------------------------------------------

    def inbox_page(self, cursor: str | None = None, limit: int = 100) -> InboxPage:
        """One page of ``GET /v1/inbox``: most urgent first, then oldest."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        data = self._json("GET", "/v1/inbox", params=params)
        items = data.get("items")
        if not isinstance(items, list):
            raise UnexpectedResponse(200, "the inbox lacks its items")
        nxt = data.get("next")
        return InboxPage(tuple(InboxEntry.from_json(i) for i in items), nxt if isinstance(nxt, str) else None)

    def iter_inbox(self, page_size: int = 100) -> Iterator[InboxEntry]:
        """Every waiting item, page after page."""
        cursor: str | None = None
        while True:
            page = self.inbox_page(cursor, page_size)
            yield from page.items
            if page.next is None or not page.items:
                return
            cursor = page.next

    def inbox(self, page_size: int = 100) -> list[InboxEntry]:
        """Every waiting item (all pages)."""
        return list(self.iter_inbox(page_size))

    def _download(self, delivery_id: str, spool: Path | None, progress: Progress | None) -> _Download:
        path = f"/v1/inbox/{_quote(delivery_id)}"
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise_for(response)
                media = response.headers.get("content-type", "")
                total = int(response.headers.get("content-length") or 0)
                chunks = counted(response.iter_bytes(), total, progress)
                parts: dict[str, ReceivedPart] = {}
                if media.split(";", 1)[0].strip().lower() == "multipart/form-data":
                    if spool is None:
                        raise ClientError("this delivery carries large attachments: fetch it into a directory")
                    envelope, parts = read_multipart(chunks, media, spool,
                                                     max_envelope_bytes=_RECEIVE_LIMITS.max_envelope_bytes)
                else:
                    body = bytearray()
                    for chunk in chunks:
                        body += chunk
                        if len(body) > _RECEIVE_LIMITS.max_envelope_bytes:
                            raise MessageInvalid("the delivery is larger than any envelope may be")
                    envelope = bytes(body)
                headers = dict(response.headers)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        try:
            signed = verify_delivery(headers, envelope, self.gateway_certificate(), recipient=self.agency_code)
        except DeliverySignatureInvalid:
            for part in parts.values():
                part.path.unlink(missing_ok=True)
            raise
        return _Download(signed, headers.get("x-gateway-refers-to"), envelope, parts)

    def download(self, delivery_id: str, *, progress: Progress | None = None) -> bytes:
        """``GET /v1/inbox/{delivery_id}``: the original edXML bytes, after checking the gateway's signature
        on them. A delivery with large attachments needs :meth:`fetch` (its parts go to disk)."""
        return self._download(delivery_id, None, progress).envelope

    def fetch(self, delivery_id: str, directory: Path, *, progress: Progress | None = None,
              extract: bool = True) -> FetchResult:
        """Download a delivery into ``directory``: ``<gateway id>.edxml`` (the original bytes, unchanged),
        ``<gateway id>.delivery.json`` (the gateway's signed delivery headers), and each attachment under
        its own name (made safe; never outside ``directory``), checked against the signed digests.

        The first download moves the delivery to ``fetched``; :meth:`ack` fixes the received instant.
        """
        directory.mkdir(parents=True, exist_ok=True)
        got = self._download(delivery_id, directory, progress)
        try:
            return self._write_out(delivery_id, got, directory, extract)
        finally:
            for part in got.parts.values():
                part.path.unlink(missing_ok=True)

    def _write_out(self, delivery_id: str, got: _Download, directory: Path, extract: bool) -> FetchResult:
        h = got.headers
        try:
            root = parse_envelope(got.envelope, _RECEIVE_LIMITS)
            kind = message_kind(root)
            status = read_status(root, limits=_RECEIVE_LIMITS) if kind == "status" else None
            infos = read_attachments(
                root, limits=_RECEIVE_LIMITS,
                large_parts={cid: LargePart(p.sha256, p.size, p.head) for cid, p in got.parts.items()},
            ) if kind == "document" else ()
        except EnvelopeError as exc:
            raise MessageInvalid(f"the delivered message cannot be read: {exc.slug}: {exc}") from None
        stem = _safe_name(h.document_id, "message")
        envelope_path = _unique(directory, f"{stem}.edxml")
        envelope_path.write_bytes(got.envelope)
        meta = {"delivery_id": h.delivery_id, "document": h.document_id, "kind": h.kind, "sender": h.sender,
                "recipient": h.recipient, "sent_at": h.sent_at, "content_sha256": h.content_sha256,
                "refers_to": got.refers_to, "verified_with_gateway_certificate": self.gateway_certificate_sha256}
        _unique(directory, f"{stem}.delivery.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2),
                                                               encoding="utf-8")
        files: list[SavedFile] = []
        for index, info in enumerate(infos if extract else (), start=1):
            target = _unique(directory, _safe_name(info.name, f"attachment-{index}"))
            if info.data is not None:
                target.write_bytes(info.data)
            else:
                part = got.parts[normalize_content_id(info.content_id)]
                os.replace(part.path, target)
            files.append(SavedFile(info.content_id, info.name, target, info.sha256, info.size, info.content_type,
                                   info.kind))
        return FetchResult(
            delivery_id=delivery_id, document=h.document_id, kind=h.kind, sender=h.sender, recipient=h.recipient,
            sent_at=datetime.fromisoformat(h.sent_at), refers_to=got.refers_to, envelope=got.envelope,
            envelope_path=envelope_path, files=tuple(files),
            status_code=status.status_code if status else None, description=status.description if status else None,
            signer_certificate_sha256=_signer_sha256(root),
        )

    def read_message(self, delivery_id: str) -> FetchResult:
        """Download a delivery without writing anything (a status, or a document with inline files only):
        its envelope, and for a status its code and description."""
        got = self._download(delivery_id, None, None)
        try:
            root = parse_envelope(got.envelope, _RECEIVE_LIMITS)
            status = read_status(root, limits=_RECEIVE_LIMITS) if message_kind(root) == "status" else None
        except EnvelopeError as exc:
            raise MessageInvalid(f"the delivered message cannot be read: {exc.slug}: {exc}") from None
        h = got.headers
        return FetchResult(
            delivery_id=delivery_id, document=h.document_id, kind=h.kind, sender=h.sender, recipient=h.recipient,
            sent_at=datetime.fromisoformat(h.sent_at), refers_to=got.refers_to, envelope=got.envelope,
            envelope_path=None, files=(), status_code=status.status_code if status else None,
            description=status.description if status else None, signer_certificate_sha256=_signer_sha256(root),
        )

    def ack(self, delivery_id: str, result: Literal["done", "fail"] = "done", reason: str | None = None) -> AckResult:
        """``POST /v1/inbox/{delivery_id}/ack``: ``done`` fixes the received instant (Điều 11.2) and sends
        the sender the status 01; ``fail`` (with a ``reason``) says the agency's system could not take it.
        Repeating the same acknowledgement is harmless."""
        body: dict[str, str] = {"result": result}
        if reason is not None:
            body["reason"] = reason
        return AckResult.from_json(self._json("POST", f"/v1/inbox/{_quote(delivery_id)}/ack", json=body))

    # -- operator calls (an operator token) ------------------------------------------------------------------

    def register_agency(self, code: str, name: str, *, push: str | None = None, parent: str | None = None,
                        policy: Literal["required", "channel"] = "required") -> dict[str, Any]:
        """``POST /v1/agencies`` (admin): push delivery to the endpoint ``push``, else pull."""
        delivery: dict[str, str] = {"mode": "push", "endpoint": push} if push else {"mode": "pull"}
        body = {"code": code, "name": name, "parent_code": parent, "delivery": delivery, "signature_policy": policy}
        return self._json("POST", "/v1/agencies", ok=(201,), json=body)

    def add_certificate(self, code: str, certificate: x509.Certificate | str) -> dict[str, Any]:
        """``POST /v1/agencies/{code}/certificates`` (admin)."""
        pem = certificate if isinstance(certificate, str) else certificate.public_bytes(
            serialization.Encoding.PEM).decode("ascii")
        return self._json("POST", f"/v1/agencies/{_quote(code)}/certificates", ok=(201,), json={"pem": pem})

    def issue_token(self, code: str) -> str:
        """``POST /v1/agencies/{code}/tokens`` (admin): the new token (shown once)."""
        data = self._json("POST", f"/v1/agencies/{_quote(code)}/tokens", ok=(201,))
        token = data.get("token")
        if not isinstance(token, str):
            raise UnexpectedResponse(201, "the answer lacks the token")
        return token

    def verify_ledger(self) -> LedgerVerification:
        """``GET /v1/ledger/verify`` (operator): recompute the hash chain and check the signed checkpoints."""
        return LedgerVerification.from_json(self._json("GET", "/v1/ledger/verify"))

    def ready(self) -> bool:
        """``GET /readyz``: the gateway answers and its database is migrated."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False
