"""RFC 3161 timestamps of checkpoints against a real authority (``openssl ts -reply`` on loopback,
tests/tsa_support.py), and the fail-closed rule: /readyz and intake while the authority fails, recovery after.
Both databases."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from console_support import console_sign_in
from gateway.config import Settings
from gateway.ledger import service as ledger
from gateway.ledger.bundle import verify_bundle
from gateway.ledger.checkpointer import checkpoint_if_due
from gateway.ledger.stamping import load_tsa_certificates, note_digest, stamp_pending
from gateway.ledger.timestamp import TimestampError, verify_token
from gateway.ledger.tsa_client import TsaTransportError
from gw import only_ledger_grew, register, stored, submit
from tsa_support import Issued, Mode, OpensslTsa, TsaServer, make_ca, make_tsa

TIMEOUT = 15.0


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[OpensslTsa, Issued]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed: it is the test timestamping authority (README, OS packages)")
    ca = make_ca()
    tsa = make_tsa(ca, kind="rsa", common_name="Test TSA")
    return OpensslTsa(tmp_path_factory.mktemp("tsa"), ca, tsa), tsa


@pytest.fixture
def tsa_server(authority: tuple[OpensslTsa, Issued]) -> Iterator[TsaServer]:
    with TsaServer(authority[0]) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, tsa_server: TsaServer, authority: tuple[OpensslTsa, Issued],
             tmp_path: Path) -> Settings:
    pem = tmp_path / "tsa.pem"
    pem.write_bytes(authority[1].cert_pem)
    return settings.model_copy(update={"tsa_url": tsa_server.url, "tsa_cert_file": pem,
                                       "tsa_max_failure_seconds": 1.0, "tsa_fail_closed": True})


async def _checkpoint(app: FastAPI, entries: int = 3) -> int:
    async with app.state.db.transaction() as session:
        for i in range(entries):
            await ledger.append(session, type="agency.updated", actor="console:test", details={"i": i})
    signed = await checkpoint_if_due(app.state.db, app.state.gateway_key, every_entries=1, every_seconds=0,
                                     force=True)
    assert signed is not None
    return signed.size


async def _stamp(app: FastAPI) -> int:
    settings: Settings = app.state.settings
    assert settings.tsa_url is not None
    assert settings.tsa_cert_file is not None
    async with httpx.AsyncClient(trust_env=False) as client:
        return await stamp_pending(app.state.db, client, settings.tsa_url,
                                   load_tsa_certificates(settings.tsa_cert_file), timeout_seconds=TIMEOUT)


async def test_checkpoints_are_stamped_and_the_bundle_carries_the_token(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], authority: tuple[OpensslTsa, Issued]
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    assert (await submit(client, g22, g22.envelope(h41))).status_code == 201
    await _checkpoint(app, 1)
    assert await _stamp(app) == 1
    assert await _stamp(app) == 0  # nothing left
    [item] = (await client.get("/v1/inbox", headers=h41.headers)).json()["items"]
    bundle = (await client.get(f"/v1/documents/{item['id']}/proof", headers=g22.headers)).json()
    token = base64.b64decode(bundle["timestamp"]["token"])
    result = verify_token(token, digest=note_digest(bundle["checkpoint"]), nonce=None,
                          tsa_certificates=[authority[1].cert])
    assert result.signer_certificate_sha256 == hashlib.sha256(authority[1].cert_der).hexdigest()
    assert abs((result.gen_time - datetime.now(UTC)).total_seconds()) < 60
    # the offline verifier reads the token too, pinned to the authority
    verdict = verify_bundle(json.dumps(bundle).encode(), gateway_certificate=app.state.gateway_key.certificate,
                            tsa_certificates=[authority[1].cert])
    assert verdict.timestamp is not None
    assert verdict.timestamp.gen_time == result.gen_time
    # the token is over this very note: another note's digest does not verify
    with pytest.raises(TimestampError):
        verify_token(token, digest=note_digest(bundle["checkpoint"] + " "), nonce=None,
                     tsa_certificates=[authority[1].cert])


async def test_the_fail_closed_rule_while_the_authority_fails_and_after(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], tsa_server: TsaServer
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    assert (await client.get("/readyz")).status_code == 200
    tsa_server.mode = Mode.UNAVAILABLE
    await _checkpoint(app)
    with pytest.raises(TsaTransportError):
        await _stamp(app)
    await asyncio.sleep(1.2 + 5.1)  # past GATEWAY_TSA_MAX_FAILURE_SECONDS, and past the gate's cache
    ready = await client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "timestamp" in ready.json()["detail"]
    # the operators' console says so too
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as tab:
        await console_sign_in(tab, admin_headers["Authorization"].removeprefix("Bearer "))
        assert 'data-figure="timestamping" data-state="failing"' in (await tab.get("/console")).text
    before = await stored(app)
    r = await submit(client, g22, g22.envelope(h41))
    assert r.status_code == 503, r.text
    assert r.json()["type"] == "urn:gateway:problem:timestamping-unavailable"
    assert only_ledger_grew(before, await stored(app))  # the refusal's record only

    tsa_server.mode = Mode.GRANT
    assert await _stamp(app) == 1
    await asyncio.sleep(5.1)  # the gate's cache
    assert (await client.get("/readyz")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as tab:
        await console_sign_in(tab, admin_headers["Authorization"].removeprefix("Bearer "))
        assert 'data-figure="timestamping" data-state="ok"' in (await tab.get("/console")).text
    assert (await submit(client, g22, g22.envelope(h41, code_number="16"))).status_code == 201
