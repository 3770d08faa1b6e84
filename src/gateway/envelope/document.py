"""Reading document and status metadata from an edXML tree.

Callers pass the *signed* tree returned by :func:`gateway.envelope.signature.verify_signature` (or, under
the ``channel`` policy, the parsed tree of an unsigned envelope): nothing here looks at anything else.
Text is NFC-normalised, stripped and length-checked against EDXML.md; codes are checked against their
code lists; dates are read leniently and returned as :class:`datetime.date` / aware datetimes.

Checks, in the order they run for a document: sender, recipients (count → TooManyRecipients, pattern or
alias → RecipientIdMalformed, duplicates of the resolved codes → RecipientDuplicate), code, promulgation
(date not in the future), document type, subject and content, priority, steering type, secrecy
(→ SecrecyForbidden), trace headers, Bussiness (BussinessDocType, Paper), ResponseFor, DocumentId, the
manifest.

Strict on what identifies and protects, tolerant on metadata quirks that real software writes. Each
tolerance is recorded as a :class:`~gateway.envelope.deviations.Deviation` (``DocumentMeta.deviations``,
``StatusMeta.deviations``), never a reason to refuse:

- ``From/OrganId`` or a ``To/OrganId`` written as an alias of a registered agency (the caller's ``aliases``
  map, alias → primary code) → ``addressed-by-alias``; the primary code is used (``sender_id``,
  ``recipient_ids``) while ``sender`` and ``recipients`` keep the blocks as written. A ``To`` that is neither
  a code of the strict pattern nor a known alias is still refused (recipient-id-malformed). A ``To``
  resolving to the sender itself → ``sent-to-self``.
- ``From`` without ``OrganName`` → ``from-without-organ-name`` (``Organ.name`` None);
- an empty ``ResponseFor`` in a document → ``response-for-empty`` (dropped);
- ``DocumentType`` without ``TypeDetail`` → ``type-detail-missing``;
- a ``TraceHeader`` without ``OrganId`` → ``trace-header-without-organ-id``;
- an ``OrganId`` outside the pattern in a ``TraceHeader`` or ``ResponseFor`` (``01.02.G22``, ``null`` ...)
  → ``organ-id-nonstandard`` (kept as written);
- ``Bussiness`` written before a ``TraceHeader`` → ``bussiness-before-trace-header``;
- ``MessageHeader/DocumentId`` and ``Bussiness/DocumentId`` are kept as written and classified: a UUID
  → ``document-id-uuid``; the standard form with a date that does not exist (2014/02/30)
  → ``document-id-date-impossible``; anything else but the standard form → ``document-id-nonstandard``.

A status message must still let the gateway find its document: ``ResponseFor/DocumentId``, or ``Code``,
``PromulgationDate`` and ``OrganId`` to derive it; otherwise it is schema-invalid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Literal

from lxml import etree

from ._record import DeviationLog
from ._values import (
    VN_TZ,
    clean_text,
    code,
    integer,
    parse_date,
    parse_datetime,
    required_text,
)
from ._xml import PROFILE_NS, child, children, elements, header, local_name, message_header, require
from .deviations import Deviation
from .errors import (
    CodeListInvalid,
    DateInvalid,
    RecipientDuplicate,
    RecipientIdMalformed,
    SchemaInvalid,
    SecrecyForbidden,
    SenderMismatch,
    TooManyRecipients,
)
from .limits import Limits
from .model import (
    ManifestEntry,
    Organ,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    TraceHeader,
    derive_document_id,
)

__all__ = [
    "BUSINESS_DOC_TYPES",
    "ORGAN_ID_PATTERN",
    "PRIORITIES",
    "STATUS_CODES",
    "DocumentMeta",
    "MessageKind",
    "StatusMeta",
    "check_sender",
    "message_kind",
    "peek_sender",
    "read_document",
    "read_status",
]

DEFAULT_LIMITS = Limits()

#: The mã định danh (OrganId) of QĐ 20, ``LLL.KK.JJ.Xnn``: the one definition of an agency code's form (the
#: register and the ledger's filter check codes with it too).
ORGAN_ID_PATTERN = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
#: 0 Thường, 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc, 4 Hỏa tốc hẹn giờ
PRIORITIES = frozenset(range(5))
#: 0 new, 1 recall (thu hồi), 2 update (cập nhật), 3 replace (thay thế)
BUSINESS_DOC_TYPES = frozenset(range(4))
#: 0 not a directive, 1 directive, 2 report on a directive
STEERING_TYPES = frozenset(range(3))
DOCUMENT_TYPES = frozenset({1, 2})
#: EDXML.md "Status message"; 07-12 and 14 appear in no known source and are refused.
STATUS_CODES = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})
#: Values of the profile secrecy marker meaning "normal"; everything else is refused.
_SECRECY_NORMAL = frozenset({"0", "normal", "thường", "thuong"})
#: ``{OrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}`` (EDXML.md), the OrganId checked separately
_DOCUMENT_ID = re.compile(r"([^,\s]+),(\d{4})/(\d{2})/(\d{2}),([^,/]*)/([^,]+)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

MessageKind = Literal["document", "status"]

# Lengths from EDXML.md; fields it gives none for use Limits.max_text_chars.
_LEN = {
    "CodeNumber": 11,
    "CodeNotation": 30,
    "Place": 50,
    "TypeName": 100,
    "Subject": 500,
    "Content": 500,
    "DocumentId": 200,
    "OrganId": 50,
}


@dataclass(frozen=True)
class DocumentMeta:
    #: as written (never altered, whatever its form), else derived from the sender's OrganId as written
    document_id: str
    document_id_derived: bool
    sender: Organ
    recipients: tuple[Organ, ...]
    code_number: str
    code_notation: str
    promulgation_place: str
    promulgation_date: date
    document_type: int
    type_detail: int | None
    type_name: str
    subject: str
    content: str | None
    signer: SignerInfo | None
    due_date: date | None
    to_places: tuple[str, ...]
    priority: int
    steering_type: int | None
    business_doc_type: int
    business_doc_reason: str | None
    business_document_id: str | None
    paper: bool
    response_for: tuple[ResponseFor, ...]
    trace_headers: tuple[TraceHeader, ...]
    attachments: tuple[ManifestEntry, ...]
    #: the primary code of each ``To`` in order (an alias resolved), as intake looks them up in the register
    recipient_ids: tuple[str, ...]
    #: the primary code of ``From`` (an alias resolved)
    sender_id: str
    #: the secrecy marker was present (and said "normal")
    secrecy_marked: bool = False
    #: the quirks of the header's content this reader tolerated, in document order (Envelope.deviations
    #: also holds the structural and attachment ones)
    deviations: tuple[Deviation, ...] = ()


@dataclass(frozen=True)
class StatusMeta:
    sender: Organ
    response_for: ResponseFor
    #: DocumentId of the document the status is about (written, else derived from ResponseFor)
    document_id: str
    status_code: str
    description: str | None
    timestamp: datetime
    staff: StaffInfo | None
    trace_headers: tuple[TraceHeader, ...]
    #: the primary code of ``From`` (an alias resolved)
    sender_id: str
    #: the quirks of the header's content this reader tolerated, in document order (Envelope.deviations
    #: also holds the structural and attachment ones)
    deviations: tuple[Deviation, ...] = ()


def _t(parent: etree._Element | None, local: str) -> str | None:
    if parent is None:
        return None
    el = child(parent, local)
    return el.text if el is not None else None


def _limit(name: str, limits: Limits) -> int:
    return _LEN.get(name, limits.max_text_chars)


def _organ(el: etree._Element, where: str, limits: Limits) -> Organ:
    def opt(local: str) -> str | None:
        return clean_text(_t(el, local), f"{where}/{local}", max_chars=limits.max_text_chars)

    organ_id = required_text(_t(el, "OrganId"), f"{where}/OrganId", max_chars=_LEN["OrganId"])
    return Organ(
        organ_id=organ_id,
        name=opt("OrganName"),
        organization_in_charge=opt("OrganizationInCharge"),
        address=opt("OrganAdd"),
        email=opt("Email"),
        telephone=opt("Telephone"),
        fax=opt("Fax"),
        website=opt("Website"),
    )


def message_kind(root: etree._Element) -> MessageKind:
    """A status message has a ``Status`` header or a ``StatusCode``; everything else is a document."""
    mh = message_header(root)
    if local_name(mh) == "Status" or child(mh, "StatusCode") is not None:
        return "status"
    return "document"


def peek_sender(root: etree._Element) -> str | None:
    """``From/OrganId`` as written, from any tree. Used only to refuse early, never as trusted data."""
    try:
        value = _t(child(message_header(root), "From"), "OrganId")
    except SchemaInvalid:
        return None
    return value.strip() if value else None


def _resolve_sender(written: str, aliases: Mapping[str, str] | None) -> str:
    return aliases.get(written, written) if aliases else written


def check_sender(root: etree._Element, organ_id: str, aliases: Mapping[str, str] | None = None) -> None:
    """Raise SenderMismatch unless ``From/OrganId`` is the authenticated agency's code or one of its aliases.

    ``aliases`` maps every alias in the register to its agency's primary code.
    """
    written = peek_sender(root)
    if written is None or (written != organ_id and _resolve_sender(written, aliases) != organ_id):
        raise SenderMismatch("From/OrganId is not the authenticated agency")


def _sender(mh: etree._Element, limits: Limits, aliases: Mapping[str, str] | None, log: DeviationLog) -> Organ:
    from_el = require(mh, "From")
    sender = _organ(from_el, "From", limits)
    if sender.name is None:
        log.add("from-without-organ-name", "From", from_el)
    if _resolve_sender(sender.organ_id, aliases) != sender.organ_id:
        log.add("addressed-by-alias", "From/OrganId", child(from_el, "OrganId"))
    return sender


def _organ_id_pattern(el: etree._Element, field: str, where: str, log: DeviationLog) -> str | None:
    """An OrganId of a TraceHeader or ResponseFor: as written, None if absent; recorded if nonstandard."""
    organ_el = child(el, "OrganId")
    value = clean_text(organ_el.text if organ_el is not None else None, field, max_chars=_LEN["OrganId"])
    if value is not None and ORGAN_ID_PATTERN.fullmatch(value) is None:
        log.add("organ-id-nonstandard", where, organ_el)
    return value


def _classify_document_id(value: str | None, where: str, el: etree._Element | None, log: DeviationLog) -> None:
    """Record a DocumentId that is not ``{OrganId},{yyyy/MM/dd},{number}/{notation}`` with a real date."""
    if value is None:
        return
    if _UUID.fullmatch(value) is not None:
        log.add("document-id-uuid", where, el)
        return
    m = _DOCUMENT_ID.fullmatch(value)
    if m is None or ORGAN_ID_PATTERN.fullmatch(m.group(1)) is None:
        log.add("document-id-nonstandard", where, el)
        return
    try:
        date(int(m.group(2)), int(m.group(3)), int(m.group(4)))
    except ValueError:
        log.add("document-id-date-impossible", where, el)


def _trace_headers(root: etree._Element, log: DeviationLog) -> tuple[tuple[TraceHeader, ...], etree._Element | None]:
    trace_list = child(header(root), "TraceHeaderList")
    if trace_list is None:
        return (), None
    traces: list[TraceHeader] = []
    for index, t in enumerate(children(trace_list, "TraceHeader"), start=1):
        where = f"TraceHeaderList/TraceHeader[{index}]"
        organ_id = _organ_id_pattern(t, "TraceHeader/OrganId", f"{where}/OrganId", log)
        if organ_id is None:
            log.add("trace-header-without-organ-id", where, t)
        timestamp = parse_datetime(_t(t, "Timestamp"), "TraceHeader/Timestamp")
        traces.append(TraceHeader(organ_id=organ_id, timestamp=timestamp))
    business = child(trace_list, "Bussiness")
    if business is not None:
        # EDXML.md lists TraceHeader* first: Bussiness after them is the standard order.
        names = [local_name(el) for el in elements(trace_list)]
        if "TraceHeader" in names[names.index("Bussiness") + 1 :]:
            log.add("bussiness-before-trace-header", "TraceHeaderList/Bussiness", business)
    return tuple(traces), business


def _is_empty(el: etree._Element) -> bool:
    return all(not (c.text or "").strip() and not len(c) for c in elements(el))


def _response_for(el: etree._Element, where: str, log: DeviationLog) -> ResponseFor:
    raw_date = _t(el, "PromulgationDate")
    return ResponseFor(
        organ_id=_organ_id_pattern(el, "ResponseFor/OrganId", f"{where}/OrganId", log),
        document_id=clean_text(_t(el, "DocumentId"), "ResponseFor/DocumentId", max_chars=_LEN["DocumentId"]),
        code=clean_text(_t(el, "Code"), "ResponseFor/Code", max_chars=_LEN["CodeNumber"] + _LEN["CodeNotation"] + 1),
        promulgation_date=parse_date(raw_date, "ResponseFor/PromulgationDate")
        if raw_date and raw_date.strip()
        else None,
    )


def _today(now: datetime | None) -> date:
    return (now or datetime.now(UTC)).astimezone(VN_TZ).date()


def read_document(
    root: etree._Element,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
    aliases: Mapping[str, str] | None = None,
) -> DocumentMeta:
    """Document metadata from a (signed) tree. ``now`` (aware) bounds the promulgation date; ``aliases`` maps
    every alias in the register to its agency's primary code. Tolerated quirks are in ``deviations``."""
    log = DeviationLog()
    meta = _read_document(root, limits=limits, now=now, aliases=aliases, log=log)
    return replace(meta, deviations=log.ordered(root))


def _read_document(
    root: etree._Element,
    *,
    limits: Limits,
    now: datetime | None,
    aliases: Mapping[str, str] | None,
    log: DeviationLog,
) -> DocumentMeta:
    if message_kind(root) != "document":
        raise SchemaInvalid("the envelope is a status message, not a document")
    mh = message_header(root)

    sender = _sender(mh, limits, aliases, log)
    sender_id = _resolve_sender(sender.organ_id, aliases)

    to_elements = children(mh, "To")
    if not to_elements:
        raise SchemaInvalid("a document needs at least one To")
    if len(to_elements) > limits.max_recipients:
        raise TooManyRecipients(f"more than {limits.max_recipients} recipients")
    recipients: list[Organ] = []
    recipient_ids: list[str] = []
    for index, to in enumerate(to_elements, start=1):
        organ = _organ(to, "To", limits)
        where = f"To[{index}]/OrganId"
        organ_el = child(to, "OrganId")
        # An alias first: it may have the code's form (an agency's former code) and never equals a code.
        if aliases and organ.organ_id in aliases:
            resolved = aliases[organ.organ_id]
            log.add("addressed-by-alias", where, organ_el)
        elif ORGAN_ID_PATTERN.fullmatch(organ.organ_id) is not None:
            resolved = organ.organ_id
        else:
            raise RecipientIdMalformed(
                f"To number {index}: OrganId does not match the pattern LLL.KK.JJ.Xnn", index=index
            )
        if resolved in recipient_ids:
            raise RecipientDuplicate(f"To number {index} repeats a recipient OrganId", index=index)
        if resolved == sender_id:
            log.add("sent-to-self", where, organ_el)
        recipient_ids.append(resolved)
        recipients.append(organ)

    code_el = require(mh, "Code")
    code_number = clean_text(_t(code_el, "CodeNumber"), "Code/CodeNumber", max_chars=_LEN["CodeNumber"]) or ""
    code_notation = required_text(_t(code_el, "CodeNotation"), "Code/CodeNotation", max_chars=_LEN["CodeNotation"])

    prom = require(mh, "PromulgationInfo")
    place = required_text(_t(prom, "Place"), "PromulgationInfo/Place", max_chars=_LEN["Place"])
    promulgation_date = parse_date(_t(prom, "PromulgationDate"), "PromulgationInfo/PromulgationDate")
    if promulgation_date > _today(now):
        raise DateInvalid("PromulgationInfo/PromulgationDate lies in the future", field="PromulgationDate")

    dtype = require(mh, "DocumentType")
    document_type = code(_t(dtype, "Type"), "DocumentType/Type", DOCUMENT_TYPES)
    raw_detail = _t(dtype, "TypeDetail")
    type_detail = integer(raw_detail, "DocumentType/TypeDetail") if raw_detail and raw_detail.strip() else None
    if type_detail is None:
        log.add("type-detail-missing", "DocumentType", dtype)
    type_name = required_text(_t(dtype, "TypeName"), "DocumentType/TypeName", max_chars=_LEN["TypeName"])

    subject = required_text(_t(mh, "Subject"), "Subject", max_chars=_LEN["Subject"])
    content = clean_text(_t(mh, "Content"), "Content", max_chars=_LEN["Content"])

    signer_el = child(mh, "SignerInfo")
    signer = None
    if signer_el is not None:
        signer = SignerInfo(
            competence=clean_text(
                _t(signer_el, "Competence"), "SignerInfo/Competence", max_chars=limits.max_text_chars
            ),
            position=clean_text(_t(signer_el, "Position"), "SignerInfo/Position", max_chars=limits.max_text_chars),
            full_name=clean_text(_t(signer_el, "FullName"), "SignerInfo/FullName", max_chars=limits.max_text_chars),
        )
    raw_due = _t(mh, "DueDate")
    due_date = parse_date(raw_due, "DueDate") if raw_due and raw_due.strip() else None

    places_el = child(mh, "ToPlaces")
    to_places: tuple[str, ...] = ()
    if places_el is not None:
        to_places = tuple(
            p
            for p in (
                clean_text(el.text, "ToPlaces/Place", max_chars=limits.max_text_chars)
                for el in children(places_el, "Place")
            )
            if p is not None
        )

    other = child(mh, "OtherInfo")
    raw_priority = _t(other, "Priority")
    priority = code(raw_priority, "OtherInfo/Priority", PRIORITIES) if raw_priority and raw_priority.strip() else 0
    raw_steering = _t(mh, "SteeringType")
    steering_type = (
        code(raw_steering, "SteeringType", STEERING_TYPES) if raw_steering and raw_steering.strip() else None
    )

    secrecy_el = child(mh, "Secrecy", PROFILE_NS)
    if secrecy_el is not None:
        value = clean_text(secrecy_el.text, "Secrecy", max_chars=limits.max_text_chars)
        if value is None or value.casefold() not in _SECRECY_NORMAL:
            raise SecrecyForbidden("the document is marked classified; classified documents must not travel")

    traces, business = _trace_headers(root, log)
    business_doc_type = 0
    business_reason = None
    business_document_id = None
    paper = False
    if business is not None:
        raw_bdt = _t(business, "BussinessDocType")
        if raw_bdt is not None and raw_bdt.strip():
            business_doc_type = code(raw_bdt, "Bussiness/BussinessDocType", BUSINESS_DOC_TYPES)
        business_reason = clean_text(
            _t(business, "BussinessDocReason"), "Bussiness/BussinessDocReason", max_chars=limits.max_text_chars
        )
        business_document_id = clean_text(
            _t(business, "DocumentId"), "Bussiness/DocumentId", max_chars=_LEN["DocumentId"]
        )
        _classify_document_id(
            business_document_id, "TraceHeaderList/Bussiness/DocumentId", child(business, "DocumentId"), log
        )
        raw_paper = _t(business, "Paper")
        if raw_paper is not None and raw_paper.strip():
            paper = code(raw_paper, "Bussiness/Paper", {0, 1}) == 1

    response_for: list[ResponseFor] = []
    for index, el in enumerate(children(mh, "ResponseFor"), start=1):
        if _is_empty(el):
            log.add("response-for-empty", f"ResponseFor[{index}]", el)
            continue
        response_for.append(_response_for(el, f"ResponseFor[{index}]", log))

    written_id = clean_text(_t(mh, "DocumentId"), "DocumentId", max_chars=_LEN["DocumentId"])
    _classify_document_id(written_id, "DocumentId", child(mh, "DocumentId"), log)
    document_id = written_id or derive_document_id(sender.organ_id, promulgation_date, code_number, code_notation)

    attachments: list[ManifestEntry] = []
    body = child(require(root, "edXMLEnvelope"), "edXMLBody")
    manifest = child(body, "edXMLManifest") if body is not None else None
    for ref in children(manifest, "Reference") if manifest is not None else []:
        attachments.append(
            ManifestEntry(
                content_id=required_text(_t(ref, "ContentId"), "Reference/ContentId", max_chars=255),
                name=required_text(_t(ref, "AttachmentName"), "Reference/AttachmentName", max_chars=255),
                content_type=clean_text(_t(ref, "ContentType"), "Reference/ContentType", max_chars=255),
                description=clean_text(
                    _t(ref, "Description"), "Reference/Description", max_chars=limits.max_text_chars
                ),
            )
        )

    return DocumentMeta(
        document_id=document_id,
        document_id_derived=written_id is None,
        sender=sender,
        recipients=tuple(recipients),
        code_number=code_number,
        code_notation=code_notation,
        promulgation_place=place,
        promulgation_date=promulgation_date,
        document_type=document_type,
        type_detail=type_detail,
        type_name=type_name,
        subject=subject,
        content=content,
        signer=signer,
        due_date=due_date,
        to_places=to_places,
        priority=priority,
        steering_type=steering_type,
        business_doc_type=business_doc_type,
        business_doc_reason=business_reason,
        business_document_id=business_document_id,
        paper=paper,
        response_for=tuple(response_for),
        trace_headers=traces,
        attachments=tuple(attachments),
        recipient_ids=tuple(recipient_ids),
        sender_id=sender_id,
        secrecy_marked=secrecy_el is not None,
    )


def read_status(
    root: etree._Element, *, limits: Limits = DEFAULT_LIMITS, aliases: Mapping[str, str] | None = None
) -> StatusMeta:
    """Status message metadata from a (signed) tree; ``aliases`` as for :func:`read_document`."""
    log = DeviationLog()
    meta = _read_status(root, limits=limits, aliases=aliases, log=log)
    return replace(meta, deviations=log.ordered(root))


def _read_status(
    root: etree._Element, *, limits: Limits, aliases: Mapping[str, str] | None, log: DeviationLog
) -> StatusMeta:
    if message_kind(root) != "status":
        raise SchemaInvalid("the envelope is a document, not a status message")
    mh = message_header(root)
    sender = _sender(mh, limits, aliases, log)
    response_elements = children(mh, "ResponseFor")
    if len(response_elements) != 1:
        raise SchemaInvalid("a status message needs exactly one ResponseFor")
    response_for = _response_for(response_elements[0], "ResponseFor[1]", log)
    status_code = (_t(mh, "StatusCode") or "").strip()
    if status_code not in STATUS_CODES:
        raise CodeListInvalid("StatusCode is not in its code list", field="StatusCode")
    description = clean_text(_t(mh, "Description"), "Description", max_chars=limits.max_text_chars)
    timestamp = parse_datetime(_t(mh, "Timestamp"), "Timestamp")
    staff_el = child(mh, "StaffInfo")
    staff = None
    if staff_el is not None:
        staff = StaffInfo(
            department=clean_text(_t(staff_el, "Department"), "StaffInfo/Department", max_chars=limits.max_text_chars),
            staff=clean_text(_t(staff_el, "Staff"), "StaffInfo/Staff", max_chars=limits.max_text_chars),
            mobile=clean_text(_t(staff_el, "Mobile"), "StaffInfo/Mobile", max_chars=limits.max_text_chars),
            email=clean_text(_t(staff_el, "Email"), "StaffInfo/Email", max_chars=limits.max_text_chars),
        )
    document_id = response_for.document_id
    if document_id is None:
        if response_for.promulgation_date is None or response_for.code is None or response_for.organ_id is None:
            raise SchemaInvalid("ResponseFor needs DocumentId, or OrganId, Code and PromulgationDate to derive it")
        document_id = f"{response_for.organ_id},{response_for.promulgation_date:%Y/%m/%d},{response_for.code}"
    traces, _business = _trace_headers(root, log)
    return StatusMeta(
        sender=sender,
        response_for=response_for,
        document_id=document_id,
        status_code=status_code,
        description=description,
        timestamp=timestamp,
        staff=staff,
        trace_headers=traces,
        sender_id=_resolve_sender(sender.organ_id, aliases),
    )
