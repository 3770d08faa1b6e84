"""Federation over real processes (issue 15, "Tests"): two ``gateway serve`` on 127.0.0.1, B the upstream on
PostgreSQL, A the downstream province hub on SQLite, A configured with B as its upstream through B's VXP face.

Documents and statuses cross the border both ways with their received instants recorded on both sides; the
upstream killed in the middle of a stream of 100 forwards loses nothing and duplicates nothing; the
downstream killed between an inbound acceptance and its acknowledgement upstream makes no second document.
Everything is read back as an operator reads it (``/v1/ledger``, ``/v1/documents``, ``gateway ledger verify``)
and as an agency does (its inbox); every wait is bounded and fails with both gateways' logs.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twogateways import A0, A1, B1, Federation, two_gateways

STREAM = 100


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _recipient(view: dict[str, Any], code: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [r for r in view["recipients"] if r["code"] == code]
    assert len(rows) == 1, view
    return rows[0]


def _one(entries: list[dict[str, Any]], what: str) -> dict[str, Any]:
    assert len(entries) == 1, f"{what}: {len(entries)} entries, expected exactly one: {entries}"
    return entries[0]


def test_cross_border_both_ways(federation: Federation) -> None:
    fed = federation
    a, b, a1, b1 = fed.a, fed.b, fed.a1, fed.b1

    # The register as the sync left it: B1 imported as an upstream agency, the local ones untouched.
    assert B1 in fed.sync["codes"]["added"], fed.sync
    assert {s["code"] for s in fed.sync["skipped_codes"]} >= {A0, A1}, fed.sync
    b1_on_a = a.http.get(f"/v1/agencies/{B1}", headers=a.admin).json()
    assert b1_on_a["delivery"]["mode"] == "upstream", b1_on_a

    # ---- Outbound: A1 (on A) → B1 (on B), forwarded with sendEdoc from A1.
    outbound = a1.envelope(b1, code_number="101", code_notation="UBND-VP", subject="Gửi Văn phòng Chính phủ")
    doc_a = a.send(a1, outbound)
    document_id = a.document(doc_a)["document_id"]
    forwarded = _one(fed.wait("A's upstream.forwarded of the outbound document",
                              lambda: a.ledger(type="upstream.forwarded", document=doc_a)), "upstream.forwarded on A")
    assert B1 in forwarded["details"]["recipients"], forwarded
    row_a = _recipient(a.document(doc_a), B1)
    assert (row_a["mode"], row_a["state"]) == ("upstream", "forwarded"), row_a

    [on_b] = b.documents(document_id)
    assert on_b["sender"] == A1
    # The upstream DocId is the upstream's document id (sendEdoc's DocId).
    assert forwarded["details"]["upstream_doc_id"] == on_b["id"], forwarded
    assert _recipient(on_b, B1)["mode"] == "pull"
    item = fed.wait("the outbound document in B1's inbox on B",
                    lambda: [i for i in b.inbox(b1) if i["id"] == on_b["id"]])[0]
    assert b.take(b1, item) == outbound, "B1 did not get the original bytes A1 signed"
    delivered_on_b = _one(b.ledger(type="delivery.delivered", document=on_b["id"]), "delivery.delivered on B")
    assert delivered_on_b["recipient"] == B1

    delivered_on_a = _one(fed.wait("A learning B1's received instant (getSentEdocList)",
                                   lambda: a.ledger(type="delivery.delivered", document=doc_a), within=30),
                          "delivery.delivered on A")
    assert delivered_on_a["recipient"] == B1
    assert delivered_on_a["details"]["mode"] == "upstream", delivered_on_a
    assert delivered_on_a["details"].get("reported_by") == "upstream", delivered_on_a  # README, Federation
    row_a = _recipient(a.document(doc_a), B1)
    assert (row_a["mode"], row_a["state"]) == ("upstream", "delivered"), row_a
    row_b = _recipient(b.document(on_b["id"]), B1)
    assert row_b["state"] == "delivered", row_b
    assert row_b["received_at"], row_b
    assert row_a["received_at"], row_a
    # The operator's view: where it went upstream and when it was handed off (the ledger's forwarded_at).
    assert row_a["upstream_doc_id"] == on_b["id"], row_a
    handed_off = _instant(forwarded["details"]["forwarded_at"])
    assert _instant(row_a["forwarded_at"]) == handed_off, (row_a, forwarded)
    assert handed_off <= _instant(forwarded["recorded_at"]), forwarded
    view_a = a.document(doc_a)
    assert view_a["arrived_from_upstream"] is False, view_a
    sent_a = _instant(view_a["sent_at"])
    sent_b, received_b, received_a = _instant(on_b["sent_at"]), _instant(row_b["received_at"]), _instant(
        row_a["received_at"])
    assert sent_a <= sent_b <= handed_off <= received_a <= received_b, (sent_a, sent_b, handed_off, received_a,
                                                                         received_b)
    # A learned B's received instant from getSentEdocList, whose times are to the millisecond.
    assert received_b - received_a < timedelta(milliseconds=1), (received_a, received_b)

    # B's automatic 01 (B1 acknowledged) reaches A1 on A, through A's poller.
    arrived = fed.wait("B's status 01 in A1's inbox on A",
                       lambda: [i for i in a.inbox(a1) if i["kind"] == "status" and i["refers_to"] == doc_a])
    assert [(i["status_code"], i["sender"]) for i in arrived] == [("01", B1)], arrived
    a.take(a1, arrived[0])

    # ---- Inbound: B1 (on B) → A1, pulled by A's poller, accepted once, delivered to A1, acknowledged on B.
    inbound = b1.envelope(a1, code_number="202", code_notation="VPCP-TH", subject="Gửi Văn phòng UBND tỉnh")
    doc_b = b.send(b1, inbound)
    inbound_id = b.document(doc_b)["document_id"]
    accepted = _one(fed.wait("A's acceptance of the inbound document",
                             lambda: a.ledger(type="envelope.accepted", document_id=inbound_id)),
                    "envelope.accepted on A")
    assert accepted["actor"] == fed.upstream_actor, accepted
    assert accepted["sender"] == B1, accepted
    doc_in_a = accepted["document"]
    # The upstream DocId of an inbound message is what getReceivedEdocList listed: B's delivery to A1.
    assert accepted["details"]["upstream_doc_id"] == _recipient(b.document(doc_b), A1)["delivery_id"], accepted
    acknowledged = _one(fed.wait("A's upstream.acknowledged of the inbound document",
                                 lambda: a.ledger(type="upstream.acknowledged", document=doc_in_a)),
                        "upstream.acknowledged on A")
    assert acknowledged["seq"] > accepted["seq"]
    to_a1_on_b = _one(fed.wait("B's delivery to A1 delivered",
                               lambda: b.ledger(type="delivery.delivered", document=doc_b)), "delivery.delivered on B")
    assert to_a1_on_b["recipient"] == A1
    b_row = _recipient(b.document(doc_b), A1)
    assert b_row["state"] == "delivered", b_row
    assert b_row["received_at"], b_row
    assert (_instant(b.document(doc_b)["sent_at"]) <= _instant(accepted["recorded_at"])
            <= _instant(b_row["received_at"]) <= _instant(acknowledged["recorded_at"])), (accepted, b_row, acknowledged)

    [waiting] = fed.wait("the inbound document in A1's inbox on A",
                         lambda: [i for i in a.inbox(a1) if i["kind"] == "document" and i["document_id"] == inbound_id])
    assert waiting["sender"] == B1
    assert a.take(a1, waiting) == inbound, "A1 did not get the original bytes B1 signed"
    view_in_a = a.document(doc_in_a)
    assert view_in_a["arrived_from_upstream"] is True, view_in_a
    assert view_in_a["upstream_doc_id"] == accepted["details"]["upstream_doc_id"], view_in_a
    a_row = _recipient(view_in_a, A1)
    assert a_row["state"] == "delivered", a_row
    assert a_row["received_at"], a_row

    # A1's own status 03 about B1's document, submitted on A, goes back upstream and reaches B1.
    status_on_a = a.send_status(a1, fed.status_from(a1, B1, inbound_id, "03"))
    [status_03] = fed.wait("A1's status 03 in B1's inbox on B",
                           lambda: [i for i in b.inbox(b1) if i["kind"] == "status" and i["refers_to"] == doc_b
                                    and i["status_code"] == "03"])
    assert status_03["sender"] == A1
    b.take(b1, status_03)
    statuses = [(s["status_code"], s["sender"], s["automatic"]) for s in b.document(doc_b)["statuses"]]
    # B made its own 01 when A acknowledged; A's automatic 01 (when A1 acknowledged) is not forwarded upstream.
    assert sorted(statuses) == [("01", A1, True), ("03", A1, False)], statuses
    # What A forwarded upstream, all told: the outbound document and A1's 03, nothing else.
    assert sorted(e["document"] for e in a.ledger(type="upstream.forwarded")) == sorted([doc_a, status_on_a])

    # ---- Both ledgers verify.
    for gateway in (a, b):
        assert gateway.verify_ledger().startswith("ledger OK"), gateway


@pytest.mark.slow
def test_upstream_killed_mid_stream(federation: Federation) -> None:
    fed = federation
    a, b, a1, b1 = fed.a, fed.b, fed.a1, fed.b1
    envelopes = [a1.envelope(b1, code_number=str(n), code_notation="UBND-VP", subject=f"Văn bản số {n} trong loạt")
                 for n in range(1, STREAM + 1)]

    def from_a1() -> list[dict[str, Any]]:
        return [e for e in b.ledger(type="envelope.accepted", agency=A1) if e["sender"] == A1]

    with ThreadPoolExecutor(max_workers=4) as pool:
        sending = pool.map(lambda xml: a.send(a1, xml), envelopes)
        fed.wait(f"B accepting about a third of {STREAM} forwards", lambda: len(from_a1()) >= STREAM // 3, within=60)
        b.kill()
        fed.notes.append(f"B killed after {len(a.ledger(type='upstream.forwarded'))} forwards recorded on A")
        time.sleep(3)
        b.start()
        sent = list(sending)
    assert len(set(sent)) == STREAM

    fed.wait(f"A recording {STREAM} forwards",
             lambda: len(a.ledger(type="upstream.forwarded")) >= STREAM, within=90, interval=0.5)

    # B1 takes everything waiting for it on B: one delivery per document, each once.
    taken: Counter[str] = Counter()

    def drain() -> bool:
        for item in b.inbox(b1):
            if item["kind"] == "document":
                b.take(b1, item)
                taken[item["document_id"]] += 1
        return len(taken) >= STREAM

    fed.wait("B1 taking every document on B", drain, within=60, interval=0.5)

    accepted_a = [e for e in a.ledger(type="envelope.accepted") if e["sender"] == A1]
    ids = Counter(e["document_id"] for e in accepted_a)
    assert len(ids) == STREAM, ids
    assert set(ids.values()) == {1}, ids
    assert {e["document"] for e in accepted_a} == set(sent)
    # B: exactly one acceptance per DocumentId from A1 (a forward retried after the crash is the same document).
    on_b = Counter(e["document_id"] for e in from_a1())
    assert on_b == ids, {k: v for k, v in on_b.items() if v != 1} or set(ids) ^ set(on_b)
    assert set(taken) == set(ids), taken
    assert set(taken.values()) == {1}, taken
    delivered_b = Counter(e["document"] for e in b.ledger(type="delivery.delivered") if e["recipient"] == B1)
    assert len(delivered_b) == STREAM, delivered_b
    assert set(delivered_b.values()) == {1}, delivered_b
    # A: exactly one upstream.forwarded per document; every upstream delivery forwarded or delivered, none dead.
    forwarded = a.ledger(type="upstream.forwarded")
    forwards = Counter(e["document"] for e in forwarded)
    assert forwards == Counter(set(sent)), {k: v for k, v in forwards.items() if v != 1}
    # ... and each names the one document B holds for it.
    assert {e["details"]["upstream_doc_id"] for e in forwarded} == {e["document"] for e in from_a1()}
    assert a.ledger(type="delivery.dead") == []
    states = Counter(_recipient(a.document(doc), B1)["state"] for doc in sent)
    assert set(states) <= {"forwarded", "delivered"}, states
    for gateway in (a, b):
        assert gateway.verify_ledger().startswith("ledger OK"), gateway


@pytest.mark.slow
def test_downstream_killed_between_acceptance_and_acknowledgement(tmp_path: Path, pg_url: str) -> None:
    with two_gateways(tmp_path, pg_url, through_proxy=True) as fed:
        a, b, a1, b1, proxy = fed.a, fed.b, fed.a1, fed.b1, fed.proxy
        assert proxy is not None
        proxy.hold()
        inbound = b1.envelope(a1, code_number="303", code_notation="VPCP-TH", subject="Trước khi sập")
        doc_b = b.send(b1, inbound)
        document_id = b.document(doc_b)["document_id"]

        accepted = _one(fed.wait("A's acceptance of the inbound document",
                                 lambda: a.ledger(type="envelope.accepted", document_id=document_id)),
                        "envelope.accepted on A before the crash")
        fed.wait("A's acknowledgement held at the proxy", proxy.held_count)
        assert proxy.held == [_recipient(b.document(doc_b), A1)["delivery_id"]], proxy.held
        assert accepted["actor"] == fed.upstream_actor, accepted
        assert b.ledger(type="delivery.delivered", document=doc_b) == []
        a.kill()
        proxy.release()
        a.start()

        # The killed poller's lease (gateway.db.leases, "upstream-poller") must expire before the restarted one
        # polls: max(60 s, 3 x GATEWAY_UPSTREAM_POLL_SECONDS), whatever GATEWAY_LEASE_SECONDS says.
        def delivered_on_b() -> list[dict[str, Any]]:
            failed = b.ledger(type="delivery.failed", document=doc_b)
            assert failed == [], f"A acknowledged the re-fetched copy fail instead of done: {failed}"
            return b.ledger(type="delivery.delivered", document=doc_b)

        delivered = fed.wait("B recording its delivery to A1 as delivered", delivered_on_b, within=90, interval=0.5)
        assert [e["recipient"] for e in delivered] == [A1], delivered
        assert _recipient(b.document(doc_b), A1)["state"] == "delivered"

        # A holds one document for it, accepted once, acknowledged once, delivered to A1 once.
        [held] = a.documents(document_id)
        assert held["id"] == accepted["document"]
        _one(a.ledger(type="envelope.accepted", document_id=document_id), "envelope.accepted on A after restart")
        _one(a.ledger(type="upstream.acknowledged", document=held["id"]), "upstream.acknowledged on A")
        waiting = [i for i in a.inbox(a1) if i["kind"] == "document" and i["document_id"] == document_id]
        assert len(waiting) == 1, waiting
        assert a.take(a1, waiting[0]) == inbound
        assert [i for i in a.inbox(a1) if i["document_id"] == document_id and i["kind"] == "document"] == []
        _one(b.ledger(type="delivery.delivered", document=doc_b), "delivery.delivered on B")
        for gateway in (a, b):
            assert gateway.verify_ledger().startswith("ledger OK"), gateway


def test_a_separate_gateway_worker_forwards_and_polls(tmp_path: Path, pg_url: str) -> None:
    """``gateway worker`` (serve without workers beside it) carries both directions: the forwarder and the
    upstream poller run there too."""
    with two_gateways(tmp_path, pg_url, worker_process=True) as fed:
        a, b, a1, b1 = fed.a, fed.b, fed.a1, fed.b1
        assert a.env["GATEWAY_RUN_WORKERS"] == "false"
        doc_a = a.send(a1, a1.envelope(b1, code_number="303", code_notation="UBND-VP"))
        forwarded = _one(fed.wait("the worker's forward", lambda: a.ledger(type="upstream.forwarded", document=doc_a)),
                         "upstream.forwarded on A")
        assert a.worker is not None
        assert forwarded["details"]["worker"].split(":")[1] == str(a.worker.pid)  # the worker process's, not serve's
        doc_b = b.send(b1, b1.envelope(a1, code_number="404", code_notation="VPCP-TH"))
        inbound_id = b.document(doc_b)["document_id"]
        _one(fed.wait("the worker's poller accepting the inbound document",
                      lambda: a.ledger(type="envelope.accepted", document_id=inbound_id)), "envelope.accepted on A")
        items = fed.wait("the inbound document in A1's inbox",
                         lambda: [i for i in a.inbox(a1) if i["kind"] == "document"])
        assert len(items) == 1
