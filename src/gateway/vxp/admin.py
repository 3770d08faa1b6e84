"""``/v1/vxp/systems``: create, list and revoke the VXP systems (admin; the list also auditor).

The secret of a system is in the answer to its creation and nowhere else: the list shows no secret, and the
ledger records who created or revoked which system, never the secret.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.agency.errors import AgencyNotFound
from gateway.deps import CurrentAdmin, CurrentOperator, SessionDep, VxpSystemsDep
from gateway.problem_handlers import problems
from gateway.problems import Forbidden, Unauthenticated
from gateway.vxp.schemas import VxpSystemCreate, VxpSystemCreated, VxpSystemList, VxpSystemOut
from gateway.vxp.systems import VxpSystemNotFound, VxpSystemService

router = APIRouter(prefix="/v1/vxp/systems", tags=["vxp"])
_AUTH = (Unauthenticated, Forbidden)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=VxpSystemCreated,
    responses=problems(*_AUTH, AgencyNotFound),
)
async def create_system(body: VxpSystemCreate, admin: CurrentAdmin, systems: VxpSystemsDep) -> VxpSystemCreated:
    """A new system for ``agency``: its ``system_id`` and ``secret`` go into the installation's SDK
    configuration. The secret is shown in this answer only; a lost secret means a new system (and the
    revocation of the old one)."""
    created = await systems.create(body.agency, body.serves, actor=admin.actor)
    return created.out()


@router.get("", response_model=VxpSystemList, responses=problems(*_AUTH))
async def list_systems(operator: CurrentOperator, session: SessionDep) -> VxpSystemList:
    """Every system, revoked ones included, without secrets."""
    return VxpSystemList(items=[VxpSystemOut.of(s) for s in await VxpSystemService(session).list()])


@router.delete(
    "/{system_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(*_AUTH, VxpSystemNotFound),
)
async def revoke_system(system_id: str, admin: CurrentAdmin, systems: VxpSystemsDep) -> Response:
    """Revoke: the system stays on record (with ``revoked_at``) and its next call is refused."""
    await systems.revoke(system_id, actor=admin.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
