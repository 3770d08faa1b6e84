"""Guards on intake rules that the broader tests only brushed against.

* A certificate registered to *another* agency is not the sender's: refused like one registered to nobody.
* Two different envelopes under one DocumentId, submitted at the same instant: one is accepted, the other is
  a 409 document-changed, also when both got past the pre-check (the unique index decides; the fallback
  must not hand the loser the winner's receipt, nor fail with a 5xx).

Both databases (through the ``app``/``client`` fixtures).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.blobs import BlobStore
from gateway.documents.models import Document
from gateway.ledger.models import LedgerEntry
from gw import Agency, last_entry, only_ledger_grew, register, stored, submit


@pytest.fixture
async def parties(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Agency]:
    g22 = await register(client, admin_headers, "000.00.00.G22", "Văn phòng Chính phủ")
    h41 = await register(client, admin_headers, "000.00.00.H41", "UBND tỉnh Nghệ An")
    h42 = await register(client, admin_headers, "000.00.00.H42", "UBND tỉnh Hà Tĩnh")
    return {"g22": g22, "h41": h41, "h42": h42}


async def _documents(app: FastAPI) -> list[Document]:
    async with app.state.db.read() as session:
        return list((await session.execute(select(Document).order_by(Document.sent_at))).scalars())


async def _entries(app: FastAPI, *types: str) -> list[LedgerEntry]:
    async with app.state.db.read() as session:
        query = select(LedgerEntry).where(LedgerEntry.type.in_(types)).order_by(LedgerEntry.seq)
        return list((await session.execute(query)).scalars())


# -- 1. a certificate registered, but to another agency --------------------------------------------------


async def test_certificate_registered_to_another_agency_is_refused(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], parties: dict[str, Agency]
) -> None:
    g22, h41, h42 = parties["g22"], parties["h41"], parties["h42"]
    # H41's certificate is in the register, active, and H41's alone ...
    async def registered(agency: Agency) -> dict[str, str | None]:
        view = await client.get(f"/v1/agencies/{agency.code}", headers=admin_headers)
        assert view.status_code == 200, view.text
        return {c["sha256"]: c["revoked_at"] for c in view.json()["certificates"]}

    assert (await registered(h41)) == {h41.keys.sha256: None}
    assert h41.keys.sha256 not in await registered(g22)
    # ... and G22 signs its own envelope (From: G22, posted with G22's token) with H41's key and certificate.
    xml = g22.sign(g22.envelope(h42, sign_it=False), h41.keys)
    before = await stored(app)
    r = await submit(client, g22, xml)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:gateway:problem:certificate-unregistered"
    # Nothing stored: no document, attachment, delivery or blob; only the ledger's record of the refusal.
    assert only_ledger_grew(before, await stored(app))
    assert await _documents(app) == []
    entry = await last_entry(app)
    assert entry.type == "envelope.refused"
    assert entry.actor == f"agency:{g22.code}"
    assert entry.sender == g22.code
    details = json.loads(entry.details)
    assert details["rule"] == "certificate-unregistered"
    assert details["envelope_sha256"] == hashlib.sha256(xml).hexdigest()
    # The certificate's owner is still served with it: the refusal is about whose it is, nothing else.
    own = await submit(client, h41, h41.envelope(h42))
    assert own.status_code == 201, own.text


# -- 3. one DocumentId, two different envelopes, at the same time ------------------------------------------


def _two_versions(g22: Agency, h41: Agency) -> tuple[bytes, bytes]:
    """Same sender, same DocumentId (same number, notation and date), different content."""
    first = g22.envelope(h41, code_number="15", subject="Về việc triển khai Nghị định")
    second = g22.envelope(h41, code_number="15", subject="Về việc triển khai Nghị định (bản sửa)")
    assert first != second
    return first, second


async def _assert_one_accepted_one_changed(
    app: FastAPI, answers: list[httpx.Response], versions: tuple[bytes, bytes]
) -> None:
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201, 409], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 201)
    loser = next(r for r in answers if r.status_code == 409)
    assert loser.headers["content-type"] == "application/problem+json"
    assert loser.json()["type"] == "urn:gateway:problem:document-changed"
    won_bytes = versions[answers.index(winner)]
    lost_bytes = versions[answers.index(loser)]

    [document] = await _documents(app)
    assert document.id == winner.headers["X-Gateway-Document-Id"]
    assert document.envelope_sha256 == hashlib.sha256(won_bytes).hexdigest()
    # The loser's bytes were not kept as a document (its blob may exist: blobs are written before the
    # transaction that references them, and an unreferenced blob is garbage, not a document).

    [accepted] = await _entries(app, "envelope.accepted")
    [refused] = await _entries(app, "envelope.refused")
    assert accepted.document == document.id
    assert json.loads(accepted.details)["envelope_sha256"] == document.envelope_sha256
    details = json.loads(refused.details)
    assert details["rule"] == "document-changed"
    assert details["status"] == 409
    assert details["envelope_sha256"] == hashlib.sha256(lost_bytes).hexdigest()


class _BothPastThePreCheck:
    """Hold each of the given envelopes' blob writes until all of them have arrived.

    Intake writes the envelope's bytes to the blob store (step 7) after every read-only check, the
    DocumentId pre-check (step 5) included, and before the transaction that inserts the document (step 8).
    So once both requests are inside ``BlobStore.put`` at the same time, both have passed the pre-check and
    neither has written a row: the second insert can only be stopped by the unique index
    ``uq_documents_sender_document_id``, and the loser's answer comes from intake's ``IntegrityError``
    fallback, not from the pre-check. The seam is the blob store, outside ``gateway.intake`` and
    ``gateway.documents``, so it survives their refactoring; it relies only on "checks, then blobs, then
    rows", which the rule "blobs are written before the rows that reference them" requires anyway.

    ``put`` runs in worker threads (``asyncio.to_thread``), hence a ``threading.Barrier``; its timeout makes
    a changed call pattern fail the test instead of hanging it.
    """

    def __init__(self, envelopes: set[bytes]) -> None:
        self.envelopes = envelopes
        self.barrier = threading.Barrier(len(envelopes), timeout=20)
        self.held: set[bytes] = set()
        self._lock = threading.Lock()

    def wrap(self, put: Callable[[BlobStore, bytes], str]) -> Callable[[BlobStore, bytes], str]:
        def held_put(store: BlobStore, data: bytes) -> str:
            if data in self.envelopes:
                with self._lock:
                    first_time = data not in self.held
                    self.held.add(data)
                if first_time:
                    self.barrier.wait()
            return put(store, data)

        return held_put


Arm = Callable[[set[bytes]], _BothPastThePreCheck]


@pytest.fixture
def hold_past_the_pre_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[Arm]:
    armed: list[_BothPastThePreCheck] = []

    def arm(envelopes: set[bytes]) -> _BothPastThePreCheck:
        holder = _BothPastThePreCheck(envelopes)
        monkeypatch.setattr(BlobStore, "put", holder.wrap(BlobStore.put))
        armed.append(holder)
        return holder

    yield arm
    for holder in armed:
        holder.barrier.abort()  # never leave a thread waiting


async def test_same_document_id_different_envelopes_at_once_past_the_pre_check(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency], hold_past_the_pre_check: Arm
) -> None:
    """Deterministic race: both requests pass the DocumentId pre-check before either inserts (see
    :class:`_BothPastThePreCheck`), so the unique index and intake's IntegrityError fallback decide. Whether
    the two inserts share one group-commit transaction (then the batch fails and each is retried alone) or
    not, exactly one is accepted and the other must be 409 document-changed: not the winner's receipt, and
    not a 5xx."""
    g22, h41 = parties["g22"], parties["h41"]
    versions = _two_versions(g22, h41)
    holder = hold_past_the_pre_check(set(versions))
    answers = list(await asyncio.gather(*(submit(client, g22, xml) for xml in versions)))
    # Both really were held together past the pre-check (the barrier was passed, not broken).
    assert holder.held == set(versions)
    assert not holder.barrier.broken
    await _assert_one_accepted_one_changed(app, answers, versions)


async def test_same_document_id_different_envelopes_at_once_unpatched(
    app: FastAPI, client: httpx.AsyncClient, parties: dict[str, Agency]
) -> None:
    """The same race with nothing held: whichever path decides it (pre-check or unique index), the outcome
    is the same."""
    g22, h41 = parties["g22"], parties["h41"]
    versions = _two_versions(g22, h41)
    answers = list(await asyncio.gather(*(submit(client, g22, xml) for xml in versions)))
    await _assert_one_accepted_one_changed(app, answers, versions)
