"""The signature profile: each way of breaking it is refused with its own type; valid ones pass."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import pytest
from envelope_helpers import (
    DS,
    EDXML,
    NOW,
    XPATH,
    XSLT,
    Signer,
    add_transform,
    base_spec,
    make_cert,
    resign_signed_info,
    sign_with,
    xpath_payload,
    xslt_payload,
)
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.envelope import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUnregistered,
    DateInvalid,
    SignatureAlgorithmForbidden,
    SignatureInvalid,
    SignatureMissing,
    SignatureTransformForbidden,
    SignatureWrongLocation,
    TrustedCertificate,
    build_document,
    certificate_sha256,
    parse_envelope,
    read_document,
    verify_signature,
)

MakeSigned = Callable[..., bytes]


def _verify(data: bytes, signer: Signer, **kwargs: object) -> object:
    root = parse_envelope(data)
    return verify_signature(root, [signer.trusted], now=NOW, **kwargs)  # type: ignore[arg-type]


def _edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-sha512", "rsa-pss-sha256"])
def test_accepts_rsa_profile_signatures(make_signed: MakeSigned, signer: Signer, algorithm: str) -> None:
    result = verify_signature(parse_envelope(make_signed(algorithm=algorithm)), [signer.trusted], now=NOW)
    assert result.signed
    assert result.certificate_sha256 == certificate_sha256(signer.cert)
    assert result.signing_time == NOW - dt.timedelta(minutes=1)


def test_accepts_ecdsa_sha256(make_signed: MakeSigned, ec_signer: Signer) -> None:
    data = make_signed(by=ec_signer, algorithm="ecdsa-sha256")
    result = verify_signature(parse_envelope(data), [ec_signer.trusted], now=NOW)
    assert result.signed


def test_reads_only_the_signed_tree(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed()
    result = verify_signature(parse_envelope(data), [signer.trusted], now=NOW)
    # the verifier's tree is a fresh document: the signature is excised, comments are not carried
    assert next(result.signed_root.iter(f"{{{DS}}}Signature"), None) is None
    assert read_document(result.signed_root, now=NOW).subject.startswith("Về việc")


def test_refuses_unsigned_envelope_under_required(signer: Signer) -> None:
    with pytest.raises(SignatureMissing):
        _verify(build_document(base_spec()), signer)


def test_accepts_unsigned_envelope_under_channel(signer: Signer) -> None:
    result = verify_signature(parse_envelope(build_document(base_spec())), [signer.trusted], now=NOW, policy="channel")
    assert not result.signed
    assert result.certificate_sha256 is None


def test_refuses_legacy_signature_only_under_required(signer: Signer) -> None:
    data = build_document(base_spec(legacy_signature=True))
    with pytest.raises(SignatureMissing) as caught:
        _verify(data, signer)
    assert "edXML-namespace" in caught.value.detail


def test_refuses_bad_signature_even_under_channel(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed().replace("Về việc".encode(), "Sửa đổi".encode(), 1)
    with pytest.raises(SignatureInvalid):
        _verify(data, signer, policy="channel")


def test_refuses_altered_subject(make_signed: MakeSigned, signer: Signer) -> None:
    data = make_signed().replace("Về việc".encode(), "Sửa đổi".encode(), 1)
    with pytest.raises(SignatureInvalid):
        _verify(data, signer)


def test_refuses_altered_attachment(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        encoded = next(root.iter(f"{{{EDXML}}}ContentTransferEncoded"))
        encoded.text = (encoded.text or "").replace("A", "B", 1)

    with pytest.raises(SignatureInvalid):
        _verify(_edit(make_signed(), change), signer)


def test_refuses_altered_signature_value(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        value = next(root.iter(f"{{{DS}}}SignatureValue"))
        raw = value.text or ""
        value.text = ("B" if raw[0] != "B" else "C") + raw[1:]

    with pytest.raises(SignatureInvalid):
        _verify(_edit(make_signed(), change), signer)


def test_refuses_signature_appended_to_root(signer: Signer) -> None:
    data = sign_with(build_document(base_spec()), signer.key, signer.cert, in_header=False)
    with pytest.raises(SignatureWrongLocation):
        _verify(data, signer)


def test_refuses_signature_not_last_in_header(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        signature = next(root.iter(f"{{{DS}}}Signature"))
        header = signature.getparent()
        assert header is not None
        header.insert(0, signature)

    with pytest.raises(SignatureWrongLocation):
        _verify(_edit(make_signed(), change), signer)


def test_refuses_two_w3c_signatures(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        signature = next(root.iter(f"{{{DS}}}Signature"))
        legacy = etree.Element(f"{{{EDXML}}}Signature")
        legacy.append(etree.fromstring(etree.tostring(signature)))
        header = signature.getparent()
        assert header is not None
        header.insert(0, legacy)

    with pytest.raises(SignatureWrongLocation):
        _verify(_edit(make_signed(), change), signer)


def test_refuses_reference_to_an_id_instead_of_the_document(signer: Signer) -> None:
    def add_id(root: etree._Element) -> None:
        root.set("{http://www.w3.org/XML/1998/namespace}id", "doc")

    xml = _edit(build_document(base_spec()), add_id)
    data = sign_with(xml, signer.key, signer.cert, reference_uri="#doc")
    with pytest.raises(SignatureWrongLocation):
        _verify(data, signer)


@pytest.mark.parametrize(
    ("algorithm", "payload"), [(XSLT, xslt_payload), (XPATH, xpath_payload)], ids=["xslt", "xpath"]
)
def test_refuses_xslt_and_xpath_transforms(
    make_signed: MakeSigned, signer: Signer, algorithm: str, payload: Callable[[], etree._Element]
) -> None:
    data = add_transform(make_signed(), signer.key, algorithm, payload())  # type: ignore[arg-type]
    with pytest.raises(SignatureTransformForbidden):
        _verify(data, signer)


def test_refuses_base64_transform(make_signed: MakeSigned, signer: Signer) -> None:
    data = add_transform(make_signed(), signer.key, "http://www.w3.org/2000/09/xmldsig#base64")  # type: ignore[arg-type]
    with pytest.raises(SignatureTransformForbidden):
        _verify(data, signer)


def test_refuses_signature_without_enveloped_transform(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        transform = next(
            t for t in root.iter(f"{{{DS}}}Transform") if t.get("Algorithm", "").endswith("enveloped-signature")
        )
        parent = transform.getparent()
        assert parent is not None
        parent.remove(transform)
        resign_signed_info(root, signer.key)  # type: ignore[arg-type]

    with pytest.raises(SignatureWrongLocation):
        _verify(_edit(make_signed(), change), signer)


@pytest.mark.parametrize(
    ("method", "digest"),
    [
        (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA256),
        (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA1),
        (SignatureMethod.RSA_SHA224, DigestAlgorithm.SHA256),
        (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA224),
    ],
    ids=["rsa-sha1", "digest-sha1", "rsa-sha224", "digest-sha224"],
)
def test_refuses_weak_algorithms(signer: Signer, method: SignatureMethod, digest: DigestAlgorithm) -> None:
    data = sign_with(build_document(base_spec()), signer.key, signer.cert, signature_method=method, digest=digest)
    with pytest.raises(SignatureAlgorithmForbidden):
        _verify(data, signer)


def test_refuses_inclusive_canonicalisation(signer: Signer) -> None:
    data = sign_with(
        build_document(base_spec()), signer.key, signer.cert, c14n=CanonicalizationMethod.CANONICAL_XML_1_1
    )
    with pytest.raises(SignatureAlgorithmForbidden):
        _verify(data, signer)


def test_refuses_hmac(signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        method = next(root.iter(f"{{{DS}}}SignatureMethod"))
        method.set("Algorithm", SignatureMethod.HMAC_SHA256.value)

    with pytest.raises(SignatureAlgorithmForbidden):
        _verify(_edit(sign_with(build_document(base_spec()), signer.key, signer.cert), change), signer)


def test_refuses_valid_signature_by_unregistered_certificate(
    make_signed: MakeSigned, signer: Signer, stranger: Signer
) -> None:
    with pytest.raises(CertificateUnregistered):
        _verify(make_signed(by=stranger), signer)


def test_refuses_keyinfo_swapped_to_registered_certificate(
    make_signed: MakeSigned, signer: Signer, stranger: Signer
) -> None:
    """Signed by a stranger, KeyInfo claiming the registered certificate: the registered key decides."""
    registered_b64 = next(etree.fromstring(make_signed()).iter(f"{{{DS}}}X509Certificate")).text

    def change(root: etree._Element) -> None:
        next(root.iter(f"{{{DS}}}X509Certificate")).text = registered_b64

    with pytest.raises(SignatureInvalid):
        _verify(_edit(make_signed(by=stranger), change), signer)


def test_refuses_signature_without_certificate(make_signed: MakeSigned, signer: Signer) -> None:
    def change(root: etree._Element) -> None:
        key_info = next(root.iter(f"{{{DS}}}KeyInfo"))
        parent = key_info.getparent()
        assert parent is not None
        parent.remove(key_info)

    with pytest.raises(SignatureInvalid):
        _verify(_edit(make_signed(), change), signer)


def test_refuses_revoked_certificate(make_signed: MakeSigned, signer: Signer) -> None:
    revoked = replace(signer.trusted, revoked_at=NOW - dt.timedelta(days=1))
    with pytest.raises(CertificateRevoked):
        verify_signature(parse_envelope(make_signed()), [revoked], now=NOW)


def test_accepts_certificate_revoked_only_in_the_future(make_signed: MakeSigned, signer: Signer) -> None:
    later = replace(signer.trusted, revoked_at=NOW + dt.timedelta(days=1))
    assert verify_signature(parse_envelope(make_signed()), [later], now=NOW).signed


def test_refuses_expired_certificate(make_signed: MakeSigned, rsa_key: object) -> None:
    expired = Signer(
        signer_key := rsa_key,  # type: ignore[arg-type]
        make_cert(signer_key, not_before=NOW - dt.timedelta(days=800), not_after=NOW - dt.timedelta(days=1)),  # type: ignore[arg-type]
    )
    with pytest.raises(CertificateExpired):
        _verify(make_signed(by=expired), expired)


def test_refuses_not_yet_valid_certificate(make_signed: MakeSigned, rsa_key: object) -> None:
    future = Signer(
        rsa_key,  # type: ignore[arg-type]
        make_cert(rsa_key, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=400)),  # type: ignore[arg-type]
    )
    with pytest.raises(CertificateNotYetValid):
        _verify(make_signed(by=future), future)


def test_refuses_certificate_not_yet_valid_at_signing_time(make_signed: MakeSigned, rsa_key: object) -> None:
    fresh = Signer(
        rsa_key,  # type: ignore[arg-type]
        make_cert(rsa_key, not_before=NOW - dt.timedelta(hours=1), not_after=NOW + dt.timedelta(days=400)),  # type: ignore[arg-type]
    )
    spec = base_spec(timestamp=NOW - dt.timedelta(days=2))
    with pytest.raises(CertificateNotYetValid):
        _verify(make_signed(spec, by=fresh), fresh)


def test_refuses_signing_time_in_the_future(make_signed: MakeSigned, signer: Signer) -> None:
    spec = base_spec(timestamp=NOW + dt.timedelta(hours=1), promulgation_date=NOW.date())
    with pytest.raises(DateInvalid):
        _verify(make_signed(spec), signer)


def test_uses_the_registered_copy_matching_keyinfo(make_signed: MakeSigned, signer: Signer, stranger: Signer) -> None:
    result = verify_signature(parse_envelope(make_signed()), [stranger.trusted, signer.trusted], now=NOW)
    assert result.certificate_sha256 == signer.trusted.sha256


def test_refuses_register_entry_whose_digest_lies(make_signed: MakeSigned, signer: Signer, stranger: Signer) -> None:
    lying = TrustedCertificate(signer.trusted.sha256, stranger.cert)
    with pytest.raises(CertificateUnregistered):
        verify_signature(parse_envelope(make_signed()), [lying], now=NOW)
