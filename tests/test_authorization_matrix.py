"""The authorization matrix, on every endpoint of the spec: who gets in, who gets 401/403, and who gets a
404 that does not reveal another agency's document. A route added without a row here fails the test."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from certs import make_keypair
from gateway.envelope import ResponseFor, StatusSpec, build_status
from gateway.ledger.note import NoteVerifier
from gw import Agency, register, submit

SPEC = json.loads((Path(__file__).resolve().parents[1] / "openapi" / "openapi.json").read_text())
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/gateway/certificate")}
ROUTES = sorted((method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops
                if not path.startswith("/vxp/"))
#: The national axis face authenticates by the SDK's HMAC headers, not by bearer tokens (its own test below).
VXP_ROUTES = sorted((method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops
                    if path.startswith("/vxp/"))

# Expected status per caller for each route; "ok" = any 2xx. Callers: anon, sender (A), recipient (B),
# stranger (C), admin, auditor.
OK = "ok"
_witness_numbers = itertools.count()
_operator_numbers = itertools.count()
MATRIX: dict[tuple[str, str], dict[str, int | str]] = {
    ("GET", "/v1/agencies"): {"A": 403, "C": 403, "admin": OK, "auditor": OK},
    ("POST", "/v1/agencies"): {"A": 403, "auditor": 403, "admin": OK},
    ("GET", "/v1/agencies/{code}"): {"A": 403, "admin": OK, "auditor": OK},
    ("PATCH", "/v1/agencies/{code}"): {"A": 403, "auditor": 403, "admin": OK},
    ("POST", "/v1/agencies/{code}/certificates"): {"A": 403, "auditor": 403, "admin": OK},
    ("DELETE", "/v1/agencies/{code}/certificates/{sha256}"): {"A": 403, "auditor": 403, "admin": OK},
    ("POST", "/v1/agencies/{code}/tokens"): {"A": 403, "auditor": 403, "admin": OK},
    ("DELETE", "/v1/agencies/{code}/tokens/{token_id}"): {"A": 403, "auditor": 403, "admin": OK},
    ("GET", "/v1/agencies/{code}/tokens"): {"A": 403, "B": 403, "admin": OK, "auditor": OK},
    ("GET", "/v1/operators"): {"A": 403, "B": 403, "admin": OK, "auditor": OK},
    ("POST", "/v1/operators"): {"A": 403, "auditor": 403, "admin": 201},
    # {name}: a fresh operator for the revocation (the admin itself would be the 409 operator-self-revoke).
    ("POST", "/v1/operators/{name}/revoke"): {"A": 403, "auditor": 403, "admin": OK},
    ("GET", "/v1/operators/{name}/tokens"): {"A": 403, "admin": OK, "auditor": OK},
    ("POST", "/v1/operators/{name}/tokens"): {"A": 403, "auditor": 403, "admin": 201},
    ("DELETE", "/v1/operators/{name}/tokens/{token_id}"): {"A": 403, "auditor": 403, "admin": 204},
    ("GET", "/v1/deliveries"): {"A": 403, "B": 403, "C": 403, "admin": OK, "auditor": OK},
    ("POST", "/v1/deliveries/{delivery_id}/retry"): {"A": 403, "B": 403, "auditor": 403, "admin": 409},
    ("GET", "/v1/documents"): {"A": OK, "B": OK, "C": OK, "admin": OK, "auditor": OK},
    ("GET", "/v1/documents/{id}"): {"A": OK, "B": OK, "C": 404, "admin": OK, "auditor": OK},
    # The parties and operators; no checkpoint yet in this world: the 422 that says so (a stranger: 404).
    ("GET", "/v1/documents/{id}/proof"): {"A": 422, "B": 422, "C": 404, "admin": 422, "auditor": 422},
    ("POST", "/v1/envelopes"): {"C": 403, "admin": 403, "auditor": 403},
    ("GET", "/v1/inbox"): {"B": OK, "C": OK, "admin": 403, "auditor": 403},
    ("GET", "/v1/inbox/{delivery_id}"): {"A": 404, "B": OK, "C": 404, "admin": 403},
    ("POST", "/v1/inbox/{delivery_id}/ack"): {"A": 404, "C": 404, "admin": 403},
    ("GET", "/v1/ledger"): {"A": OK, "C": OK, "admin": OK, "auditor": OK},
    # Every caller may open the event feed (each sees what GET /v1/ledger shows it); a stream never ends, which
    # the in-process client would wait for, so the row asks for an unknown type: past authentication, the 422.
    # The streams themselves: tests/test_event_feed*.py.
    ("GET", "/v1/events"): {"A": 422, "B": 422, "C": 422, "admin": 422, "auditor": 422},
    ("GET", "/v1/ledger/verify"): {"A": 403, "admin": OK, "auditor": OK},
    ("GET", "/v1/ledger/checkpoints"): {"A": OK, "admin": OK},
    # No checkpoint is signed yet in this world: readers get the 404 that says so, strangers still 401.
    ("GET", "/v1/ledger/checkpoints/latest"): {"A": 404, "admin": 404},
    ("GET", "/v1/ledger/checkpoint"): {"A": 404, "admin": 404, "auditor": 404},
    ("GET", "/v1/ledger/checkpoint/{size}"): {"A": 404, "admin": 404, "auditor": 404},
    ("POST", "/v1/ledger/checkpoint/{size}/cosignatures"): {"A": 404, "admin": 404, "auditor": 404},
    ("GET", "/v1/ledger/witnesses"): {"A": OK, "admin": OK, "auditor": OK},
    ("POST", "/v1/ledger/witnesses"): {"A": 403, "auditor": 403, "admin": 201},
    # Proofs are hashes only: any authenticated caller; no checkpoint yet in this world, so the 422 that says so.
    ("GET", "/v1/ledger/proof/inclusion"): {"A": 422, "admin": 422, "auditor": 422},
    ("GET", "/v1/ledger/proof/consistency"): {"A": 422, "admin": 422, "auditor": 422},
    ("GET", "/v1/reports/monthly"): {"A": 403, "admin": OK, "auditor": OK},
    ("GET", "/v1/vxp/systems"): {"A": 403, "admin": OK, "auditor": OK},
    ("POST", "/v1/vxp/systems"): {"A": 403, "auditor": 403, "admin": OK},
    ("DELETE", "/v1/vxp/systems/{system_id}"): {"A": 403, "auditor": 403, "admin": OK},
    ("POST", "/v1/statuses"): {"C": 404, "admin": 403},
}


def test_every_route_has_a_row() -> None:
    assert set(ROUTES) - PUBLIC == set(MATRIX), "add the new route to MATRIX with who may call it"


@pytest.fixture
async def world(client: httpx.AsyncClient, admin_headers: dict[str, str],
                auditor_headers: dict[str, str]) -> dict[str, Any]:
    a = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    b = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    c = await register(client, admin_headers, "000.00.00.H47", "UBND tỉnh Quảng Ninh")
    receipt = await submit(client, a, a.envelope(b))
    assert receipt.status_code == 201
    doc_id = receipt.headers["X-Gateway-Document-Id"]
    view = (await client.get(f"/v1/documents/{doc_id}", headers=a.headers)).json()
    headers = {"anon": {}, "A": a.headers, "B": b.headers, "C": c.headers, "admin": admin_headers,
               "auditor": auditor_headers}
    return {"a": a, "b": b, "c": c, "doc": doc_id, "view": view, "headers": headers,
            "delivery": view["recipients"][0]["delivery_id"]}


async def _call(client: httpx.AsyncClient, w: dict[str, Any], method: str, path: str, who: str) -> httpx.Response:
    a: Agency = w["a"]
    b: Agency = w["b"]
    spare = make_keypair()
    url = (path.replace("{size}", "1").replace("{code}", a.code).replace("{sha256}", spare.sha256)
           .replace("{token_id}", "nope").replace("{delivery_id}", w["delivery"]).replace("{id}", w["doc"]))
    headers = dict(w["headers"][who])
    params: dict[str, str] = {}
    body: Any = None
    content: bytes | None = None
    if path == "/v1/agencies" and method == "POST":
        body = {"code": "001.00.00.G22", "name": "Vụ Hành chính", "delivery": {"mode": "pull"}}
    elif path.endswith("/certificates") and method == "POST":
        body = {"pem": spare.cert_pem}
    elif path.endswith("/certificates/{sha256}"):
        # Register it first so the admin's revoke has something to revoke.
        await client.post(url.rsplit("/", 1)[0], json={"pem": spare.cert_pem}, headers=w["headers"]["admin"])
    elif path == "/v1/operators/{name}/tokens/{token_id}":
        issued = await client.post("/v1/operators/auditor/tokens", headers=w["headers"]["admin"])
        url = url.replace("{name}", "auditor").replace("nope", issued.json()["id"])
    elif path.endswith("/tokens/{token_id}"):
        issued = await client.post(f"/v1/agencies/{a.code}/tokens", headers=w["headers"]["admin"])
        url = url.replace("nope", issued.json()["id"])
    elif path == "/v1/operators" and method == "POST":
        body = {"name": f"Kiểm soát viên {next(_operator_numbers)}", "role": "auditor"}
    elif path == "/v1/operators/{name}/revoke":
        name = f"Người được thu hồi {next(_operator_numbers)}"
        await client.post("/v1/operators", json={"name": name, "role": "auditor"}, headers=w["headers"]["admin"])
        url = url.replace("{name}", name)
    elif path.startswith("/v1/operators/{name}"):
        url = url.replace("{name}", "auditor")
    elif path == "/v1/vxp/systems" and method == "POST":
        body = {"agency": a.code}
    elif path == "/v1/vxp/systems/{system_id}":
        system = await client.post("/v1/vxp/systems", json={"agency": a.code}, headers=w["headers"]["admin"])
        url = url.replace("{system_id}", system.json()["system_id"])
    elif method == "PATCH":
        body = {"name": "Văn phòng Chính phủ (sửa)"}
    elif path == "/v1/documents":
        params = {"document_id": w["view"]["document_id"]}
    elif path == "/v1/reports/monthly":
        params = {"month": "2026-11"}
    elif path == "/v1/ledger/witnesses" and method == "POST":
        witness = ed25519.Ed25519PrivateKey.generate()
        body = {"verifier_key": NoteVerifier(f"w{next(_witness_numbers)}.example/witness",
                                             witness.public_key()).verifier_key}
    elif path == "/v1/ledger/checkpoint/{size}/cosignatures":
        content = b"\xe2\x80\x94 w.example/witness AAAAAA==\n"
        headers["Content-Type"] = "text/plain"
    elif path == "/v1/events":
        params = {"type": "no.such-type"}
    elif path == "/v1/ledger/proof/inclusion":
        params = {"seq": "0"}
    elif path == "/v1/ledger/proof/consistency":
        params = {"from": "1"}
    elif path.endswith("/ack"):
        body = {"result": "done"}
    elif path == "/v1/envelopes":
        content = a.envelope(b, code_number="99")
        headers["Content-Type"] = "application/xml"
    elif path == "/v1/statuses":
        sender: Agency = w["c"] if who == "C" else b
        status = build_status(StatusSpec(
            response_for=ResponseFor(a.code, w["view"]["document_id"]), sender=sender.organ, status_code="03"))
        content = sender.sign(status)
        headers["Content-Type"] = "application/xml"
    return await client.request(method, url, headers=headers, params=params, json=body, content=content)


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r not in PUBLIC])
async def test_authorization_matrix(client: httpx.AsyncClient, world: dict[str, Any], method: str,
                                    path: str) -> None:
    anon = await _call(client, world, method, path, "anon")
    assert anon.status_code == 401, anon.text
    assert anon.headers["content-type"] == "application/problem+json"
    for who, expected in MATRIX[(method, path)].items():
        r = await _call(client, world, method, path, who)
        if expected == OK:
            assert 200 <= r.status_code < 300, (who, r.status_code, r.text[:300])
        else:
            assert r.status_code == expected, (who, r.status_code, r.text[:300])


def test_the_vxp_face_is_in_the_spec() -> None:
    assert ("POST", "/vxp/sendEdoc") in VXP_ROUTES
    assert ("GET", "/vxp/downloadEdoc") in VXP_ROUTES


@pytest.mark.parametrize(("method", "path"), VXP_ROUTES)
async def test_the_vxp_face_refuses_every_caller_without_vxp_credentials(
    client: httpx.AsyncClient, world: dict[str, Any], method: str, path: str
) -> None:
    # A bearer token (agency or operator) is no VXP credential: FAIL as the SDK reads it, 401, nothing done.
    for who in ("anon", "A", "admin"):
        r = await client.request(method, path, headers=dict(world["headers"][who]), content=b"{}")
        assert r.status_code == 401, (who, r.text[:300])
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert (body["status"], body["ErrorCode"]) == ("FAIL", "vxp-credentials-missing")


async def test_strangers_see_no_trace_of_others_documents(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    c_headers = world["headers"]["C"]
    listed = (await client.get("/v1/documents", params={"document_id": world["view"]["document_id"]},
                               headers=c_headers)).json()
    assert listed["items"] == []
    inbox = (await client.get("/v1/inbox", headers=c_headers)).json()
    assert inbox["items"] == []
    ledger = (await client.get("/v1/ledger", params={"document": world["doc"]}, headers=c_headers)).json()
    assert ledger["items"] == []
    own = (await client.get("/v1/ledger", params={"document": world["doc"]}, headers=world["headers"]["B"])).json()
    assert any(item["type"] == "envelope.accepted" for item in own["items"])


async def test_suspended_and_revoked_credentials_are_refused_everywhere(
    client: httpx.AsyncClient, world: dict[str, Any], admin_headers: dict[str, str]
) -> None:
    b: Agency = world["b"]
    await client.patch(f"/v1/agencies/{b.code}", json={"active": False}, headers=admin_headers)
    for method, path in [("GET", "/v1/inbox"), ("GET", f"/v1/documents/{world['doc']}"), ("GET", "/v1/ledger")]:
        r = await client.request(method, path, headers=b.headers)
        assert r.status_code == 403
        assert r.json()["type"] == "urn:gateway:problem:agency-suspended"
