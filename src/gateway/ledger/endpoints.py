"""``/v1/ledger``: query, CSV export, verify, checkpoints."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from gateway.csv_export import CSV_BOM, CSV_MEDIA_TYPE, csv_cell
from gateway.db import Database
from gateway.deps import (
    CurrentAdmin,
    CurrentOperator,
    CurrentPrincipal,
    DatabaseDep,
    GatewayKeyDep,
    SessionDep,
    read_limited,
)
from gateway.ledger import merkle, tree, witnesses
from gateway.ledger.chain import format_instant
from gateway.ledger.errors import (
    CheckpointNotFound,
    CosignatureInvalid,
    LedgerFilterInvalid,
    ProofUnavailable,
    WitnessInvalid,
)
from gateway.ledger.models import LedgerEntry
from gateway.ledger.query import (
    LedgerFilter,
    Visibility,
    decode_cursor,
    encode_cursor,
    parse_filter,
    parse_limit,
)
from gateway.ledger.repository import CheckpointRepository, LedgerRepository
from gateway.ledger.schemas import (
    CheckpointOut,
    CheckpointPage,
    ConsistencyProofOut,
    InclusionProofOut,
    LedgerEntryOut,
    LedgerPage,
    VerifyOut,
    WitnessIn,
    WitnessOut,
)
from gateway.ledger.verify import LedgerVerifier, signed
from gateway.principal import Principal
from gateway.problem_handlers import problems
from gateway.problems import BodyTooLarge, Forbidden, Unauthenticated

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])

CSV_COLUMNS = ("seq", "recorded_at", "type", "actor", "document", "document_id", "sender", "recipient", "details",
               "prev_hash", "hash")
_CSV_BATCH = 5000


def _visibility(principal: Principal) -> Visibility:
    return Visibility(agency=principal.name) if principal.kind == "agency" else Visibility()


def _wants_csv(accept: str | None) -> bool:
    """True when ``text/csv`` is preferred over JSON by the Accept header's q-values (JSON wins ties)."""
    if not accept:
        return False
    best = {"json": -1.0, "csv": -1.0}
    for part in accept.split(",")[:32]:
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in ("text/csv", "text/*"):
            best["csv"] = max(best["csv"], q)
        if media in ("application/json", "application/*", "*/*"):
            best["json"] = max(best["json"], q)
    return best["csv"] > 0 and best["csv"] > best["json"]


def _csv_row(entry: LedgerEntry) -> list[object]:
    return [
        entry.seq, format_instant(entry.recorded_at), csv_cell(entry.type), csv_cell(entry.actor),
        csv_cell(entry.document), csv_cell(entry.document_id), csv_cell(entry.sender),
        csv_cell(entry.recipient), csv_cell(entry.details), entry.prev_hash, entry.hash,
    ]


async def _csv_stream(db: Database, flt: LedgerFilter, visibility: Visibility, after: int | None) -> AsyncIterator[str]:
    """Every matching entry up to the head as it was when the export began, a batch per short transaction."""
    async with db.sessionmaker() as session:
        upto = await LedgerRepository(session).size() - 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield CSV_BOM + buffer.getvalue()
    while True:
        async with db.sessionmaker() as session:
            entries = await LedgerRepository(session).page(flt, visibility, after=after, limit=_CSV_BATCH, upto=upto)
        if not entries:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_row(e) for e in entries)
        yield buffer.getvalue()
        if len(entries) < _CSV_BATCH:
            return
        after = entries[-1].seq


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a page of entries (JSON), or with `Accept: text/csv` every matching entry from the cursor on "
                       "(`limit` does not apply), streamed; cells that a spreadsheet would run as a formula are "
                       "prefixed with `'`; the CSV is UTF-8 and starts with a byte order mark (EF BB BF), so that "
                       "spreadsheet software reads its Vietnamese text as UTF-8",
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "headers": {"Content-Disposition": {"description": "with CSV: `attachment; filename=\"ledger.csv\"`",
                                            "schema": {"type": "string"}}},
    }
}


@router.get(
    "",
    response_model=LedgerPage,
    responses={**problems(Unauthenticated, LedgerFilterInvalid), **_CSV_RESPONSE},
)
async def list_entries(
    principal: CurrentPrincipal,
    session: SessionDep,
    db: DatabaseDep,
    agency: Annotated[str | None, Query(description="agency code, as sender or recipient")] = None,
    document: Annotated[str | None, Query(description="the gateway's document id")] = None,
    document_id: Annotated[str | None, Query(description="the edXML DocumentId")] = None,
    type_: Annotated[str | None, Query(alias="type", description="an event type")] = None,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 instant with offset, inclusive")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 instant with offset, exclusive")] = None,
    cursor: Annotated[str | None, Query(description="`next` of the previous page")] = None,
    limit: Annotated[str | None, Query(description="entries per page, 1 to 1000 (default 100)")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """The ledger in seq order, filtered, with keyset pagination.

    Operators see every entry. An agency sees the entries that name it as sender or recipient, and the
    entries about documents it sent or received.
    """
    flt = parse_filter(agency=agency, document=document, document_id=document_id, type=type_, since=from_,
                       until=to)
    page_size = parse_limit(limit)
    after = decode_cursor(cursor)
    visibility = _visibility(principal)
    if _wants_csv(accept):
        return StreamingResponse(
            _csv_stream(db, flt, visibility, after),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
        )
    entries = await LedgerRepository(session).page(flt, visibility, after=after, limit=page_size + 1)
    more = len(entries) > page_size
    entries = entries[:page_size]
    return LedgerPage(
        items=[LedgerEntryOut.of(e) for e in entries],
        next=encode_cursor(entries[-1].seq) if more and entries else None,
    )


@router.get("/verify", response_model=VerifyOut, responses=problems(Unauthenticated, Forbidden))
async def verify_ledger(
    operator: CurrentOperator,
    db: DatabaseDep,
    key: GatewayKeyDep,
    from_: Annotated[
        Literal["genesis", "checkpoint"],
        Query(alias="from", description="genesis: recompute every entry; checkpoint: from the last good checkpoint"),
    ] = "genesis",
) -> VerifyOut:
    """Recompute the hash chain and check every signed checkpoint with the gateway certificate.

    A broken ledger is still a 200 answer: ``ok`` false, the first bad entry in ``first_bad_seq``.
    """
    report = await LedgerVerifier(db, key.certificate).run(from_)
    return VerifyOut.of(report)


@router.get(
    "/checkpoints",
    response_model=CheckpointPage,
    responses=problems(Unauthenticated, LedgerFilterInvalid),
)
async def list_checkpoints(
    principal: CurrentPrincipal,
    session: SessionDep,
    cursor: Annotated[str | None, Query(description="`next` of the previous page")] = None,
    limit: Annotated[str | None, Query(description="checkpoints per page, 1 to 1000 (default 100)")] = None,
) -> CheckpointPage:
    """Signed checkpoints, oldest first: verify them offline with ``GET /v1/gateway/certificate``.

    Any authenticated caller may read them: a checkpoint reveals the ledger's size and head hash only.
    """
    page_size = parse_limit(limit)
    after = decode_cursor(cursor)
    rows = await CheckpointRepository(session).page(after, page_size + 1)
    more = len(rows) > page_size
    rows = rows[:page_size]
    return CheckpointPage(
        items=[CheckpointOut.of(signed(r), r.root_hash, r.note) for r in rows],
        next=encode_cursor(rows[-1].size) if more and rows else None,
    )


@router.get(
    "/checkpoints/latest",
    response_model=CheckpointOut,
    responses=problems(Unauthenticated, CheckpointNotFound),
)
async def latest_checkpoint(principal: CurrentPrincipal, session: SessionDep) -> CheckpointOut:
    row = await CheckpointRepository(session).latest()
    if row is None:
        raise CheckpointNotFound("no checkpoint has been signed yet")
    return CheckpointOut.of(signed(row), row.root_hash, row.note)


_NOTE_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
          "description": "the C2SP signed note"}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={**_NOTE_ANSWER, **problems(Unauthenticated, CheckpointNotFound)},
)
async def latest_checkpoint_note(principal: CurrentPrincipal, session: SessionDep) -> PlainTextResponse:
    """The latest checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint), the form witnesses and generic
    transparency tools read: the origin, the tree size, the base64 Merkle root, a blank line, the gateway's
    signature line (README, "The ledger")."""
    row = await CheckpointRepository(session).latest()
    if row is None or row.note is None:
        raise CheckpointNotFound("no checkpoint with a signed note has been signed yet")
    return PlainTextResponse(await witnesses.cosigned_note(session, row.size, row.note))


@router.get(
    "/checkpoint/{size}",
    response_class=PlainTextResponse,
    responses={**_NOTE_ANSWER, **problems(Unauthenticated, CheckpointNotFound)},
)
async def checkpoint_note(principal: CurrentPrincipal, session: SessionDep, size: int) -> PlainTextResponse:
    """The checkpoint of ``size`` entries as a C2SP signed note."""
    row = await CheckpointRepository(session).get(size) if 0 < size < 2**63 else None
    if row is None or row.note is None:
        raise CheckpointNotFound(f"no signed note for a checkpoint of size {size}")
    return PlainTextResponse(await witnesses.cosigned_note(session, row.size, row.note))


@router.post(
    "/checkpoint/{size}/cosignatures",
    status_code=201,
    response_class=PlainTextResponse,
    responses={201: {"content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
                     "description": "the note with the cosignature"},
               **problems(Unauthenticated, CheckpointNotFound, CosignatureInvalid, BodyTooLarge)},
    openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def cosign_checkpoint(request: Request, principal: CurrentPrincipal, db: DatabaseDep, size: int
                            ) -> PlainTextResponse:
    """A registered witness's cosignature: one signed-note signature line (``— <name> <base64>``) over the
    checkpoint's note text, verified before it is stored (README, "The ledger": the witness protocol)."""
    body = await read_limited(request, witnesses.MAX_LINE)
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CosignatureInvalid("the line is not UTF-8") from None
    service = witnesses.Witnesses(db)
    await service.cosign(size, line, principal.actor)
    async with db.read() as session:
        row = await CheckpointRepository(session).get(size)
        assert row is not None
        assert row.note is not None
        return PlainTextResponse(await witnesses.cosigned_note(session, size, row.note), status_code=201)


@router.post("/witnesses", status_code=201, response_model=WitnessOut,
             responses=problems(Unauthenticated, Forbidden, WitnessInvalid))
async def add_witness(body: WitnessIn, operator: CurrentAdmin, db: DatabaseDep) -> WitnessOut:
    """Register a witness by its C2SP verifier key: its cosignatures of checkpoints are then taken (admin)."""
    row = await witnesses.Witnesses(db).register(body.verifier_key, operator.actor)
    return WitnessOut(name=row.name, verifier_key=row.verifier_key, added_at=row.added_at)


@router.get("/witnesses", response_model=list[WitnessOut], responses=problems(Unauthenticated))
async def list_witnesses(principal: CurrentPrincipal, session: SessionDep) -> list[WitnessOut]:
    """The registered witnesses (their public verifier keys)."""
    return [WitnessOut(name=w.name, verifier_key=w.verifier_key, added_at=w.added_at)
            for w in await CheckpointRepository(session).witnesses()]


async def _tree_size(session: SessionDep) -> int:
    """The largest size proofs can be given for: the latest checkpoint's (its root is signed)."""
    row = await CheckpointRepository(session).latest()
    if row is None or row.root_hash is None:
        raise ProofUnavailable("no checkpoint with a Merkle root has been signed yet")
    return row.size


@router.get(
    "/proof/inclusion",
    response_model=InclusionProofOut,
    responses=problems(Unauthenticated, ProofUnavailable),
)
async def inclusion_proof(
    principal: CurrentPrincipal,
    session: SessionDep,
    seq: Annotated[int, Query(ge=0, description="the entry")],
    size: Annotated[int | None, Query(ge=1, description="a tree size up to the latest checkpoint's "
                                                        "(default: that size)")] = None,
) -> InclusionProofOut:
    """The entry's inclusion proof in the tree of ``size`` leaves (RFC 9162 §2.1.3), to check against a
    checkpoint's ``root_hash``. Hashes only: any authenticated caller may ask."""
    covered = await _tree_size(session)
    size = covered if size is None else size
    if size > covered:
        raise ProofUnavailable(f"the tree covers {covered} entries (the latest checkpoint)", field="size")
    if seq >= size:
        raise ProofUnavailable(f"entry {seq} is not among the first {size}", field="seq")
    entry_hash = (await LedgerRepository(session).hashes_at([seq]))[seq]
    proof = await tree.inclusion_proof(session, seq, size)
    root = await tree.root(session, size)
    return InclusionProofOut(seq=seq, size=size, entry_hash=entry_hash,
                             leaf_hash=merkle.leaf_hash(bytes.fromhex(entry_hash)).hex(), root_hash=root.hex(),
                             proof=[p.hex() for p in proof])


@router.get(
    "/proof/consistency",
    response_model=ConsistencyProofOut,
    responses=problems(Unauthenticated, ProofUnavailable),
)
async def consistency_proof(
    principal: CurrentPrincipal,
    session: SessionDep,
    from_size: Annotated[int, Query(alias="from", ge=1, description="the older tree size")],
    to_size: Annotated[int | None, Query(alias="to", ge=1, description="the newer tree size, up to the latest "
                                                                         "checkpoint's (default: that size)")] = None,
) -> ConsistencyProofOut:
    """The proof that the tree of ``from`` leaves is a prefix of the tree of ``to`` leaves (RFC 9162 §2.1.4):
    what a witness or an auditor holding an older checkpoint checks to know the ledger was only appended to."""
    covered = await _tree_size(session)
    to_size = covered if to_size is None else to_size
    if to_size > covered:
        raise ProofUnavailable(f"the tree covers {covered} entries (the latest checkpoint)", field="to")
    if from_size > to_size:
        raise ProofUnavailable("from is larger than to", field="from")
    proof = await tree.consistency_proof(session, from_size, to_size)
    return ConsistencyProofOut(from_size=from_size, to_size=to_size,
                               from_root=(await tree.root(session, from_size)).hex(),
                               to_root=(await tree.root(session, to_size)).hex(), proof=[p.hex() for p in proof])
