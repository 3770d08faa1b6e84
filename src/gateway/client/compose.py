"""What an agency sends, before it is signed: the document's metadata and its files.

:class:`OutgoingDocument` is the metadata an agency's QLVB system already holds (số, ký hiệu, loại, trích
yếu, nơi nhận …); :class:`Attachment` is one file, on disk or in memory. :func:`prepare_document` turns
them into the edXML the gateway reads (through :func:`gateway.envelope.build_document`, so the client
writes exactly what the gateway parses): a file up to ``inline_limit`` bytes travels inline (base64 of a
ZIP holding it, the standard encoding), a larger one as a multipart part declared in the envelope by its
SHA-256 and size (the gateway's profile), so that the signature covers it without the file ever being
held in memory.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from gateway.envelope import (
    DocumentSpec,
    InlineFile,
    LargeFile,
    Organ,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    build_document,
)
from gateway.envelope.attachments import CONTENT_TYPES, file_type_of_name

from .keys import AgencyKey

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "Attachment",
    "OutgoingDocument",
    "PreparedEnvelope",
    "PreparedFile",
    "prepare_document",
]

#: files above this size travel as multipart parts rather than inline base64
DEFAULT_INLINE_LIMIT = 4 * 1024 * 1024
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    """One file to send: ``path`` on disk or ``data`` in memory (exactly one), under the name ``name``.

    The name's extension must be one the gateway accepts (Điều 5: pdf, doc/docx, odt, rtf, txt,
    xls/xlsx, ods, csv and common images); ``content_type`` defaults to the one of that extension.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    content_type: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("an Attachment needs exactly one of path and data")

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None, *, content_type: str | None = None,
                  description: str | None = None) -> Attachment:
        p = Path(path)
        return cls(name or p.name, path=p, content_type=content_type, description=description)

    @classmethod
    def from_bytes(cls, name: str, data: bytes, *, content_type: str | None = None,
                   description: str | None = None) -> Attachment:
        return cls(name, data=data, content_type=content_type, description=description)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self._path().stat().st_size

    @property
    def media_type(self) -> str:
        kind = file_type_of_name(self.name)
        return self.content_type or (CONTENT_TYPES[kind] if kind else "application/octet-stream")

    def _path(self) -> Path:
        assert self.path is not None
        return self.path

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self._path().open("rb")

    def read(self) -> bytes:
        return self.data if self.data is not None else self._path().read_bytes()

    def chunks(self) -> Iterator[bytes]:
        with self.open() as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True)
class OutgoingDocument:
    """The metadata of a document (EDXML.md, "MessageHeader of a document") and its files.

    ``to`` holds the recipients' codes (or :class:`~gateway.envelope.Organ` blocks with names). The
    DocumentId is derived from the sender, ``promulgation_date``, ``code_number`` and ``code_notation``
    unless ``document_id`` is given; the gateway treats a second, different document under the same
    DocumentId as a conflict, so every document needs its own số/ký hiệu.
    """

    to: Sequence[str | Organ]
    subject: str
    code_number: str
    code_notation: str
    type_name: str = "Công văn"
    files: Sequence[Attachment] = ()
    #: 1 administrative, 2 legal normative
    document_type: int = 1
    type_detail: int | None = None
    #: the place of promulgation (Nơi ban hành, ≤ 50 characters)
    place: str = "Hà Nội"
    #: ngày ban hành; default: today in Viet Nam
    promulgation_date: date | None = None
    #: 0 Thường, 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc, 4 Hỏa tốc hẹn giờ
    priority: int = 0
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: date | None = None
    to_places: Sequence[str] = ()
    steering_type: int | None = 0
    response_for: Sequence[ResponseFor] = ()
    #: 0 new, 1 recall, 2 update, 3 replace (with ``business_doc_reason``)
    business_doc_type: int = 0
    business_doc_reason: str | None = None
    paper: bool = False
    staff: StaffInfo | None = None
    document_id: str | None = None
    #: the sender's TraceHeader timestamp (the signing time); default: now
    timestamp: datetime | None = None

    def recipients(self) -> tuple[Organ, ...]:
        return tuple(r if isinstance(r, Organ) else Organ(r) for r in self.to)


@dataclass(frozen=True)
class PreparedFile:
    """An attachment as declared in the envelope."""

    content_id: str
    name: str
    content_type: str
    sha256: str
    size: int
    #: True: inline base64 in the envelope; False: a multipart part
    inline: bool
    source: Attachment = field(repr=False)

    @property
    def part_name(self) -> str:
        """The multipart form name of a large file: its Content-ID without ``cid:``."""
        return self.content_id.removeprefix("cid:")


@dataclass(frozen=True)
class PreparedEnvelope:
    """A signed (or, without a key, unsigned) edXML document ready to submit."""

    xml: bytes
    sender: str
    recipients: tuple[str, ...]
    files: tuple[PreparedFile, ...]
    signed: bool

    @property
    def envelope_sha256(self) -> str:
        return hashlib.sha256(self.xml).hexdigest()

    @property
    def large_files(self) -> tuple[PreparedFile, ...]:
        return tuple(f for f in self.files if not f.inline)

    @property
    def upload_size(self) -> int:
        return len(self.xml) + sum(f.size for f in self.large_files)


def prepare_document(document: OutgoingDocument, sender: Organ, key: AgencyKey | None, *,
                     inline_limit: int = DEFAULT_INLINE_LIMIT) -> PreparedEnvelope:
    """Build and sign the edXML for ``document`` sent by ``sender`` (unsigned when ``key`` is None)."""
    declared: list[InlineFile | LargeFile] = []
    files: list[PreparedFile] = []
    for index, source in enumerate(document.files, start=1):
        cid = f"cid:{index}"
        size = source.size
        if size <= inline_limit:
            data = source.read()
            sha = hashlib.sha256(data).hexdigest()
            declared.append(InlineFile(source.name, data, source.media_type, source.description, cid))
            files.append(PreparedFile(cid, source.name, source.media_type, sha, len(data), True, source))
        else:
            sha = source.sha256()
            declared.append(LargeFile(source.name, sha, size, source.media_type, source.description, cid))
            files.append(PreparedFile(cid, source.name, source.media_type, sha, size, False, source))
    spec = DocumentSpec(
        sender=sender,
        recipients=document.recipients(),
        code_number=document.code_number,
        code_notation=document.code_notation,
        place=document.place,
        promulgation_date=document.promulgation_date,
        document_type=document.document_type,
        type_detail=document.type_detail,
        type_name=document.type_name,
        subject=document.subject,
        content=document.content,
        signer=document.signer,
        due_date=document.due_date,
        to_places=tuple(document.to_places),
        priority=document.priority,
        steering_type=document.steering_type,
        response_for=tuple(document.response_for),
        document_id=document.document_id,
        business_doc_type=document.business_doc_type,
        business_doc_reason=document.business_doc_reason,
        paper=document.paper,
        staff=document.staff,
        timestamp=document.timestamp,
        attachments=tuple(declared),
    )
    xml = build_document(spec)
    return PreparedEnvelope(
        xml=key.sign(xml) if key is not None else xml,
        sender=sender.organ_id,
        recipients=tuple(r.organ_id for r in spec.recipients),
        files=tuple(files),
        signed=key is not None,
    )
