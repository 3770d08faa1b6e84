"""Keys, certificates and signed envelopes for the envelope tests, all made here with `cryptography`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from envelope_helpers import NOW, Signer, base_spec, make_cert, mutate
from lxml import etree

from gateway.envelope import DocumentSpec, build_document, sign


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def signer(rsa_key: rsa.RSAPrivateKey) -> Signer:
    return Signer(rsa_key, make_cert(rsa_key))


@pytest.fixture(scope="session")
def ec_signer() -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    return Signer(key, make_cert(key))


@pytest.fixture(scope="session")
def stranger() -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Signer(key, make_cert(key, cn="Không đăng ký"))


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture
def make_signed(signer: Signer) -> Callable[..., bytes]:
    """``make_signed(spec=None, before=None, signer=None, algorithm=...)``: a signed envelope.

    ``before`` alters the unsigned tree, so the signature is valid over the altered document.
    """

    def _make(
        spec: DocumentSpec | None = None,
        *,
        before: Callable[[etree._Element], None] | None = None,
        by: Signer | None = None,
        algorithm: str = "rsa-sha256",
    ) -> bytes:
        xml = build_document(spec or base_spec())
        if before is not None:
            xml = mutate(xml, before)
        who = by or signer
        return sign(xml, who.key, who.cert, algorithm=algorithm)  # type: ignore[arg-type]

    return _make
