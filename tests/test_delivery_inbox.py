"""The pull inbox: only the caller's deliveries, most urgent then oldest, keyset pages; downloads and
acknowledgements (idempotent, refused precisely, ledgered); both databases."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from delivery_support import delivery_rows, ledger_types
from gw import Agency, register, submit


async def _parties(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[Agency, Agency, Agency]:
    return (await register(client, admin, "000.00.00.G22"), await register(client, admin, "000.00.00.H41"),
            await register(client, admin, "000.00.00.H42"))


async def test_inbox_lists_the_callers_deliveries_most_urgent_then_oldest_in_pages(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender, h41, h42 = await _parties(client, admin_headers)
    sent = []
    for i, priority in enumerate([0, 3, 1, 3, 0, 2]):
        r = await submit(client, sender, sender.envelope(h41, code_number=str(10 + i), priority=priority))
        sent.append((priority, i, r.headers["X-Gateway-Document-Id"]))
    expected = [doc for _, _, doc in sorted(sent, key=lambda t: (-t[0], t[1]))]
    # Only H41's; H42 has nothing.
    assert (await client.get("/v1/inbox", headers=h42.headers)).json() == {"items": [], "next": None}

    seen, cursor = [], None
    for _ in range(10):
        params: dict[str, str | int] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/inbox", params=params, headers=h41.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == expected
    bad = await client.get("/v1/inbox", params={"cursor": "not-a-cursor"}, headers=h41.headers)
    assert bad.status_code == 400
    assert bad.json()["type"] == "urn:gateway:problem:inbox-cursor-invalid"
    operator = await client.get("/v1/inbox", headers=admin_headers)
    assert operator.status_code == 403


async def test_acknowledgements_are_idempotent_and_refused_precisely(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender, h41, h42 = await _parties(client, admin_headers)
    one = (await submit(client, sender, sender.envelope(h41, code_number="1"))).headers["X-Gateway-Document-Id"]
    two = (await submit(client, sender, sender.envelope(h41, code_number="2"))).headers["X-Gateway-Document-Id"]
    d1 = (await delivery_rows(app.state.db, one))[h41.code].id
    d2 = (await delivery_rows(app.state.db, two))[h41.code].id

    async def ack(delivery: str, body: dict[str, str], who: Agency = h41) -> httpx.Response:
        return await client.post(f"/v1/inbox/{delivery}/ack", json=body, headers=who.headers)

    # Not downloaded yet.
    r = await ack(d1, {"result": "done"})
    assert r.status_code == 409
    assert r.json()["type"] == "urn:gateway:problem:delivery-not-fetched"
    # Another agency's delivery, a malformed id, and an unknown one all look the same.
    for delivery, who in ((d1, h42), ("not-a-delivery-id", h41), ("00000000-0000-0000-0000-000000000000", h41)):
        got = await client.get(f"/v1/inbox/{delivery}", headers=who.headers)
        assert got.status_code == 404
        assert got.json()["type"] == "urn:gateway:problem:delivery-not-found"
    r = await ack(d1, {"result": "done"}, h42)
    assert r.status_code == 404
    # A fail needs a reason.
    assert (await client.get(f"/v1/inbox/{d1}", headers=h41.headers)).status_code == 200
    r = await ack(d1, {"result": "fail"})
    assert r.status_code == 422
    r = await ack(d1, {"result": "fail", "reason": "Tệp đính kèm không mở được"})
    assert r.status_code == 200
    assert r.json()["state"] == "failed"
    assert r.json()["received_at"] is None
    again = await ack(d1, {"result": "fail", "reason": "lần nữa"})
    assert again.status_code == 200
    assert again.json()["changed"] is False
    conflict = await ack(d1, {"result": "done"})
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "urn:gateway:problem:delivery-ack-conflict"
    # The failed one left the inbox; an operator re-queues it and it is back.
    assert [i["delivery_id"] for i in (await client.get("/v1/inbox", headers=h41.headers)).json()["items"]] == [d2]
    r = await client.post(f"/v1/deliveries/{d1}/retry", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["state"] == "pending"
    assert r.json()["mode"] == "pull"
    assert {i["delivery_id"] for i in (await client.get("/v1/inbox", headers=h41.headers)).json()["items"]} == {
        d1, d2}

    # done on the other, twice.
    await client.get(f"/v1/inbox/{d2}", headers=h41.headers)
    first = await ack(d2, {"result": "done"})
    second = await ack(d2, {"result": "done"})
    assert first.json()["received_at"] == second.json()["received_at"]
    assert second.json()["changed"] is False
    assert (await ack(d2, {"result": "fail", "reason": "x"})).status_code == 409
    assert (await ack(d2, {"result": "maybe"})).status_code == 422

    entries = await ledger_types(app.state.db)
    by_type = [t for t, _, _ in entries]
    assert by_type.count("delivery.fetched") == 2  # d1 once (not again since its re-queue), d2
    assert by_type.count("delivery.failed") == 1
    assert by_type.count("delivery.requeued") == 1
    assert by_type.count("delivery.delivered") == 1
    assert by_type.count("status.auto_arrived") == 1
    refused = [d["rule"] for t, _, d in entries if t == "delivery.refused"]
    assert refused == ["delivery-not-fetched", "delivery-not-found", "request-invalid", "delivery-ack-conflict",
                       "delivery-ack-conflict", "request-invalid"]
    # A body that is not even JSON is refused the same way, never a 5xx.
    r = await client.post(f"/v1/inbox/{d2}/ack", content=b"\xff{", headers={**h41.headers,
                                                                             "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["type"] == "urn:gateway:problem:request-invalid"
