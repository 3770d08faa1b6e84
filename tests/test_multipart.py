"""Envelopes with large attachments as multipart parts: streamed to disk while hashed, checked against
the signed digest, and refused precisely when the body is wrong."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest
from fastapi import FastAPI

from gateway.envelope import InlineFile, LargeFile
from gw import PDF, Agency, only_ledger_grew, register, stored

BIG = PDF + os.urandom(3 * 1024 * 1024)  # a PDF head and 3 MiB more: larger than one read chunk


@pytest.fixture
async def pair(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> tuple[Agency, Agency]:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    return g22, h41


def _large_envelope(sender: Agency, to: Agency, data: bytes = BIG) -> bytes:
    return sender.envelope(to, attachments=(
        InlineFile("cong-van.pdf", PDF, "application/pdf"),
        LargeFile.from_bytes("phu-luc.pdf", data, content_type="application/pdf", content_id="cid:phu-luc"),
    ))


async def test_large_attachment_travels_as_a_part_and_is_stored_by_digest(
    app: FastAPI, client: httpx.AsyncClient, pair: tuple[Agency, Agency]
) -> None:
    g22, h41 = pair
    xml = _large_envelope(g22, h41)
    r = await client.post("/v1/envelopes", headers=g22.headers, files={
        "envelope": ("envelope.edxml", xml, "application/xml"),
        "phu-luc": ("phu-luc.pdf", BIG, "application/pdf"),
    })
    assert r.status_code == 201, r.text
    digest = hashlib.sha256(BIG).hexdigest()
    assert app.state.blobs.read(digest) == BIG
    view = (await client.get(r.headers["Location"], headers=g22.headers)).json()
    assert {a["sha256"] for a in view["attachments"]} == {digest, hashlib.sha256(PDF).hexdigest()}
    assert not any(app.state.blobs.tmp.iterdir()), "staging files must not linger"


@pytest.mark.parametrize(
    ("case", "slug", "status"),
    [
        ("part_differs_from_signed_digest", "attachment-digest-mismatch", 422),
        ("part_missing", "manifest-without-attachment", 422),
        ("undeclared_extra_part", "attachment-without-manifest", 422),
        ("no_envelope_part", "envelope-part-missing", 400),
        ("truncated_body", "multipart-truncated", 400),
        ("no_boundary", "multipart-invalid", 400),
    ],
)
async def test_bad_multipart_is_refused_with_only_the_ledger_record(
    app: FastAPI, client: httpx.AsyncClient, pair: tuple[Agency, Agency], case: str, slug: str, status: int
) -> None:
    g22, h41 = pair
    xml = _large_envelope(g22, h41)
    files: dict[str, tuple[str, bytes, str]] = {"envelope": ("envelope.edxml", xml, "application/xml"),
                                                "phu-luc": ("phu-luc.pdf", BIG, "application/pdf")}
    if case == "part_differs_from_signed_digest":
        # the last byte inverted: always a different part (a fixed replacement byte equals the random one 1 time
        # in 256, and then the "changed" part is the signed one)
        files["phu-luc"] = ("phu-luc.pdf", BIG[:-1] + bytes([BIG[-1] ^ 0xFF]), "application/pdf")
    elif case == "part_missing":
        del files["phu-luc"]
    elif case == "undeclared_extra_part":
        files["extra"] = ("extra.pdf", PDF, "application/pdf")
    elif case == "no_envelope_part":
        del files["envelope"]
    before = await stored(app)
    if case in ("truncated_body", "no_boundary"):
        request = client.build_request("POST", "/v1/envelopes", headers=g22.headers, files=files)
        body = request.read()
        content_type = request.headers["content-type"]
        if case == "truncated_body":
            body = body[: len(body) // 2]
        else:
            content_type = "multipart/form-data"
        r = await client.post("/v1/envelopes", content=body,
                              headers={**g22.headers, "Content-Type": content_type})
    else:
        r = await client.post("/v1/envelopes", headers=g22.headers, files=files)
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"urn:gateway:problem:{slug}"
    assert only_ledger_grew(before, await stored(app))
    assert not any(app.state.blobs.tmp.iterdir()), "staging files must be deleted on refusal"


async def test_part_over_the_limit_is_refused(
    app: FastAPI, client: httpx.AsyncClient, pair: tuple[Agency, Agency]
) -> None:
    g22, h41 = pair
    app.state.settings.max_part_bytes = 1024 * 1024
    before = await stored(app)
    r = await client.post("/v1/envelopes", headers=g22.headers, files={
        "envelope": ("envelope.edxml", _large_envelope(g22, h41), "application/xml"),
        "phu-luc": ("phu-luc.pdf", BIG, "application/pdf"),
    })
    assert r.status_code == 413
    assert r.json()["type"] == "urn:gateway:problem:part-too-large"
    assert only_ledger_grew(before, await stored(app))
