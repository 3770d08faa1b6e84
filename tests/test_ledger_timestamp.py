"""RFC 3161 timestamps (issue 18 point 4): tokens from a real authority (``openssl ts -reply`` behind an HTTP
server on 127.0.0.1, ``tests/tsa_support.py``) verified, and every way a token or an authority can let the
gateway down refused with its own error.

Tokens are changed in two ways: one byte flipped in place (the TSTInfo, the signature, the certificate), and
one thing changed and the token signed again with the TSA's key (``tsa_support.resign``), so that each
check is seen to hold on its own and not only because the signature broke first.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.ledger.timestamp import (
    TimestampDigestMismatch,
    TimestampError,
    TimestampImprintMismatch,
    TimestampMalformed,
    TimestampNonceMismatch,
    TimestampNotGranted,
    TimestampNotSignedData,
    TimestampResult,
    TimestampSignatureInvalid,
    TimestampSignerInvalid,
    TimestampSignerUntrusted,
    TimestampTimeInvalid,
    TimestampWrongContentType,
    build_request,
    verify_token,
)
from gateway.ledger.tsa_client import (
    REPLY_MEDIA_TYPE,
    TsaContentTypeInvalid,
    TsaHttpError,
    TsaUnreachable,
    request_timestamp,
)
from tsa_support import POLICY, Issued, Mode, OpensslTsa, TsaServer, make_ca, make_tsa, new_key, parts, resign

DIGEST = hashlib.sha256(b"gateway-ledger-checkpoint/v1\nsize 1000\n").digest()
NONCE = 0x5EED_0F_7E57_0001
KINDS = ("rsa", "ec")
NETWORK_TIMEOUT = 15.0  # seconds: the bound on every exchange with the test authority (openssl runs inside)
ID_DATA = "1.2.840.113549.1.7.1"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def tsas(ca: Issued) -> dict[str, Issued]:
    return {kind: make_tsa(ca, kind=kind, common_name=f"Test TSA ({kind})") for kind in KINDS}


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory, ca: Issued, tsas: dict[str, Issued]) -> dict[str, OpensslTsa]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed: it is the test timestamping authority (README, OS packages)")
    return {kind: OpensslTsa(tmp_path_factory.mktemp(f"tsa-{kind}"), ca, tsa) for kind, tsa in tsas.items()}


@pytest.fixture
def server(authorities: dict[str, OpensslTsa]) -> Iterator[TsaServer]:
    with TsaServer(authorities["rsa"]) as running:
        yield running


@pytest.fixture(scope="module")
def replies(authorities: dict[str, OpensslTsa]) -> dict[str, bytes]:
    """One TimeStampResp per key kind, fetched over HTTP from the real authority for DIGEST and NONCE."""
    out = {}
    for kind, authority in authorities.items():
        with TsaServer(authority) as running:
            response = httpx.post(
                running.url, content=build_request(DIGEST, nonce=NONCE), timeout=NETWORK_TIMEOUT, trust_env=False,
                headers={"Content-Type": "application/timestamp-query"},
            )
        assert response.status_code == 200
        assert response.headers["content-type"] == REPLY_MEDIA_TYPE
        out[kind] = response.content
    return out


def _verify(
    token: bytes,
    pinned: Issued | None = None,
    *,
    digest: bytes = DIGEST,
    nonce: int | None = NONCE,
    trusted: list[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> TimestampResult:
    """verify_token with this file's digest and nonce, trusting ``pinned`` (or ``trusted``); with neither,
    whatever certificate the token carries."""
    if trusted is None and pinned is not None:
        trusted = [pinned.cert]
    return verify_token(token, digest=digest, nonce=nonce, tsa_certificates=trusted, now=now)


def _token(replies: dict[str, bytes], kind: str = "rsa") -> bytes:
    return _verify(replies[kind]).token


def _tst_info(token: bytes) -> tsp.TSTInfo:
    return tsp.TSTInfo.load(bytes(cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].contents))


# -- the request --


def test_request_is_the_der_the_rfc_describes() -> None:
    digest = bytes(range(32))
    expected = (
        bytes.fromhex("303c" "020101" "3031" "300d" "0609608648016503040201" "0500" "0420")
        + digest
        + bytes.fromhex("020101" "0101ff")
    )
    assert build_request(digest, nonce=1) == expected


@pytest.mark.parametrize(("digest", "nonce"), [(b"\x00" * 31, 1), (b"\x00" * 33, 1), (b"\x00" * 32, -1)])
def test_request_refuses_a_digest_that_is_not_sha256_or_a_negative_nonce(digest: bytes, nonce: int) -> None:
    with pytest.raises(ValueError, match=r"digest|nonce"):
        build_request(digest, nonce=nonce)


# -- tokens from the real authority --


@pytest.mark.parametrize("kind", KINDS)
async def test_token_from_a_real_openssl_authority_over_http_verifies(
    kind: str, authorities: dict[str, OpensslTsa], tsas: dict[str, Issued], ca: Issued, tmp_path: Path
) -> None:
    tsa = tsas[kind]
    before = datetime.now(UTC)
    with TsaServer(authorities[kind]) as running:
        async with httpx.AsyncClient(trust_env=False) as client:
            result = await request_timestamp(
                client, running.url, DIGEST, timeout=NETWORK_TIMEOUT, tsa_certificates=[tsa.cert]
            )
        (query,) = running.queries
    after = datetime.now(UTC)

    assert result.gen_time.tzinfo == UTC
    # openssl writes genTime to the millisecond (clock_precision_digits = 3), truncated
    assert before - timedelta(seconds=2) <= result.gen_time <= after + timedelta(seconds=2)
    assert result.serial_number >= 1
    assert result.policy == POLICY
    assert result.tsa_name is not None
    assert f"Test TSA ({kind})" in result.tsa_name
    assert result.accuracy == timedelta(seconds=1, milliseconds=500)
    assert result.signer_certificate == tsa.cert
    assert result.signer_certificate_sha256 == hashlib.sha256(tsa.cert_der).hexdigest()
    # the nonce the client chose went out in the query and came back signed
    sent = tsp.TimeStampReq.load(query)
    assert sent["nonce"].native == result.nonce
    assert sent["cert_req"].native is True
    assert sent["message_imprint"]["hashed_message"].native == DIGEST

    # the stored token stands on its own: it verifies again as a bare token, and OpenSSL accepts it too
    again = verify_token(result.token, digest=DIGEST, nonce=None, tsa_certificates=[tsa.cert])
    assert (again.gen_time, again.serial_number) == (result.gen_time, result.serial_number)
    (tmp_path / "token.der").write_bytes(result.token)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    openssl = await asyncio.create_subprocess_exec(
        "openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"), "-digest", DIGEST.hex(),
        "-CAfile", str(tmp_path / "ca.pem"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(openssl.communicate(), NETWORK_TIMEOUT)
    finally:
        if openssl.returncode is None:
            openssl.kill()
            await openssl.wait()
    assert openssl.returncode == 0, stderr.decode(errors="replace")


@pytest.mark.parametrize("kind", KINDS)
def test_reply_and_bare_token_verify_alike(kind: str, replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    from_reply = _verify(replies[kind], tsas[kind])
    from_token = _verify(from_reply.token, tsas[kind])
    assert from_reply == from_token
    assert from_reply.token != replies[kind]  # the reply's status is not part of what is stored


def test_token_naming_its_certificate_in_an_ess_v1_attribute_verifies(
    ca: Issued, tsas: dict[str, Issued], tmp_path: Path
) -> None:
    """RFC 3161 as first written: signingCertificate (ESS v1, SHA-1 of the certificate), not v2."""
    reply = OpensslTsa(tmp_path / "tsa", ca, tsas["rsa"], ess_alg="sha1").reply(build_request(DIGEST, nonce=NONCE))
    token = _verify(reply, tsas["rsa"]).token
    attributes = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signed_attrs"]
    assert "signing_certificate" in {attribute["type"].native for attribute in attributes}
    assert "signing_certificate_v2" not in {attribute["type"].native for attribute in attributes}


# -- one byte changed --


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["tst_info", "signature", "certificate"])
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
def test_one_changed_byte_fails_verification(
    kind: str, where: str, pinned: bool, replies: dict[str, bytes], tsas: dict[str, Issued]
) -> None:
    token = _token(replies, kind)
    start, end = parts(token)[where]
    expected: tuple[type[TimestampError], ...] = {
        "tst_info": (TimestampDigestMismatch,),
        "signature": (TimestampSignatureInvalid,),
        "certificate": (TimestampSignerInvalid, TimestampMalformed),
    }[where]
    positions = sorted({start, start + 1, start + (end - start) // 3, start + (end - start) // 2, end - 2, end - 1})
    for position in positions:
        changed = bytearray(token)
        changed[position] ^= 0x01
        with pytest.raises(expected):
            _verify(bytes(changed), tsas[kind] if pinned else None)


def test_every_byte_but_the_chain_the_tsa_adds_is_checked(
    replies: dict[str, bytes], tsas: dict[str, Issued], ca: Issued
) -> None:
    """Every single-bit change anywhere in a real token fails, with a typed error, except inside the CA
    certificate the authority adds (``certs =`` in its configuration): the verification never uses that one
    (the trusted certificates are pinned), so it is not what a stored token is proved by."""
    token = _token(replies)
    unused_start = token.find(ca.cert_der)
    assert unused_start > 0
    unused = range(unused_start, unused_start + len(ca.cert_der))
    passed = []
    for position in range(len(token)):
        changed = bytearray(token)
        changed[position] ^= 0x01
        try:
            _verify(bytes(changed), tsas["rsa"])
        except TimestampError:
            continue
        passed.append(position)
    assert [p for p in passed if p not in unused] == []


def test_refuses_a_carried_certificate_changed_where_asn1crypto_would_re_encode_it(tmp_path: Path) -> None:
    """The attack: asn1crypto takes a definite length whose last byte is 0x80 for the indefinite form and
    re-encodes that element in DER when asked for its bytes. A certificate of such a length, carried with its
    critical flag written as the BER boolean 0xFE, would then hash like the one signed for, and the changed
    certificate would pass for it. The verifier cuts the bytes out of the token itself and sees the change."""
    ca = make_ca(kind="rsa")  # an RSA signature has a fixed length: the certificate's size is exact
    key = new_key("rsa")
    for padding in range(256):
        tsa = make_tsa(ca, key=key, serial_number=0x7E57, uri=f"https://tsa.test/{'p' * padding}")
        if tsa.cert_der[1] == 0x82 and tsa.cert_der[3] == 0x80:  # SEQUENCE, length 0x02 0x80 (640)
            break
    else:
        pytest.fail("no padding gives the certificate a length ending in 0x80")
    reply = OpensslTsa(tmp_path / "tsa", ca, tsa).reply(build_request(DIGEST, nonce=NONCE))
    token = _verify(reply, tsa).token
    at = token.find(tsa.cert_der) + tsa.cert_der.find(bytes.fromhex("0603551d25" "0101ff")) + 7  # EKU critical TRUE
    assert token[at] == 0xFF
    changed = bytearray(token)
    changed[at] = 0xFE
    for pinned in (tsa, None):
        with pytest.raises(TimestampSignerInvalid):
            _verify(bytes(changed), pinned)


# -- what the caller asked about --


def test_refuses_a_token_over_another_digest(replies: dict[str, bytes]) -> None:
    with pytest.raises(TimestampImprintMismatch, match="not over the given digest"):
        _verify(replies["rsa"], digest=hashlib.sha256(b"another checkpoint").digest())


def test_refuses_a_token_with_another_nonce(replies: dict[str, bytes]) -> None:
    with pytest.raises(TimestampNonceMismatch):
        _verify(replies["rsa"], nonce=NONCE + 1)


def test_a_stored_token_verifies_without_its_nonce(replies: dict[str, bytes]) -> None:
    assert _verify(replies["rsa"], nonce=None).nonce == NONCE


def test_refuses_a_signer_outside_the_trusted_certificates(
    replies: dict[str, bytes], tsas: dict[str, Issued], ca: Issued
) -> None:
    other_tsa = make_tsa(ca, common_name="Another TSA")
    for trusted in ([other_tsa.cert], [ca.cert], [tsas["ec"].cert], []):
        with pytest.raises(TimestampSignerUntrusted):
            verify_token(replies["rsa"], digest=DIGEST, nonce=NONCE, tsa_certificates=trusted)
    # and the token is good: with its signer among the trusted, it verifies
    assert _verify(replies["rsa"], trusted=[other_tsa.cert, tsas["rsa"].cert]).signer_certificate == (
        tsas["rsa"].cert
    )


def test_refuses_a_signer_with_the_same_name_but_another_key(replies: dict[str, bytes], tsas: dict[str, Issued],
                                                             ca: Issued) -> None:
    """A pinned certificate that the sid names (same issuer, same serial) but that is not the one signed for."""
    real = tsas["rsa"].cert
    impostor = make_tsa(ca, kind="rsa")
    forged = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(impostor.key.public_key())
        .serial_number(real.serial_number)
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    with pytest.raises(TimestampSignerInvalid, match="names another certificate"):
        verify_token(replies["rsa"], digest=DIGEST, nonce=NONCE, tsa_certificates=[forged])


# -- each check on its own: one thing changed, the token signed again by the TSA's key --


def test_a_token_resigned_unchanged_verifies(replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    """The control for the tests below: re-signing alone breaks nothing."""
    for kind in KINDS:
        assert _verify(resign(_token(replies, kind), tsas[kind].key), tsas[kind]).serial_number >= 1


def test_a_token_signed_with_rsa_pss_verifies(replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    token = resign(_token(replies), tsas["rsa"].key, pss=True)
    assert cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature_algorithm"].signature_algo == (
        "rsassa_pss"
    )
    assert _verify(token, tsas["rsa"]).policy == POLICY


def test_refuses_a_token_signed_by_another_key_than_its_certificate(
    replies: dict[str, bytes], tsas: dict[str, Issued]
) -> None:
    with pytest.raises(TimestampSignatureInvalid, match="does not verify"):
        _verify(resign(_token(replies), new_key("rsa")), tsas["rsa"])
    with pytest.raises(TimestampSignatureInvalid, match="not allow-listed"):  # an EC signature, an RSA certificate
        _verify(resign(_token(replies), new_key("ec")), tsas["rsa"])


def test_refuses_a_tstinfo_changed_under_a_signature_over_the_old_digest(
    replies: dict[str, bytes], tsas: dict[str, Issued]
) -> None:
    token = _token(replies)
    tst = _tst_info(token)
    tst["serial_number"] = tst["serial_number"].native + 1000
    changed = resign(token, tsas["rsa"].key, tst_info=tst.dump(force=True), update_digest=False)
    with pytest.raises(TimestampDigestMismatch):
        _verify(changed, tsas["rsa"])


def test_refuses_signed_content_that_is_not_a_tstinfo(replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    changed = resign(_token(replies), tsas["rsa"].key, econtent_type=ID_DATA)
    with pytest.raises(TimestampWrongContentType):
        _verify(changed, tsas["rsa"])


def test_refuses_a_content_info_that_is_not_signed_data() -> None:
    data = cms.ContentInfo({"content_type": "data", "content": b"not a timestamp"}).dump()
    with pytest.raises(TimestampNotSignedData):
        verify_token(data, digest=DIGEST, nonce=None, tsa_certificates=None)


@pytest.mark.parametrize(
    "data", [b"", b"\x30\x00", b"\x04\x03abc", b"\x30\x82\xff\xffshort", b"\x30\x03\x02\x01\x00trailing"]
)
def test_refuses_bytes_that_are_no_timestamp(data: bytes) -> None:
    with pytest.raises(TimestampMalformed):
        verify_token(data, digest=DIGEST, nonce=None, tsa_certificates=None)


def test_refuses_a_message_imprint_that_is_not_sha256(replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    token = _token(replies)
    tst = _tst_info(token)
    tst["message_imprint"] = {"hash_algorithm": {"algorithm": "sha512"}, "hashed_message": DIGEST}
    with pytest.raises(TimestampImprintMismatch, match="not SHA-256"):
        _verify(resign(token, tsas["rsa"].key, tst_info=tst.dump(force=True)), tsas["rsa"])


def test_refuses_an_unreadable_gen_time(replies: dict[str, bytes], tsas: dict[str, Issued]) -> None:
    token = _token(replies)
    der = _tst_info(token).dump()
    raw = bytes(_tst_info(token)["gen_time"].contents)
    assert raw.endswith(b"Z")
    for unreadable in (raw[:-1] + b"0", raw[:4] + b"13" + raw[6:], raw.replace(b"Z", b"z")):
        assert len(unreadable) == len(raw)
        assert der.count(raw) == 1
        changed = resign(token, tsas["rsa"].key, tst_info=der.replace(raw, unreadable))
        with pytest.raises(TimestampTimeInvalid):
            _verify(changed, tsas["rsa"])


def test_refuses_a_gen_time_in_the_future(replies: dict[str, bytes]) -> None:
    gen_time = _verify(replies["rsa"]).gen_time
    with pytest.raises(TimestampTimeInvalid, match="future"):
        _verify(replies["rsa"], now=gen_time - timedelta(hours=1))
    assert _verify(replies["rsa"], now=gen_time - timedelta(minutes=1)).gen_time == gen_time


@pytest.mark.parametrize(
    ("eku_critical", "purposes", "reason"),
    [
        (False, (ExtendedKeyUsageOID.TIME_STAMPING,), "not critical"),
        (True, (), "no extendedKeyUsage"),
        (True, (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING), "timeStamping alone"),
        (True, (ExtendedKeyUsageOID.CODE_SIGNING,), "timeStamping alone"),
    ],
    ids=["eku-not-critical", "no-eku", "eku-with-more", "eku-other"],
)
def test_refuses_a_signer_certificate_that_is_not_a_tsas(
    eku_critical: bool, purposes: tuple, reason: str, replies: dict[str, bytes], tsas: dict[str, Issued], ca: Issued
) -> None:
    key = tsas["rsa"].key
    not_a_tsa = make_tsa(ca, key=key, eku_critical=eku_critical, purposes=purposes)
    changed = resign(_token(replies), key, certificate=not_a_tsa.cert)
    with pytest.raises(TimestampSignerInvalid, match=reason):
        _verify(changed, not_a_tsa)
    with pytest.raises(TimestampSignerInvalid, match=reason):
        _verify(changed)


def test_refuses_a_signer_certificate_not_valid_at_gen_time(
    replies: dict[str, bytes], tsas: dict[str, Issued], ca: Issued
) -> None:
    key = tsas["rsa"].key
    later = datetime.now(UTC) + timedelta(days=1)
    not_yet = make_tsa(ca, key=key, not_before=later, not_after=later + timedelta(days=1))
    with pytest.raises(TimestampSignerInvalid, match="not valid at genTime"):
        _verify(resign(_token(replies), key, certificate=not_yet.cert), not_yet)


def test_refuses_a_tsa_name_that_is_not_the_signers(
    replies: dict[str, bytes], tsas: dict[str, Issued]
) -> None:
    token = _token(replies)
    tst = _tst_info(token)
    tst["tsa"] = asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.build({"common_name": "Someone"}))
    with pytest.raises(TimestampSignerInvalid, match="TSA name"):
        _verify(resign(token, tsas["rsa"].key, tst_info=tst.dump(force=True)), tsas["rsa"])


# -- the authority failing --


async def test_authority_refusing_is_not_granted(server: TsaServer) -> None:
    server.mode = Mode.REFUSE
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(TimestampNotGranted) as caught:
            await request_timestamp(client, server.url, DIGEST, timeout=NETWORK_TIMEOUT)
    assert caught.value.status == 2  # rejection
    assert caught.value.fail_info == "bad_alg"


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        (Mode.UNAVAILABLE, TsaHttpError),
        (Mode.GARBAGE, TimestampMalformed),
        (Mode.WRONG_TYPE, TsaContentTypeInvalid),
    ],
)
async def test_authority_answering_badly_is_a_typed_error(
    mode: Mode, error: type[TimestampError], server: TsaServer
) -> None:
    server.mode = mode
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(error) as caught:
            await request_timestamp(client, server.url, DIGEST, timeout=NETWORK_TIMEOUT)
    if isinstance(caught.value, TsaHttpError):
        assert caught.value.status_code == 503


async def test_authority_saying_nothing_is_unreachable_within_the_timeout(server: TsaServer) -> None:
    server.mode = Mode.HANG
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(TsaUnreachable):
            await request_timestamp(client, server.url, DIGEST, timeout=0.5)
    assert len(server.queries) == 1


async def test_no_authority_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(TsaUnreachable):
            await request_timestamp(client, f"http://127.0.0.1:{port}/tsa", DIGEST, timeout=NETWORK_TIMEOUT)
