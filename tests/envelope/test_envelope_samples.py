"""The samples in schemas/samples/ (scripts/make_samples.py) pass every check they are meant to pass."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509

from gateway.envelope import (
    LargePart,
    SignatureMissing,
    TrustedCertificate,
    certificate_sha256,
    inspect_envelope,
)

SAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "samples"
CERT = x509.load_pem_x509_certificate((SAMPLES / "sample-signer.crt.pem").read_bytes())
TRUSTED = [TrustedCertificate(certificate_sha256(CERT), CERT)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_signed_document_sample() -> None:
    envelope = inspect_envelope(
        (SAMPLES / "document-signed.edxml").read_bytes(), sender="000.00.00.G22", certificates=TRUSTED, now=_now()
    )
    assert envelope.signed
    assert envelope.attachments[0].file_type == "pdf"
    assert envelope.document is not None
    assert envelope.document.recipient_ids == ("000.00.00.H41", "001.00.10.H47")


def test_unsigned_document_sample_only_under_channel() -> None:
    data = (SAMPLES / "document-unsigned.edxml").read_bytes()
    with pytest.raises(SignatureMissing):
        inspect_envelope(data, sender="000.00.00.G22", certificates=TRUSTED, now=_now())
    envelope = inspect_envelope(data, sender="000.00.00.G22", certificates=TRUSTED, now=_now(), policy="channel")
    assert not envelope.signed


def test_large_attachment_sample_with_its_part() -> None:
    part = (SAMPLES / "document-large-attachment.part-phu-luc-1235.pdf").read_bytes()
    envelope = inspect_envelope(
        (SAMPLES / "document-large-attachment.edxml").read_bytes(),
        sender="000.00.00.G22",
        certificates=TRUSTED,
        now=_now(),
        large_parts={"<phu-luc-1235>": LargePart(hashlib.sha256(part).hexdigest(), len(part), part[:8192])},
    )
    assert envelope.attachments[0].kind == "large"


def test_status_sample() -> None:
    envelope = inspect_envelope(
        (SAMPLES / "status-03.edxml").read_bytes(), sender="000.00.00.H41", certificates=TRUSTED, now=_now()
    )
    assert envelope.status is not None
    assert envelope.status.status_code == "03"
