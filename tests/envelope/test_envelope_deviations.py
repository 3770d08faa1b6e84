"""Tolerated quirks of real-world edXML: each accepted and recorded as an exact ``Deviation(code, where)``.

Every envelope here is built in the test (never the shared samples): :func:`build_document` and then one
change, so that each test shows exactly the deviations one quirk causes. What protects (identity, signatures,
file types, recipient identifiers that resolve to nothing) stays a refusal, and is asserted next to the
tolerance it borders on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest
from envelope_helpers import EDXML, NOW, PDF, Signer, b64, base_spec, docx_bytes, mutate
from lxml import etree

from gateway.envelope import (
    DEVIATIONS,
    Deviation,
    DocumentSpec,
    Envelope,
    FileTypeForbidden,
    InlineFile,
    Organ,
    RecipientDuplicate,
    RecipientIdMalformed,
    ResponseFor,
    SchemaInvalid,
    SenderMismatch,
    SignatureMissing,
    StatusSpec,
    build_document,
    build_status,
    inspect_envelope,
    parse_envelope,
    read_document,
    read_status,
    sign,
)
from gateway.envelope._record import DeviationLog

MakeSigned = Callable[..., bytes]
Change = Callable[[etree._Element], None]

G22 = "000.00.00.G22"
H41 = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
H47 = Organ("001.00.10.H47", "Sở Nội vụ")
XLINK = "http://www.w3.org/1999/xlink"
UUID = "3f2a7c1e-8b4d-4e6f-9a0b-1c2d3e4f5a6b"
UUID2 = "0b7e5a3c-2d1f-4a9b-8c7d-6e5f4a3b2c1d"
DOCX = docx_bytes()

#: every envelope inspected by this module (the catalogue test checks their codes too)
SEEN: list[Envelope] = []


def _e(local: str) -> str:
    return f"{{{EDXML}}}{local}"


def _first(root: etree._Element, local: str) -> etree._Element:
    return next(root.iter(_e(local)))


def _inspect(
    data: bytes, *, aliases: Mapping[str, str] | None = None, sender: str = G22, signer: Signer | None = None
) -> Envelope:
    envelope = inspect_envelope(
        data,
        sender=sender,
        certificates=[signer.trusted] if signer is not None else [],
        now=NOW,
        policy="required" if signer is not None else "channel",
        aliases=aliases,
    )
    SEEN.append(envelope)
    return envelope


def _unsigned(spec: DocumentSpec | None = None, change: Change | None = None) -> bytes:
    xml = build_document(spec or base_spec())
    return mutate(xml, change) if change is not None else xml


def _deviations(data: bytes, **kwargs: object) -> list[Deviation]:
    return list(_inspect(data, **kwargs).deviations)  # type: ignore[arg-type]


def D(code: str, where: str) -> Deviation:
    return Deviation(code, where)


# --- the gateway's own output is clean -------------------------------------------------------------


def test_a_built_document_records_no_deviation(make_signed: MakeSigned, signer: Signer) -> None:
    assert _deviations(make_signed(), signer=signer) == []
    assert _deviations(_unsigned()) == []


# --- identifiers and addressing --------------------------------------------------------------------


def test_to_addressed_by_an_alias_resolves_to_the_primary_code() -> None:
    spec = base_spec(recipients=(H41, Organ("28.22.H17", "UBND xã Hòa Sơn")))
    envelope = _inspect(_unsigned(spec), aliases={"28.22.H17": "000.00.00.H17"})
    assert list(envelope.deviations) == [D("addressed-by-alias", "To[2]/OrganId")]
    meta = envelope.document
    assert meta is not None
    assert meta.recipient_ids == ("000.00.00.H41", "000.00.00.H17")
    assert [r.organ_id for r in meta.recipients] == ["000.00.00.H41", "28.22.H17"]  # as written


def test_from_written_as_an_alias_of_the_authenticated_agency() -> None:
    def change(root: etree._Element) -> None:
        _first(_first(root, "From"), "OrganId").text = "G22.VPCP"

    envelope = _inspect(_unsigned(change=change), aliases={"G22.VPCP": G22})
    assert list(envelope.deviations) == [D("addressed-by-alias", "From/OrganId")]
    assert envelope.document is not None
    assert (envelope.document.sender.organ_id, envelope.document.sender_id) == ("G22.VPCP", G22)


def test_from_alias_of_another_agency_is_still_a_sender_mismatch() -> None:
    def change(root: etree._Element) -> None:
        _first(_first(root, "From"), "OrganId").text = "H41.NA"

    data = _unsigned(change=change)
    for aliases in (None, {"H41.NA": "000.00.00.H41"}):
        with pytest.raises(SenderMismatch):
            _inspect(data, aliases=aliases)


@pytest.mark.parametrize("organ_id", ["000.00.00.h41", "28.22.h17", " 28.22.H17x", "000.00.00.H17"[:-1]])
def test_to_neither_a_code_nor_an_alias_is_still_refused(organ_id: str) -> None:
    """Aliases match exactly: identity is never guessed (the hostile corpus's 000.00.00.h41 stays refused)."""
    spec = base_spec(recipients=(H41, Organ(organ_id, "Sai mã")))
    with pytest.raises(RecipientIdMalformed):
        _inspect(_unsigned(spec), aliases={"28.22.H17": "000.00.00.H17", "000.00.00.H41": "000.00.00.H41"})


def test_an_alias_of_the_codes_form_resolves_to_its_agency() -> None:
    # An agency's former code (provinces merged, units renamed) may be kept as an alias. The register keeps
    # aliases and codes apart, so an alias is looked up first; a To of the pattern that is no alias is a code.
    spec = base_spec(recipients=(H47,))
    envelope = _inspect(_unsigned(spec), aliases={"001.00.10.H47": "000.00.00.H41"})
    assert envelope.document is not None
    assert envelope.document.recipient_ids == ("000.00.00.H41",)
    assert list(envelope.deviations) == [Deviation("addressed-by-alias", "To[1]/OrganId")]
    plain = _inspect(_unsigned(spec), aliases={"28.22.H17": "000.00.00.H17"})
    assert plain.document is not None
    assert plain.document.recipient_ids == ("001.00.10.H47",)
    assert list(plain.deviations) == []


def test_duplicates_are_found_on_the_resolved_codes() -> None:
    spec = base_spec(recipients=(Organ("000.00.00.H17", "Hòa Sơn"), Organ("28.22.H17", "Hòa Sơn")))
    with pytest.raises(RecipientDuplicate):
        _inspect(_unsigned(spec), aliases={"28.22.H17": "000.00.00.H17"})


def test_sent_to_self() -> None:
    spec = base_spec(recipients=(H41, Organ(G22, "Văn phòng Chính phủ")))
    assert _deviations(_unsigned(spec)) == [D("sent-to-self", "To[2]/OrganId")]


def test_sent_to_self_by_an_alias() -> None:
    spec = base_spec(recipients=(Organ("VPCP", "Văn phòng Chính phủ"),))
    assert _deviations(_unsigned(spec), aliases={"VPCP": G22}) == [
        D("addressed-by-alias", "To[1]/OrganId"),
        D("sent-to-self", "To[1]/OrganId"),
    ]


def test_organ_id_nonstandard_in_trace_header_and_response_for() -> None:
    rf = ResponseFor("01.02.G22", document_id="000.00.00.H41,2025/05/30,12/UBND-VP")

    def change(root: etree._Element) -> None:
        trace_list = _first(root, "TraceHeaderList")
        axis = etree.Element(_e("TraceHeader"))
        trace_list.insert(1, axis)  # after the sender's, before Bussiness (the standard order)
        etree.SubElement(axis, _e("OrganId")).text = "null"
        etree.SubElement(axis, _e("Timestamp")).text = "2025/06/02 09:59:01"

    envelope = _inspect(_unsigned(base_spec(response_for=(rf,)), change))
    assert list(envelope.deviations) == [
        D("organ-id-nonstandard", "ResponseFor[1]/OrganId"),
        D("organ-id-nonstandard", "TraceHeaderList/TraceHeader[2]/OrganId"),
    ]
    assert envelope.document is not None
    assert [t.organ_id for t in envelope.document.trace_headers] == [G22, "null"]
    assert envelope.document.response_for[0].organ_id == "01.02.G22"


def test_document_id_uuid() -> None:
    envelope = _inspect(_unsigned(base_spec(document_id=UUID)))
    assert list(envelope.deviations) == [D("document-id-uuid", "DocumentId")]
    assert envelope.document is not None
    assert envelope.document.document_id == UUID


def test_document_id_date_impossible_in_header_and_bussiness() -> None:
    impossible = "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"

    def change(root: etree._Element) -> None:
        etree.SubElement(_first(root, "Bussiness"), _e("DocumentId")).text = impossible

    envelope = _inspect(_unsigned(base_spec(document_id=impossible), change))
    assert list(envelope.deviations) == [
        D("document-id-date-impossible", "DocumentId"),
        D("document-id-date-impossible", "TraceHeaderList/Bussiness/DocumentId"),
    ]
    assert envelope.document is not None
    assert (envelope.document.document_id, envelope.document.business_document_id) == (impossible, impossible)


@pytest.mark.parametrize(
    "document_id",
    [
        "7816/VPCP-TTĐT",
        "28.22.H17,2015/09/30,7816/VPCP-TTĐT",
        "000.00.00.G22,30/09/2015,7816/VPCP-TTĐT",
        "000.00.00.G22,2015/9/30,7816/VPCP-TTĐT",
        "000.00.00.G22,2015/09/30,7816",
        "{" + UUID + "}",
    ],
)
def test_document_id_nonstandard(document_id: str) -> None:
    envelope = _inspect(_unsigned(base_spec(document_id=document_id)))
    assert list(envelope.deviations) == [D("document-id-nonstandard", "DocumentId")]
    assert envelope.document is not None
    assert envelope.document.document_id == document_id  # kept as written


@pytest.mark.parametrize(
    "document_id",
    [
        "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
        "000.00.00.G22,2024/02/29,15/2020/NĐ-CP",
        "000.00.00.G22,2025/06/01,/UBND",
    ],
)
def test_standard_document_ids_record_nothing(document_id: str) -> None:
    assert _deviations(_unsigned(base_spec(document_id=document_id))) == []


# --- header blocks ---------------------------------------------------------------------------------


def test_from_without_organ_name() -> None:
    envelope = _inspect(_unsigned(base_spec(sender=Organ(G22))))
    assert list(envelope.deviations) == [D("from-without-organ-name", "From")]
    assert envelope.document is not None
    assert envelope.document.sender.name is None


def test_response_for_empty_is_dropped() -> None:
    rf = ResponseFor("000.00.00.H41", document_id="000.00.00.H41,2025/05/30,12/UBND-VP")

    def change(root: etree._Element) -> None:
        mh = _first(root, "MessageHeader")
        mh.append(etree.Element(_e("ResponseFor")))

    envelope = _inspect(_unsigned(base_spec(response_for=(rf,)), change))
    assert list(envelope.deviations) == [D("response-for-empty", "ResponseFor[2]")]
    assert envelope.document is not None
    assert envelope.document.response_for == (rf,)


def test_type_detail_missing() -> None:
    envelope = _inspect(_unsigned(base_spec(type_detail=None)))
    assert list(envelope.deviations) == [D("type-detail-missing", "DocumentType")]
    assert envelope.document is not None
    assert envelope.document.type_detail is None


def test_trace_header_without_organ_id(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        trace = _first(root, "TraceHeader")
        trace.remove(_first(trace, "OrganId"))

    envelope = _inspect(make_signed(before=change), signer=signer)
    assert list(envelope.deviations) == [D("trace-header-without-organ-id", "TraceHeaderList/TraceHeader[1]")]
    assert envelope.document is not None
    assert envelope.document.trace_headers[0].organ_id is None


def _bussiness_first(root: etree._Element) -> None:
    trace_list = _first(root, "TraceHeaderList")
    trace_list.insert(0, _first(trace_list, "Bussiness"))


def test_bussiness_before_trace_header() -> None:
    assert _deviations(_unsigned(change=_bussiness_first)) == [
        D("bussiness-before-trace-header", "TraceHeaderList/Bussiness")
    ]


def _net_trace_list(root: etree._Element) -> None:
    trace_list = _first(root, "TraceHeaderList")
    for name, value in (("id", "trace-1"), ("version", "1.0"), ("mustUnderstand", "1"), ("actor", "urn:vpcp")):
        trace_list.set(name, value)


def test_trace_header_list_attributes() -> None:
    assert _deviations(_unsigned(change=_net_trace_list)) == [D("trace-header-list-attributes", "TraceHeaderList")]


def test_other_trace_header_list_attributes_stay_schema_invalid() -> None:
    def change(root: etree._Element) -> None:
        _first(root, "TraceHeaderList").set("role", "x")

    with pytest.raises(SchemaInvalid):
        _inspect(_unsigned(change=change))


def _digital_signature(text: str | None = None) -> Change:
    def change(root: etree._Element) -> None:
        el = etree.SubElement(_first(root, "edXMLHeader"), _e("DigitalSignature"))
        el.text = text

    return change


def test_digital_signature_empty(make_signed: MakeSigned, signer: Signer) -> None:
    expected = [D("digital-signature-empty", "edXMLHeader/DigitalSignature")]
    assert _deviations(_unsigned(change=_digital_signature())) == expected
    assert _deviations(_unsigned(change=_digital_signature("\n   "))) == expected
    # the profile signature goes after it, last in edXMLHeader
    assert _deviations(make_signed(before=_digital_signature()), signer=signer) == expected


def test_digital_signature_with_content_or_twice_stays_schema_invalid() -> None:
    def twice(root: etree._Element) -> None:
        _digital_signature()(root)
        _digital_signature()(root)

    for change in (_digital_signature("MIIBIjANBgkq"), twice):
        with pytest.raises(SchemaInvalid):
            _inspect(_unsigned(change=change))


def _extra_namespaces(xml: bytes) -> bytes:
    root_tag = b'<edXML xmlns="' + EDXML.encode() + b'"'
    assert root_tag in xml
    return xml.replace(
        root_tag,
        root_tag
        + b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"',
        1,
    )


def test_namespace_declarations_extra(signer: Signer) -> None:
    expected = [D("namespace-declarations-extra", "edXML")]
    assert _deviations(_extra_namespaces(build_document(base_spec()))) == expected
    # exclusive c14n drops unused declarations from the signed tree: they are read from the bytes received
    signed = sign(_extra_namespaces(build_document(base_spec())), signer.key, signer.cert)  # type: ignore[arg-type]
    assert b"xmlns:xsi=" in signed
    assert _deviations(signed, signer=signer) == expected


def test_namespace_declared_deep_inside_is_recorded_once() -> None:
    xml = build_document(base_spec()).replace(b"<edXML:Subject>", b'<edXML:Subject xmlns:a="urn:a" xmlns:b="urn:b">', 1)
    assert _deviations(xml) == [D("namespace-declarations-extra", "edXML")]


def test_legacy_signature(signer: Signer) -> None:
    data = _unsigned(base_spec(legacy_signature=True))
    assert _deviations(data) == [D("legacy-signature", "edXMLHeader/Signature")]
    # never a signature: under the required policy it is still missing
    with pytest.raises(SignatureMissing):
        _inspect(data, signer=signer)


# --- manifest and attachments ----------------------------------------------------------------------


def _xlink(attributes: Mapping[str, str]) -> Change:
    def change(root: etree._Element) -> None:
        old = _first(root, "Reference")
        ref = etree.Element(_e("Reference"), nsmap={"xlink": XLINK})
        for name, value in attributes.items():
            ref.set(f"{{{XLINK}}}{name}", value)
        ref.extend(list(old))
        parent = old.getparent()
        assert parent is not None
        parent.replace(old, ref)

    return change


def test_reference_xlink_attributes() -> None:
    change = _xlink({"href": "cid:" + UUID, "role": "XLinkRole", "type": "simple"})
    assert _deviations(_unsigned(change=change)) == [D("reference-xlink-attributes", "edXMLManifest/Reference[1]")]


@pytest.mark.parametrize("name", ["title", "show", "arcrole"])
def test_other_xlink_attributes_stay_schema_invalid(name: str) -> None:
    with pytest.raises(SchemaInvalid):
        _inspect(_unsigned(change=_xlink({"href": "cid:x", name: "x"})))


def _one(file: InlineFile, change: Change | None = None) -> bytes:
    return _unsigned(base_spec(attachments=(file,)), change)


CID_WHERE = ["edXMLManifest/Reference[1]/ContentId", "Attachment[1]/ContentId"]


@pytest.mark.parametrize(
    ("content_id", "codes"),
    [
        (UUID, ["content-id-without-cid"]),
        ("<" + UUID + ">", ["content-id-without-cid"]),
        ("cid:cid:" + UUID, ["content-id-doubled-cid"]),
        ("cid:209", ["content-id-not-uuid"]),
        ("cid:cid:209", ["content-id-doubled-cid", "content-id-not-uuid"]),
        ("209", ["content-id-without-cid", "content-id-not-uuid"]),
        ("cid:" + UUID.upper(), []),
    ],
)
def test_content_id_forms(content_id: str, codes: list[str]) -> None:
    envelope = _inspect(_one(InlineFile("a.pdf", PDF, content_id=content_id)))
    assert list(envelope.deviations) == [D(code, where) for where in CID_WHERE for code in codes]
    assert envelope.attachments[0].content_id == content_id.removeprefix("cid:").removeprefix("cid:").strip("<>")


def test_content_ids_pair_across_doubled_cid() -> None:
    def change(root: etree._Element) -> None:
        _first(_first(root, "Attachment"), "ContentId").text = "cid:cid:" + UUID

    envelope = _inspect(_one(InlineFile("a.pdf", PDF, content_id="cid:" + UUID), change))
    assert list(envelope.deviations) == [D("content-id-doubled-cid", "Attachment[1]/ContentId")]


def _attachment_content_type(value: str, index: int = 0) -> Change:
    def change(root: etree._Element) -> None:
        attachment = list(root.iter(_e("Attachment")))[index]
        _first(attachment, "ContentType").text = value

    return change


def test_content_type_mismatch() -> None:
    data = _one(InlineFile("a.pdf", PDF, content_type="application/zip"), _attachment_content_type("application/pdf"))
    envelope = _inspect(data)
    assert list(envelope.deviations) == [D("content-type-mismatch", "Attachment[1]/ContentType")]
    assert envelope.attachments[0].content_type == "application/pdf"


def test_content_type_nonstandard() -> None:
    data = _one(InlineFile("a.docx", DOCX, content_type="application/docx"))
    assert _deviations(data) == [
        D("content-type-nonstandard", "edXMLManifest/Reference[1]/ContentType"),
        D("content-type-nonstandard", "Attachment[1]/ContentType"),
    ]


@pytest.mark.parametrize("content_type", ["application/zip", "application/pdf", "Application/PDF"])
def test_standard_content_types_record_nothing(content_type: str) -> None:
    assert _deviations(_one(InlineFile("a.pdf", PDF, content_type=content_type))) == []


@pytest.mark.parametrize(
    ("name", "data", "file_type"),
    [("a.pdf", PDF, "pdf"), ("a.docx", DOCX, "docx"), ("a.txt", "Nội dung".encode(), "txt")],
)
def test_attachment_not_zipped(name: str, data: bytes, file_type: str) -> None:
    envelope = _inspect(_one(InlineFile(name, data, encoded=b64(data))))
    assert list(envelope.deviations) == [D("attachment-not-zipped", "Attachment[1]/ContentTransferEncoded")]
    (info,) = envelope.attachments
    assert (info.data, info.file_type, info.name) == (data, file_type, name)
    assert list(info.deviations) == list(envelope.deviations)


def test_raw_junk_pdf_is_refused_naming_the_attachment() -> None:
    junk = bytes.fromhex("5d1f8e0c77a3b2c4d9e6f00112a3b4c5d6")  # 17 bytes, as seen in axis traffic
    assert len(junk) == 17
    with pytest.raises(FileTypeForbidden) as caught:
        _inspect(_one(InlineFile("QD 15 SIGNED.PDF", PDF, encoded=b64(junk))))
    assert caught.value.extensions["attachment"] == "QD 15 SIGNED.PDF"
    assert junk.hex() not in caught.value.detail
    assert len(caught.value.detail) < 200


def test_a_zipped_file_of_another_type_than_its_name_names_the_attachment() -> None:
    from envelope_helpers import zip_entries

    encoded = b64(zip_entries([("32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml", b"<edXML/>")]))
    with pytest.raises(FileTypeForbidden) as caught:
        _inspect(_one(InlineFile("Quyết định.doc", PDF, encoded=encoded)))
    assert caught.value.extensions["attachment"] == "Quyết định.doc"


# --- producers as a whole --------------------------------------------------------------------------


def test_document_as_the_axis_java_library_writes_it(make_signed: MakeSigned, signer: Signer) -> None:
    """PDF and DOCX raw in base64, ContentId cid:cid:<uuid>, Attachment ContentType application/pdf and
    application/docx while the manifest says application/zip, OrganizationInCharge in From/To, Bussiness
    before TraceHeader."""
    spec = base_spec(
        sender=Organ(G22, "Văn phòng Chính phủ", organization_in_charge="Văn phòng Chính phủ"),
        recipients=(Organ("000.00.00.H41", "UBND tỉnh Nghệ An", organization_in_charge="UBND tỉnh Nghệ An"),),
        attachments=(
            InlineFile(
                "Công văn 15.pdf", PDF, content_type="application/zip", content_id="cid:cid:" + UUID, encoded=b64(PDF)
            ),
            InlineFile(
                "Phụ lục.docx", DOCX, content_type="application/zip", content_id="cid:cid:" + UUID2, encoded=b64(DOCX)
            ),
        ),
    )

    def change(root: etree._Element) -> None:
        _attachment_content_type("application/pdf", 0)(root)
        _attachment_content_type("application/docx", 1)(root)
        _bussiness_first(root)

    envelope = _inspect(make_signed(spec, before=change), signer=signer)
    assert list(envelope.deviations) == [
        D("bussiness-before-trace-header", "TraceHeaderList/Bussiness"),
        D("content-id-doubled-cid", "edXMLManifest/Reference[1]/ContentId"),
        D("content-id-doubled-cid", "edXMLManifest/Reference[2]/ContentId"),
        D("content-id-doubled-cid", "Attachment[1]/ContentId"),
        D("content-type-mismatch", "Attachment[1]/ContentType"),
        D("attachment-not-zipped", "Attachment[1]/ContentTransferEncoded"),
        D("content-id-doubled-cid", "Attachment[2]/ContentId"),
        D("content-type-mismatch", "Attachment[2]/ContentType"),
        D("content-type-nonstandard", "Attachment[2]/ContentType"),
        D("attachment-not-zipped", "Attachment[2]/ContentTransferEncoded"),
    ]
    assert [(a.content_id, a.file_type, a.data) for a in envelope.attachments] == [
        (UUID, "pdf", PDF),
        (UUID2, "docx", DOCX),
    ]
    assert envelope.document is not None
    assert envelope.document.sender.organization_in_charge == "Văn phòng Chính phủ"
    assert list(envelope.document.deviations) == [D("bussiness-before-trace-header", "TraceHeaderList/Bussiness")]


def test_document_as_the_dotnet_sdk_writes_it(make_signed: MakeSigned, signer: Signer) -> None:
    """xmlns:xsi/xsd on the root, attributes on TraceHeaderList, an empty DigitalSignature last in the
    header, xlink attributes on the Reference, ContentId without cid:."""
    spec = base_spec(attachments=(InlineFile("Công văn.pdf", PDF, content_id=UUID),))

    def change(root: etree._Element) -> None:
        _net_trace_list(root)
        _digital_signature()(root)
        _xlink({"href": "cid:" + UUID, "role": "XLinkRole", "type": "simple"})(root)

    data = _extra_namespaces(_unsigned(spec, change))
    expected = [
        D("namespace-declarations-extra", "edXML"),
        D("trace-header-list-attributes", "TraceHeaderList"),
        D("digital-signature-empty", "edXMLHeader/DigitalSignature"),
        D("reference-xlink-attributes", "edXMLManifest/Reference[1]"),
        D("content-id-without-cid", "edXMLManifest/Reference[1]/ContentId"),
        D("content-id-without-cid", "Attachment[1]/ContentId"),
    ]
    assert _deviations(data) == expected
    assert _deviations(sign(data, signer.key, signer.cert), signer=signer) == expected  # type: ignore[arg-type]


def test_deviations_are_in_document_order_whatever_the_reader(make_signed: MakeSigned, signer: Signer) -> None:
    """Header quirks before body quirks, TraceHeaders in their order, each exact duplicate once."""

    def change(root: etree._Element) -> None:
        _bussiness_first(root)
        _net_trace_list(root)
        trace = _first(root, "TraceHeader")
        trace.remove(_first(trace, "OrganId"))

    spec = base_spec(
        sender=Organ(G22),
        type_detail=None,
        document_id=UUID,
        attachments=(InlineFile("a.pdf", PDF, content_id="cid:209", encoded=b64(PDF)),),
    )
    envelope = _inspect(make_signed(spec, before=change), signer=signer)
    assert list(envelope.deviations) == [
        D("from-without-organ-name", "From"),
        D("document-id-uuid", "DocumentId"),
        D("type-detail-missing", "DocumentType"),
        D("trace-header-list-attributes", "TraceHeaderList"),
        D("bussiness-before-trace-header", "TraceHeaderList/Bussiness"),
        D("trace-header-without-organ-id", "TraceHeaderList/TraceHeader[1]"),
        D("content-id-not-uuid", "edXMLManifest/Reference[1]/ContentId"),
        D("content-id-not-uuid", "Attachment[1]/ContentId"),
        D("attachment-not-zipped", "Attachment[1]/ContentTransferEncoded"),
    ]
    assert len(set(envelope.deviations)) == len(envelope.deviations)
    # the pure readers give the same records for their part
    root = parse_envelope(make_signed(spec, before=change))
    assert read_document(root, now=NOW).deviations == envelope.document.deviations  # type: ignore[union-attr]


# --- status messages -------------------------------------------------------------------------------


def _status(rf: ResponseFor, *, sender: Organ = Organ(G22, "Văn phòng Chính phủ"), code: str = "01") -> bytes:
    return build_status(StatusSpec(response_for=rf, sender=sender, status_code=code, timestamp=NOW))


def test_status_tolerances() -> None:
    rf = ResponseFor("vxp.saas.03", document_id="000.00.00.H41,2025/05/30,12/UBND-VP")
    envelope = _inspect(_status(rf, sender=Organ("VPCP")), aliases={"VPCP": G22})
    assert list(envelope.deviations) == [
        D("from-without-organ-name", "From"),
        D("addressed-by-alias", "From/OrganId"),
        D("organ-id-nonstandard", "ResponseFor[1]/OrganId"),
        # the builder writes the sender's TraceHeader with From/OrganId as given
        D("organ-id-nonstandard", "TraceHeaderList/TraceHeader[1]/OrganId"),
    ]
    assert envelope.status is not None
    assert envelope.status.sender_id == G22
    assert envelope.status.deviations == envelope.deviations


def test_status_response_for_without_organ_id_needs_its_document_id() -> None:
    found = _inspect(_status(ResponseFor(document_id="000.00.00.H41,2025/05/30,12/UBND-VP")))
    assert found.status is not None
    assert (found.status.response_for.organ_id, found.status.document_id) == (
        None,
        "000.00.00.H41,2025/05/30,12/UBND-VP",
    )
    derived = _inspect(_status(ResponseFor("000.00.00.H41", code="12/UBND-VP", promulgation_date=dt.date(2025, 5, 30))))
    assert derived.status is not None
    assert derived.status.document_id == "000.00.00.H41,2025/05/30,12/UBND-VP"
    for rf in (ResponseFor(code="12/UBND-VP", promulgation_date=dt.date(2025, 5, 30)), ResponseFor()):
        with pytest.raises(SchemaInvalid):
            _inspect(_status(rf))


def test_the_gateways_own_status_01_reads_like_the_samples(signer: Signer) -> None:
    rf = ResponseFor("000.00.00.H41", document_id="000.00.00.H41,2025/05/30,12/UBND-VP", code="12/UBND-VP")
    data = sign(_status(rf), signer.key, signer.cert)  # type: ignore[arg-type]
    envelope = _inspect(data, signer=signer)
    assert envelope.signed
    assert envelope.status is not None
    assert envelope.status.status_code == "01"
    assert list(envelope.deviations) == []
    assert read_status(parse_envelope(data)).document_id == "000.00.00.H41,2025/05/30,12/UBND-VP"
    # the prefix layout of ../shared/samples/external: the root declares only the default namespace, the
    # envelope declares the edXML prefix and everything in it uses it
    root = etree.fromstring(data)
    assert root.nsmap == {None: EDXML}
    assert root.prefix is None
    envelope_el = root[0]
    assert envelope_el.tag == _e("edXMLEnvelope")
    assert envelope_el.prefix == "edXML"
    assert {k: v for k, v in envelope_el.nsmap.items() if k != "ds"} == {None: EDXML, "edXML": EDXML}
    assert all(el.prefix in ("edXML", "ds") for el in envelope_el.iter() if isinstance(el.tag, str))
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<edXML xmlns=\"" + EDXML.encode() + b'">')


def test_a_built_document_has_the_samples_prefix_layout() -> None:
    root = etree.fromstring(build_document(base_spec()))
    assert root.nsmap == {None: EDXML}
    envelope_el, block = root[0], root[1]
    assert envelope_el.prefix == "edXML"
    assert all(el.prefix == "edXML" for el in envelope_el.iter())
    assert block.tag == _e("AttachmentEncoded")
    assert block.prefix is None
    attachment = block[0]
    assert [(el.prefix, etree.QName(el).localname) for el in attachment.iter()] == [
        (None, "Attachment"),
        (None, "ContentId"),
        (None, "AttachmentName"),
        (None, "Description"),
        (None, "ContentType"),
        ("edXML", "ContentTransferEncoded"),
    ]
    transfer = attachment[-1]
    parent = transfer.getparent()
    assert parent is not None
    assert transfer.nsmap.get("edXML") == EDXML
    assert "edXML" not in parent.nsmap  # declared again on ContentTransferEncoded itself


# --- the catalogue ---------------------------------------------------------------------------------


def _every_quirk() -> list[Envelope]:
    """Two documents and a status that, together, show every quirk the envelope package records."""

    def change(root: etree._Element) -> None:
        _first(_first(root, "From"), "OrganId").text = "VPCP"
        mh = _first(root, "MessageHeader")
        mh.append(etree.Element(_e("ResponseFor")))
        etree.SubElement(_first(root, "Bussiness"), _e("DocumentId")).text = "000.00.00.G22,2014/02/30,1/X"
        trace = _first(root, "TraceHeader")
        trace.remove(_first(trace, "OrganId"))
        _bussiness_first(root)
        _net_trace_list(root)
        _digital_signature()(root)
        _xlink({"href": "cid:x", "role": "r", "type": "simple"})(root)
        _attachment_content_type("application/pdf", 0)(root)

    first = base_spec(
        sender=Organ(G22),
        recipients=(Organ("28.22.H17"), Organ(G22)),
        document_id=UUID,
        type_detail=None,
        legacy_signature=True,
        response_for=(ResponseFor("null", document_id="000.00.00.H41,2025/05/30,12/UBND-VP"),),
        attachments=(
            InlineFile("a.pdf", PDF, content_type="application/zip", content_id="cid:cid:209", encoded=b64(PDF)),
            InlineFile("b.docx", DOCX, content_type="application/docx", content_id=UUID2),
        ),
    )
    second = base_spec(document_id="7816/VPCP-TTĐT")
    aliases = {"VPCP": G22, "28.22.H17": "000.00.00.H17"}
    return [
        _inspect(_extra_namespaces(_unsigned(first, change)), aliases=aliases),
        _inspect(_unsigned(second)),
    ]


def test_every_code_emitted_is_in_the_catalogue() -> None:
    emitted = {d.code for envelope in [*SEEN, *_every_quirk()] for d in envelope.deviations}
    assert emitted <= set(DEVIATIONS)
    # the envelope package can emit every code of the catalogue but intake's own (original-unknown)
    assert {d.code for envelope in _every_quirk() for d in envelope.deviations} == set(DEVIATIONS) - {
        "original-unknown"
    }
    with pytest.raises(ValueError, match="catalogue"):
        DeviationLog().add("not-a-code", "edXML")


def test_deviation_is_a_stable_small_record() -> None:
    deviation = D("legacy-signature", "edXMLHeader/Signature")
    assert deviation.as_json() == {"code": "legacy-signature", "where": "edXMLHeader/Signature"}
    assert replace(deviation, where="x") != deviation
    assert str(uuid.UUID(UUID)) == UUID
