"""The gateway's receipt: built, signed, verified independently, and refused when tampered."""

from __future__ import annotations

import datetime as dt

import pytest
from envelope_helpers import NOW, Signer
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.envelope import (
    RECEIPT_NS,
    ReceiptAttachment,
    ReceiptData,
    SignatureInvalid,
    SignatureMissing,
    build_receipt,
    verify_receipt,
)

DATA = ReceiptData(
    gateway_document_id="01J0000000000000000000000",
    document_id="000.00.00.G22,2025/06/02,1234/VPCP-TTĐT",
    sender="000.00.00.G22",
    recipients=("000.00.00.H41", "001.00.10.H47"),
    envelope_sha256="ab" * 32,
    attachments=(ReceiptAttachment("1", "Công văn.pdf", "cd" * 32, 1234),),
    signed=True,
    sent_at=dt.datetime(2025, 6, 2, 3, 0, 0, 123456, tzinfo=dt.UTC),
    ledger_sequence=42,
    ledger_entry_hash="ef" * 32,
    signer_certificate_sha256="01" * 32,
)


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-pss-sha256"])
def test_receipt_round_trips(signer: Signer, algorithm: str) -> None:
    xml = build_receipt(DATA, signer.key, signer.cert, algorithm=algorithm)  # type: ignore[arg-type]
    assert verify_receipt(xml, signer.cert, at=NOW) == DATA


def test_receipt_signed_with_ecdsa(ec_signer: Signer) -> None:
    xml = build_receipt(DATA, ec_signer.key, ec_signer.cert, algorithm="ecdsa-sha256")
    assert verify_receipt(xml, ec_signer.cert, at=NOW).ledger_sequence == 42


def test_receipt_shows_both_renderings_of_the_sent_instant(signer: Signer) -> None:
    root = etree.fromstring(build_receipt(DATA, signer.key, signer.cert))
    assert root.findtext(f"{{{RECEIPT_NS}}}SentAt") == "2025-06-02T03:00:00.123456Z"
    assert root.findtext(f"{{{RECEIPT_NS}}}SentAtLocal") == "2025-06-02T10:00:00.123456+07:00"


def test_receipt_verifies_with_an_independently_configured_signxml(signer: Signer) -> None:
    xml = build_receipt(DATA, signer.key, signer.cert)
    result = XMLVerifier().verify(
        xml, x509_cert=signer.cert, expect_config=SignatureConfiguration(location="./", verification_time=NOW)
    )
    assert not isinstance(result, list)
    assert result.signed_xml is not None
    assert result.signed_xml.findtext(f"{{{RECEIPT_NS}}}Sender") == "000.00.00.G22"


def test_refuses_tampered_receipt(signer: Signer) -> None:
    xml = build_receipt(DATA, signer.key, signer.cert).replace(b"<r:Sequence>42<", b"<r:Sequence>43<")
    with pytest.raises(SignatureInvalid):
        verify_receipt(xml, signer.cert, at=NOW)


def test_refuses_receipt_signed_by_another_key(signer: Signer, stranger: Signer) -> None:
    xml = build_receipt(DATA, stranger.key, stranger.cert)
    with pytest.raises(SignatureInvalid):
        verify_receipt(xml, signer.cert, at=NOW)


def test_refuses_unsigned_receipt(signer: Signer) -> None:
    root = etree.fromstring(build_receipt(DATA, signer.key, signer.cert))
    root.remove(root[-1])
    with pytest.raises(SignatureMissing):
        verify_receipt(etree.tostring(root), signer.cert, at=NOW)
