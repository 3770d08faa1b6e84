"""``GET /v1/documents/{id}`` and ``GET /v1/documents?document_id=``: sender, recipients and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import CurrentPrincipal, SessionDep
from gateway.documents.schemas import DocumentList, DocumentView
from gateway.documents.service import DocumentNotFound, DocumentService
from gateway.problem_handlers import problems
from gateway.problems import Unauthenticated

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("/{id}", response_model=DocumentView, responses=problems(Unauthenticated, DocumentNotFound))
async def show_document(id: str, principal: CurrentPrincipal, session: SessionDep) -> DocumentView:
    return await DocumentService(session).view(id, principal)


@router.get("", response_model=DocumentList, responses=problems(Unauthenticated))
async def find_documents(
    document_id: Annotated[str, Query(max_length=300, description="the edXML DocumentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
) -> DocumentList:
    return DocumentList(items=await DocumentService(session).find(document_id, principal))
