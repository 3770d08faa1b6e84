"""RFC 3161 trusted timestamps, pure: the request the gateway sends and the verification of what comes back.

Why this exists: issue 18 point 4. A checkpoint's instant is then vouched for by a third party, a
timestamping authority (TSA), and not only by the gateway's own clock. This module does no I/O (the HTTP
exchange is ``gateway.ledger.tsa_client``), so whatever verifies a stored token later, with no network, uses
these very functions.

What is timestamped. The caller hashes its data itself and passes the 32-byte SHA-256 digest: that digest
*is* the message imprint's ``hashedMessage`` (``hashAlgorithm`` id-sha256), so
``build_request(hashlib.sha256(data).digest(), nonce=n)`` timestamps ``data``, and the TSA never sees
``data``. :func:`verify_token` takes the same 32 bytes.

Verification fails closed: :func:`verify_token` returns a :class:`TimestampResult` only when every step
below held, and otherwise raises the :class:`TimestampError` subclass of the first step that did not.
The signature and the message digest are checked before anything of the TSTInfo is read, so what is read
is what was signed.

 1. The bytes are a TimeStampResp whose status is granted (0) or grantedWithMods (1) and which carries a
    token, or a bare TimeStampToken; the token is a ContentInfo of id-signedData (version 3) with exactly
    one SignerInfo (version 1, or 3 with a subjectKeyIdentifier sid) whose digest algorithm the SignedData
    announces, and its eContentType is id-ct-TSTInfo.
    (:class:`TimestampMalformed`, :class:`TimestampNotGranted`, :class:`TimestampNotSignedData`,
    :class:`TimestampWrongContentType`)
 2. The SignerInfo has signed attributes: a content-type of id-ct-TSTInfo and a message-digest equal to
    the hash of the eContent octets (the TSTInfo DER) under the SignerInfo's digest algorithm
    (allow-listed: SHA-256, SHA-384, SHA-512). (:class:`TimestampWrongContentType`,
    :class:`TimestampDigestMismatch`)
 3. The signer certificate is the one the SignerInfo's ``sid`` names (issuerAndSerialNumber or
    subjectKeyIdentifier), taken from ``tsa_certificates`` when given (none named: the signer is not
    trusted) or else from the certificates the token carries; it is the certificate the signed ESS
    signing-certificate (v2 or v1) attribute names by hash; and a certificate the token carries under that
    ``sid`` is that very certificate. The token must carry it (:func:`build_request` always sets certReq,
    and a stored token then holds what verifies it). (:class:`TimestampSignerUntrusted`,
    :class:`TimestampSignerInvalid`)
 4. The signature over the DER signed attributes verifies with that certificate's key: RSA (2048 bits at
    least) PKCS#1 v1.5 or PSS (MGF1 with the same hash, trailer 1), or ECDSA on P-256, P-384 or P-521,
    always with the SignerInfo's digest algorithm; a signature algorithm that names a hash names that one.
    (:class:`TimestampSignatureInvalid`)
 5. The TSTInfo, now known to be signed: version 1; a message imprint of SHA-256 over exactly ``digest``;
    our nonce when one is given; a genTime written ``YYYYMMDDHHMMSS[.f…]Z`` (UTC, as RFC 3161 requires)
    and not later than ``now`` + :data:`MAX_CLOCK_AHEAD`. (:class:`TimestampMalformed`,
    :class:`TimestampImprintMismatch`, :class:`TimestampNonceMismatch`, :class:`TimestampTimeInvalid`)
 6. The signer certificate is a TSA certificate (RFC 3161 §2.3): an extendedKeyUsage extension, critical,
    holding id-kp-timeStamping and nothing else; valid at genTime; and a TSA name in the TSTInfo, when
    present, is one of its names. (:class:`TimestampSignerInvalid`)

Trust. With ``tsa_certificates`` the signer must be one of them: that is the check that the time comes
from the authority the operator chose. Without, the token is only shown to be consistent and signed by
the certificate it carries, which anyone can make; the result names that certificate (and its SHA-256)
for the caller to judge. No chain is built to a CA and no revocation is checked: the trusted certificates
are pinned. The other certificates a token may carry (a chain the TSA chose to include) are not used, so
a change inside one of them goes unseen; every other byte of a token is checked (a test flips each one).

The errors are plain exceptions, not ``GatewayError``: they judge an authority's answer to the gateway's
own outbound call, and are never a problem document answered to a client (a ``GatewayError`` is one, with
a slug the OpenAPI spec must name); the checkpointer, ``/readyz`` and the offline verifier will read them::

    TimestampError                    (.reason)
    ├── TimestampMalformed            not a TimeStampResp/TimeStampToken, or a required part unreadable
    ├── TimestampNotGranted           PKIStatus not granted (.status, .fail_info)
    ├── TimestampNotSignedData        the token's ContentInfo is not id-signedData
    ├── TimestampWrongContentType     eContentType (or the content-type attribute) not id-ct-TSTInfo
    ├── TimestampDigestMismatch       message-digest attribute ≠ hash of the TSTInfo DER
    ├── TimestampSignerUntrusted      tsa_certificates given, and none is the signer the token names
    ├── TimestampSignerInvalid        signer certificate missing, not the one signed for, or not a TSA's
    ├── TimestampSignatureInvalid     algorithm not allow-listed, or the signature does not verify
    ├── TimestampImprintMismatch      message imprint not SHA-256, or not over ``digest``
    ├── TimestampNonceMismatch        nonce absent or not ours
    ├── TimestampTimeInvalid          genTime unreadable, or in the future
    └── (gateway.ledger.tsa_client)   TsaTransportError: TsaUnreachable, TsaHttpError, TsaContentTypeInvalid,
                                      TsaReplyTooLarge
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from asn1crypto import cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

#: a genTime later than the verifier's ``now`` by more than this is refused (a TSA clock running ahead)
MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)

_SHA256_OID: Final = "2.16.840.1.101.3.4.2.1"
_SIGNED_DATA_OID: Final = "1.2.840.113549.1.7.2"
_TST_INFO_OID: Final = "1.2.840.113549.1.9.16.1.4"

#: the SignerInfo digest algorithms accepted (asn1crypto's names)
_DIGESTS: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_CURVES: Final = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MIN_RSA_BITS: Final = 2048
_GRANTED: Final = frozenset({0, 1})  # granted, grantedWithMods
_GEN_TIME: Final = re.compile(rb"(\d{14})(?:\.(\d*[1-9]))?Z")
_ASN1_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class TimestampError(Exception):
    """A timestamp that cannot be had or trusted; ``reason`` says why (never the offending bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TimestampMalformed(TimestampError):
    """Not a TimeStampResp or a TimeStampToken, or a part the verification needs cannot be read."""


class TimestampNotGranted(TimestampError):
    """The authority answered, and refused: PKIStatus other than granted / grantedWithMods."""

    def __init__(self, status: int, fail_info: str | None) -> None:
        super().__init__(f"the authority did not grant a timestamp (status {status}, failInfo {fail_info})")
        self.status = status
        self.fail_info = fail_info


class TimestampNotSignedData(TimestampError):
    """The token's ContentInfo is not id-signedData."""


class TimestampWrongContentType(TimestampError):
    """The signed content is not a TSTInfo (eContentType, or the signed content-type attribute)."""


class TimestampDigestMismatch(TimestampError):
    """The signed message-digest attribute is not the hash of the TSTInfo the token carries."""


class TimestampSignerUntrusted(TimestampError):
    """``tsa_certificates`` were given, and none of them is the certificate the token's signer names."""


class TimestampSignerInvalid(TimestampError):
    """The signer certificate is missing, is not the one the signed attributes name, or is not a TSA's."""


class TimestampSignatureInvalid(TimestampError):
    """The signature algorithm is not allow-listed, or the signature does not verify."""


class TimestampImprintMismatch(TimestampError):
    """The message imprint is not SHA-256, or is not over the digest we asked about."""


class TimestampNonceMismatch(TimestampError):
    """The TSTInfo carries no nonce, or another one than ours."""


class TimestampTimeInvalid(TimestampError):
    """genTime is not a UTC GeneralizedTime we can read, or lies in the future."""


@dataclass(frozen=True, slots=True)
class TimestampResult:
    """What a verified token says, read from its signed TSTInfo."""

    gen_time: datetime  # aware, UTC
    serial_number: int
    policy: str  # dotted OID
    tsa_name: str | None  # the TSTInfo's tsa GeneralName, human-readable, when present
    accuracy: timedelta | None
    nonce: int | None
    signer_certificate: x509.Certificate
    signer_certificate_sha256: str  # lowercase hex of the certificate's DER
    token: bytes = field(repr=False)  # the TimeStampToken (ContentInfo) DER exactly as received: what to store


def build_request(digest: bytes, *, nonce: int) -> bytes:
    """The DER TimeStampReq for ``digest`` = SHA-256(data): version 1, that imprint, ``nonce``, certReq TRUE.

    No policy is asked for (the authority's default applies; the result names it).
    """
    _check_digest(digest)
    if nonce < 0:
        raise ValueError("the nonce is a non-negative integer")
    request = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "nonce": nonce,
        "cert_req": True,
    })
    der: bytes = request.dump()
    return der


def verify_token(
    token: bytes,
    *,
    digest: bytes,
    nonce: int | None,
    tsa_certificates: Sequence[x509.Certificate] | None,
    now: datetime | None = None,
) -> TimestampResult:
    """Verify a TimeStampResp or a bare TimeStampToken over ``digest`` (= SHA-256(data)); see the module doc.

    ``nonce`` None skips the nonce check (re-verifying a stored token); ``tsa_certificates`` None trusts
    whatever certificate the token carries (the caller must then judge ``signer_certificate``); ``now``
    (default: the current time) bounds genTime from above.
    """
    _check_digest(digest)
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    # 1. The envelope: response status, then ContentInfo → SignedData → one SignerInfo → TSTInfo octets.
    token_der = _token_of(token)
    signed = _read_signed_data(token_der)

    # 2. The signed attributes bind the TSTInfo octets, by hash.
    if signed.content_type_attribute != _TST_INFO_OID:
        raise TimestampWrongContentType("the signed content-type attribute is not id-ct-TSTInfo")
    if signed.digest_algorithm not in _DIGESTS:
        raise TimestampSignatureInvalid("the SignerInfo's digest algorithm is not allow-listed")
    if _hash(signed.digest_algorithm, signed.tst_info_der) != signed.message_digest:
        raise TimestampDigestMismatch("the signed message digest is not the hash of the TSTInfo")

    # 3. Who signed: the certificate the sid names, pinned or carried, and the one the ESS attribute names.
    signer_der = _signer_certificate(signed, tsa_certificates)
    signer = _load_certificate(signer_der)

    # 4. The signature over the signed attributes (DER, SET OF tag) with that certificate's key.
    _verify_signature(signed, signer)

    # 5. The TSTInfo, read only now that it is known to be signed.
    tst = _read_tst_info(signed.tst_info_der)
    if tst.imprint_algorithm != _SHA256_OID or tst.imprint_parameters_present:
        raise TimestampImprintMismatch("the message imprint is not SHA-256")
    if tst.hashed_message != digest:
        raise TimestampImprintMismatch("the message imprint is not over the given digest")
    if nonce is not None and tst.nonce != nonce:
        raise TimestampNonceMismatch("the nonce is absent" if tst.nonce is None else "the nonce is not ours")
    gen_time = _parse_gen_time(tst.gen_time_raw)
    if gen_time > now + MAX_CLOCK_AHEAD:
        raise TimestampTimeInvalid("genTime lies in the future")

    # 6. The signer is a TSA's certificate, valid when it signed, and the TSA name (if any) is its own.
    _check_tsa_certificate(signer, gen_time)
    if tst.tsa_name_der is not None and not _names_certificate(tst.tsa_name_der, signer_der):
        raise TimestampSignerInvalid("the TSTInfo's TSA name is not a name of the signer certificate")

    return TimestampResult(
        gen_time=gen_time,
        serial_number=tst.serial_number,
        policy=tst.policy,
        tsa_name=tst.tsa_name,
        accuracy=tst.accuracy,
        nonce=tst.nonce,
        signer_certificate=signer,
        signer_certificate_sha256=hashlib.sha256(signer_der).hexdigest(),
        token=token_der,
    )


# -- reading (every asn1crypto access below is inside _reading: a parse error is TimestampMalformed) --


@contextmanager
def _reading(what: str) -> Iterator[None]:
    try:
        yield
    except _ASN1_ERRORS as exc:
        raise TimestampMalformed(f"{what} cannot be read") from exc


_Element = tuple[int, int, int, bytes]  # class, method (1: constructed), tag, the whole encoding
_SEQUENCE: Final = (0, 16)
_SET: Final = (0, 17)
_CONTEXT_0: Final = (2, 0)


def _inside(der: bytes, expected: tuple[int, int]) -> list[_Element]:
    """The elements inside one constructed element, which is the whole of ``der`` and of class and tag ``expected``.

    The parts whose bytes matter (the TSTInfo, the certificates, the signed attributes) are cut out of the
    token with this, never taken from asn1crypto's ``dump()``: asn1crypto 1.5 takes a definite length whose
    last byte is 0x80 for the indefinite form and re-encodes such an element in DER, so a changed byte (a
    BER boolean, say) would hash as the original (a test keeps that certificate as a hostile sample).
    """
    class_, method, tag, _, contents, _ = parser.parse(der, strict=True)
    if (class_, tag) != expected or method != 1:
        raise ValueError("unexpected element")
    out: list[_Element] = []
    offset = 0
    while offset < len(contents):
        length = parser.peek(contents[offset:])
        element = bytes(contents[offset : offset + length])
        inner_class, inner_method, inner_tag, _, _, _ = parser.parse(element, strict=True)
        out.append((inner_class, inner_method, inner_tag, element))
        offset += length
    return out


def _token_of(data: bytes) -> bytes:
    """The TimeStampToken DER, from a TimeStampResp (status checked) or from a bare token."""
    with _reading("the timestamp response"):
        children = _inside(data, _SEQUENCE)
        if not children:
            raise ValueError("empty SEQUENCE")
        _, _, first_tag, first = children[0]
        if first_tag == 6:  # an OBJECT IDENTIFIER first: a ContentInfo, i.e. a bare token
            return data
        if first_tag != 16 or len(children) > 2:
            raise ValueError("neither a TimeStampResp nor a ContentInfo")
        # asn1crypto's TimeStampResp wants a token even in a refusal (RFC 3161 makes it optional),
        # so the two parts are read one by one.
        status_info = tsp.PKIStatusInfo.load(first, strict=True)
        status = int(status_info["status"])
        fail_info_value = status_info["fail_info"]
        fail_info = None if isinstance(fail_info_value, core.Void) else ",".join(sorted(fail_info_value.native))
    if status not in _GRANTED:
        raise TimestampNotGranted(status, fail_info)
    if len(children) < 2:
        raise TimestampMalformed("the response grants a timestamp but carries no token")
    token: bytes = children[1][3]
    return token


@dataclass(frozen=True, slots=True)
class _SignedToken:
    tst_info_der: bytes
    certificates: tuple[bytes, ...]  # DER of every X.509 certificate the token carries
    sid_issuer: Any  # asn1crypto Name, or None
    sid_serial: int | None
    sid_key_identifier: bytes | None
    digest_algorithm: str  # asn1crypto name, or the dotted OID when unknown
    digest_parameters_present: bool
    signature_algorithm: Any  # asn1crypto SignedDigestAlgorithm
    signed_attributes_der: bytes  # with the SET OF tag: the bytes that were signed
    content_type_attribute: str | None
    message_digest: bytes
    ess_cert_ids: tuple[tuple[str, bytes, Any], ...]  # (hash name, hash, asn1crypto IssuerSerial or None)
    signature: bytes


def _read_signed_data(token_der: bytes) -> _SignedToken:
    with _reading("the timestamp token"):
        content_info = cms.ContentInfo.load(token_der, strict=True)
        content_type = str(content_info["content_type"].dotted)
    if content_type != _SIGNED_DATA_OID:
        raise TimestampNotSignedData("the token is not a CMS SignedData")
    with _reading("the token's SignedData"):
        signed_data = content_info["content"]
        encap = signed_data["encap_content_info"]
        econtent_type = str(encap["content_type"].dotted)
    if econtent_type != _TST_INFO_OID:
        raise TimestampWrongContentType("the signed content is not a TSTInfo")
    with _reading("the token's SignedData"):
        tst_info_der, certificates, signed_attributes_der = _raw_parts(token_der)
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise ValueError("a timestamp token has exactly one SignerInfo")
        signer_info = signer_infos[0]
        sid = signer_info["sid"]
        if sid.name == "issuer_and_serial_number":
            sid_issuer, sid_key_identifier = sid.chosen["issuer"], None
            sid_serial: int | None = int(sid.chosen["serial_number"].native)
        else:
            sid_issuer, sid_serial, sid_key_identifier = None, None, bytes(sid.chosen.native)
        digest_algorithm = signer_info["digest_algorithm"]
        # asn1crypto reads lazily, so what is never looked at is never checked: the version numbers RFC 5652
        # fixes for this content and this sid, and the digest algorithms the SignedData announces, are.
        if int(signed_data["version"]) != 3:
            raise ValueError("SignedData version 3 (eContentType other than id-data)")
        if int(signer_info["version"]) != (1 if sid_key_identifier is None else 3):
            raise ValueError("SignerInfo version 1 with issuerAndSerialNumber, 3 with subjectKeyIdentifier")
        announced = signed_data["digest_algorithms"]
        if not any(other.dump() == digest_algorithm.dump() for other in announced) or not all(
            _absent_or_null(other["parameters"]) for other in announced
        ):
            raise ValueError("the SignedData's digest algorithms do not include the SignerInfo's")
        attributes: dict[str, list[Any]] = {}
        for attribute in cms.CMSAttributes.load(signed_attributes_der, strict=True):
            name = str(attribute["type"].native)
            if name in attributes:
                raise ValueError("an attribute appears twice")
            attributes[name] = list(attribute["values"])
        content_types = attributes.get("content_type", [])
        digests = attributes.get("message_digest", [])
        if len(content_types) != 1 or len(digests) != 1:
            raise ValueError("one content-type and one message-digest value, each")
        ess: list[tuple[str, bytes, Any]] = []
        for name in ("signing_certificate_v2", "signing_certificate"):
            values = attributes.get(name, [])
            if len(values) > 1:
                raise ValueError("one signing-certificate value")
            for value in values:
                first = value["certs"][0]
                algorithm = str(first["hash_algorithm"]["algorithm"].native) if name.endswith("v2") else "sha1"
                issuer_serial = first["issuer_serial"]
                ess.append((
                    algorithm,
                    bytes(first["cert_hash"].native),
                    None if isinstance(issuer_serial, core.Void) else issuer_serial,
                ))
        return _SignedToken(
            tst_info_der=tst_info_der,
            certificates=certificates,
            sid_issuer=sid_issuer,
            sid_serial=sid_serial,
            sid_key_identifier=sid_key_identifier,
            digest_algorithm=str(digest_algorithm["algorithm"].native),
            digest_parameters_present=not _absent_or_null(digest_algorithm["parameters"]),
            signature_algorithm=signer_info["signature_algorithm"],
            signed_attributes_der=signed_attributes_der,
            content_type_attribute=str(content_types[0].dotted),
            message_digest=bytes(digests[0].native),
            ess_cert_ids=tuple(ess),
            signature=bytes(signer_info["signature"].native),
        )


def _raw_parts(token_der: bytes) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """The eContent octets (the TSTInfo DER), the certificates and the signed attributes (with the SET OF tag
    they are signed with), cut out of the token's own bytes.

    The TSTInfo is cut out by hand for one more reason: asn1crypto would parse it on first access, and
    nothing of it is read before its hash is found signed (a TSTInfo that is not even DER is then a digest
    mismatch, like any other change to it).
    """
    content_info = _inside(token_der, _SEQUENCE)  # contentType, [0] EXPLICIT content
    (signed_data_element,) = _inside(content_info[1][3], _CONTEXT_0)
    # version, digestAlgorithms, encapContentInfo, [0] certificates?, [1] crls?, signerInfos
    signed_data = _inside(signed_data_element[3], _SEQUENCE)
    encapsulated = _inside(signed_data[2][3], _SEQUENCE)  # eContentType, [0] EXPLICIT eContent
    if len(encapsulated) != 2:
        raise ValueError("the TSTInfo is absent")
    (octets,) = _inside(encapsulated[1][3], _CONTEXT_0)
    class_, method, tag, _, tst_info_der, _ = parser.parse(octets[3], strict=True)
    if (class_, method, tag) != (0, 0, 4):
        raise ValueError("eContent is a primitive OCTET STRING")
    certificates: tuple[bytes, ...] = ()
    for element in signed_data[3:-1]:
        if element[:3] == (2, 1, 0):  # the 'certificate' choice is a plain SEQUENCE; the others are tagged
            certificates = tuple(c[3] for c in _inside(element[3], _CONTEXT_0) if (c[0], c[2]) == _SEQUENCE)
    (signer_info_element,) = _inside(signed_data[-1][3], _SET)
    # version, sid, digestAlgorithm, [0] IMPLICIT signedAttrs, signatureAlgorithm, signature, [1] unsignedAttrs?
    signer_info = _inside(signer_info_element[3], _SEQUENCE)
    if len(signer_info) < 6 or signer_info[3][:3] != (2, 1, 0):
        raise ValueError("a timestamp token's SignerInfo has signed attributes")
    raw_attributes = signer_info[3][3]
    if raw_attributes[0] != 0xA0:
        raise ValueError("signed attributes are [0] IMPLICIT")
    return bytes(tst_info_der), certificates, b"\x31" + raw_attributes[1:]


def _absent_or_null(parameters: Any) -> bool:
    return isinstance(parameters, core.Void | core.Null)


@dataclass(frozen=True, slots=True)
class _TstInfo:
    policy: str
    imprint_algorithm: str
    imprint_parameters_present: bool
    hashed_message: bytes
    serial_number: int
    gen_time_raw: bytes
    accuracy: timedelta | None
    nonce: int | None
    tsa_name: str | None
    tsa_name_der: bytes | None  # the GeneralName's encoding


def _read_tst_info(der: bytes) -> _TstInfo:
    with _reading("the TSTInfo"):
        tst = tsp.TSTInfo.load(der, strict=True)
        if tst["version"].native != "v1":
            raise ValueError("TSTInfo version 1")
        imprint = tst["message_imprint"]
        accuracy = tst["accuracy"]
        nonce = tst["nonce"]
        tsa = tst["tsa"]
        gen_time = tst["gen_time"]
        return _TstInfo(
            policy=str(tst["policy"].dotted),
            imprint_algorithm=str(imprint["hash_algorithm"]["algorithm"].dotted),
            imprint_parameters_present=not _absent_or_null(imprint["hash_algorithm"]["parameters"]),
            hashed_message=bytes(imprint["hashed_message"].native),
            serial_number=int(tst["serial_number"].native),
            gen_time_raw=bytes(gen_time.contents),
            accuracy=None if isinstance(accuracy, core.Void) else _accuracy(accuracy),
            nonce=None if isinstance(nonce, core.Void) else int(nonce.native),
            tsa_name=None if isinstance(tsa, core.Void) else _general_name_text(tsa),
            tsa_name_der=None if isinstance(tsa, core.Void) else bytes(tsa.untag().dump()),
        )


def _accuracy(accuracy: Any) -> timedelta:
    parts = [accuracy[field] for field in ("seconds", "millis", "micros")]
    seconds, millis, micros = (0 if isinstance(part, core.Void) else int(part.native) for part in parts)
    if min(seconds, millis, micros) < 0 or millis > 999 or micros > 999:
        raise ValueError("accuracy out of range")
    return timedelta(seconds=seconds, milliseconds=millis, microseconds=micros)


def _general_name_text(name: Any) -> str:
    if name.name == "directory_name":
        return str(name.chosen.human_friendly)
    return f"{name.name}:{name.native}"


def _parse_gen_time(raw: bytes) -> datetime:
    """``YYYYMMDDHHMMSS[.f…]Z`` only (RFC 3161 §2.4.2: UTC, no trailing zeros); fractions past µs dropped."""
    match = _GEN_TIME.fullmatch(raw)
    if match is None:
        raise TimestampTimeInvalid("genTime is not a UTC GeneralizedTime")
    whole, fraction = match.group(1).decode("ascii"), (match.group(2) or b"").decode("ascii")
    try:
        instant = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TimestampTimeInvalid("genTime is not a calendar instant") from exc
    return instant + timedelta(microseconds=int(fraction[:6].ljust(6, "0")) if fraction else 0)


# -- the signer --


def _signer_certificate(signed: _SignedToken, pinned: Sequence[x509.Certificate] | None) -> bytes:
    """The DER of the signer certificate (step 3 of the module docstring)."""
    candidates = (
        signed.certificates
        if pinned is None
        else tuple(c.public_bytes(serialization.Encoding.DER) for c in pinned)
    )
    named = [der for der in candidates if _sid_names(signed, der)]
    if not named:
        if pinned is not None:
            raise TimestampSignerUntrusted("no trusted TSA certificate is the one the token's signer names")
        raise TimestampSignerInvalid("the token does not carry the certificate its signer names")
    carried = [other for other in signed.certificates if _sid_names(signed, other)]
    if not carried:  # certReq is always TRUE, and a stored token must hold what verifies it
        raise TimestampSignerInvalid("the token does not carry the certificate its signer names")
    if not signed.ess_cert_ids:
        raise TimestampSignerInvalid("no signing-certificate attribute names the signer certificate")
    for der in named:
        if all(_ess_names(ess, der) for ess in signed.ess_cert_ids):
            break
    else:
        raise TimestampSignerInvalid("the signing-certificate attribute names another certificate")
    if any(other != der for other in carried):
        raise TimestampSignerInvalid("the token carries another certificate under its signer's name")
    return der


def _sid_names(signed: _SignedToken, der: bytes) -> bool:
    with _reading("a certificate"):
        certificate = asn1_x509.Certificate.load(der, strict=True)
        if signed.sid_key_identifier is not None:
            key_identifier = certificate.key_identifier
            return key_identifier is not None and bytes(key_identifier) == signed.sid_key_identifier
        return bool(
            int(certificate.serial_number) == signed.sid_serial and certificate.issuer == signed.sid_issuer
        )


def _ess_names(ess: tuple[str, bytes, Any], der: bytes) -> bool:
    algorithm, cert_hash, issuer_serial = ess
    if algorithm == "sha1":  # ESS v1 (RFC 2634) is SHA-1 by definition; it only identifies a certificate
        computed = hashlib.sha1(der, usedforsecurity=False).digest()
    elif algorithm in _DIGESTS:
        computed = _hash(algorithm, der)
    else:
        return False
    if computed != cert_hash:
        return False
    if issuer_serial is None:
        return True
    with _reading("the signing-certificate attribute"):
        certificate = asn1_x509.Certificate.load(der, strict=True)
        if int(issuer_serial["serial_number"].native) != int(certificate.serial_number):
            return False
        return any(
            name.name == "directory_name" and name.chosen == certificate.issuer for name in issuer_serial["issuer"]
        )


def _load_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise TimestampMalformed("the signer certificate cannot be read") from exc


def _verify_signature(signed: _SignedToken, signer: x509.Certificate) -> None:
    digest_algorithm = signed.digest_algorithm
    if digest_algorithm not in _DIGESTS or signed.digest_parameters_present:
        raise TimestampSignatureInvalid("the SignerInfo's digest algorithm is not allow-listed")
    chosen = _DIGESTS[digest_algorithm]()
    try:
        public_key = signer.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TimestampSignatureInvalid("the signer certificate's key cannot be read") from exc
    with _reading("the signature algorithm"):
        algorithm = signed.signature_algorithm
        try:
            kind = str(algorithm.signature_algo)
        except ValueError:
            kind = "unknown"
        named_hash: str | None
        try:
            named_hash = str(algorithm.hash_algo)
        except ValueError:  # rsaEncryption / ecPublicKey: the hash is the SignerInfo's
            named_hash = None
        pss = _pss_padding(algorithm["parameters"], chosen) if kind == "rsassa_pss" else None
        if kind == "rsassa_pkcs1v15" and not _absent_or_null(algorithm["parameters"]):
            kind = "unknown"
    if named_hash is not None and named_hash != digest_algorithm:
        raise TimestampSignatureInvalid("the signature algorithm's hash is not the SignerInfo's digest algorithm")
    message, signature = signed.signed_attributes_der, signed.signature
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            _check_rsa_size(public_key)
            public_key.verify(signature, message, padding.PKCS1v15(), chosen)
        elif kind == "rsassa_pss" and pss is not None and isinstance(public_key, rsa.RSAPublicKey):
            _check_rsa_size(public_key)
            public_key.verify(signature, message, pss, chosen)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(public_key.curve, _CURVES):
                raise TimestampSignatureInvalid("the signer's elliptic curve is not allow-listed")
            public_key.verify(signature, message, ec.ECDSA(chosen))
        else:
            raise TimestampSignatureInvalid("the signature algorithm is not allow-listed for the signer's key")
    except InvalidSignature as exc:
        raise TimestampSignatureInvalid("the signature does not verify") from exc


def _check_rsa_size(key: rsa.RSAPublicKey) -> None:
    if key.key_size < _MIN_RSA_BITS:
        raise TimestampSignatureInvalid("the signer's RSA key is shorter than 2048 bits")


def _pss_padding(parameters: Any, chosen: hashes.HashAlgorithm) -> padding.PSS | None:
    """PSS padding when the parameters use the SignerInfo's hash for the message and MGF1, trailer 1."""
    if isinstance(parameters, core.Void):
        return None
    mgf = parameters["mask_gen_algorithm"]
    salt_length = int(parameters["salt_length"].native)
    if (
        str(parameters["hash_algorithm"]["algorithm"].native) != chosen.name
        or str(mgf["algorithm"].native) != "mgf1"
        or str(mgf["parameters"]["algorithm"].native) != chosen.name
        or int(parameters["trailer_field"]) != 1
        or salt_length < 0
    ):
        return None
    return padding.PSS(mgf=padding.MGF1(chosen), salt_length=salt_length)


def _check_tsa_certificate(certificate: x509.Certificate, gen_time: datetime) -> None:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampSignerInvalid("the signer certificate has no extendedKeyUsage") from exc
    except ValueError as exc:
        raise TimestampSignerInvalid("the signer certificate's extensions cannot be read") from exc
    if not extension.critical:
        raise TimestampSignerInvalid("the signer certificate's extendedKeyUsage is not critical")
    if list(extension.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampSignerInvalid("the signer certificate's extendedKeyUsage is not timeStamping alone")
    if not certificate.not_valid_before_utc <= gen_time <= certificate.not_valid_after_utc:
        raise TimestampSignerInvalid("the signer certificate was not valid at genTime")


def _names_certificate(general_name_der: bytes, certificate_der: bytes) -> bool:
    """Whether the TSTInfo's TSA GeneralName is the certificate's subject or one of its alternative names."""
    with _reading("the TSA name"):
        name = asn1_x509.GeneralName.load(general_name_der, strict=True)
        certificate = asn1_x509.Certificate.load(certificate_der, strict=True)
        if name.name == "directory_name" and name.chosen == certificate.subject:
            return True
        alternative = certificate.subject_alt_name_value
        return alternative is not None and any(other.dump() == name.dump() for other in alternative)


def _hash(algorithm: str, data: bytes) -> bytes:
    hasher = hashes.Hash(_DIGESTS[algorithm]())
    hasher.update(data)
    return hasher.finalize()


def _check_digest(digest: bytes) -> None:
    if len(digest) != 32:
        raise ValueError("digest: the 32-byte SHA-256 of the data (the message imprint's hashedMessage)")
