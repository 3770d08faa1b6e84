"""Namespaces and small namespace-aware lookups shared by the envelope modules.

Producers differ in element order and in prefixes, so every lookup here goes by namespace and local name
only, never by position or prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from .errors import SchemaInvalid

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
PROFILE_NS = "urn:gateway:edxml-profile:1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XINCLUDE_NSES = frozenset({"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"})


def q(local: str, ns: str = EDXML_NS) -> str:
    return f"{{{ns}}}{local}"


def children(parent: etree._Element, local: str, ns: str = EDXML_NS) -> list[etree._Element]:
    tag = q(local, ns)
    return [c for c in parent if isinstance(c.tag, str) and c.tag == tag]


def child(parent: etree._Element, local: str, ns: str = EDXML_NS) -> etree._Element | None:
    """The only child of that name, or None; two of them is a schema error (the XSD cannot say so)."""
    found = children(parent, local, ns)
    if len(found) > 1:
        raise SchemaInvalid(f"element {local} appears more than once under {_local(parent)}")
    return found[0] if found else None


def require(parent: etree._Element, local: str, ns: str = EDXML_NS) -> etree._Element:
    found = child(parent, local, ns)
    if found is None:
        raise SchemaInvalid(f"element {local} is required under {_local(parent)}")
    return found


def elements(parent: etree._Element) -> Iterator[etree._Element]:
    """Element children only (no comments or processing instructions)."""
    for c in parent:
        if isinstance(c.tag, str):
            yield c


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def local_name(el: etree._Element) -> str:
    return _local(el)


def header(root: etree._Element) -> etree._Element:
    return require(require(root, "edXMLEnvelope"), "edXMLHeader")


def message_header(root: etree._Element) -> etree._Element:
    """``MessageHeader`` or, as some producers write it, ``Status``: exactly one of them."""
    hdr = header(root)
    found = children(hdr, "MessageHeader") + children(hdr, "Status")
    if len(found) != 1:
        raise SchemaInvalid("edXMLHeader must hold exactly one MessageHeader (or Status)")
    return found[0]
