"""The hostile corpus (tests/hostile/, one file per attack) submitted over HTTP: each is refused with its
problem type and a 4xx, and nothing is stored but the ledger's record of the refusal."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI

from gateway.agency.certificates import certificate_sha256
from gateway.agency.models import AgencyCertificate
from gw import last_entry, only_ledger_grew, register, stored

HOSTILE = Path(__file__).parent / "hostile"
EXPECTED: dict[str, str] = json.loads((HOSTILE / "expected.json").read_text())
REGISTRY = json.loads((HOSTILE / "registry.json").read_text())
LIMITS = json.loads((HOSTILE / "limits.json").read_text())


@pytest.fixture
async def corpus_sender(app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> str:
    sender = await register(client, admin_headers, REGISTRY["sender"], "Văn phòng Chính phủ")
    for code in REGISTRY["recipients"]:
        await register(client, admin_headers, code, f"Nơi nhận {code}")
    # The corpus certificates are put on record directly: an expired or revoked certificate can no longer
    # be registered through the API, but one registered while valid stays on record for history.
    async with app.state.db.transaction() as session:
        for entry in REGISTRY["certificates"]:
            cert = x509.load_pem_x509_certificate((HOSTILE / entry["file"]).read_bytes())
            revoked = datetime.fromisoformat(entry["revoked_at"]) if entry["revoked_at"] else None
            session.add(AgencyCertificate(
                sha256=certificate_sha256(cert), agency_code=REGISTRY["sender"],
                pem=(HOSTILE / entry["file"]).read_text(), subject=cert.subject.rfc4514_string(),
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                added_at=datetime(2024, 1, 1, tzinfo=UTC), revoked_at=revoked,
            ))
    app.state.intake.limits = dataclasses.replace(app.state.intake.limits, **LIMITS)
    return sender.token


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_hostile_input_is_refused_with_its_problem_type(
    app: FastAPI, client: httpx.AsyncClient, corpus_sender: str, name: str
) -> None:
    before = await stored(app)
    r = await client.post("/v1/envelopes", content=(HOSTILE / name).read_bytes(),
                          headers={"Authorization": f"Bearer {corpus_sender}", "Content-Type": "application/xml"})
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"urn:gateway:problem:{EXPECTED[name]}"
    assert only_ledger_grew(before, await stored(app))
    entry = await last_entry(app)
    assert entry.type == "envelope.refused"
    assert json.loads(entry.details)["rule"] == EXPECTED[name]
    # The refusal names the rule, never echoes the hostile bytes.
    assert "passwd" not in r.text
    assert "ENTITY" not in r.text


async def test_corpus_sender_can_still_send_a_clean_envelope(
    app: FastAPI, client: httpx.AsyncClient, corpus_sender: str
) -> None:
    """The corpus setup itself is sound: the same sender and key get a valid envelope accepted."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from gateway.envelope import DocumentSpec, Organ, build_document, sign

    key = load_pem_private_key((HOSTILE / "keys" / "sender.key.pem").read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((HOSTILE / "keys" / "sender.crt.pem").read_bytes())
    xml = build_document(DocumentSpec(sender=Organ(REGISTRY["sender"], "Văn phòng Chính phủ"),
                                      recipients=tuple(Organ(c, "Nơi nhận") for c in REGISTRY["recipients"])))
    algorithm = "rsa-sha256" if cert.signature_hash_algorithm is not None and "RSA" in type(
        cert.public_key()).__name__ else "ecdsa-sha256"
    signed = sign(xml, key, cert, algorithm=algorithm)  # type: ignore[arg-type]
    r = await client.post("/v1/envelopes", content=signed,
                          headers={"Authorization": f"Bearer {corpus_sender}", "Content-Type": "application/xml"})
    assert r.status_code == 201, r.text

