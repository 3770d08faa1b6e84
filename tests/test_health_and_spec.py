"""Liveness, readiness, the served gateway certificate, and the committed OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from cryptography import x509
from fastapi import FastAPI
from sqlalchemy import text

from gateway.config import Settings
from gateway.openapi_spec import render

REPO = Path(__file__).resolve().parents[1]


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


async def test_not_ready_when_schema_is_behind(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with app.state.db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["type"] == "urn:gateway:problem:unavailable"


async def test_gateway_certificate_is_served(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/v1/gateway/certificate")
    assert r.status_code == 200
    cert = x509.load_pem_x509_certificate(r.content)
    assert settings.signing_cert_file is not None
    assert cert == x509.load_pem_x509_certificate(settings.signing_cert_file.read_bytes())


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_committed_openapi_matches_the_app() -> None:
    committed = (REPO / "openapi" / "openapi.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(render()), "run `gateway openapi` and commit openapi/openapi.json"
