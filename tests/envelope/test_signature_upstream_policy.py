"""The ``upstream`` signature policy: the channel vouches for the sender, a signature present is still checked.

A message relayed by an upstream axis comes from an agency registered only upstream, so the local register
has no certificate for it. Unsigned, it is accepted as under ``channel``; signed, the KeyInfo certificate is
used when the register holds none, and the register decides as soon as it holds one. The other policies do
not change: an empty register never lets a signature through under ``required`` or ``channel``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from envelope_helpers import DS, NOW, Signer, base_spec, make_cert
from lxml import etree

from gateway.envelope import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUnregistered,
    SignatureInvalid,
    SignatureMissing,
    SignatureResult,
    TrustedCertificate,
    build_document,
    certificate_sha256,
    inspect_envelope,
    parse_envelope,
    read_document,
    verify_signature,
)

MakeSigned = Callable[..., bytes]
SENDER = "000.00.00.G22"


def _upstream(data: bytes, certificates: list[TrustedCertificate] | None = None) -> SignatureResult:
    return verify_signature(parse_envelope(data), certificates or [], now=NOW, policy="upstream")


def _edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def _signer_valid(key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime) -> Signer:
    return Signer(key, make_cert(key, cn="Sở Nội vụ (đăng ký ở trục trên)", not_before=not_before, not_after=not_after))


# --- unsigned ------------------------------------------------------------------------------------


def test_accepts_unsigned_envelope_under_upstream() -> None:
    data = build_document(base_spec())
    result = _upstream(data)
    assert not result.signed
    assert result.certificate_sha256 is None
    assert result.certificate_source is None
    assert read_document(result.signed_root, now=NOW).subject.startswith("Về việc")


# --- signed, nothing registered: KeyInfo's certificate ------------------------------------------------


def test_accepts_signature_by_certificate_registered_only_upstream(make_signed: MakeSigned, stranger: Signer) -> None:
    result = _upstream(make_signed(by=stranger))
    assert result.signed
    assert result.certificate_source == "keyinfo"
    assert result.certificate_sha256 == certificate_sha256(stranger.cert)
    assert result.signing_time == NOW - dt.timedelta(minutes=1)
    # the signed tree, with the signature excised, is what callers read
    assert next(result.signed_root.iter(f"{{{DS}}}Signature"), None) is None


def test_envelope_shows_that_the_certificate_came_from_keyinfo(make_signed: MakeSigned, stranger: Signer) -> None:
    envelope = inspect_envelope(make_signed(by=stranger), sender=SENDER, certificates=[], now=NOW, policy="upstream")
    assert envelope.signed
    assert envelope.signature.certificate_source == "keyinfo"
    assert envelope.signature.certificate_sha256 == certificate_sha256(stranger.cert)


def test_refuses_one_byte_of_signed_content_changed_under_upstream(make_signed: MakeSigned, stranger: Signer) -> None:
    data = make_signed(by=stranger)
    at = data.index("Về việc".encode())
    altered = data[:at] + b"W" + data[at + 1 :]
    assert len(altered) == len(data)
    assert altered != data
    with pytest.raises(SignatureInvalid):
        _upstream(altered)


def test_refuses_keyinfo_swapped_to_another_certificate_under_upstream(
    make_signed: MakeSigned, signer: Signer, stranger: Signer
) -> None:
    """Signed by a stranger, KeyInfo claiming someone else's certificate: that certificate's key must verify."""
    other_b64 = next(etree.fromstring(make_signed(by=signer)).iter(f"{{{DS}}}X509Certificate")).text

    def change(root: etree._Element) -> None:
        next(root.iter(f"{{{DS}}}X509Certificate")).text = other_b64

    with pytest.raises(SignatureInvalid):
        _upstream(_edit(make_signed(by=stranger), change))


def test_refuses_signature_without_keyinfo_certificate_under_upstream(
    make_signed: MakeSigned, stranger: Signer
) -> None:
    def change(root: etree._Element) -> None:
        key_info = next(root.iter(f"{{{DS}}}KeyInfo"))
        parent = key_info.getparent()
        assert parent is not None
        parent.remove(key_info)

    with pytest.raises(SignatureInvalid):
        _upstream(_edit(make_signed(by=stranger), change))


def test_refuses_undecodable_keyinfo_certificate_under_upstream(make_signed: MakeSigned, stranger: Signer) -> None:
    def change(root: etree._Element) -> None:
        next(root.iter(f"{{{DS}}}X509Certificate")).text = "bm90IGEgY2VydGlmaWNhdGU="

    with pytest.raises(SignatureInvalid):
        _upstream(_edit(make_signed(by=stranger), change))


def test_refuses_expired_keyinfo_certificate_under_upstream(
    make_signed: MakeSigned, rsa_key: rsa.RSAPrivateKey
) -> None:
    expired = _signer_valid(rsa_key, NOW - dt.timedelta(days=800), NOW - dt.timedelta(days=1))
    with pytest.raises(CertificateExpired):
        _upstream(make_signed(by=expired))


def test_refuses_keyinfo_certificate_not_yet_valid_at_signing_time_under_upstream(
    make_signed: MakeSigned, rsa_key: rsa.RSAPrivateKey
) -> None:
    fresh = _signer_valid(rsa_key, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=400))
    spec = base_spec(timestamp=NOW - dt.timedelta(days=2))
    with pytest.raises(CertificateNotYetValid):
        _upstream(make_signed(spec, by=fresh))


# --- signed, the register holds certificates: the register decides ---------------------------------


def test_register_decides_under_upstream_when_it_holds_certificates(
    make_signed: MakeSigned, signer: Signer, stranger: Signer
) -> None:
    with pytest.raises(CertificateUnregistered):
        _upstream(make_signed(by=stranger), [signer.trusted])


def test_accepts_registered_signer_under_upstream(make_signed: MakeSigned, signer: Signer, stranger: Signer) -> None:
    result = _upstream(make_signed(), [stranger.trusted, signer.trusted])
    assert result.signed
    assert result.certificate_source == "register"
    assert result.certificate_sha256 == signer.trusted.sha256


def test_refuses_revoked_registered_certificate_under_upstream(make_signed: MakeSigned, signer: Signer) -> None:
    revoked = replace(signer.trusted, revoked_at=NOW - dt.timedelta(days=1))
    with pytest.raises(CertificateRevoked):
        _upstream(make_signed(), [revoked])


# --- the other policies are not loosened ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["required", "channel"])
def test_empty_register_still_refuses_signature_under_other_policies(
    make_signed: MakeSigned, stranger: Signer, policy: str
) -> None:
    with pytest.raises(CertificateUnregistered):
        verify_signature(parse_envelope(make_signed(by=stranger)), [], now=NOW, policy=policy)  # type: ignore[arg-type]


def test_required_still_refuses_unsigned_envelope() -> None:
    with pytest.raises(SignatureMissing):
        verify_signature(parse_envelope(build_document(base_spec())), [], now=NOW, policy="required")


def test_signature_under_required_names_the_register(make_signed: MakeSigned, signer: Signer) -> None:
    result = verify_signature(parse_envelope(make_signed()), [signer.trusted], now=NOW, policy="required")
    assert result.certificate_source == "register"


def test_refuses_unknown_policy(make_signed: MakeSigned, signer: Signer) -> None:
    with pytest.raises(ValueError, match="upstream"):
        verify_signature(parse_envelope(make_signed()), [signer.trusted], now=NOW, policy="keyinfo")  # type: ignore[arg-type]
