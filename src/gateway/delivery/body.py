"""The bytes a recipient gets, push or pull: the original edXML, or the multipart form it came in.

A document submitted as ``application/xml`` is delivered as exactly those bytes. A document whose large
attachments travelled as multipart parts is delivered the same way it arrived: ``multipart/form-data``
with the edXML bytes as part ``envelope`` (``Content-Type: application/xml``) and one part per large
attachment, named by its Content-ID (form name and ``Content-ID`` header), with its file name and
content type, in manifest order. Each part is read from the blob store by the SHA-256 that the envelope
itself declares for it, and streamed in chunks, so a 2 GB attachment never sits in memory; the body has a
``Content-Length``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lxml import etree

from gateway.blobs import BlobStore
from gateway.envelope import EDXML_NS, PROFILE_NS, parse_xml

CHUNK = 1024 * 1024
XML_MEDIA_TYPE = "application/xml"


@dataclass(frozen=True)
class Part:
    content_id: str
    filename: str
    content_type: str
    sha256: str
    size: int


@dataclass
class DeliveryBody:
    media_type: str
    length: int
    envelope: bytes
    parts: list[Part] = field(default_factory=list)
    boundary: str = ""
    blobs: BlobStore | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        if not self.parts:
            yield self.envelope
            return
        assert self.blobs is not None
        yield _envelope_head(self.boundary) + self.envelope + b"\r\n"
        for part in self.parts:
            yield _part_head(self.boundary, part)
            with self.blobs.open(part.sha256) as fh:
                while True:
                    chunk = await asyncio.to_thread(fh.read, CHUNK)
                    if not chunk:
                        break
                    yield chunk
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode("ascii")


def _header_safe(value: str) -> str:
    """ASCII without quotes or line breaks, for a header parameter (names were checked at intake)."""
    out = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in value)
    return out[:200] or "part"


def _envelope_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="envelope"; filename="envelope.edxml"\r\n'
        f"Content-Type: {XML_MEDIA_TYPE}\r\n\r\n"
    ).encode("ascii")


def _part_head(boundary: str, part: Part) -> bytes:
    cid = _header_safe(part.content_id)
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{cid}"; filename="{_header_safe(part.filename)}"\r\n'
        f"Content-ID: <{cid}>\r\n"
        f"Content-Type: {_header_safe(part.content_type)}\r\n\r\n"
    ).encode("ascii")


def _text(parent: etree._Element, local: str) -> str:
    found = parent.find(f"{{{EDXML_NS}}}{local}")
    return (found.text or "").strip() if found is not None else ""


def large_parts(envelope: bytes) -> list[Part]:
    """The profile large attachments an (accepted) envelope declares, in document order."""
    root = parse_xml(envelope)
    out: list[Part] = []
    for att in root.iter(f"{{{EDXML_NS}}}Attachment"):
        sha = att.find(f"{{{PROFILE_NS}}}Sha256")
        size = att.find(f"{{{PROFILE_NS}}}Size")
        if sha is None or size is None:
            continue

        cid = _text(att, "ContentId")
        if cid.lower().startswith("cid:"):
            cid = cid[4:]
        out.append(Part(content_id=cid.strip("<>"), filename=_text(att, "AttachmentName"),
                        content_type=_text(att, "ContentType") or "application/octet-stream",
                        sha256=(sha.text or "").strip().lower(), size=int((size.text or "0").strip())))
    return out


def delivery_body(envelope: bytes, multipart: bool, blobs: BlobStore, seed: str) -> DeliveryBody:
    """The body for one delivery; ``seed`` (the delivery id) makes the boundary stable across retries."""
    parts = large_parts(envelope) if multipart else []
    if not parts:
        return DeliveryBody(XML_MEDIA_TYPE, len(envelope), envelope)
    boundary = "gateway-" + hashlib.sha256(seed.encode() + envelope).hexdigest()[:40]
    length = len(_envelope_head(boundary)) + len(envelope) + 2
    length += sum(len(_part_head(boundary, p)) + p.size + 2 for p in parts)
    length += len(f"--{boundary}--\r\n")
    return DeliveryBody(f"multipart/form-data; boundary={boundary}", length, envelope, parts, boundary, blobs)
