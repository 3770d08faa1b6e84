"""Attachments: decode, unzip, size, type and digest checks.

edXML carries each file inline as ``ContentTransferEncoded``: base64 of a ZIP holding exactly that one
file (the axis's own Java library writes PDF and DOCX as the raw file in base64 instead: accepted and
recorded). The gateway's profile adds large attachments: the ``Attachment`` declares ``p:Sha256`` and ``p:Size``
and the file travels as the multipart part with the same Content-ID; the caller streams that part to disk
while hashing it and hands over a :class:`LargePart` (digest, size, first bytes).

Everything here reads the *signed* tree (or, under the ``channel`` policy, the parsed tree) and is bounded
by :class:`~gateway.envelope.limits.Limits`: base64 text is measured before it is decoded, ZIP members are
measured by their declared sizes and again while they are streamed out, and decompression stops at the
cap, so neither an oversize field nor a zip bomb is ever expanded in full.

Steps, in order:

1. number of manifest entries and attachments ≤ ``max_attachments``          → TooManyAttachments
2. ContentIds present and unique once normalised (``cid:``, a doubled ``cid:cid:`` and ``<…>`` removed);
   manifest ↔ attachments one to one, and every multipart part declared      → ManifestWithoutAttachment,
                                                                                AttachmentWithoutManifest
3. per attachment: names (AttachmentName, ZIP member) have an allowed extension → FileTypeForbidden
4. inline: base64 length bound → AttachmentTooLarge; base64 → AttachmentUndecodable; then the payload is
   - a ZIP with one entry: the zipped form. Exactly one regular, unencrypted file with a safe name, stored
     or deflated, ratio below ``max_zip_ratio`` → AttachmentZipInvalid; the entry name's type is
     AttachmentName's → FileTypeForbidden; sizes → AttachmentTooLarge;
   - a ZIP with several entries: the raw file only if AttachmentName is docx/xlsx/odt/ods and the container
     sniffs as that very type (an OOXML/ODF file is itself a ZIP; macro-enabled never sniffs so), otherwise
     → AttachmentZipInvalid;
   - anything else: the raw file (size → AttachmentTooLarge), judged by step 5 exactly like a zipped one;
   large: declared size bound → AttachmentTooLarge; part present → ManifestWithoutAttachment; size and
   SHA-256 equal to the declared ones → AttachmentDigestMismatch
5. content sniffing agrees with the name (PDF, OLE2, OOXML/ODF inside ZIP, RTF, images, plain text)
                                                                              → FileTypeForbidden
6. sum of decoded sizes ≤ ``max_total_attachment_bytes``                      → AttachmentTooLarge

Every refusal raised once an attachment's ``AttachmentName`` is known names it (problem extension
``attachment``, the name as cleaned), beside the ``content_id``/``index`` extensions; ``detail`` stays short
fixed prose.

Tolerated and recorded as deviations (:mod:`~gateway.envelope.deviations`; ``where`` is
``edXMLManifest/Reference[i]/…`` or ``Attachment[i]/…``, counted in document order):
``content-id-without-cid``, ``content-id-doubled-cid``, ``content-id-not-uuid`` (e.g. ``cid:209``);
``content-type-mismatch`` (Reference and Attachment declare different ContentTypes);
``content-type-nonstandard`` (a declared ContentType that is neither ``application/zip`` nor the sniffed
type's media type of :data:`CONTENT_TYPES`, e.g. ``application/docx``); ``attachment-not-zipped`` (the raw
file in base64).

The allowed types follow seeds Điều 5: pdf, doc/docx, odt, rtf, txt, xls/xlsx, ods, csv and the common
image formats (png, jpeg, gif, tiff, bmp). Macro-enabled OOXML is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from lxml import etree

from ._record import DeviationLog
from ._values import clean_text, integer, required_text
from ._xml import PROFILE_NS, child, children, require
from .deviations import Deviation
from .errors import (
    AttachmentDigestMismatch,
    AttachmentTooLarge,
    AttachmentUndecodable,
    AttachmentWithoutManifest,
    AttachmentZipInvalid,
    EnvelopeError,
    FileTypeForbidden,
    ManifestWithoutAttachment,
    SchemaInvalid,
    TooManyAttachments,
)
from .limits import Limits

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "AttachmentInfo",
    "LargePart",
    "file_type_of_name",
    "normalize_content_id",
    "read_attachments",
    "sniff_file_type",
]

DEFAULT_LIMITS = Limits()

#: file extension → file type (the allow-list of seeds Điều 5)
EXTENSIONS: Mapping[str, str] = {
    "pdf": "pdf",
    "doc": "doc",
    "docx": "docx",
    "odt": "odt",
    "rtf": "rtf",
    "txt": "txt",
    "xls": "xls",
    "xlsx": "xlsx",
    "ods": "ods",
    "csv": "csv",
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "gif": "gif",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
}
#: file type → media type written by the builder
CONTENT_TYPES: Mapping[str, str] = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
    "rtf": "application/rtf",
    "txt": "text/plain",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "csv": "text/csv",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODF_TYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
}
_OOXML_TYPES = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
}
_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x19\x1b-\x1f\x7f]")
_SNIFF_BYTES = 8192
_CHUNK = 1024 * 1024
_NAME_MAX = 255
_MSDOS_DIRECTORY = 0x10  # FILE_ATTRIBUTE_DIRECTORY in the low byte of the external attributes
_OFFICE_TYPES = frozenset({"docx", "xlsx", "odt", "ods"})
_ZIP_MEDIA_TYPE = "application/zip"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class LargePart:
    """What the caller measured while streaming a multipart part to disk."""

    sha256: str
    size: int
    head: bytes


@dataclass(frozen=True)
class AttachmentInfo:
    content_id: str
    name: str
    content_type: str | None
    sha256: str
    size: int
    #: the decoded file for inline attachments; None for large ones (they are on the caller's disk)
    data: bytes | None
    kind: Literal["inline", "large"]
    #: the sniffed file type, a value of :data:`EXTENSIONS`
    file_type: str
    description: str | None = None
    #: the tolerated quirks of this attachment (its Reference and Attachment), in document order
    deviations: tuple[Deviation, ...] = ()


def normalize_content_id(value: str) -> str:
    """``cid:abc``, ``cid:cid:abc`` (the axis's Java library), ``<abc>`` and ``abc`` name the same part."""
    text = value.strip()
    for _ in range(2):
        if text[:4].lower() == "cid:":
            text = text[4:].strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text.strip()


def _record_content_id(raw: str, where: str, el: etree._Element | None, log: DeviationLog) -> None:
    text = raw.strip().lower()
    if text.startswith("cid:cid:"):
        log.add("content-id-doubled-cid", where, el)
    elif not text.startswith("cid:"):
        log.add("content-id-without-cid", where, el)
    if _UUID.fullmatch(normalize_content_id(raw)) is None:
        log.add("content-id-not-uuid", where, el)


def file_type_of_name(name: str) -> str | None:
    base = re.split(r"[\\/]", name)[-1]
    if "." not in base:
        return None
    return EXTENSIONS.get(base.rsplit(".", 1)[1].strip().lower())


def _zip_office_type(data: bytes) -> str | None:
    """docx/xlsx/odt/ods from a whole ZIP container, or None. Reads only two small members."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > 10_000:
                return None
            by_name = {i.filename: i for i in infos}
            if any(n.lower().endswith("vbaproject.bin") for n in by_name):
                return None
            mimetype = by_name.get("mimetype")
            if mimetype is not None and mimetype.file_size <= 200:
                kind = _ODF_TYPES.get(zf.read(mimetype).strip())
                if kind is not None:
                    return kind
            ctypes = by_name.get("[Content_Types].xml")
            if ctypes is not None and ctypes.file_size <= _CHUNK:
                body = zf.read(ctypes)
                if b"macroEnabled" in body:
                    return None
                for marker, kind in _OOXML_TYPES.items():
                    if marker in body:
                        return kind
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
        return None
    return None


def sniff_file_type(head: bytes, data: bytes | None = None) -> frozenset[str]:
    """The file types the content may be (empty: none allowed). ``data`` is the whole file if known."""
    if head.startswith(b"%PDF-") or (b"%PDF-" in head[:1024] and not head.startswith((b"MZ", b"\x7fELF"))):
        return frozenset({"pdf"})
    if head.startswith(_OLE_MAGIC):
        return frozenset({"doc", "xls"})
    if head.startswith(_ZIP_MAGIC):
        if data is not None:
            kind = _zip_office_type(data)
            return frozenset({kind}) if kind else frozenset()
        # Only the first bytes of a large part: ODF puts its mimetype first, uncompressed.
        if head[30:38] == b"mimetype":
            for marker, kind in _ODF_TYPES.items():
                if head[38:].startswith(marker):
                    return frozenset({kind})
            return frozenset()
        return frozenset({"docx", "xlsx"})
    if head.startswith(b"{\\rtf"):
        return frozenset({"rtf"})
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return frozenset({"png"})
    if head.startswith(b"\xff\xd8\xff"):
        return frozenset({"jpeg"})
    if head.startswith((b"GIF87a", b"GIF89a")):
        return frozenset({"gif"})
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return frozenset({"tiff"})
    if head.startswith(b"BM") and len(head) >= 14:
        return frozenset({"bmp"})
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return frozenset({"txt", "csv"})  # UTF-16 text with a byte order mark
    if head and _TEXT_CONTROL.search(head[:_SNIFF_BYTES]) is None:
        return frozenset({"txt", "csv"})
    return frozenset()


def _check_name(name: str, where: str) -> str:
    kind = file_type_of_name(name)
    if kind is None:
        raise FileTypeForbidden(f"{where} does not have an allowed file extension", field=where)
    return kind


def _safe_member_name(name: str) -> bool:
    if not name or len(name) > _NAME_MAX or "\\" in name or "/" in name or ":" in name:
        return False
    return name not in (".", "..") and not any(ord(ch) < 32 for ch in name)


def _is_regular_file(info: zipfile.ZipInfo) -> bool:
    """Whether a ZIP entry is a plain file, whatever tool wrote it.

    The high 16 bits of the external attributes hold a Unix ``st_mode`` only when the writer put one there:
    Java's ``ZipOutputStream`` and Windows write 0, Python's ``ZipFile.writestr(name, ...)`` writes
    permission bits alone (``0o600``), Info-ZIP a full mode (``0o100644``). So absent file-type bits mean a
    regular file, ``S_IFREG`` is one, and any other file type (directory, symlink, device, FIFO, socket) is
    not. The MS-DOS directory attribute (low byte, ``0x10``) and a name ending in ``/`` also mark a directory.
    """
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type not in (0, stat.S_IFREG):
        return False
    return not (info.external_attr & _MSDOS_DIRECTORY or info.filename.endswith("/"))


def _inline_file(payload: bytes, kind: str, label: str, limits: Limits) -> tuple[bytes, bool]:
    """The file an inline payload carries, and whether it travelled raw (not zipped); module docstring step 4.

    ``kind`` is AttachmentName's file type. The content itself is judged afterwards (step 5).
    """
    if not payload.startswith(_ZIP_MAGIC):
        if len(payload) > limits.max_attachment_bytes:
            raise AttachmentTooLarge(
                f"{label}: the file is larger than {limits.max_attachment_bytes} bytes", content_id=label
            )
        return payload, True
    try:
        zf = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError):
        raise AttachmentZipInvalid(f"{label} is not a readable ZIP archive", content_id=label) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > 1 and kind in _OFFICE_TYPES and _zip_office_type(payload) == kind:
            # an OOXML/ODF file is itself a ZIP: this is the raw document, not a ZIP holding it
            if len(payload) > limits.max_attachment_bytes:
                raise AttachmentTooLarge(
                    f"{label}: the file is larger than {limits.max_attachment_bytes} bytes", content_id=label
                )
            return payload, True
        member, data = _unzip_single(zf, label, limits)
    member_kind = _check_name(member, f"{label} ZIP entry name")
    if member_kind != kind:
        raise FileTypeForbidden(f"{label}: the ZIP entry's type differs from AttachmentName's", content_id=label)
    return data, False


def _unzip_single(zf: zipfile.ZipFile, label: str, limits: Limits) -> tuple[str, bytes]:
    """The one regular file of the zipped form: name and bytes, every ZIP rule applied."""
    infos = zf.infolist()
    if len(infos) != 1:
        raise AttachmentZipInvalid(
            f"{label}: the ZIP holds {len(infos)} entries, exactly one file is expected", content_id=label
        )
    info = infos[0]
    if not _safe_member_name(info.filename):
        raise AttachmentZipInvalid(
            f"{label}: the ZIP entry name is a path or unsafe (path traversal)", content_id=label
        )
    if not _is_regular_file(info):
        raise AttachmentZipInvalid(f"{label}: the ZIP entry is not a regular file", content_id=label)
    if info.flag_bits & 0x1:
        raise AttachmentZipInvalid(f"{label}: the ZIP entry is encrypted", content_id=label)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise AttachmentZipInvalid(f"{label}: the ZIP entry uses an unsupported compression", content_id=label)
    if info.file_size > limits.zip_ratio_floor_bytes and info.file_size > limits.max_zip_ratio * max(
        info.compress_size, 1
    ):
        raise AttachmentZipInvalid(f"{label}: the ZIP decompression ratio is too high (zip bomb)", content_id=label)
    if info.file_size > limits.max_attachment_bytes:
        raise AttachmentTooLarge(
            f"{label}: the file is larger than {limits.max_attachment_bytes} bytes", content_id=label
        )
    cap = info.file_size
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                out += chunk
                if len(out) > cap:
                    raise AttachmentZipInvalid(
                        f"{label}: the ZIP entry holds more data than it declares", content_id=label
                    )
                if len(out) > limits.zip_ratio_floor_bytes and len(out) > limits.max_zip_ratio * max(
                    info.compress_size, 1
                ):
                    raise AttachmentZipInvalid(
                        f"{label}: the ZIP decompression ratio is too high (zip bomb)", content_id=label
                    )
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
        raise AttachmentZipInvalid(f"{label}: the ZIP entry is corrupt", content_id=label) from None
    if len(out) != info.file_size:
        raise AttachmentZipInvalid(f"{label}: the ZIP entry is shorter than it declares", content_id=label)
    return info.filename, bytes(out)


def _decode_inline(encoded: etree._Element, label: str, limits: Limits) -> bytes:
    text = encoded.text or ""
    max_chars = 4 * -(-limits.max_inline_attachment_bytes // 3)
    # Whitespace (line breaks every 76 characters) is free; bound the raw text generously before copying.
    if len(text) > 2 * max_chars + 1024:
        raise AttachmentTooLarge(f"{label}: the encoded attachment exceeds the inline limit", content_id=label)
    compact = "".join(text.split())
    if len(compact) > max_chars:
        raise AttachmentTooLarge(f"{label}: the encoded attachment exceeds the inline limit", content_id=label)
    if not compact:
        raise AttachmentUndecodable(f"{label}: ContentTransferEncoded is empty", content_id=label)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise AttachmentUndecodable(f"{label}: ContentTransferEncoded is not valid base64", content_id=label) from None


def _check_sniff(kind: str, head: bytes, data: bytes | None, label: str) -> str:
    possible = sniff_file_type(head, data)
    if kind not in possible:
        raise FileTypeForbidden(
            f"{label}: the file's content does not match an allowed type for its name", content_id=label
        )
    return kind


def read_attachments(
    root: etree._Element,
    *,
    limits: Limits = DEFAULT_LIMITS,
    large_parts: Mapping[str, LargePart] | None = None,
) -> tuple[AttachmentInfo, ...]:
    """Check and decode every attachment of a (signed) document tree; see the module docstring."""
    infos, _log = _read_attachments(root, limits=limits, large_parts=large_parts)
    return infos


def _read_attachments(
    root: etree._Element,
    *,
    limits: Limits,
    large_parts: Mapping[str, LargePart] | None,
) -> tuple[tuple[AttachmentInfo, ...], DeviationLog]:
    """:func:`read_attachments`, and the deviations of all attachments together."""
    parts = {normalize_content_id(k): v for k, v in (large_parts or {}).items()}
    body = child(require(root, "edXMLEnvelope"), "edXMLBody")
    manifest = child(body, "edXMLManifest") if body is not None else None
    references = children(manifest, "Reference") if manifest is not None else []
    encoded_block = child(root, "AttachmentEncoded")
    attachments = children(encoded_block, "Attachment") if encoded_block is not None else []

    # 1. counts
    if max(len(references), len(attachments)) > limits.max_attachments:
        raise TooManyAttachments(f"more than {limits.max_attachments} attachments")

    # 2. one to one by ContentId
    manifest_by_id: dict[str, tuple[int, etree._Element, str]] = {}
    for index, ref in enumerate(references, start=1):
        raw = required_text(_text(ref, "ContentId"), "Reference/ContentId", max_chars=255)
        cid = normalize_content_id(raw)
        if cid in manifest_by_id:
            raise ManifestWithoutAttachment(f"manifest entry {index} repeats a ContentId", index=index)
        manifest_by_id[cid] = (index, ref, raw)
    attachment_by_id: dict[str, tuple[int, etree._Element, str]] = {}
    for index, att in enumerate(attachments, start=1):
        raw = required_text(_text(att, "ContentId"), "Attachment/ContentId", max_chars=255)
        cid = normalize_content_id(raw)
        if cid in attachment_by_id:
            raise AttachmentWithoutManifest(f"attachment {index} repeats a ContentId", index=index)
        attachment_by_id[cid] = (index, att, raw)
    for index, cid in enumerate(manifest_by_id, start=1):
        if cid not in attachment_by_id:
            raise ManifestWithoutAttachment(f"manifest entry {index} has no Attachment", index=index)
    for index, cid in enumerate(attachment_by_id, start=1):
        if cid not in manifest_by_id:
            raise AttachmentWithoutManifest(f"attachment {index} has no manifest entry", index=index)
    declared_large = {
        cid for cid, (_i, att, _raw) in attachment_by_id.items() if child(att, "Sha256", PROFILE_NS) is not None
    }
    if any(cid not in declared_large for cid in parts):
        raise AttachmentWithoutManifest("a multipart part is not declared as a large attachment")

    out: list[AttachmentInfo] = []
    all_logs = DeviationLog()
    total = 0
    for index, (cid, (ref_index, ref, ref_raw)) in enumerate(manifest_by_id.items(), start=1):
        att_index, att, att_raw = attachment_by_id[cid]
        ref_where = f"edXMLManifest/Reference[{ref_index}]"
        att_where = f"Attachment[{att_index}]"
        log = DeviationLog()
        _record_content_id(ref_raw, f"{ref_where}/ContentId", child(ref, "ContentId"), log)
        _record_content_id(att_raw, f"{att_where}/ContentId", child(att, "ContentId"), log)
        # 3. names
        name = required_text(_text(att, "AttachmentName"), "Attachment/AttachmentName", max_chars=_NAME_MAX)
        try:
            info = _read_one(
                index=index,
                cid=cid,
                name=name,
                ref=ref,
                att=att,
                ref_where=ref_where,
                att_where=att_where,
                limits=limits,
                parts=parts,
                log=log,
            )
            # 6. total
            total += info.size
            if total > limits.max_total_attachment_bytes:
                raise AttachmentTooLarge(f"the attachments together exceed {limits.max_total_attachment_bytes} bytes")
        except EnvelopeError as exc:
            # name the attachment (as cleaned: NFC, no control characters, bounded); detail stays fixed prose
            exc.extensions.setdefault("attachment", name)
            raise
        out.append(replace(info, deviations=log.ordered(root)))
        all_logs.extend(log)
    return tuple(out), all_logs


def _read_one(
    *,
    index: int,
    cid: str,
    name: str,
    ref: etree._Element,
    att: etree._Element,
    ref_where: str,
    att_where: str,
    limits: Limits,
    parts: Mapping[str, LargePart],
    log: DeviationLog,
) -> AttachmentInfo:
    """Steps 3 to 5 for one attachment whose AttachmentName is ``name``."""
    label = f"attachment {index}"
    manifest_name = required_text(_text(ref, "AttachmentName"), "Reference/AttachmentName", max_chars=_NAME_MAX)
    kind = _check_name(name, "Attachment/AttachmentName")
    _check_name(manifest_name, "Reference/AttachmentName")
    ref_type = clean_text(_text(ref, "ContentType"), "Reference/ContentType", max_chars=255)
    att_type = clean_text(_text(att, "ContentType"), "Attachment/ContentType", max_chars=255)
    description = clean_text(
        _text(att, "Description") or _text(ref, "Description"), "Description", max_chars=limits.max_text_chars
    )
    encoded = child(att, "ContentTransferEncoded")
    sha_el = child(att, "Sha256", PROFILE_NS)
    size_el = child(att, "Size", PROFILE_NS)
    if (encoded is None) == (sha_el is None) or (sha_el is None) != (size_el is None):
        raise SchemaInvalid(f"{label}: carry either ContentTransferEncoded or p:Sha256 and p:Size", index=index)
    if encoded is not None:
        # 4. inline
        payload = _decode_inline(encoded, label, limits)
        if len(payload) > limits.max_inline_attachment_bytes:
            raise AttachmentTooLarge(f"{label}: the encoded attachment exceeds the inline limit", index=index)
        data, raw = _inline_file(payload, kind, label, limits)
        # 5. content
        file_type = _check_sniff(kind, data[:_SNIFF_BYTES], data, label)
        if raw:
            log.add("attachment-not-zipped", f"{att_where}/ContentTransferEncoded", encoded)
        digest = hashlib.sha256(data).hexdigest()
        size = len(data)
        kept: bytes | None = data
    else:
        assert sha_el is not None
        assert size_el is not None
        declared_sha = (sha_el.text or "").strip().lower()
        declared_size = integer(size_el.text, "Attachment/Size")
        if declared_size > limits.max_large_attachment_bytes:
            raise AttachmentTooLarge(
                f"{label}: the file is larger than {limits.max_large_attachment_bytes} bytes", index=index
            )
        part = parts.get(cid)
        if part is None:
            raise ManifestWithoutAttachment(f"{label}: no multipart part carries its Content-ID", index=index)
        if part.size != declared_size or part.sha256.lower() != declared_sha:
            raise AttachmentDigestMismatch(
                f"{label}: the multipart part does not match the declared SHA-256 and size", index=index
            )
        file_type = _check_sniff(kind, part.head[:_SNIFF_BYTES], None, label)
        digest, size, kept = declared_sha, declared_size, None
    # declared media types: recorded, never trusted (the content was sniffed)
    if ref_type is not None and att_type is not None and ref_type.casefold() != att_type.casefold():
        log.add("content-type-mismatch", f"{att_where}/ContentType", child(att, "ContentType"))
    standard = {_ZIP_MEDIA_TYPE, CONTENT_TYPES[file_type]}
    for declared, where, el in (
        (ref_type, f"{ref_where}/ContentType", child(ref, "ContentType")),
        (att_type, f"{att_where}/ContentType", child(att, "ContentType")),
    ):
        if declared is not None and declared.casefold() not in standard:
            log.add("content-type-nonstandard", where, el)
    return AttachmentInfo(
        content_id=cid,
        name=name,
        content_type=att_type or ref_type,
        sha256=digest,
        size=size,
        data=kept,
        kind="inline" if kept is not None else "large",
        file_type=file_type,
        description=description,
    )


def _text(parent: etree._Element, local: str) -> str | None:
    el = child(parent, local)
    return el.text if el is not None else None
