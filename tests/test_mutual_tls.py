"""Mutual TLS through a trusted reverse proxy: the proxy passes the verified client certificate; a
certificate registered for an agency authenticates it, and only when the proxy is a trusted peer."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from fastapi import FastAPI

from certs import make_keypair
from gw import register


async def test_client_certificate_from_a_trusted_proxy_authenticates_the_agency(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    passed = {"X-Client-Cert": quote(g22.keys.cert_pem)}
    probe = "/v1/inbox"

    # The ASGI test transport's peer is 127.0.0.1: not trusted yet, so the header is ignored.
    assert (await client.get(probe, headers=passed)).status_code == 401
    app.state.settings.trusted_proxies = ["127.0.0.1"]
    r = await client.get(probe, headers=passed)
    assert r.status_code == 200, r.text

    stranger = {"X-Client-Cert": quote(make_keypair("lạ").cert_pem)}
    assert (await client.get(probe, headers=stranger)).status_code == 401
    assert (await client.get(probe, headers={"X-Client-Cert": "garbage"})).status_code == 401

    await client.delete(f"/v1/agencies/{g22.code}/certificates/{g22.keys.sha256}", headers=admin_headers)
    revoked = await client.get(probe, headers=passed)
    assert revoked.status_code == 401
    assert revoked.headers["content-type"] == "application/problem+json"


async def test_bearer_token_takes_precedence_over_a_passed_certificate(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    app.state.settings.trusted_proxies = ["127.0.0.1"]
    # H41's token with G22's certificate: the token decides; a bad token is not rescued by the certificate.
    headers = {**h41.headers, "X-Client-Cert": quote(g22.keys.cert_pem)}
    assert (await client.get("/v1/inbox", headers=headers)).status_code == 200
    bad = {"Authorization": "Bearer gw_wrong", "X-Client-Cert": quote(g22.keys.cert_pem)}
    assert (await client.get("/v1/inbox", headers=bad)).status_code == 401
