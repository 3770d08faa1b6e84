"""An agency over its request rate gets 429 with Retry-After; other agencies and operators are unaffected."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from gateway.ratelimit import AgencyRateLimiter
from gw import register


async def test_agency_over_its_rate_gets_429_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    busy = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    calm = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    app.state.rate_limiter = AgencyRateLimiter("3/minute")
    probe = "/v1/documents/00000000-0000-0000-0000-000000000000"
    answers = [(await client.get(probe, headers=busy.headers)).status_code for _ in range(4)]
    assert answers == [404, 404, 404, 429]
    limited = await client.get(probe, headers=busy.headers)
    assert limited.status_code == 429
    assert limited.json()["type"] == "urn:gateway:problem:rate-limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await client.get(probe, headers=calm.headers)).status_code == 404
    assert (await client.get("/v1/agencies", headers=admin_headers)).status_code == 200


async def test_a_vxp_system_over_its_agencys_rate_gets_429_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The VXP face answers its JSON FAIL with the same Retry-After the API sends (the spec declares it on 429)."""
    from vxp_sdk import VxpSdk

    await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    r = await client.post("/v1/vxp/systems", json={"agency": "000.00.00.G22", "serves": "agency"},
                          headers=admin_headers)
    assert r.status_code == 201, r.text
    sdk = VxpSdk(client, "/vxp", r.json()["system_id"], r.json()["secret"])
    app.state.rate_limiter = AgencyRateLimiter("2/minute")
    answers = [await sdk.get_agencies_list() for _ in range(3)]
    assert [a.response.status_code for a in answers] == [200, 200, 429]
    limited = answers[-1]
    assert limited.json is not None
    assert (limited.json["status"], limited.json["ErrorCode"]) == ("FAIL", "rate-limited")
    assert 1 <= int(limited.response.headers["Retry-After"]) <= 60
