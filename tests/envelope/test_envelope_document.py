"""Metadata rules, each on a real signed envelope altered in exactly one way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from envelope_helpers import EDXML, NOW, Signer, base_spec
from lxml import etree

from gateway.envelope import (
    CodeListInvalid,
    DateInvalid,
    Limits,
    Organ,
    RecipientDuplicate,
    RecipientIdMalformed,
    ResponseFor,
    SecrecyForbidden,
    SenderMismatch,
    StatusSpec,
    TextInvalid,
    TooManyRecipients,
    build_status,
    inspect_envelope,
    sign,
)
from gateway.envelope.errors import EnvelopeError

MakeSigned = Callable[..., bytes]
H41 = Organ("000.00.00.H41", "UBND tỉnh Nghệ An")
H47 = Organ("001.00.10.H47", "Sở Nội vụ")


def _inspect(data: bytes, signer: Signer, **kwargs: object) -> object:
    return inspect_envelope(data, sender="000.00.00.G22", certificates=[signer.trusted], now=NOW, **kwargs)  # type: ignore[arg-type]


def _set(local: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        next(root.iter(f"{{{EDXML}}}{local}")).text = value

    return change


def test_accepts_a_signed_document(make_signed: MakeSigned, signer: Signer) -> None:
    envelope = _inspect(make_signed(), signer)
    assert envelope.signed  # type: ignore[attr-defined]
    meta = envelope.document  # type: ignore[attr-defined]
    assert meta.recipient_ids == ("000.00.00.H41",)
    assert meta.code_notation == "VPCP-TTĐT"
    assert meta.document_id == "000.00.00.G22,2025/06/02,1234/VPCP-TTĐT"
    assert envelope.attachments[0].file_type == "pdf"  # type: ignore[attr-defined]


def test_derives_document_id_when_absent(make_signed: MakeSigned, signer: Signer) -> None:
    meta = _inspect(make_signed(base_spec(write_document_id=False)), signer).document  # type: ignore[attr-defined]
    assert meta.document_id_derived
    assert meta.document_id == "000.00.00.G22,2025/06/02,1234/VPCP-TTĐT"


def test_normalises_text_to_nfc(make_signed: MakeSigned, signer: Signer) -> None:
    decomposed = "Ve\u0302\u0300 vie\u0323\u0302c kie\u0302\u0309m tra"  # "Về việc kiểm tra", NFD
    meta = _inspect(make_signed(base_spec(subject=decomposed)), signer).document  # type: ignore[attr-defined]
    assert meta.subject == "Về việc kiểm tra"


def test_reads_day_first_dates_leniently(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed(before=_set("PromulgationDate", "01/06/2025"))
    assert _inspect(data, signer).document.promulgation_date == dt.date(2025, 6, 1)  # type: ignore[attr-defined]


def test_refuses_sender_other_than_the_caller(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(SenderMismatch) as caught:
        _inspect(make_signed(base_spec(sender=H41, recipients=(H47,))), signer)
    assert caught.value.status == 403


def test_refuses_duplicate_recipient(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(RecipientDuplicate):
        _inspect(make_signed(base_spec(recipients=(H41, H47, H41))), signer)


@pytest.mark.parametrize("organ_id", ["000.00.00.h41", "00.00.00.H41", "000.00.00.H4", "H41", "000.00.00.H41 x"])
def test_refuses_malformed_recipient_id(make_signed: MakeSigned, signer: Signer, organ_id: str) -> None:
    with pytest.raises(RecipientIdMalformed) as caught:
        _inspect(make_signed(base_spec(recipients=(H41, Organ(organ_id, "Sai mã")))), signer)
    assert organ_id not in caught.value.detail


def test_refuses_too_many_recipients(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(TooManyRecipients):
        _inspect(make_signed(base_spec(recipients=(H41, H47))), signer, limits=Limits(max_recipients=1))


@pytest.mark.parametrize("secrecy", ["1", "2", "3", "Mật", "Tối mật", "Tuyệt mật", "unknown"])
def test_refuses_classified_document(make_signed: MakeSigned, signer: Signer, secrecy: str) -> None:
    with pytest.raises(SecrecyForbidden):
        _inspect(make_signed(base_spec(secrecy=secrecy)), signer)


@pytest.mark.parametrize("secrecy", ["0", "Thường", "normal"])
def test_accepts_normal_secrecy_marker(make_signed: MakeSigned, signer: Signer, secrecy: str) -> None:
    assert _inspect(make_signed(base_spec(secrecy=secrecy)), signer).document.secrecy_marked  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("local", "value"),
    [("Priority", "5"), ("Priority", "x"), ("BussinessDocType", "4"), ("Type", "3"), ("SteeringType", "9")],
)
def test_refuses_values_outside_code_lists(make_signed: MakeSigned, signer: Signer, local: str, value: str) -> None:
    with pytest.raises(CodeListInvalid):
        _inspect(make_signed(before=_set(local, value)), signer)


def test_refuses_future_promulgation_date(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(DateInvalid):
        _inspect(make_signed(base_spec(promulgation_date=dt.date(2025, 6, 3))), signer)


@pytest.mark.parametrize("value", ["2025/13/01", "2025/02/30", "hôm qua", "06/01/25"])
def test_refuses_unreadable_dates(make_signed: MakeSigned, signer: Signer, value: str) -> None:
    with pytest.raises(DateInvalid):
        _inspect(make_signed(before=_set("PromulgationDate", value)), signer)


@pytest.mark.parametrize(
    ("local", "value"),
    [
        ("Subject", "x" * 501),
        ("CodeNumber", "123456789012"),
        ("CodeNotation", "Q" * 31),
        ("Place", "P" * 51),
        ("Subject", "bad \x85 control"),
        ("Subject", "private \ue000 use"),
        ("Subject", "   "),
    ],
    ids=["subject-long", "number-long", "notation-long", "place-long", "c1-control", "private-use", "blank"],
)
def test_refuses_invalid_text(make_signed: MakeSigned, signer: Signer, local: str, value: str) -> None:
    with pytest.raises(TextInvalid):
        _inspect(make_signed(before=_set(local, value)), signer)


def _status(code: str, signer: Signer) -> bytes:
    rf = ResponseFor("000.00.00.H41", document_id="000.00.00.H41,2025/06/01,12/UBND-VP")
    xml = build_status(
        StatusSpec(response_for=rf, sender=Organ("000.00.00.G22", "VPCP"), status_code=code, timestamp=NOW)
    )
    return sign(xml, signer.key, signer.cert)


@pytest.mark.parametrize("code", ["01", "02", "03", "04", "05", "06", "13", "15", "16"])
def test_accepts_known_status_codes(signer: Signer, code: str) -> None:
    envelope = _inspect(_status(code, signer), signer)
    assert envelope.status.status_code == code  # type: ignore[attr-defined]
    assert envelope.status.document_id == "000.00.00.H41,2025/06/01,12/UBND-VP"  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", ["07", "12", "14", "3", "99"])
def test_refuses_unknown_status_codes(signer: Signer, code: str) -> None:
    with pytest.raises(CodeListInvalid):
        _inspect(_status(code, signer), signer)


def test_every_refusal_is_an_envelope_error() -> None:
    assert issubclass(SenderMismatch, EnvelopeError)
    assert SenderMismatch.slug == "sender-mismatch"
