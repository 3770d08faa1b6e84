"""The real edXML files of ../shared/samples/external (written by software we did not write), read by the pure
envelope package: what is accepted, with exactly which deviations, and what stays refused.

The folder lives outside the repository (``/work/shared`` beside ``/work/main``); the files are read in place,
never copied. Without it the module is skipped, except under ``CI=true``, where its absence is a failure.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from lxml import etree

from gateway.envelope import (
    Deviation,
    Envelope,
    EnvelopeError,
    FileTypeForbidden,
    RecipientIdMalformed,
    inspect_envelope,
)
from real_processes import shared_dir

# tests/envelope/this.py → [0] envelope, [1] tests, [2] the repository, [3] its parent, which holds shared/
NOW = dt.datetime(2025, 6, 2, 3, 0, 0, tzinfo=dt.UTC)
#: ext01 addresses its To by a code outside the pattern; the register would know it as an alias
ALIASES = {"28.22.H17": "000.00.00.H17"}
ATTACHMENT = "1896_QD-TTg_m_294779.doc"
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"

STATUSES = {
    "ext05-vpcp-sdk-status-01.edxml": ("01", "000.00.00.H41"),
    "ext06-vpcp-sdk-status-02-rejection.edxml": ("02", "000.00.00.H41"),
    "ext07-vpcp-sdk-status-13-cancellation.edxml": ("13", "000.00.00.G22"),
}


def D(code: str, where: str) -> Deviation:  # reads like the dataclass
    return Deviation(code, where)


LEGACY_AND_CID = [
    D("legacy-signature", "edXMLHeader/Signature"),
    D("content-id-not-uuid", "edXMLManifest/Reference[1]/ContentId"),
    D("content-id-not-uuid", "Attachment[1]/ContentId"),
]
IMPOSSIBLE = D("document-id-date-impossible", "TraceHeaderList/Bussiness/DocumentId")
#: document → (sender, recipients as resolved, deviations once its attachment is a real PDF)
DOCUMENTS: dict[str, tuple[str, tuple[str, ...], list[Deviation]]] = {
    "ext01-vpcp-sdk-edoc-new.edxml": (
        "000.00.00.A80",
        ("000.00.00.H17",),
        [D("addressed-by-alias", "To[1]/OrganId"), IMPOSSIBLE, *LEGACY_AND_CID],
    ),
    "ext02-vpcp-sdk-edoc-revocation.edxml": (
        "000.00.00.G22",
        ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"),
        LEGACY_AND_CID,
    ),
    "ext03-vpcp-sdk-edoc-update.edxml": (
        "000.00.00.G22",
        ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"),
        [IMPOSSIBLE, *LEGACY_AND_CID],
    ),
    "ext04-vpcp-sdk-edoc-replacement.edxml": (
        "000.00.00.G22",
        ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"),
        LEGACY_AND_CID,
    ),
    "ext08-lgsp-received-2019.edxml": (
        "000.00.00.G22",
        ("000.00.00.H41", "000.00.00.H14", "000.00.00.G17"),
        [D("bussiness-before-trace-header", "TraceHeaderList/Bussiness"), IMPOSSIBLE, *LEGACY_AND_CID],
    ),
}


@pytest.fixture(scope="module")
def external() -> Path:
    return shared_dir("samples", "external")


def _read(external: Path, name: str) -> bytes:
    return (external / name).read_bytes()


def _inspect(data: bytes, sender: str, aliases: Mapping[str, str] | None = None) -> Envelope:
    # unsigned (their legacy Signature is data only): accepted under the channel policy
    return inspect_envelope(data, sender=sender, certificates=[], now=NOW, policy="channel", aliases=aliases)


def test_the_folder_holds_the_eight_samples(external: Path) -> None:
    assert {p.name for p in external.glob("*.edxml")} == set(STATUSES) | set(DOCUMENTS)


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_status_samples_are_accepted_without_deviation(external: Path, name: str) -> None:
    code, sender = STATUSES[name]
    envelope = _inspect(_read(external, name), sender)
    assert envelope.kind == "status"
    assert envelope.status is not None
    assert envelope.status.status_code == code
    assert envelope.status.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert list(envelope.deviations) == []


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_samples_stay_refused_for_their_attachment(external: Path, name: str) -> None:
    """Their ZIP holds an .edxml while the name says .doc: a file type the gateway does not carry."""
    sender, _recipients, _deviations = DOCUMENTS[name]
    with pytest.raises(FileTypeForbidden) as caught:
        _inspect(_read(external, name), sender, ALIASES)
    assert caught.value.extensions["attachment"] == ATTACHMENT
    assert len(caught.value.detail) < 200


def test_ext01_without_its_alias_is_refused_for_its_recipient(external: Path) -> None:
    with pytest.raises(RecipientIdMalformed):
        _inspect(_read(external, "ext01-vpcp-sdk-edoc-new.edxml"), "000.00.00.A80")


def _with_a_real_pdf(data: bytes) -> bytes:
    """The same file with its attachment made a PDF: AttachmentName and Description (in the Reference and the
    Attachment) ``.doc`` → ``.pdf``, and the ZIP rebuilt holding a small real PDF of that name."""
    pdf_name = ATTACHMENT.removesuffix(".doc") + ".pdf"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(pdf_name, PDF)  # as a Python tool writes it: mode 0600, no file type bits
    encoded = base64.encodebytes(buf.getvalue())
    assert data.count(ATTACHMENT.encode()) == 4
    out = data.replace(ATTACHMENT.encode(), pdf_name.encode())
    out, replaced = re.subn(
        rb"(<edXML:ContentTransferEncoded[^>]*>)[^<]*(</edXML:ContentTransferEncoded>)",
        lambda m: m.group(1) + encoded + m.group(2),
        out,
    )
    assert replaced == 1
    return out


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_samples_with_a_real_pdf_are_accepted_with_their_deviations(external: Path, name: str) -> None:
    sender, recipients, deviations = DOCUMENTS[name]
    envelope = _inspect(_with_a_real_pdf(_read(external, name)), sender, ALIASES)
    assert list(envelope.deviations) == deviations
    assert envelope.document is not None
    assert envelope.document.recipient_ids == recipients
    assert envelope.document.sender_id == sender
    (info,) = envelope.attachments
    assert (info.name, info.file_type, info.data, info.content_id) == ("1896_QD-TTg_m_294779.pdf", "pdf", PDF, "209")


def test_the_samples_prefix_layout_is_what_the_gateway_writes(external: Path) -> None:
    """The layout test of test_envelope_deviations.py checks the builder against this very shape."""
    root = etree.fromstring(_read(external, "ext01-vpcp-sdk-edoc-new.edxml"), etree.XMLParser(huge_tree=True))
    assert root.nsmap == {None: "http://www.mic.gov.vn/TBT/QCVN_102_2016"}
    assert root[0].prefix == "edXML"
    transfer = next(root.iter("{*}ContentTransferEncoded"))
    assert transfer.prefix == "edXML"
    parent = transfer.getparent()
    assert parent is not None
    assert parent.prefix is None


def test_every_refusal_is_an_envelope_error() -> None:
    assert issubclass(FileTypeForbidden, EnvelopeError)
