"""The hostile corpus (tests/hostile/): every file is refused with the problem type expected.json names."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509

from gateway.envelope import (
    EnvelopeError,
    Limits,
    TrustedCertificate,
    certificate_sha256,
    envelope_error_types,
    inspect_envelope,
)

CORPUS = Path(__file__).resolve().parents[1] / "hostile"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text())
REGISTRY = json.loads((CORPUS / "registry.json").read_text())
LIMITS = Limits(**json.loads((CORPUS / "limits.json").read_text()))


def _registered() -> list[TrustedCertificate]:
    out = []
    for entry in REGISTRY["certificates"]:
        cert = x509.load_pem_x509_certificate((CORPUS / entry["file"]).read_bytes())
        revoked = dt.datetime.fromisoformat(entry["revoked_at"]) if entry["revoked_at"] else None
        out.append(TrustedCertificate(certificate_sha256(cert), cert, revoked))
    return out


def test_every_corpus_file_is_listed_and_every_listed_file_exists() -> None:
    on_disk = {p.name for p in CORPUS.glob("*.edxml")}
    assert on_disk == set(EXPECTED)


def test_expected_slugs_are_published_problem_types() -> None:
    known = {cls.slug for cls in envelope_error_types()}
    assert set(EXPECTED.values()) <= known


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file_is_refused_with_its_problem_type(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    with pytest.raises(EnvelopeError) as caught:
        inspect_envelope(
            data,
            sender=REGISTRY["sender"],
            certificates=_registered(),
            now=dt.datetime.now(dt.UTC),
            policy=REGISTRY["policy"],
            limits=LIMITS,
        )
    assert caught.value.slug == EXPECTED[name]
    # never echo hostile bytes: the detail is short, fixed prose
    assert len(caught.value.detail) < 200
    assert "passwd" not in caught.value.detail
