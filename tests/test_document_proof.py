"""``GET /v1/documents/{id}/proof`` (issue 18): the bundle's entries recompute to their hashes and are included in
the tree whose root the checkpoint note signs; the receipt is the one intake gave; recipients not yet received
are pending; strangers see a missing document; before a checkpoint covers it, the 422 that says so. Both
databases."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.config import Settings
from gateway.ledger import merkle, note
from gateway.ledger.bundle import BundleError, verify_bundle
from gateway.ledger.chain import EntryFields, entry_hash
from gateway.ledger.checkpointer import checkpoint_if_due, default_origin
from gateway.signing import load_or_create
from gw import register, submit


async def _checkpoint(app: FastAPI) -> None:
    assert await checkpoint_if_due(app.state.db, app.state.gateway_key, every_entries=1, every_seconds=0,
                                   force=True) is not None


async def test_a_document_s_proof_bundle_holds_together(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    first = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    second = await register(client, admin_headers, "000.00.00.H42", "UBND tỉnh Hà Tĩnh")
    stranger = await register(client, admin_headers, "000.00.00.H43", "UBND tỉnh Quảng Bình")
    r = await submit(client, sender, sender.envelope(first, second))
    assert r.status_code == 201, r.text
    receipt = r.content
    doc = (await client.get("/v1/documents", params={"document_id": (await client.get(
        "/v1/inbox", headers=first.headers)).json()["items"][0]["document_id"]}, headers=sender.headers)
    ).json()["items"][0]["id"]

    r = await client.get(f"/v1/documents/{doc}/proof", headers=sender.headers)
    assert (r.status_code, r.json()["type"]) == (422, "urn:gateway:problem:ledger-proof-unavailable")

    [item] = (await client.get("/v1/inbox", headers=first.headers)).json()["items"]
    await client.get(f"/v1/inbox/{item['delivery_id']}", headers=first.headers)
    assert (await client.post(f"/v1/inbox/{item['delivery_id']}/ack", json={"result": "done"},
                              headers=first.headers)).status_code == 200
    await _checkpoint(app)

    for reader in (sender, first, second):
        r = await client.get(f"/v1/documents/{doc}/proof", headers=reader.headers)
        assert r.status_code == 200, r.text
    r = await client.get(f"/v1/documents/{doc}/proof", headers=admin_headers)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert (await client.get(f"/v1/documents/{doc}/proof", headers=stranger.headers)).status_code == 404

    assert bundle["format"] == "gateway-proof-bundle/v1"
    assert base64.b64decode(bundle["receipt"]) == receipt  # the very receipt intake gave
    assert [e["type"] for e in bundle["entries"]] == ["envelope.accepted", "delivery.delivered"]
    assert bundle["entries"][1]["recipient"] == first.code
    assert bundle["pending"] == [second.code]
    certificate = app.state.gateway_key.certificate
    opened = note.open_note(bundle["checkpoint"].encode(), [
        note.NoteVerifier.from_certificate(default_origin(certificate), certificate)])
    checkpoint = note.parse_checkpoint(opened.text)
    assert checkpoint.size == bundle["tree_size"]
    for entry in bundle["entries"]:
        fields = EntryFields(entry["seq"], datetime.fromisoformat(entry["recorded_at"].replace("Z", "+00:00")),
                             entry["type"], entry["actor"], entry["document"], entry["document_id"],
                             entry["sender"], entry["recipient"], entry["prev_hash"], entry["details"])
        assert entry_hash(fields) == entry["hash"]
        merkle.check_inclusion(merkle.leaf_hash(bytes.fromhex(entry["hash"])), entry["seq"], checkpoint.size,
                               [bytes.fromhex(p) for p in entry["proof"]], checkpoint.root)

    # The offline verifier (gateway.ledger.bundle) agrees with all of the above, pinned to the gateway's
    # certificate; and refuses it pinned to another.
    verdict = verify_bundle(r.content, gateway_certificate=certificate)
    assert verdict.signer_pinned is True
    assert verdict.acceptance.seq == bundle["entries"][0]["seq"]
    assert [d.recipient for d in verdict.deliveries] == [first.code]
    assert list(verdict.pending) == [second.code]
    assert verdict.tree_size == checkpoint.size
    other = load_or_create(Settings(data_dir=tmp_path / "other")).certificate
    with pytest.raises(BundleError):
        verify_bundle(r.content, gateway_certificate=other)
