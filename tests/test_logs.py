"""Logs are JSON lines carrying a request id, and never hold tokens, keys or document content."""

from __future__ import annotations

import json

import httpx
import pytest

from gw import register, submit


async def test_logs_are_json_with_request_id_and_no_secrets(
    client: httpx.AsyncClient, admin_headers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))  # info, for this test
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    capsys.readouterr()
    xml = g22.envelope(h41, subject="Nội dung mật không được ghi vào nhật ký")
    r = await submit(client, g22, xml)
    assert r.status_code == 201
    bad = await client.get("/v1/agencies", headers={"Authorization": "Bearer gw_stolen-token-value"})
    assert bad.status_code == 401
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) >= 2
    assert all(len(line["request_id"]) >= 8 for line in requests)
    assert {line["path"] for line in requests} >= {"/v1/envelopes", "/v1/agencies"}
    for secret in (g22.token, admin_headers["Authorization"].split()[1], "gw_stolen-token-value",
                   "Nội dung mật", "BEGIN", "PRIVATE"):
        assert secret not in out
    assert r.headers["X-Request-ID"] in {line["request_id"] for line in requests}
