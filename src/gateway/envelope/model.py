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
    """A ``From`` or ``To`` block."""

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
    """The document a document or a status message answers."""

    organ_id: str
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
    organ_id: str
    timestamp: datetime


def derive_document_id(organ_id: str, promulgation_date: date, code_number: str, code_notation: str) -> str:
    """``{sender OrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}`` (EDXML.md), used when DocumentId is absent."""
    return f"{organ_id},{format_date(promulgation_date)},{code_number}/{code_notation}"
