"""Attachment rules: decoding, the one-file ZIP, sizes, types, manifest pairing, large parts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from envelope_helpers import (
    EDXML,
    NOW,
    PDF,
    Signer,
    b64,
    base_spec,
    docx_bytes,
    odt_bytes,
    zip_encrypted_flag,
    zip_entries,
    zip_lying_size,
)
from lxml import etree

from gateway.envelope import (
    AttachmentDigestMismatch,
    AttachmentTooLarge,
    AttachmentUndecodable,
    AttachmentWithoutManifest,
    AttachmentZipInvalid,
    FileTypeForbidden,
    InlineFile,
    LargeFile,
    LargePart,
    Limits,
    ManifestWithoutAttachment,
    TooManyAttachments,
    inspect_envelope,
    parse_envelope,
    read_attachments,
)

MakeSigned = Callable[..., bytes]


def _inspect(data: bytes, signer: Signer, **kwargs: object) -> object:
    return inspect_envelope(data, sender="000.00.00.G22", certificates=[signer.trusted], now=NOW, **kwargs)  # type: ignore[arg-type]


def _with(*files: InlineFile | LargeFile) -> object:
    return base_spec(attachments=files)


def test_decodes_inline_pdf_and_digests_it(make_signed: MakeSigned, signer: Signer) -> None:
    (info,) = _inspect(make_signed(), signer).attachments  # type: ignore[attr-defined]
    assert info.data == PDF
    assert info.sha256 == hashlib.sha256(PDF).hexdigest()
    assert info.size == len(PDF)
    assert info.kind == "inline"


@pytest.mark.parametrize(
    ("name", "data", "file_type"),
    [
        ("a.docx", docx_bytes(), "docx"),
        ("a.odt", odt_bytes(), "odt"),
        ("a.txt", "Nội dung".encode(), "txt"),
        ("a.csv", b"a,b\n1,2\n", "csv"),
        ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "png"),
        ("a.JPG", b"\xff\xd8\xff\xe0" + b"\x00" * 32, "jpeg"),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32, "doc"),
        ("a.rtf", b"{\\rtf1\\ansi hello}", "rtf"),
    ],
)
def test_accepts_allowed_types(make_signed: MakeSigned, signer: Signer, name: str, data: bytes, file_type: str) -> None:
    (info,) = _inspect(make_signed(_with(InlineFile(name, data))), signer).attachments  # type: ignore[attr-defined]
    assert info.file_type == file_type


@pytest.mark.parametrize("name", ["virus.exe", "script.js", "noextension", "macro.docm", "a.pdf.exe", "page.html"])
def test_refuses_forbidden_names(make_signed: MakeSigned, signer: Signer, name: str) -> None:
    with pytest.raises(FileTypeForbidden):
        _inspect(make_signed(_with(InlineFile(name, PDF))), signer)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
        ("report.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00"),
        ("a.docx", docx_bytes(macro=True)),
        ("a.docx", PDF),
        ("a.png", PDF),
    ],
    ids=["exe-as-pdf", "elf-as-txt", "docm-as-docx", "pdf-as-docx", "pdf-as-png"],
)
def test_refuses_content_that_does_not_match_the_name(
    make_signed: MakeSigned, signer: Signer, name: str, data: bytes
) -> None:
    with pytest.raises(FileTypeForbidden):
        _inspect(make_signed(_with(InlineFile(name, data))), signer)


def test_refuses_zip_member_name_of_another_type(make_signed: MakeSigned, signer: Signer) -> None:
    encoded = b64(zip_entries([("payload.exe", PDF)]))
    with pytest.raises(FileTypeForbidden):
        _inspect(make_signed(_with(InlineFile("a.pdf", PDF, encoded=encoded))), signer)


@pytest.mark.parametrize("encoded", ["!!!notbase64!!!", "QUJD=A", "QUJ"])
def test_refuses_undecodable_base64(make_signed: MakeSigned, signer: Signer, encoded: str) -> None:
    with pytest.raises(AttachmentUndecodable):
        _inspect(make_signed(_with(InlineFile("a.pdf", PDF, encoded=encoded))), signer)


@pytest.mark.parametrize(
    "payload",
    [
        b"PK\x03\x04" + b"\x00" * 40,  # ZIP magic, not a readable archive
        zip_entries([("a.pdf", PDF), ("b.pdf", PDF)]),
        zip_entries([("../../etc/a.pdf", PDF)]),
        zip_entries([("/abs/a.pdf", PDF)]),
        zip_entries([("..\\a.pdf", PDF)]),
        zip_entries([("C:a.pdf", PDF)]),
        zip_entries([("a.pdf", PDF)], mode=0o120777),  # symlink
        zip_entries([("dir/", b"")]),
        zip_encrypted_flag("a.pdf", PDF),
        zip_entries([("a.pdf", PDF)], compress=12),  # bzip2: not stored or deflated
        zip_entries([("a.pdf", PDF)])[:-30],  # truncated
        zip_lying_size("a.pdf", PDF + b" " * 4096, declared=len(PDF)),
    ],
    ids=[
        "unreadable-zip",
        "several-files",
        "traversal",
        "absolute",
        "backslash",
        "drive",
        "symlink",
        "directory",
        "encrypted",
        "bzip2",
        "truncated",
        "lying-size",
    ],
)
def test_refuses_unacceptable_zips(make_signed: MakeSigned, signer: Signer, payload: bytes) -> None:
    with pytest.raises(AttachmentZipInvalid) as caught:
        _inspect(make_signed(_with(InlineFile("a.pdf", PDF, encoded=b64(payload)))), signer)
    assert caught.value.extensions["attachment"] == "a.pdf"


def test_accepts_the_raw_file_when_its_content_is_the_named_type(make_signed: MakeSigned, signer: Signer) -> None:
    # Deliberate change: "not a ZIP archive" was a refusal; the raw file in base64 (as the axis's Java library
    # writes PDF and DOCX) is accepted when it sniffs as AttachmentName's type, and recorded.
    envelope = _inspect(make_signed(_with(InlineFile("a.pdf", PDF, encoded=b64(PDF)))), signer)
    (info,) = envelope.attachments  # type: ignore[attr-defined]
    assert (info.data, info.file_type) == (PDF, "pdf")
    assert [d.code for d in envelope.deviations] == ["attachment-not-zipped"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "payload", "refusal"),
    [
        ("a.pdf", bytes.fromhex("138a07fe01990042c311ee5d007f80021b"), FileTypeForbidden),  # 17 bytes of junk
        ("a.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", FileTypeForbidden),
        ("a.docx", PDF, FileTypeForbidden),
        # a raw OOXML container named .pdf: several entries and not an office name, so not the raw form
        ("a.pdf", docx_bytes(), AttachmentZipInvalid),
        # macro-enabled never sniffs as docx: several entries, refused as before
        ("a.docx", docx_bytes(macro=True), AttachmentZipInvalid),
    ],
    ids=["junk-pdf", "exe-as-pdf", "pdf-as-docx", "docx-as-pdf", "raw-docm-as-docx"],
)
def test_refuses_raw_content_that_does_not_match_the_name(
    make_signed: MakeSigned, signer: Signer, name: str, payload: bytes, refusal: type[Exception]
) -> None:
    with pytest.raises(refusal) as caught:
        _inspect(make_signed(_with(InlineFile(name, PDF, encoded=b64(payload)))), signer)
    assert caught.value.extensions["attachment"] == name  # type: ignore[attr-defined]


def test_refuses_zip_bomb_by_ratio(make_signed: MakeSigned, signer: Signer) -> None:
    bomb = zip_entries([("a.pdf", b"%PDF-1.4\n" + b"\x00" * (8 * 1024 * 1024))])
    assert len(bomb) < 20_000
    with pytest.raises(AttachmentZipInvalid):
        _inspect(make_signed(_with(InlineFile("a.pdf", PDF, encoded=b64(bomb)))), signer)


def test_refuses_file_over_the_decoded_limit(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(InlineFile("a.txt", b"x" * 5000)))
    with pytest.raises(AttachmentTooLarge):
        _inspect(data, signer, limits=Limits(max_attachment_bytes=4999))


def test_refuses_oversize_base64(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(InlineFile("a.pdf", PDF, encoded="QUFB" * 3000)))
    with pytest.raises(AttachmentTooLarge):
        _inspect(data, signer, limits=Limits(max_inline_attachment_bytes=1024))


def test_refuses_total_over_the_limit(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(InlineFile("a.pdf", PDF), InlineFile("b.pdf", PDF)))
    with pytest.raises(AttachmentTooLarge):
        _inspect(data, signer, limits=Limits(max_total_attachment_bytes=len(PDF) + 1))


def test_refuses_too_many_attachments(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(InlineFile("a.pdf", PDF), InlineFile("b.pdf", PDF)))
    with pytest.raises(TooManyAttachments):
        _inspect(data, signer, limits=Limits(max_attachments=1))


def _drop(local: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = next(root.iter(f"{{{EDXML}}}{local}"))
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)

    return change


def test_refuses_manifest_entry_without_attachment(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(ManifestWithoutAttachment):
        _inspect(make_signed(before=_drop("Attachment")), signer)


def test_refuses_attachment_without_manifest_entry(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(AttachmentWithoutManifest):
        _inspect(make_signed(before=_drop("Reference")), signer)


def test_refuses_mismatched_content_ids(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        attachment = next(root.iter(f"{{{EDXML}}}Attachment"))
        cid = attachment.find(f"{{{EDXML}}}ContentId")
        assert cid is not None
        cid.text = "cid:other"

    with pytest.raises(ManifestWithoutAttachment):
        _inspect(make_signed(before=change), signer)


def test_pairs_content_ids_written_differently(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        reference = next(root.iter(f"{{{EDXML}}}Reference"))
        attachment = next(root.iter(f"{{{EDXML}}}Attachment"))
        ref_cid = reference.find(f"{{{EDXML}}}ContentId")
        cid = attachment.find(f"{{{EDXML}}}ContentId")
        assert cid is not None
        assert ref_cid is not None
        assert ref_cid.text is not None
        cid.text = "<" + ref_cid.text.removeprefix("cid:") + ">"

    assert len(_inspect(make_signed(before=change), signer).attachments) == 1  # type: ignore[attr-defined]


BIG = b"%PDF-1.7\n" + bytes(range(256)) * 64


def _large_part(data: bytes) -> LargePart:
    return LargePart(sha256=hashlib.sha256(data).hexdigest(), size=len(data), head=data[:8192])


def test_accepts_large_attachment_with_matching_part(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(LargeFile.from_bytes("lon.pdf", BIG, content_id="cid:big")))
    (info,) = _inspect(data, signer, large_parts={"<big>": _large_part(BIG)}).attachments  # type: ignore[attr-defined]
    assert info.kind == "large"
    assert info.data is None
    assert info.sha256 == hashlib.sha256(BIG).hexdigest()


@pytest.mark.parametrize(
    "part",
    [_large_part(BIG + b"x"), LargePart(hashlib.sha256(BIG).hexdigest(), len(BIG) + 1, BIG[:100])],
    ids=["digest", "size"],
)
def test_refuses_large_part_not_matching_its_declaration(
    make_signed: MakeSigned, signer: Signer, part: LargePart
) -> None:
    data = make_signed(_with(LargeFile.from_bytes("lon.pdf", BIG, content_id="cid:big")))
    with pytest.raises(AttachmentDigestMismatch):
        _inspect(data, signer, large_parts={"big": part})


def test_refuses_missing_large_part(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(LargeFile.from_bytes("lon.pdf", BIG, content_id="cid:big")))
    with pytest.raises(ManifestWithoutAttachment):
        _inspect(data, signer, large_parts={})


def test_refuses_undeclared_large_part(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(AttachmentWithoutManifest):
        _inspect(make_signed(), signer, large_parts={"stray": _large_part(BIG)})


def test_refuses_large_part_whose_content_is_not_its_type(make_signed: MakeSigned, signer: Signer) -> None:
    exe = b"MZ" + b"\x00" * 1000
    data = make_signed(_with(LargeFile.from_bytes("lon.pdf", exe, content_id="cid:big")))
    with pytest.raises(FileTypeForbidden):
        _inspect(data, signer, large_parts={"big": _large_part(exe)})


def test_refuses_declared_large_size_over_the_limit(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(_with(LargeFile("lon.pdf", "ab" * 32, 10**12, content_id="cid:big")))
    with pytest.raises(AttachmentTooLarge):
        _inspect(data, signer, large_parts={"big": LargePart("ab" * 32, 10**12, BIG[:100])})


def test_read_attachments_works_on_an_unsigned_tree() -> None:
    from gateway.envelope import build_document

    root = parse_envelope(build_document(base_spec()))
    assert read_attachments(root)[0].name == "Công văn 1234.pdf"
