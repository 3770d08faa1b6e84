"""The one-file ZIP of an inline attachment: what counts as a regular file, whatever tool zipped it.

The high 16 bits of a ZIP entry's external attributes hold a Unix ``st_mode`` only if the writer put one
there. Java's ``ZipOutputStream`` and Windows write 0 (Windows may set the MS-DOS archive bit, 0x20, in the
low byte), Python's ``ZipFile.writestr(name, data)`` writes permission bits without a file type
(``0o600 << 16``), Info-ZIP a full mode (``0o100644 << 16``). All of these are regular files. Only an entry
whose file-type bits name another type (directory, symlink, device, FIFO, socket), that carries the MS-DOS
directory attribute (0x10), or whose name ends with ``/`` is refused (``attachment-zip-invalid``).

Every ZIP here is built in the test, byte for byte, with :mod:`zipfile`; the unit tests read the signed
envelope with ``inspect_envelope``, and the HTTP tests post it to the gateway on both databases.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
import struct
import zipfile
from collections.abc import Callable

import httpx
import pytest
from envelope_helpers import NOW, PDF, Signer, base_spec
from fastapi import FastAPI

from gateway.envelope import AttachmentZipInvalid, InlineFile, inspect_envelope
from gw import last_entry, only_ledger_grew, register, stored, submit

MakeSigned = Callable[..., bytes]

MSDOS_ARCHIVE = 0x20
MSDOS_DIRECTORY = 0x10


def zip_one(name: str, data: bytes, *, external_attr: int, create_system: int = 3) -> bytes:
    """A ZIP holding one entry whose external attributes are exactly ``external_attr``.

    ``zipfile`` replaces external attributes of 0 by ``0o600 << 16`` when it writes, so the value is
    written into the central directory header (offset 38, four bytes) afterwards.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name, date_time=(2025, 6, 2, 10, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = create_system  # 0: MS-DOS/Windows (also what Java writes), 3: Unix
        info.external_attr = external_attr
        zf.writestr(info, data)
    raw = bytearray(buf.getvalue())
    central = raw.find(b"PK\x01\x02")
    assert central > 0
    struct.pack_into("<I", raw, central + 38, external_attr)
    return bytes(raw)


def zip_by_python_writestr(name: str, data: bytes) -> bytes:
    """What a client using only ``ZipFile.writestr(name, data)`` sends (no file type in the mode)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def _attr_of(payload: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        (info,) = zf.infolist()
        return info.external_attr


# Regular files as various tools write them.
ACCEPTED: dict[str, bytes] = {
    "java-or-windows-attr-0": zip_one("cong-van.pdf", PDF, external_attr=0, create_system=0),
    "windows-archive-bit": zip_one("cong-van.pdf", PDF, external_attr=MSDOS_ARCHIVE, create_system=0),
    "python-writestr-0600": zip_by_python_writestr("cong-van.pdf", PDF),
    "info-zip-0100644": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFREG | 0o644) << 16 | MSDOS_ARCHIVE),
    "unix-regular-no-dos-bits": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFREG | 0o600) << 16),
}

# Entries that are not regular files (the name still ends in .pdf unless the case is about the name).
REFUSED: dict[str, bytes] = {
    "directory-info-zip": zip_one("thu-muc/", b"", external_attr=(stat.S_IFDIR | 0o755) << 16 | MSDOS_DIRECTORY),
    "directory-unix-type-bits-only": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFDIR | 0o755) << 16),
    "directory-msdos-attribute-only": zip_one("cong-van.pdf", PDF, external_attr=MSDOS_DIRECTORY, create_system=0),
    "directory-python-writestr": zip_one("thu-muc/", b"", external_attr=(0o40775 << 16) | MSDOS_DIRECTORY),
    "symlink": zip_one("cong-van.pdf", PDF, external_attr=0o120777 << 16),
    "character-device": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFCHR | 0o644) << 16),
    "block-device": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFBLK | 0o644) << 16),
    "fifo": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFIFO | 0o644) << 16),
    "socket": zip_one("cong-van.pdf", PDF, external_attr=(stat.S_IFSOCK | 0o755) << 16),
}


def test_the_fixtures_carry_the_attributes_they_claim() -> None:
    # The point of each case is its exact external attributes: check them on the built bytes.
    assert _attr_of(ACCEPTED["java-or-windows-attr-0"]) == 0
    assert _attr_of(ACCEPTED["python-writestr-0600"]) == 0o600 << 16
    assert _attr_of(ACCEPTED["info-zip-0100644"]) >> 16 == 0o100644
    assert _attr_of(REFUSED["symlink"]) == 0o120777 << 16
    assert _attr_of(REFUSED["directory-msdos-attribute-only"]) == MSDOS_DIRECTORY


def _inspect(xml: bytes, signer: Signer) -> object:
    return inspect_envelope(xml, sender="000.00.00.G22", certificates=[signer.trusted], now=NOW)


def _encoded(payload: bytes) -> str:
    return base64.encodebytes(payload).decode("ascii")


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_regular_file_entries_are_accepted(make_signed: MakeSigned, signer: Signer, case: str) -> None:
    spec = base_spec(attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf",
                                             encoded=_encoded(ACCEPTED[case])),))
    (info,) = _inspect(make_signed(spec), signer).attachments  # type: ignore[attr-defined]
    assert info.name == "cong-van.pdf"
    assert info.data == PDF
    assert info.sha256 == hashlib.sha256(PDF).hexdigest()
    assert info.file_type == "pdf"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_entries_that_are_not_regular_files_are_refused(make_signed: MakeSigned, signer: Signer, case: str) -> None:
    spec = base_spec(attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf",
                                             encoded=_encoded(REFUSED[case])),))
    with pytest.raises(AttachmentZipInvalid) as refused:
        _inspect(make_signed(spec), signer)
    assert refused.value.slug == "attachment-zip-invalid"


# -- through the gateway, on both databases ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["java-or-windows-attr-0", "python-writestr-0600", "info-zip-0100644"])
async def test_gateway_accepts_regular_file_zipped_by_any_tool(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], case: str
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    xml = g22.envelope(h41, attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf",
                                                    encoded=_encoded(ACCEPTED[case])),))
    r = await submit(client, g22, xml)
    assert r.status_code == 201, r.text
    view = (await client.get(r.headers["Location"], headers=g22.headers)).json()
    [attachment] = view["attachments"]
    assert attachment["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert app.state.blobs.read(attachment["sha256"]) == PDF


@pytest.mark.parametrize("case", ["symlink", "directory-unix-type-bits-only", "directory-msdos-attribute-only"])
async def test_gateway_refuses_entries_that_are_not_regular_files(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], case: str
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    xml = g22.envelope(h41, attachments=(InlineFile("cong-van.pdf", PDF, "application/pdf",
                                                    encoded=_encoded(REFUSED[case])),))
    before = await stored(app)
    r = await submit(client, g22, xml)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:gateway:problem:attachment-zip-invalid"
    assert only_ledger_grew(before, await stored(app))
    entry = await last_entry(app)
    assert entry.type == "envelope.refused"
    assert json.loads(entry.details)["rule"] == "attachment-zip-invalid"
