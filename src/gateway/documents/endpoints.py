"""``GET /v1/documents/{id}`` and the search ``GET /v1/documents?…``: sender, recipients and operators."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gateway.deps import CurrentPrincipal, GatewayKeyDep, SessionDep
from gateway.documents.proof import ProofBundles
from gateway.documents.schemas import DocumentList, DocumentView, ProofBundle
from gateway.documents.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    DocumentCursorInvalid,
    DocumentFilterInvalid,
    parse_document_filter,
    search_document_views,
)
from gateway.documents.service import DocumentNotFound, DocumentService
from gateway.ledger.errors import ProofUnavailable
from gateway.problem_handlers import problems
from gateway.problems import Unauthenticated

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("/{id}", response_model=DocumentView, responses=problems(Unauthenticated, DocumentNotFound))
async def show_document(id: str, principal: CurrentPrincipal, session: SessionDep) -> DocumentView:
    return await DocumentService(session).view(id, principal)


@router.get("/{id}/proof", response_model=ProofBundle,
            responses=problems(Unauthenticated, DocumentNotFound, ProofUnavailable))
async def document_proof(id: str, principal: CurrentPrincipal, session: SessionDep,
                         key: GatewayKeyDep) -> ProofBundle:
    """The document's offline proof bundle: its receipt, its acceptance and delivered ledger entries with their
    inclusion proofs, and the signed checkpoint (C2SP note) they are proven against. Once a checkpoint covers the
    acceptance; until then 422 ``ledger-proof-unavailable``. For the sender, the recipients and operators."""
    return ProofBundle.model_validate(await ProofBundles(session, key).bundle(id, principal))


@router.get("", response_model=DocumentList,
            responses=problems(Unauthenticated, DocumentFilterInvalid, DocumentCursorInvalid))
async def find_documents(
    principal: CurrentPrincipal,
    session: SessionDep,
    document_id: Annotated[str | None, Query(max_length=300, description="the edXML DocumentId, exact")] = None,
    sender: Annotated[str | None, Query(max_length=64, description="the sender's agency code")] = None,
    recipient: Annotated[str | None, Query(max_length=64, description="a recipient's agency code")] = None,
    state: Annotated[str | None, Query(
        max_length=20, description="a delivery state: at least one delivery (to `recipient`, when given) is in it")
    ] = None,
    kind: Annotated[Literal["document", "status", "any"], Query(
        description="document (default), status, or any")] = "document",
    sent_from: Annotated[str | None, Query(
        max_length=40, description="sent at or after: RFC 3339 instant with offset, or a date (midnight +07:00)")
    ] = None,
    sent_to: Annotated[str | None, Query(max_length=40, description="sent before (exclusive), as sent_from")] = None,
    q: Annotated[str | None, Query(
        max_length=200, description="the subject contains this, ignoring the case of ASCII and Vietnamese letters")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="documents per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=300, description="`next_cursor` of the previous page")] = None,
) -> DocumentList:
    """Search documents (and, with `kind`, status messages), newest first, with keyset paging: an agency finds
    what it sent or received, operators everything. Every filter is optional and they combine (AND)."""
    flt = parse_document_filter(document_id=document_id, sender=sender, recipient=recipient, state=state,
                                kind=kind, sent_from=sent_from, sent_to=sent_to, text=q)
    items, next_cursor = await search_document_views(session, flt, principal, limit=limit, cursor=cursor)
    return DocumentList(items=items, next_cursor=next_cursor)
