"""Plain data read from or written to an edXML document (shared by the reader and the builder)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from ._values import format_date

__all__ = [
    "ManifestEntry",
    "Organ",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "TraceHeader",
    "derive_document_id",
]


@dataclass(frozen=True)
class Organ:
    """A ``From`` or ``To`` block, as written (``name`` is None for a ``From`` without ``OrganName``)."""

    organ_id: str
    name: str | None = None
    organization_in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True)
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True)
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class ResponseFor:
    """The document a document or a status message answers.

    Every child is optional in the wild (axis traffic writes an empty ``ResponseFor``, some producers no
    ``OrganId``); a status message must still name its document (``DocumentId``, or ``Code``,
    ``PromulgationDate`` and ``OrganId`` to derive it). ``organ_id`` is kept as written: it may lie outside
    the ``LLL.KK.JJ.Xnn`` pattern (recorded as ``organ-id-nonstandard``).
    """

    organ_id: str | None = None
    document_id: str | None = None
    code: str | None = None
    promulgation_date: date | None = None


@dataclass(frozen=True)
class ManifestEntry:
    """An ``edXMLManifest/Reference``."""

    content_id: str
    name: str
    content_type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class TraceHeader:
    """One ``TraceHeader``. ``organ_id`` as written: None when absent (``trace-header-without-organ-id``), and
    possibly outside the pattern (``organ-id-nonstandard``: ``null``, ``vxp.saas.03`` ... in axis traffic)."""

    organ_id: str | None
    timestamp: datetime


def derive_document_id(organ_id: str, promulgation_date: date, code_number: str, code_notation: str) -> str:
    """``{sender OrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}`` (EDXML.md), used when DocumentId is absent."""
    return f"{organ_id},{format_date(promulgation_date)},{code_number}/{code_notation}"
