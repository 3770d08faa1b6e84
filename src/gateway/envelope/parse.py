"""Hardened parsing of an edXML envelope: bytes in, a validated lxml tree out.

The envelope comes from another agency's software and must be treated as hostile until every rule has
passed. Parsing therefore refuses, before anything is expanded, everything XML can do beyond describing a
tree: DTDs (internal or external, hence XXE, billion laughs and quadratic blowup), entities, XInclude and
network access; it bounds size, nesting depth and element count while reading, and accepts UTF-8 only
(the legacy Vietnamese TCVN3 / VNI encodings and UTF-16 are refused, not guessed at).

Steps (each raises its own :mod:`gateway.envelope.errors` type; see the package docstring for the whole
intake order):

1. size of the bytes                               → XmlTooLarge
2. encoding: BOM, XML declaration, strict UTF-8     → EncodingNotUtf8
3. NUL bytes                                        → NulByte
4. any ``<!`` markup other than comments and CDATA  → XmlDtdForbidden   (pre-scan: nothing is expanded)
5. incremental parse counting depth and elements    → XmlMalformed, XmlTooDeep, XmlTooManyElements
6. XInclude elements anywhere                       → XmlXIncludeForbidden
7. a W3C ``ds:Signature`` outside ``edXMLEnvelope/edXMLHeader`` → SignatureWrongLocation (the XSD would
   only say schema-invalid), then ``schemas/edxml.xsd`` and the cardinalities it cannot express
   → SchemaInvalid

Tolerated and recorded (:func:`record_structure`, after the signature step; see
:mod:`~gateway.envelope.deviations`): namespace declarations beyond edXML, xmldsig, the profile, xlink and
xml anywhere (``xmlns:xsi``, ``xmlns:xsd`` of the .NET SDK; read from the parsed bytes, since exclusive
canonicalisation drops unused declarations from the signed tree) → ``namespace-declarations-extra``;
attributes ``id``/``version``/``mustUnderstand``/``actor`` on ``TraceHeaderList``
→ ``trace-header-list-attributes``; an empty ``edXML:DigitalSignature`` in ``edXMLHeader``
→ ``digital-signature-empty`` (a non-empty one, or two, is schema-invalid); ``xlink:href``/``role``/``type``
on a manifest ``Reference`` → ``reference-xlink-attributes`` (other xlink attributes are schema-invalid);
the legacy edXML-namespace ``Signature`` → ``legacy-signature`` (data only, never trusted).
"""

from __future__ import annotations

import codecs
import re
from functools import cache
from pathlib import Path

from lxml import etree

from ._record import DeviationLog
from ._xml import (
    DS_NS,
    EDXML_NS,
    PROFILE_NS,
    XINCLUDE_NSES,
    XLINK_NS,
    XML_NS,
    child,
    children,
    header,
    local_name,
    q,
    require,
)
from .errors import (
    EncodingNotUtf8,
    NulByte,
    SchemaInvalid,
    SignatureWrongLocation,
    XmlDtdForbidden,
    XmlMalformed,
    XmlTooDeep,
    XmlTooLarge,
    XmlTooManyElements,
    XmlXIncludeForbidden,
)
from .limits import Limits

__all__ = ["DEFAULT_LIMITS", "parse_envelope", "parse_xml", "record_structure", "schema_path", "validate_schema"]

DEFAULT_LIMITS = Limits()

_CHUNK = 64 * 1024
_DECL = re.compile(rb"""\A<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
# "<!" opens a comment, a CDATA section, or DTD markup (DOCTYPE, ENTITY, ELEMENT, ATTLIST, NOTATION).
# Only the first two are accepted; a false positive inside a comment is refused too (fails closed).
_DTD_MARKUP = re.compile(rb"<!(?!--|\[CDATA\[)")
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
#: namespaces an edXML envelope may declare without a deviation being recorded
_KNOWN_NSES = frozenset({EDXML_NS, DS_NS, PROFILE_NS, XLINK_NS, XML_NS})
#: the .NET SDK's attributes on TraceHeaderList (the XSD allows exactly these)
_TRACE_LIST_ATTRIBUTES = ("id", "version", "mustUnderstand", "actor")
#: the xlink attributes the .NET SDK writes on a manifest Reference
_XLINK_ATTRIBUTES = frozenset(q(name, XLINK_NS) for name in ("href", "role", "type"))


def schema_path() -> Path:
    """``schemas/edxml.xsd``: shipped in the wheel as ``gateway/_schemas``, else the repository's."""
    package_dir = Path(__file__).resolve().parents[1]
    installed = package_dir / "_schemas"
    base = installed if installed.is_dir() else Path(__file__).resolve().parents[3] / "schemas"
    return base / "edxml.xsd"


@cache
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(schema_path()), parser))


def _check_encoding(data: bytes) -> bytes:
    """Return the bytes without a UTF-8 BOM, or refuse anything that is not UTF-8."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise EncodingNotUtf8("the envelope starts with a UTF-32 byte order mark")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise EncodingNotUtf8("the envelope starts with a UTF-16 byte order mark")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if data[:2] in (b"\x00<", b"<\x00"):
        raise EncodingNotUtf8("the envelope looks like UTF-16 without a byte order mark")
    declared = _DECL.match(data[:256])
    if declared is None and data.startswith(b"<?xml") and b"encoding" in data[: data.find(b"?>") + 1]:
        raise EncodingNotUtf8("the XML declaration names an unreadable encoding")
    if declared is not None and declared.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        raise EncodingNotUtf8("the XML declaration names an encoding other than UTF-8")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        for start in range(0, len(data), _CHUNK):
            decoder.decode(data[start : start + _CHUNK], final=False)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise EncodingNotUtf8(
            "the envelope is not valid UTF-8 (legacy TCVN3/VNI text must be converted)",
            offset=exc.start,
        ) from None
    return data


def parse_xml(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Steps 1-6: hardened parse of any XML the gateway reads from outside (no schema)."""
    # 1. size
    if len(data) > limits.max_envelope_bytes:
        raise XmlTooLarge(f"the envelope is larger than {limits.max_envelope_bytes} bytes")
    # 2. encoding
    data = _check_encoding(data)
    # 3. NUL
    if b"\x00" in data:
        raise NulByte("the envelope contains a NUL byte", offset=data.index(b"\x00"))
    # 4. DTD markup, refused before the parser could expand anything
    if _DTD_MARKUP.search(data) is not None:
        raise XmlDtdForbidden("the envelope contains a DOCTYPE or other DTD declaration")
    # 5. incremental parse with running depth and element counts
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        # libxml2's own huge-text guard would refuse inline attachments over 10 MB; the size, depth and
        # element bounds are enforced here instead, and DTDs never reach the parser.
        huge_tree=True,
        remove_pis=False,
        collect_ids=False,
    )
    depth = 0
    count = 0
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
            for event, _el in parser.read_events():
                if event == "start":
                    depth += 1
                    count += 1
                    if depth > limits.max_depth:
                        raise XmlTooDeep(f"elements nest deeper than {limits.max_depth}")
                    if count > limits.max_elements:
                        raise XmlTooManyElements(f"the envelope holds more than {limits.max_elements} elements")
                else:
                    depth -= 1
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        raise XmlMalformed(
            "the envelope is not well-formed XML" + (f" (line {line})" if line else ""), line=line
        ) from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise XmlDtdForbidden("the envelope declares a DTD")
    # 6. XInclude: never processed, and refused so that no later tool processes it either
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).namespace in XINCLUDE_NSES:
            raise XmlXIncludeForbidden("the envelope contains an XInclude element")
        if isinstance(el, etree._Entity):
            raise XmlDtdForbidden("the envelope contains an entity reference")
    return root


def validate_schema(root: etree._Element) -> None:
    """Step 7: ``schemas/edxml.xsd``, then the cardinalities an XSD 1.0 choice cannot express."""
    if root.tag != q("edXML"):
        raise SchemaInvalid("the root element is not edXML in the QCVN 102:2016 namespace")
    # A W3C signature anywhere but edXMLHeader would fail the XSD; answer with the precise refusal instead
    # (signature wrapping attempts move it). Its exact position is checked by verify_signature.
    for signature in root.iter(q("Signature", DS_NS)):
        parent = signature.getparent()
        grandparent = parent.getparent() if parent is not None else None
        if (
            parent is None
            or parent.tag != q("edXMLHeader")
            or grandparent is None
            or grandparent.tag != q("edXMLEnvelope")
            or grandparent.getparent() is not root
        ):
            raise SignatureWrongLocation("a W3C XML signature is placed outside edXMLEnvelope/edXMLHeader")
    schema = _schema()
    if not schema.validate(root):
        # lxml-stubs leave _ErrorLog opaque; last_error is lxml's documented attribute.
        last_error = getattr(schema.error_log, "last_error", None)
        line = getattr(last_error, "line", None)
        # The libxml2 message may quote hostile values, so only the position is reported.
        raise SchemaInvalid(
            "the envelope does not match schemas/edxml.xsd" + (f" (line {line})" if line else ""), line=line
        )
    envelope = require(root, "edXMLEnvelope")
    hdr = require(envelope, "edXMLHeader")
    headers = children(hdr, "MessageHeader") + children(hdr, "Status")
    if len(headers) != 1:
        raise SchemaInvalid("edXMLHeader must hold exactly one MessageHeader (or Status)")
    if len(children(headers[0], "From")) != 1:
        raise SchemaInvalid(f"{local_name(headers[0])} must hold exactly one From")
    for name in ("TraceHeaderList", "Signature", "DigitalSignature"):
        if len(children(hdr, name)) > 1:
            raise SchemaInvalid(f"edXMLHeader holds more than one {name}")
    body = child(envelope, "edXMLBody")
    manifest = child(body, "edXMLManifest") if body is not None else None
    for ref in children(manifest, "Reference") if manifest is not None else []:
        if any(name not in _XLINK_ATTRIBUTES for name in ref.attrib):
            raise SchemaInvalid("a manifest Reference carries an xlink attribute other than href, role or type")
    for name in (
        "From",
        "DocumentId",
        "Code",
        "PromulgationInfo",
        "DocumentType",
        "Subject",
        "Content",
        "SignerInfo",
        "DueDate",
        "ToPlaces",
        "OtherInfo",
        "SteeringType",
        "StaffInfo",
        "StatusCode",
        "Description",
        "Timestamp",
    ):
        if len(children(headers[0], name)) > 1:
            raise SchemaInvalid(f"{local_name(headers[0])} holds more than one {name}")
    trace = children(hdr, "TraceHeaderList")
    if trace and len(children(trace[0], "Bussiness")) > 1:
        raise SchemaInvalid("TraceHeaderList holds more than one Bussiness")
    for el in hdr:
        if isinstance(el.tag, str) and etree.QName(el).namespace == DS_NS and local_name(el) != "Signature":
            raise SchemaInvalid("edXMLHeader holds an xmldsig element other than Signature")


def record_structure(parsed: etree._Element, tree: etree._Element, log: DeviationLog) -> None:
    """Record the structural quirks the schema tolerates (module docstring): namespace declarations from the
    ``parsed`` tree (the bytes as received), everything else from ``tree`` (the tree that is read)."""
    for _event, (_prefix, uri) in etree.iterwalk(parsed, events=("start-ns",)):
        if uri not in _KNOWN_NSES:
            log.add("namespace-declarations-extra", "edXML")
            break
    hdr = header(tree)
    trace_list = child(hdr, "TraceHeaderList")
    if trace_list is not None and any(trace_list.get(name) is not None for name in _TRACE_LIST_ATTRIBUTES):
        log.add("trace-header-list-attributes", "TraceHeaderList", trace_list)
    digital_signature = child(hdr, "DigitalSignature")
    if digital_signature is not None:
        log.add("digital-signature-empty", "edXMLHeader/DigitalSignature", digital_signature)
    legacy = child(hdr, "Signature")
    if legacy is not None:
        log.add("legacy-signature", "edXMLHeader/Signature", legacy)
    body = child(require(tree, "edXMLEnvelope"), "edXMLBody")
    manifest = child(body, "edXMLManifest") if body is not None else None
    for index, ref in enumerate(children(manifest, "Reference") if manifest is not None else [], start=1):
        if any(name in _XLINK_ATTRIBUTES for name in ref.attrib):
            log.add("reference-xlink-attributes", f"edXMLManifest/Reference[{index}]", ref)


def parse_envelope(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Parse and validate an edXML envelope (steps 1-7). Raises an :class:`EnvelopeError` subclass."""
    root = parse_xml(data, limits)
    validate_schema(root)
    return root
