"""``/v1/agencies``: the register and its certificates (admin; reads also auditor). Agency tokens: auth."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.agency.errors import (
    AgencyCodeInvalid,
    AgencyEndpointInvalid,
    AgencyExists,
    AgencyNameInvalid,
    AgencyNotFound,
    AgencyParentUnknown,
    CertificateExists,
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
)
from gateway.agency.service import AgencyService, Register
from gateway.deps import CurrentAdmin, CurrentOperator, DatabaseDep, SessionDep
from gateway.envelope.errors import CertificateExpired
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
async def register_agency(body: AgencyCreate, admin: CurrentAdmin, db: DatabaseDep) -> AgencyOut:
    return (await Register(db, actor=admin.actor).register(body)).out()


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
async def update_agency(code: str, body: AgencyUpdate, admin: CurrentAdmin, db: DatabaseDep) -> AgencyOut:
    return (await Register(db, actor=admin.actor).update(code, body)).out()


@router.post(
    "/{code}/certificates",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificateOut,
    responses=problems(*_AUTH, AgencyNotFound, CertificateMalformed, CertificateExpired, CertificateExists),
)
async def add_certificate(code: str, body: CertificateIn, admin: CurrentAdmin, db: DatabaseDep) -> CertificateOut:
    return await Register(db, actor=admin.actor).add_certificate(code, body.pem)


@router.delete(
    "/{code}/certificates/{sha256}",
    response_model=CertificateOut,
    responses=problems(*_AUTH, AgencyNotFound, CertificateNotFound),
)
async def revoke_certificate(code: str, sha256: str, admin: CurrentAdmin, db: DatabaseDep) -> CertificateOut:
    """Revoke: the certificate stays on record (with ``revoked_at``) and is refused from now on."""
    return await Register(db, actor=admin.actor).revoke_certificate(code, sha256)
