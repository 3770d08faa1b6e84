"""edXML envelopes: hardened parsing, schema, signature, metadata and attachment checks (pure).

This package knows the wire format (``../shared/EDXML.md``) and nothing of HTTP or SQL: it imports
nothing from fastapi, sqlalchemy or httpx, and every refusal is a typed
:class:`~gateway.envelope.errors.EnvelopeError` (a :class:`~gateway.problems.GatewayError`) with its own
slug. Verification fails closed and, once a signature has been verified, reads only the tree the verifier
hands back.

The rule: strict on what protects (identity, signatures, digests, classified content, file types, XML
hardening, size bounds, UTF-8), tolerant on the metadata quirks real software writes, and every tolerance
recorded as a :class:`~gateway.envelope.deviations.Deviation` (stable ``code``, ``where`` in the document)
in :attr:`Envelope.deviations`, in document order. The catalogue of codes is
:data:`~gateway.envelope.deviations.DEVIATIONS`.

Order of checks (:func:`inspect_envelope` runs them all; the first failure wins):

1. size of the bytes ≤ ``Limits.max_envelope_bytes``                          → xml-too-large
2. UTF-8 only: no UTF-16/32 BOM, declared encoding UTF-8, strict decode          → encoding-not-utf8
3. no NUL byte                                                                    → nul-byte
4. no DOCTYPE / ENTITY / other DTD markup (pre-scan: nothing is ever expanded)    → xml-dtd-forbidden
5. well-formed, parsed incrementally within depth and element-count bounds      → xml-malformed,
                                                                                    xml-too-deep,
                                                                                    xml-too-many-elements
6. no XInclude element                                                            → xml-xinclude-forbidden
7. a W3C signature outside edXMLHeader                                          → signature-wrong-location
   ``schemas/edxml.xsd`` and the cardinalities it cannot express                  → schema-invalid
8. ``From/OrganId`` is the authenticated agency or one of its aliases (``aliases``; read early from the
   parsed tree only to answer precisely; re-checked on the signed tree at step 11) → sender-mismatch (403)
9. the XML signature (:mod:`~gateway.envelope.signature`, its own numbered steps): presence per policy
   (``required``, ``channel``, ``upstream``), location, algorithms, transforms, registered / revoked / valid
   certificate (under ``upstream`` with no registered certificate: KeyInfo's own, valid; which one is
   ``Envelope.signature.certificate_source``), cryptographic check, signing time
                                                                                  → signature-*, certificate-*
10. from here on only the signed tree is read (or, unsigned under ``channel`` or ``upstream``, the parsed
    tree)
11. sender again, on that tree                                                    → sender-mismatch
    recorded (:func:`~gateway.envelope.parse.record_structure`): extra namespace declarations (from the
    bytes as received), TraceHeaderList attributes, an empty DigitalSignature, xlink attributes on a
    Reference, a legacy edXML Signature (data only: it never satisfies the ``required`` policy)
12. metadata (:mod:`~gateway.envelope.document`): recipients (count, pattern or alias, duplicates of the
    resolved codes), text (NFC, control characters, lengths), code lists (Type, Priority, SteeringType,
    BussinessDocType, Paper, StatusCode), dates (readable, promulgation not in the future), secrecy marker,
    a status message's ResponseFor naming its document
                                                                                  → too-many-recipients,
                                                                                    recipient-id-malformed,
                                                                                    recipient-duplicate,
                                                                                    text-invalid,
                                                                                    code-list-invalid,
                                                                                    date-invalid,
                                                                                    secrecy-forbidden,
                                                                                    schema-invalid
    recorded: aliases in From/To, To the sender itself, From without OrganName, empty ResponseFor,
    DocumentType without TypeDetail, TraceHeader without OrganId, nonstandard OrganIds in TraceHeader and
    ResponseFor, Bussiness before TraceHeader, DocumentIds that are UUIDs, carry an impossible date or are
    otherwise nonstandard (kept as written)
13. attachments (:mod:`~gateway.envelope.attachments`, its own numbered steps): count, manifest ↔
    attachment pairing, names, base64, ZIP (or the raw file), sizes, content type, large-part digests
                                                                                  → attachment-*, too-many-
                                                                                    attachments,
                                                                                    manifest-without-
                                                                                    attachment,
                                                                                    file-type-forbidden
    recorded: ContentIds without ``cid:``, with ``cid:cid:`` or not a UUID; ContentTypes that differ
    between Reference and Attachment or are nonstandard; a raw (not zipped) inline file

Left to the caller because they need the register or the database: loading ``aliases``; whether every
``To`` (``DocumentMeta.recipient_ids``, aliases already resolved) is a registered, active agency;
idempotency on (sender, DocumentId, envelope digest); duplicate status messages; whether the original of a
recall, update or replacement is known (the ``original-unknown`` deviation); PDF signature (PAdES)
reporting; malware scanning.

Building (:mod:`~gateway.envelope.build`), the gateway's signed receipt
(:mod:`~gateway.envelope.receipt`) and the gateway's signature on push deliveries and pull downloads
(:mod:`~gateway.envelope.push_signature`) live here too, so the client, the samples and the tests write
and check exactly what the gateway reads and signs. With :mod:`gateway.problems` (the error tree, stdlib
only) this package is the pure core the agency client installs without the server: it imports lxml,
signxml and cryptography, never the server's packages (``pip install .``, README "Installing").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from lxml import etree

from ._record import DeviationLog, ordered
from ._xml import DS_NS, EDXML_NS, PROFILE_NS, child, require
from .attachments import AttachmentInfo, LargePart, _read_attachments, read_attachments, sniff_file_type
from .build import DocumentSpec, InlineFile, LargeFile, SigningAlgorithm, StatusSpec, build_document, build_status, sign
from .deviations import DEVIATIONS, Deviation
from .document import (
    DocumentMeta,
    MessageKind,
    StatusMeta,
    _read_document,
    _read_status,
    check_sender,
    message_kind,
    peek_sender,
    read_document,
    read_status,
)
from .errors import (
    AttachmentDigestMismatch,
    AttachmentError,
    AttachmentTooLarge,
    AttachmentUndecodable,
    AttachmentWithoutManifest,
    AttachmentZipInvalid,
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUnregistered,
    CodeListInvalid,
    DateInvalid,
    EncodingNotUtf8,
    EnvelopeError,
    FileTypeForbidden,
    ManifestWithoutAttachment,
    NulByte,
    RecipientDuplicate,
    RecipientError,
    RecipientIdMalformed,
    SchemaInvalid,
    SecrecyForbidden,
    SenderMismatch,
    SignatureAlgorithmForbidden,
    SignatureError,
    SignatureInvalid,
    SignatureMissing,
    SignatureTransformForbidden,
    SignatureWrongLocation,
    TextInvalid,
    TooManyAttachments,
    TooManyRecipients,
    XmlDtdForbidden,
    XmlError,
    XmlMalformed,
    XmlTooDeep,
    XmlTooLarge,
    XmlTooManyElements,
    XmlXIncludeForbidden,
    envelope_error_types,
)
from .limits import Limits
from .model import ManifestEntry, Organ, ResponseFor, SignerInfo, StaffInfo, TraceHeader, derive_document_id
from .parse import DEFAULT_LIMITS, parse_envelope, parse_xml, record_structure, schema_path, validate_schema
from .receipt import RECEIPT_NS, ReceiptAttachment, ReceiptData, build_receipt, verify_receipt
from .signature import (
    CertificateSource,
    Policy,
    SignatureResult,
    TrustedCertificate,
    certificate_sha256,
    verify_signature,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEVIATIONS",
    "DS_NS",
    "EDXML_NS",
    "PROFILE_NS",
    "RECEIPT_NS",
    "AttachmentDigestMismatch",
    "AttachmentError",
    "AttachmentInfo",
    "AttachmentTooLarge",
    "AttachmentUndecodable",
    "AttachmentWithoutManifest",
    "AttachmentZipInvalid",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "CertificateSource",
    "CertificateUnregistered",
    "CodeListInvalid",
    "DateInvalid",
    "Deviation",
    "DocumentMeta",
    "DocumentSpec",
    "EncodingNotUtf8",
    "Envelope",
    "EnvelopeError",
    "FileTypeForbidden",
    "InlineFile",
    "LargeFile",
    "LargePart",
    "Limits",
    "ManifestEntry",
    "ManifestWithoutAttachment",
    "MessageKind",
    "NulByte",
    "Organ",
    "Policy",
    "ReceiptAttachment",
    "ReceiptData",
    "RecipientDuplicate",
    "RecipientError",
    "RecipientIdMalformed",
    "ResponseFor",
    "SchemaInvalid",
    "SecrecyForbidden",
    "SenderMismatch",
    "SignatureAlgorithmForbidden",
    "SignatureError",
    "SignatureInvalid",
    "SignatureMissing",
    "SignatureResult",
    "SignatureTransformForbidden",
    "SignatureWrongLocation",
    "SignerInfo",
    "SigningAlgorithm",
    "StaffInfo",
    "StatusMeta",
    "StatusSpec",
    "TextInvalid",
    "TooManyAttachments",
    "TooManyRecipients",
    "TraceHeader",
    "TrustedCertificate",
    "XmlDtdForbidden",
    "XmlError",
    "XmlMalformed",
    "XmlTooDeep",
    "XmlTooLarge",
    "XmlTooManyElements",
    "XmlXIncludeForbidden",
    "build_document",
    "build_receipt",
    "build_status",
    "certificate_sha256",
    "check_sender",
    "derive_document_id",
    "envelope_error_types",
    "envelope_sha256",
    "inspect_envelope",
    "message_kind",
    "parse_envelope",
    "parse_xml",
    "peek_sender",
    "read_attachments",
    "read_document",
    "read_status",
    "record_structure",
    "schema_path",
    "sign",
    "sniff_file_type",
    "validate_schema",
    "verify_receipt",
    "verify_signature",
]


@dataclass(frozen=True)
class Envelope:
    """Everything intake needs from an accepted envelope, all read from the signed tree."""

    sha256: str
    kind: MessageKind
    signature: SignatureResult
    document: DocumentMeta | None
    status: StatusMeta | None
    attachments: tuple[AttachmentInfo, ...]
    #: every tolerated quirk (structure, metadata, attachments), in document order, each exact duplicate once
    deviations: tuple[Deviation, ...] = ()

    @property
    def signed(self) -> bool:
        return self.signature.signed

    @property
    def tree(self) -> etree._Element:
        return self.signature.signed_root


def envelope_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inspect_envelope(
    data: bytes,
    *,
    sender: str,
    certificates: Sequence[TrustedCertificate],
    now: datetime,
    policy: Policy = "required",
    limits: Limits = DEFAULT_LIMITS,
    large_parts: Mapping[str, LargePart] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Envelope:
    """Run every check of the package docstring, in order, on the envelope bytes.

    ``sender`` is the authenticated agency's OrganId, ``certificates`` its registered certificates and
    ``policy`` its signature policy (under ``upstream`` an empty ``certificates`` means "KeyInfo's own");
    ``large_parts`` maps Content-ID → what the caller measured of each multipart part; ``aliases`` maps every
    alias in the agency register to its agency's primary code (From and To may name an agency by an alias).
    """
    # 1-7
    root = parse_envelope(data, limits)
    # 8
    check_sender(root, sender, aliases)
    # 9-10
    signature = verify_signature(root, certificates, now=now, policy=policy)
    tree = signature.signed_root
    # 11
    check_sender(tree, sender, aliases)
    structure = DeviationLog()
    record_structure(root, tree, structure)
    # 12
    kind = message_kind(tree)
    document: DocumentMeta | None = None
    status: StatusMeta | None = None
    attachments: tuple[AttachmentInfo, ...] = ()
    metadata = DeviationLog()
    attachment_log = DeviationLog()
    if kind == "document":
        document = _read_document(tree, limits=limits, now=now, aliases=aliases, log=metadata)
        # 13
        attachments, attachment_log = _read_attachments(tree, limits=limits, large_parts=large_parts)
    else:
        status = _read_status(tree, limits=limits, aliases=aliases, log=metadata)
        body = child(require(tree, "edXMLEnvelope"), "edXMLBody")
        if child(tree, "AttachmentEncoded") is not None or (body is not None and len(body)):
            raise SchemaInvalid("a status message carries no body and no attachments")
        if large_parts:
            raise SchemaInvalid("a status message carries no attachments")
    if document is not None:
        document = replace(document, deviations=metadata.ordered(tree))
    if status is not None:
        status = replace(status, deviations=metadata.ordered(tree))
    return Envelope(
        sha256=envelope_sha256(data),
        kind=kind,
        signature=signature,
        document=document,
        status=status,
        attachments=attachments,
        deviations=ordered(tree, (structure, metadata, attachment_log)),
    )
