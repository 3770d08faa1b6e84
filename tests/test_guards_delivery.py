"""Guard: under pull, the received instant (Điều 11.2) is the instant of the acknowledgement ``done``, not the
instant of the download. Both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from gateway.ledger.models import LedgerEntry
from gw import register, submit

#: between the download and the acknowledgement; ordering, not timing: only "after" is asserted
PAUSE = 0.3


async def _entry(app: FastAPI, type_: str, document: str) -> LedgerEntry:
    async with app.state.db.read() as session:
        result = await session.execute(
            select(LedgerEntry).where(LedgerEntry.type == type_, LedgerEntry.document == document)
        )
        entry: LedgerEntry = result.scalar_one()  # exactly one such entry per document
        return entry


def _instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert instant.tzinfo is not None
    return instant


async def test_pull_received_instant_is_the_ack_not_the_download(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h42 = await register(client, admin_headers, "000.00.00.H42", "UBND tỉnh Hà Tĩnh")  # pull
    r = await submit(client, sender, sender.envelope(h42))
    assert r.status_code == 201, r.text
    document = r.headers["X-Gateway-Document-Id"]
    [item] = (await client.get("/v1/inbox", headers=h42.headers)).json()["items"]
    delivery = item["delivery_id"]

    # Download: pending → fetched, ledgered with the download's instant.
    got = await client.get(f"/v1/inbox/{delivery}", headers=h42.headers)
    assert got.status_code == 200, got.text
    fetched_at = (await _entry(app, "delivery.fetched", document)).recorded_at
    assert fetched_at.tzinfo is not None

    await asyncio.sleep(PAUSE)
    before_ack = datetime.now(UTC)
    assert before_ack - fetched_at >= timedelta(seconds=PAUSE / 2)  # the two instants are told apart
    ack = await client.post(f"/v1/inbox/{delivery}/ack", json={"result": "done"}, headers=h42.headers)
    after_ack = datetime.now(UTC)
    assert ack.status_code == 200, ack.text
    assert ack.json()["state"] == "delivered"
    assert ack.json()["changed"] is True

    # 1. the acknowledgement's answer
    received = _instant(ack.json()["received_at"])
    assert before_ack <= received <= after_ack
    assert received > fetched_at

    # 2. the document view, as the sender sees it
    view = await client.get(f"/v1/documents/{document}", headers=sender.headers)
    assert view.status_code == 200, view.text
    [recipient] = view.json()["recipients"]
    assert recipient["code"] == h42.code
    assert recipient["state"] == "delivered"
    assert _instant(recipient["received_at"]) == received

    # 3. the ledger's delivery.delivered entry
    delivered = await _entry(app, "delivery.delivered", document)
    details = json.loads(delivered.details)
    assert details["mode"] == "pull"
    assert details["delivery"] == delivery
    assert _instant(details["received_at"]) == received
    assert _instant(details["received_at"]) >= before_ack
    assert _instant(details["received_at"]) > fetched_at
    assert delivered.recorded_at >= received  # recorded once the acknowledgement had arrived

    # A repeated acknowledgement, later still, does not move the instant.
    await asyncio.sleep(0.05)
    again = await client.post(f"/v1/inbox/{delivery}/ack", json={"result": "done"}, headers=h42.headers)
    assert again.status_code == 200, again.text
    assert again.json()["changed"] is False
    assert _instant(again.json()["received_at"]) == received
