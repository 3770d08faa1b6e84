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
