"""A real RFC 3161 timestamping authority for tests: a test CA, a TSA certificate, ``openssl ts -reply``
behind a small HTTP server on 127.0.0.1, and a way to re-sign a token after changing one thing in it.

The authority is OpenSSL's own (``openssl ts -reply -config … -queryfile …``, run per request with a bounded
timeout), so the tokens the tests verify were made by an implementation that is not ours. The server has
fault modes (:class:`Mode`) for the transport errors, and ``refuse`` makes OpenSSL itself answer with a
rejection (a configuration section that admits no SHA-256 imprint).

:func:`resign` exists for the checks OpenSSL will not let a TSA break (it refuses to sign with a
certificate whose extendedKeyUsage is not critical timeStamping, for one): it changes exactly one thing in
a real token and signs the signed attributes again with the TSA's key, so that a test sees the one check
it is about fail, and not the signature.
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.55555.1.1"  # the test authority's default policy (a private arc, for tests only)
OPENSSL_TIMEOUT = 20.0  # seconds one `openssl ts -reply` may take
MAX_QUERY_BYTES = 64 * 1024

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A key and the certificate for it."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def new_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(kind)


def make_ca(common_name: str = "Test Timestamping CA", *, kind: str = "ec") -> Issued:
    key = new_key(kind)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def make_tsa(
    ca: Issued,
    *,
    kind: str = "rsa",
    key: PrivateKey | None = None,
    common_name: str = "Test TSA",
    eku_critical: bool = True,
    purposes: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.TIME_STAMPING,),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial_number: int | None = None,
    uri: str | None = None,
) -> Issued:
    """A TSA certificate issued by ``ca``: by default the critical EKU timeStamping RFC 3161 §2.3 asks for.

    ``uri`` adds a subjectAltName URI (a test uses its length to give the certificate an exact size).
    """
    key = key or new_key(kind)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gateway tests"),
        ]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(hours=1))
        .not_valid_after(not_after or now + timedelta(days=7))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if purposes:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(purposes)), critical=eku_critical)
    if uri is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                                        critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


_CONFIG = """\
# written by tests/tsa_support.py; one section per behaviour, chosen with `openssl ts -reply -section`
[ tsa ]
default_tsa = tsa_grant

[ tsa_grant ]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
certs = {dir}/ca.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = {policy}
other_policies = 1.3.6.1.4.1.55555.1.2
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}

[ tsa_refuse ]
# admits SHA-512 imprints only, so OpenSSL answers a SHA-256 query with status rejection, failInfo badAlg
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
certs = {dir}/ca.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha512
accuracy = secs:1
ess_cert_id_alg = sha256
"""


class OpensslTsa:
    """``openssl ts -reply`` with a configuration, keys and a serial file in ``directory``."""

    def __init__(self, directory: Path, ca: Issued, tsa: Issued, *, ess_alg: str = "sha256") -> None:
        """``ess_alg`` sha1 makes OpenSSL name its certificate in an ESS signing-certificate v1 attribute."""
        self.directory, self.ca, self.tsa = directory, ca, tsa
        self._lock = threading.Lock()  # openssl rewrites the serial file: one reply at a time
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        (directory / "tsa.pem").write_bytes(tsa.cert_pem)
        key_file = directory / "tsa.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(tsa.key_pem)
        (directory / "serial").write_text("01\n")
        self.config = directory / "openssl-ts.cnf"
        self.config.write_text(_CONFIG.format(dir=directory, policy=POLICY, ess_alg=ess_alg))

    def reply(self, query: bytes, *, section: str = "tsa_grant") -> bytes:
        """The DER TimeStampResp OpenSSL makes for ``query`` (a DER TimeStampReq)."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.directory) as work:
            query_file, reply_file = Path(work) / "query.tsq", Path(work) / "reply.tsr"
            query_file.write_bytes(query)
            done = subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.config), "-section", section,
                 "-queryfile", str(query_file), "-out", str(reply_file)],
                capture_output=True, timeout=OPENSSL_TIMEOUT, check=False,
            )
            if done.returncode != 0 or not reply_file.exists():
                raise RuntimeError(f"openssl ts -reply failed: {done.stderr.decode(errors='replace')[-2000:]}")
            return reply_file.read_bytes()


class Mode(Enum):
    GRANT = "grant"  # OpenSSL's reply
    REFUSE = "refuse"  # OpenSSL's reply from the section that admits no SHA-256: status rejection
    UNAVAILABLE = "unavailable"  # 503
    GARBAGE = "garbage"  # 200, application/timestamp-reply, bytes that are no DER
    WRONG_TYPE = "wrong-type"  # 200, text/html
    HANG = "hang"  # reads the query, then says nothing for `hang_seconds` (or until the server stops)


class TsaServer:
    """A threaded HTTP server on 127.0.0.1 answering RFC 3161 queries with ``authority``; a context manager."""

    def __init__(self, authority: OpensslTsa, *, mode: Mode = Mode.GRANT, hang_seconds: float = 5.0) -> None:
        self.authority, self.mode, self.hang_seconds = authority, mode, hang_seconds
        self.queries: list[bytes] = []
        self._release = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tsa-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def __enter__(self) -> TsaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures anyway
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if not 0 < length <= MAX_QUERY_BYTES:
                    self._answer(413, "text/plain", b"query size")
                    return
                query = self.rfile.read(length)
                server.queries.append(query)
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self._answer(415, "text/plain", b"not a timestamp query")
                    return
                mode = server.mode
                if mode is Mode.HANG:
                    server._release.wait(server.hang_seconds)
                    self.close_connection = True
                    return
                if mode is Mode.UNAVAILABLE:
                    self._answer(503, "text/plain", b"timestamping is down for maintenance")
                elif mode is Mode.GARBAGE:
                    self._answer(200, "application/timestamp-reply", b"\x30\x82\xff\xffnot DER at all")
                elif mode is Mode.WRONG_TYPE:
                    self._answer(200, "text/html", b"<html><body>captive portal</body></html>")
                else:
                    section = "tsa_refuse" if mode is Mode.REFUSE else "tsa_grant"
                    self._answer(200, "application/timestamp-reply", server.authority.reply(query, section=section))

            def _answer(self, status: int, media_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextmanager
def running_tsa(directory: Path, ca: Issued, tsa: Issued, **options: Any) -> Iterator[TsaServer]:
    with TsaServer(OpensslTsa(directory, ca, tsa), **options) as server:
        yield server


# -- changing one thing in a real token, then signing it again --


def resign(
    token: bytes,
    key: PrivateKey,
    *,
    certificate: x509.Certificate | None = None,
    tst_info: bytes | None = None,
    update_digest: bool = True,
    econtent_type: str | None = None,
    pss: bool = False,
) -> bytes:
    """``token`` (a TimeStampToken) with one thing changed and its signed attributes signed by ``key``.

    ``certificate``: the signer certificate becomes this one (carried, named by the sid and by the ESS
    attribute). ``tst_info``: these TSTInfo octets instead, with the message-digest attribute following
    them unless ``update_digest`` is false. ``econtent_type``: the eContentType (and the content-type
    attribute) becomes this OID. ``pss``: RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) instead of PKCS#1 v1.5.
    """
    info = cms.ContentInfo.load(token)
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    encap = signed_data["encap_content_info"]
    content = tst_info if tst_info is not None else bytes(encap["content"].contents)
    content_type = econtent_type or encap["content_type"].dotted
    certificates = signed_data["certificates"]
    if certificate is not None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        parsed = asn1_x509.Certificate.load(der)
        certificates = cms.CertificateSet([cms.CertificateChoices({"certificate": parsed})], implicit=0)
        signer_info["sid"] = cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": parsed.issuer, "serial_number": parsed.serial_number,
        }})
    attributes = []
    for attribute in signer_info["signed_attrs"]:
        name = attribute["type"].native
        if name == "message_digest" and update_digest:
            attribute = cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]})
        elif name == "content_type" and econtent_type is not None:
            attribute = cms.CMSAttribute({"type": "content_type", "values": [econtent_type]})
        elif name == "signing_certificate_v2" and certificate is not None:
            attribute = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [{
                "hash_algorithm": {"algorithm": "sha256"}, "cert_hash": hashlib.sha256(der).digest(),
            }]}]})
        attributes.append(attribute)
    signer_info["signed_attrs"] = cms.CMSAttributes(attributes)
    raw = signer_info["signed_attrs"].dump(force=True)
    message = b"\x31" + raw[1:]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        signer_info["signature_algorithm"] = {"algorithm": "sha256_ecdsa"}
    elif pss:
        signature = key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        signer_info["signature_algorithm"] = {"algorithm": "rsassa_pss", "parameters": {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32,
            "trailer_field": 1,
        }}
    else:
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        signer_info["signature_algorithm"] = {"algorithm": "rsassa_pkcs1v15"}
    signer_info["signature"] = signature
    # Assembled by hand: asn1crypto re-reads eContent as a TSTInfo when it re-encodes, and some tests
    # mean to sign one it cannot read.
    encapsulated = _tlv(0x30, cms.ContentType(content_type).dump() + _tlv(0xA0, _tlv(0x04, content)))
    fields = [signed_data["version"].dump(), signed_data["digest_algorithms"].dump(), encapsulated,
              certificates.dump(force=True), _tlv(0x31, signer_info.dump(force=True))]
    return _tlv(0x30, cms.ContentType("signed_data").dump() + _tlv(0xA0, _tlv(0x30, b"".join(fields))))


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag byte, definite length, content."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def parts(token: bytes) -> dict[str, tuple[int, int]]:
    """Where in ``token`` (a TimeStampToken) its TSTInfo, its signature and its first certificate lie."""
    signed_data = cms.ContentInfo.load(token)["content"]
    found = {
        "tst_info": bytes(signed_data["encap_content_info"]["content"].contents),
        "signature": bytes(signed_data["signer_infos"][0]["signature"].contents),
        "certificate": bytes(signed_data["certificates"][0].chosen.dump()),
    }
    spans = {}
    for name, piece in found.items():
        start = token.find(piece)
        assert start >= 0, name
        assert token.find(piece, start + 1) < 0, f"{name} occurs twice"
        spans[name] = (start, start + len(piece))
    return spans
