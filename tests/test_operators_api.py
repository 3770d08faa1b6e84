"""Operators and tokens over the API: create, list, revoke (tokens and console sessions with them), token expiry,
and the ledger entry of every change."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from gateway.auth.models import ApiToken, Operator
from gateway.ledger.models import LedgerEntry
from gateway.webconsole.models import ConsoleSession
from gw import register

H41 = "000.00.00.H41"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ledger_entries(app: FastAPI, type_: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with app.state.db.read() as session:
        rows = (await session.execute(select(LedgerEntry).where(LedgerEntry.type == type_)
                                      .order_by(LedgerEntry.seq))).scalars().all()
    return [(r.actor, r.sender, json.loads(r.details)) for r in rows]


async def create(client: httpx.AsyncClient, admin: dict[str, str], name: str, role: str = "auditor",
                 **extra: Any) -> dict[str, Any]:
    r = await client.post("/v1/operators", json={"name": name, "role": role, **extra}, headers=admin)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_admin_creates_an_operator_whose_token_works_and_listings_never_show_a_secret(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    created = await create(client, admin_headers, "Trần Thị Bình", "auditor")
    assert created["operator"]["name"] == "Trần Thị Bình"
    assert created["operator"]["role"] == "auditor"
    token = created["token"]["token"]
    assert token.startswith("gw_")
    assert created["token"]["expires_at"] is None
    assert (await client.get("/v1/agencies", headers=bearer(token))).status_code == 200

    # Admins and auditors list operators; names survive in Vietnamese.
    listed = (await client.get("/v1/operators", headers=auditor_headers)).json()["items"]
    assert [o["name"] for o in listed] == ["admin", "auditor", "Trần Thị Bình"]
    assert (listed[2]["active_tokens"], listed[2]["revoked_at"]) == (1, None)

    tokens = (await client.get("/v1/operators/Trần Thị Bình/tokens", headers=auditor_headers)).json()["items"]
    assert [t["id"] for t in tokens] == [created["token"]["id"]]
    assert set(tokens[0]) == {"id", "agency", "operator", "created_at", "expires_at", "revoked_at", "state"}
    assert tokens[0]["state"] == "active"
    text = json.dumps(tokens)
    assert token not in text
    assert token[-4:] not in text

    [(actor, _, details)] = [e for e in await ledger_entries(app, "operator.created")
                             if e[2]["operator"] == "Trần Thị Bình"]
    assert actor == "operator:admin"
    assert details == {"operator": "Trần Thị Bình", "role": "auditor", "token_id": created["token"]["id"]}


async def test_an_expired_token_is_refused_like_a_revoked_one(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agency = await register(client, admin_headers, H41, "UBND tỉnh Nghệ An")
    soon = datetime.now(UTC) + timedelta(days=1)
    r = await client.post(f"/v1/agencies/{H41}/tokens", json={"expires_at": soon.isoformat()}, headers=admin_headers)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert datetime.fromisoformat(issued["expires_at"]) == soon
    headers = bearer(issued["token"])
    assert (await client.get("/v1/inbox", headers=headers)).status_code == 200
    # A day passes (the row's expiry is moved instead of the clock).
    async with app.state.db.transaction() as session:
        await session.execute(update(ApiToken).where(ApiToken.id == issued["id"])
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    r = await client.get("/v1/inbox", headers=headers)
    assert (r.status_code, r.json()["type"], r.json()["detail"]) == (
        401, "urn:gateway:problem:unauthenticated", "the token expired")
    # The agency's other token still works, and the listing tells them apart.
    assert (await client.get("/v1/inbox", headers=agency.headers)).status_code == 200
    listed = (await client.get(f"/v1/agencies/{H41}/tokens", headers=admin_headers)).json()["items"]
    assert {t["id"]: t["state"] for t in listed}[issued["id"]] == "expired"
    assert sorted(t["state"] for t in listed) == ["active", "expired"]
    assert all(t["agency"] == H41 and t["operator"] is None for t in listed)
    issued_entries = [d for _, sender, d in await ledger_entries(app, "token.issued") if d["token_id"] == issued["id"]]
    assert issued_entries == [{"token_id": issued["id"], "agency": H41,
                               "expires_at": soon.astimezone(UTC).isoformat()}]


async def test_a_token_issue_without_a_body_still_works_and_a_past_expiry_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, H41, "UBND tỉnh Nghệ An")
    r = await client.post(f"/v1/agencies/{H41}/tokens", headers=admin_headers)
    assert (r.status_code, r.json()["expires_at"]) == (201, None)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for url in (f"/v1/agencies/{H41}/tokens", "/v1/operators/admin/tokens"):
        r = await client.post(url, json={"expires_at": past}, headers=admin_headers)
        assert (r.status_code, r.json()["type"], r.json()["field"]) == (
            422, "urn:gateway:problem:token-expiry-invalid", "expires_at"), url
    r = await client.post("/v1/operators", json={"name": "x", "role": "admin", "expires_at": past},
                          headers=admin_headers)
    assert r.json()["type"] == "urn:gateway:problem:token-expiry-invalid"
    assert "x" not in [o["name"] for o in (await client.get("/v1/operators", headers=admin_headers)).json()["items"]]
    r = await client.post(f"/v1/agencies/{H41}/tokens", json={"expires_at": "9999-12-31T23:00:00-05:00"},
                          headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:token-expiry-invalid")
    for body in ({"expires_at": "2027-01-01T00:00:00"}, {"expires_at": "tomorrow"}, {"other": 1}):
        r = await client.post(f"/v1/agencies/{H41}/tokens", json=body, headers=admin_headers)
        assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:request-invalid"), body
    r = await client.post(f"/v1/agencies/{H41}/tokens", content=b"{not json", headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:request-invalid")


async def test_revoking_an_operator_refuses_their_tokens_and_ends_their_console_sessions(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await create(client, admin_headers, "Lê Văn Cường", "admin")
    second = (await client.post("/v1/operators/Lê Văn Cường/tokens", headers=admin_headers)).json()
    headers = [bearer(created["token"]["token"]), bearer(second["token"])]
    async with app.state.db.transaction() as session:
        operator = (await session.execute(select(Operator).where(Operator.name == "Lê Văn Cường"))).scalar_one()
        now = datetime.now(UTC)
        session.add(ConsoleSession(id=secrets.token_hex(32), operator_id=operator.id, token_id=second["id"],
                                   csrf_token="c" * 64, created_at=now, last_seen_at=now,
                                   expires_at=now + timedelta(hours=1)))
    for h in headers:
        assert (await client.get("/v1/operators", headers=h)).status_code == 200

    r = await client.post("/v1/operators/Lê Văn Cường/revoke", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None
    for h in headers:
        r = await client.get("/v1/operators", headers=h)
        assert (r.status_code, r.json()["type"]) == (401, "urn:gateway:problem:unauthenticated")
    async with app.state.db.read() as session:
        sessions = (await session.execute(select(ConsoleSession))).scalars().all()
    assert [s.ended_at is not None for s in sessions] == [True]
    tokens = (await client.get("/v1/operators/Lê Văn Cường/tokens", headers=admin_headers)).json()["items"]
    assert [t["state"] for t in tokens] == ["revoked", "revoked"]
    [(actor, _, details)] = await ledger_entries(app, "operator.revoked")
    assert actor == "operator:admin"
    assert details == {"operator": "Lê Văn Cường", "role": "admin", "console_sessions_ended": 1,
                       "tokens_revoked": sorted([created["token"]["id"], second["id"]])}
    # Again: nothing changes, nothing more is ledgered; no new token for a revoked operator.
    assert (await client.post("/v1/operators/Lê Văn Cường/revoke", headers=admin_headers)).status_code == 200
    assert len(await ledger_entries(app, "operator.revoked")) == 1
    r = await client.post("/v1/operators/Lê Văn Cường/tokens", headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (409, "urn:gateway:problem:operator-revoked")


async def test_a_token_of_a_revoked_operator_is_refused_even_if_left_unrevoked(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await create(client, admin_headers, "kiểm toán 2")
    # Only the operator row is revoked (as by a partial restore, or a hand edit): authentication still refuses.
    async with app.state.db.transaction() as session:
        await session.execute(update(Operator).where(Operator.name == "kiểm toán 2")
                              .values(revoked_at=datetime.now(UTC)))
    r = await client.get("/v1/operators", headers=bearer(created["token"]["token"]))
    assert (r.status_code, r.json()["detail"]) == (401, "the operator was revoked")


async def test_only_admins_change_operators_and_an_admin_cannot_revoke_themselves(
    client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    agency = await register(client, admin_headers, H41, "UBND tỉnh Nghệ An")
    for headers in (auditor_headers, agency.headers):
        for method, url in (("POST", "/v1/operators/admin/revoke"), ("POST", "/v1/operators"),
                            ("POST", "/v1/operators/admin/tokens")):
            r = await client.request(method, url, json={"name": "y", "role": "admin"}, headers=headers)
            assert (r.status_code, r.json()["type"]) == (403, "urn:gateway:problem:forbidden"), (method, url)
    r = await client.get("/v1/operators", headers=agency.headers)
    assert r.status_code == 403
    r = await client.post("/v1/operators/admin/revoke", headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (409, "urn:gateway:problem:operator-self-revoke")
    # The admin still works; another admin may revoke them.
    other = await create(client, admin_headers, "admin 2", "admin")
    assert (await client.post("/v1/operators/admin/revoke", headers=bearer(other["token"]["token"]))).status_code == 200
    assert (await client.get("/v1/operators", headers=admin_headers)).status_code == 401


async def test_operator_tokens_are_issued_listed_and_revoked_one_by_one(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], auditor_headers: dict[str, str]
) -> None:
    expiry = datetime.now(UTC) + timedelta(days=30)
    r = await client.post("/v1/operators/auditor/tokens", json={"expires_at": expiry.isoformat()},
                          headers=admin_headers)
    assert r.status_code == 201, r.text
    extra = r.json()
    assert (await client.get("/v1/ledger/verify", headers=bearer(extra["token"]))).status_code == 200
    listed = (await client.get("/v1/operators/auditor/tokens", headers=admin_headers)).json()["items"]
    assert [(t["operator"], t["agency"]) for t in listed] == [("auditor", None), ("auditor", None)]
    assert datetime.fromisoformat(listed[1]["expires_at"]) == expiry

    r = await client.delete(f"/v1/operators/auditor/tokens/{extra['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert (await client.get("/v1/ledger/verify", headers=bearer(extra["token"]))).status_code == 401
    assert (await client.get("/v1/ledger/verify", headers=auditor_headers)).status_code == 200  # the first one
    # Another operator's token, or an unknown one, is not found; an unknown operator too.
    admin_token = (await client.get("/v1/operators/admin/tokens", headers=admin_headers)).json()["items"][0]["id"]
    for url, slug in ((f"/v1/operators/auditor/tokens/{admin_token}", "token-not-found"),
                      (f"/v1/operators/auditor/tokens/{uuid.uuid4()}", "token-not-found"),
                      (f"/v1/operators/nobody/tokens/{admin_token}", "operator-not-found")):
        r = await client.delete(url, headers=admin_headers)
        assert (r.status_code, r.json()["type"]) == (404, f"urn:gateway:problem:{slug}"), url
    for url in ("/v1/operators/nobody/tokens", "/v1/operators/nobody/revoke"):
        method = "GET" if url.endswith("tokens") else "POST"
        r = await client.request(method, url, headers=admin_headers)
        assert (r.status_code, r.json()["type"]) == (404, "urn:gateway:problem:operator-not-found")
    r = await client.get("/v1/agencies/000.00.00.X99/tokens", headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (404, "urn:gateway:problem:agency-not-found")

    issued = [d for _, _, d in await ledger_entries(app, "token.issued") if d.get("operator") == "auditor"]
    assert issued == [{"token_id": extra["id"], "operator": "auditor",
                       "expires_at": expiry.astimezone(UTC).isoformat()}]
    revoked = [d for _, _, d in await ledger_entries(app, "token.revoked")]
    assert revoked == [{"token_id": extra["id"], "operator": "auditor"}]


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"name": "", "role": "admin"}, 422, "request-invalid"),
    ({"name": "z", "role": "root"}, 422, "request-invalid"),
    ({"name": "z"}, 422, "request-invalid"),
    ({"name": "a\u0000b", "role": "admin"}, 422, "operator-invalid"),
    ({"name": "Phòng/CNTT", "role": "admin"}, 422, "operator-invalid"),
    ({"name": "admin", "role": "admin"}, 409, "operator-exists"),
])
async def test_bad_operator_bodies_are_problems(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], status: int, slug: str
) -> None:
    r = await client.post("/v1/operators", json=body, headers=admin_headers)
    assert (r.status_code, r.json()["type"]) == (status, f"urn:gateway:problem:{slug}")
