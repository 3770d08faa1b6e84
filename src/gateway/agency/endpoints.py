"""``/v1/agencies``: the register, its certificates and agency tokens (admin; reads also auditor)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.agency.errors import (
    AgencyCodeInvalid,
    AgencyEndpointInvalid,
    AgencyExists,
    AgencyNameInvalid,
    AgencyNotFound,
    AgencyParentUnknown,
    CertificateExists,
    CertificateExpired,
    CertificateMalformed,
    CertificateNotFound,
)
from gateway.agency.schemas import (
    AgencyCreate,
    AgencyList,
    AgencyOut,
    AgencyUpdate,
    CertificateIn,
    CertificateOut,
    TokenOut,
)
from gateway.agency.service import AgencyService
from gateway.auth.errors import TokenNotFound
from gateway.auth.service import AuthService
from gateway.deps import CurrentAdmin, CurrentOperator, SessionDep
from gateway.problem_handlers import problems
from gateway.problems import Forbidden, Unauthenticated

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])
_AUTH = (Unauthenticated, Forbidden)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AgencyOut,
    responses=problems(*_AUTH, AgencyCodeInvalid, AgencyNameInvalid, AgencyEndpointInvalid, AgencyParentUnknown,
                       AgencyExists),
)
async def register_agency(body: AgencyCreate, admin: CurrentAdmin, session: SessionDep) -> AgencyOut:
    view = await AgencyService(session, actor=admin.actor).register(body)
    await session.commit()
    return view.out()


@router.get("", response_model=AgencyList, responses=problems(*_AUTH))
async def list_agencies(operator: CurrentOperator, session: SessionDep) -> AgencyList:
    views = await AgencyService(session, actor=operator.actor).list()
    return AgencyList(items=[v.out() for v in views])


@router.get("/{code}", response_model=AgencyOut, responses=problems(*_AUTH, AgencyNotFound))
async def show_agency(code: str, operator: CurrentOperator, session: SessionDep) -> AgencyOut:
    return (await AgencyService(session, actor=operator.actor).view(code)).out()


@router.patch(
    "/{code}",
    response_model=AgencyOut,
    responses=problems(*_AUTH, AgencyNotFound, AgencyCodeInvalid, AgencyNameInvalid, AgencyEndpointInvalid,
                       AgencyParentUnknown, AgencyExists),
)
async def update_agency(code: str, body: AgencyUpdate, admin: CurrentAdmin, session: SessionDep) -> AgencyOut:
    view = await AgencyService(session, actor=admin.actor).update(code, body)
    await session.commit()
    return view.out()


@router.post(
    "/{code}/certificates",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificateOut,
    responses=problems(*_AUTH, AgencyNotFound, CertificateMalformed, CertificateExpired, CertificateExists),
)
async def add_certificate(code: str, body: CertificateIn, admin: CurrentAdmin, session: SessionDep) -> CertificateOut:
    cert = await AgencyService(session, actor=admin.actor).add_certificate(code, body.pem)
    await session.commit()
    return cert


@router.delete(
    "/{code}/certificates/{sha256}",
    response_model=CertificateOut,
    responses=problems(*_AUTH, AgencyNotFound, CertificateNotFound),
)
async def revoke_certificate(code: str, sha256: str, admin: CurrentAdmin, session: SessionDep) -> CertificateOut:
    """Revoke: the certificate stays on record (with ``revoked_at``) and is refused from now on."""
    cert = await AgencyService(session, actor=admin.actor).revoke_certificate(code, sha256)
    await session.commit()
    return cert


@router.post(
    "/{code}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses=problems(*_AUTH, AgencyNotFound),
)
async def issue_token(code: str, admin: CurrentAdmin, session: SessionDep) -> TokenOut:
    token_id, token = await AuthService(session).issue_agency_token(code, actor=admin.actor)
    await session.commit()
    return TokenOut(id=token_id, token=token)


@router.delete(
    "/{code}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(*_AUTH, TokenNotFound),
)
async def revoke_token(code: str, token_id: str, admin: CurrentAdmin, session: SessionDep) -> Response:
    await AuthService(session).revoke_agency_token(code, token_id, actor=admin.actor)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
