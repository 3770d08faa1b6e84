"""The register over HTTP: round trips, refusals with nothing stored, and who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from certs import make_keypair
from gateway.agency.models import Agency, AgencyCertificate
from gateway.ledger.models import LedgerEntry

PROBLEM = "application/problem+json"


def agency_body(code: str = "000.00.00.H41", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": "UBND tỉnh Nghệ An",
        "delivery": {"mode": "push", "endpoint": "https://qlvb.nghean.example/edxml"},
        "signature_policy": "required",
        "active": True,
    }
    body.update(over)
    return body


async def _counts(app: FastAPI) -> tuple[int, int, int]:
    async with app.state.db.transaction() as session:
        agencies = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
        certs = (await session.execute(select(func.count()).select_from(AgencyCertificate))).scalar_one()
        entries = (await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one()
    return agencies, certs, entries


async def test_register_then_read_round_trips_every_field(client: httpx.AsyncClient,
                                                          admin_headers: dict[str, str]) -> None:
    parent = await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    assert parent.status_code == 201, parent.text
    body = agency_body("001.00.00.H41", name="Sở Thông tin và Truyền thông", parent_code="000.00.00.H41",
                       alt_code="H41.SOTTTT", aliases=["28.22.H17", "vxp.saas.03"], delivery={"mode": "pull"},
                       signature_policy="channel", active=False)
    created = await client.post("/v1/agencies", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    got = (await client.get("/v1/agencies/001.00.00.H41", headers=admin_headers)).json()
    for key, value in body.items():
        assert got[key] == value, key
    assert got["certificates"] == []
    listed = (await client.get("/v1/agencies", headers=admin_headers)).json()["items"]
    assert [a["code"] for a in listed] == ["000.00.00.H41", "001.00.00.H41"]


async def test_certificate_add_and_revoke_keeps_history(client: httpx.AsyncClient,
                                                        admin_headers: dict[str, str]) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    old, new = make_keypair("cũ"), make_keypair("mới")
    for kp in (old, new):
        r = await client.post("/v1/agencies/000.00.00.H41/certificates", json={"pem": kp.cert_pem},
                              headers=admin_headers)
        assert r.status_code == 201, r.text
        assert r.json()["sha256"] == kp.sha256
        assert r.json()["revoked_at"] is None
    revoked = await client.delete(f"/v1/agencies/000.00.00.H41/certificates/{old.sha256}", headers=admin_headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    certs = (await client.get("/v1/agencies/000.00.00.H41", headers=admin_headers)).json()["certificates"]
    by_sha = {c["sha256"]: c for c in certs}
    assert set(by_sha) == {old.sha256, new.sha256}
    assert by_sha[old.sha256]["revoked_at"] is not None
    assert by_sha[new.sha256]["revoked_at"] is None
    assert datetime.fromisoformat(by_sha[new.sha256]["not_after"]) == new.cert.not_valid_after_utc


@pytest.mark.parametrize(
    ("body", "slug", "status", "field"),
    [
        (agency_body("H41"), "agency-code-invalid", 422, "code"),
        (agency_body("000.00.00.h41"), "agency-code-invalid", 422, "code"),
        (agency_body("000.00.00.H41\n"), "agency-code-invalid", 422, "code"),
        (agency_body(parent_code="000.00.00.G22"), "agency-parent-unknown", 422, "parent_code"),
        (agency_body(delivery={"mode": "push", "endpoint": "ftp://x.example/"}), "agency-endpoint-invalid", 422,
         "delivery.endpoint"),
        (agency_body(delivery={"mode": "push", "endpoint": "not a url"}), "agency-endpoint-invalid", 422,
         "delivery.endpoint"),
        (agency_body(name="   "), "agency-name-invalid", 422, "name"),
        (agency_body(signature_policy="sometimes"), "request-invalid", 422, "signature_policy"),
        (agency_body(delivery={"mode": "carrier-pigeon"}), "request-invalid", 422, "delivery"),
    ],
)
async def test_bad_registration_is_refused_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str],
    body: dict[str, Any], slug: str, status: int, field: str,
) -> None:
    before = await _counts(app)
    r = await client.post("/v1/agencies", json=body, headers=admin_headers)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"] == f"urn:gateway:problem:{slug}"
    assert problem["status"] == status
    named = problem.get("field") or ",".join(e["field"] for e in problem.get("errors", []))
    assert named.startswith(field)
    assert await _counts(app) == before


async def test_duplicate_code_is_a_conflict(app: FastAPI, client: httpx.AsyncClient,
                                            admin_headers: dict[str, str]) -> None:
    assert (await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)).status_code == 201
    before = await _counts(app)
    r = await client.post("/v1/agencies", json=agency_body(name="Khác"), headers=admin_headers)
    assert r.status_code == 409
    assert r.json()["type"] == "urn:gateway:problem:agency-exists"
    assert r.json()["field"] == "code"
    assert await _counts(app) == before


@pytest.mark.parametrize(
    ("pem", "slug"),
    [
        ("not a certificate", "certificate-malformed"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate-malformed"),
        ("expired", "certificate-expired"),
        ("two", "certificate-malformed"),
    ],
)
async def test_bad_certificate_is_refused_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], pem: str, slug: str
) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    if pem == "expired":
        now = datetime.now(UTC)
        pem = make_keypair(not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)).cert_pem
    elif pem == "two":
        pem = make_keypair().cert_pem + make_keypair().cert_pem
    before = await _counts(app)
    r = await client.post("/v1/agencies/000.00.00.H41/certificates", json={"pem": pem}, headers=admin_headers)
    assert r.status_code == 422
    assert r.json()["type"] == f"urn:gateway:problem:{slug}"
    assert r.json()["field"] == "pem"
    assert await _counts(app) == before


async def test_same_certificate_twice_is_a_conflict(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    kp = make_keypair()
    url = "/v1/agencies/000.00.00.H41/certificates"
    assert (await client.post(url, json={"pem": kp.cert_pem}, headers=admin_headers)).status_code == 201
    r = await client.post(url, json={"pem": kp.cert_pem}, headers=admin_headers)
    assert r.status_code == 409
    assert r.json()["type"] == "urn:gateway:problem:certificate-exists"


async def test_update_changes_only_given_fields_and_refuses_cycles(client: httpx.AsyncClient,
                                                                   admin_headers: dict[str, str]) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    await client.post("/v1/agencies", json=agency_body("001.00.00.H41", parent_code="000.00.00.H41"),
                      headers=admin_headers)
    r = await client.patch("/v1/agencies/001.00.00.H41", json={"delivery": {"mode": "pull"}}, headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["delivery"] == {"mode": "pull"}
    assert r.json()["parent_code"] == "000.00.00.H41"
    cycle = await client.patch("/v1/agencies/000.00.00.H41", json={"parent_code": "001.00.00.H41"},
                               headers=admin_headers)
    assert cycle.status_code == 422
    assert cycle.json()["type"] == "urn:gateway:problem:agency-parent-unknown"
    r = await client.patch("/v1/agencies/001.00.00.H41", json={"parent_code": None}, headers=admin_headers)
    assert r.json()["parent_code"] is None


async def test_tokens_and_roles_gate_every_admin_call(client: httpx.AsyncClient, admin_headers: dict[str, str],
                                                      auditor_headers: dict[str, str]) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    issued = await client.post("/v1/agencies/000.00.00.H41/tokens", headers=admin_headers)
    assert issued.status_code == 201
    agency_headers = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert len(issued.json()["token"]) >= 43  # 256 bits in URL-safe base64

    kp = make_keypair()
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/agencies", agency_body("002.00.00.H41")),
        ("GET", "/v1/agencies", None),
        ("GET", "/v1/agencies/000.00.00.H41", None),
        ("PATCH", "/v1/agencies/000.00.00.H41", {"name": "Tên mới"}),
        ("POST", "/v1/agencies/000.00.00.H41/certificates", {"pem": kp.cert_pem}),
        ("DELETE", f"/v1/agencies/000.00.00.H41/certificates/{kp.sha256}", None),
        ("POST", "/v1/agencies/000.00.00.H41/tokens", None),
        ("DELETE", f"/v1/agencies/000.00.00.H41/tokens/{issued.json()['id']}", None),
    ]
    reads = {"/v1/agencies", "/v1/agencies/000.00.00.H41"}
    for method, url, body in calls:
        for headers, expected in (
            ({}, 401),
            ({"Authorization": "Bearer gw_not-a-real-token"}, 401),
            ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401),
            (agency_headers, 403),
            (auditor_headers, 200 if method == "GET" and url in reads else 403),
        ):
            r = await client.request(method, url, json=body, headers=headers)
            assert r.status_code == expected, (method, url, headers, r.text)
            if expected >= 400:
                assert r.headers["content-type"] == PROBLEM
    # The revoked token is refused at once.
    token_id = issued.json()["id"]
    assert (await client.delete(f"/v1/agencies/000.00.00.H41/tokens/{token_id}",
                                headers=admin_headers)).status_code == 204
    r = await client.get("/v1/agencies", headers=agency_headers)
    assert r.status_code == 401


async def test_suspended_agency_tokens_are_refused_at_once(client: httpx.AsyncClient,
                                                           admin_headers: dict[str, str]) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    token = (await client.post("/v1/agencies/000.00.00.H41/tokens", headers=admin_headers)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/agencies", headers=headers)).status_code == 403  # authenticated, not operator
    await client.patch("/v1/agencies/000.00.00.H41", json={"active": False}, headers=admin_headers)
    r = await client.get("/v1/agencies", headers=headers)
    assert r.status_code == 403
    assert r.json()["type"] == "urn:gateway:problem:agency-suspended"


async def test_admin_actions_are_ledgered_with_the_operator_as_actor(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await client.post("/v1/agencies", json=agency_body(), headers=admin_headers)
    kp = make_keypair()
    await client.post("/v1/agencies/000.00.00.H41/certificates", json={"pem": kp.cert_pem}, headers=admin_headers)
    token = (await client.post("/v1/agencies/000.00.00.H41/tokens", headers=admin_headers)).json()
    async with app.state.db.transaction() as session:
        rows = (await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars().all()
    typed = [(r.type, r.actor) for r in rows if r.actor == "operator:admin"]
    assert typed == [("agency.registered", "operator:admin"), ("certificate.added", "operator:admin"),
                     ("token.issued", "operator:admin")]
    assert all(token["token"] not in r.details for r in rows)
