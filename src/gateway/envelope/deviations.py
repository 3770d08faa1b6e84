"""Deviations: what real software gets wrong, tolerated and recorded (never a reason to refuse).

The rule of the gateway is *strict on what protects* (identity, signatures, digests, classified content, file
types, XML hardening), *tolerant on what real software gets wrong* (metadata quirks), and *every tolerance
recorded*. A :class:`Deviation` is one such record: a stable ``code`` (integrators and operators switch on it;
it never changes once published) and ``where`` in the document it was seen (an element path such as
``TraceHeaderList/TraceHeader[2]/OrganId``; indexes count from 1). The accepted envelope carries the tuple of
its deviations; intake stores them with the document, states them in the ``envelope.accepted`` ledger entry,
shows them in the document view and counts them per sending agency in the monthly report, so that an
operator can ask a vendor to fix its output.

:data:`DEVIATIONS` is the catalogue: every code the gateway can record, with what triggers it. README's
"Interoperability" table is written from it, and a test fails when a code is emitted that it does not list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEVIATIONS", "Deviation"]


@dataclass(frozen=True, order=True)
class Deviation:
    """One tolerated quirk: its stable code and where in the document it was seen."""

    code: str
    where: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "where": self.where}


#: code → what triggers it. Grouped as in README's Interoperability table.
DEVIATIONS: Mapping[str, str] = {
    # identifiers and addressing
    "addressed-by-alias": "a To or From names an agency by one of its aliases (or its QĐ 20 alt_code), not its code",
    "sent-to-self": "a To names the sending agency itself, by its code or an alias (connectivity tests do this)",
    "organ-id-nonstandard": "an OrganId in a TraceHeader or ResponseFor outside the LLL.KK.JJ.Xnn pattern "
    "(e.g. 01.02.G22, 001.00.20.TT2, vxp.saas.03, the literal null)",
    "document-id-uuid": "a MessageHeader or Bussiness DocumentId that is a UUID instead of "
    "OrganId,yyyy/MM/dd,Số/Ký hiệu; kept as text",
    "document-id-date-impossible": "a DocumentId of the standard form whose date does not exist (2014/02/30); "
    "kept as text",
    "document-id-nonstandard": "a DocumentId of neither the standard form nor a UUID; kept as text",
    # header blocks
    "from-without-organ-name": "From has no OrganName (the name comes from the register)",
    "response-for-empty": "an empty ResponseFor in a document (ignored)",
    "type-detail-missing": "DocumentType without TypeDetail",
    "trace-header-without-organ-id": "a TraceHeader without OrganId",
    "bussiness-before-trace-header": "Bussiness written before a TraceHeader in TraceHeaderList",
    "trace-header-list-attributes": "attributes (id, version, mustUnderstand, actor) on TraceHeaderList (the .NET SDK)",
    "digital-signature-empty": "an empty edXML:DigitalSignature in edXMLHeader (the .NET SDK)",
    "namespace-declarations-extra": "namespace declarations beyond edXML, xmldsig, the gateway profile and xlink "
    "(xmlns:xsi, xmlns:xsd; the .NET SDK), anywhere in the document; recorded once",
    "legacy-signature": "an edXML-namespace Signature block: kept as data, never verified nor trusted",
    # manifest and attachments
    "reference-xlink-attributes": "xlink:href/role/type attributes on a manifest Reference (the .NET SDK)",
    "content-id-without-cid": "a ContentId without the cid: prefix (a bare id or <id>; the .NET SDK)",
    "content-id-doubled-cid": "a ContentId written cid:cid:… (the axis's Java edXML library)",
    "content-id-not-uuid": "a ContentId that is not a UUID (e.g. cid:209)",
    "content-type-mismatch": "the manifest's ContentType differs from the Attachment's",
    "content-type-nonstandard": "a Reference or Attachment ContentType that is neither application/zip nor the "
    "media type of the file's sniffed type (e.g. application/docx)",
    "attachment-not-zipped": "an inline attachment that is the raw file in base64, not a ZIP holding it "
    "(the axis's Java edXML library does this for PDF and DOCX)",
    # messages that refer to others
    "original-unknown": "a recall, update or replacement whose original document is not in the gateway",
}
