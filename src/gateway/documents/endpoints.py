"""``GET /v1/documents/{id}`` and ``GET /v1/documents?document_id=``: sender, recipients and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import CurrentPrincipal, GatewayKeyDep, SessionDep
from gateway.documents.proof import ProofBundles
from gateway.documents.schemas import DocumentList, DocumentView, ProofBundle
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


@router.get("", response_model=DocumentList, responses=problems(Unauthenticated))
async def find_documents(
    document_id: Annotated[str, Query(max_length=300, description="the edXML DocumentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
) -> DocumentList:
    return DocumentList(items=await DocumentService(session).find(document_id, principal))
