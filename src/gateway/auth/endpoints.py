"""``/v1/agencies/{code}/tokens``: issue and revoke an agency's API tokens (admin).

The paths sit under the register's, but the credentials are this package's: the register (``gateway.agency``)
knows nothing of tokens.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.agency.errors import AgencyNotFound
from gateway.agency.schemas import TokenOut
from gateway.auth.errors import TokenNotFound
from gateway.auth.service import AgencyTokens
from gateway.deps import CurrentAdmin, DatabaseDep
from gateway.problem_handlers import problems
from gateway.problems import Forbidden, Unauthenticated

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])
_AUTH = (Unauthenticated, Forbidden)


@router.post(
    "/{code}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    responses=problems(*_AUTH, AgencyNotFound),
)
async def issue_token(code: str, admin: CurrentAdmin, db: DatabaseDep) -> TokenOut:
    token_id, token = await AgencyTokens(db, actor=admin.actor).issue(code)
    return TokenOut(id=token_id, token=token)


@router.delete(
    "/{code}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(*_AUTH, TokenNotFound),
)
async def revoke_token(code: str, token_id: str, admin: CurrentAdmin, db: DatabaseDep) -> Response:
    await AgencyTokens(db, actor=admin.actor).revoke(code, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
