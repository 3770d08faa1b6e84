"""``/v1/agencies/{code}/tokens`` (an agency's API tokens) and ``/v1/operators…`` (operators and their tokens).

The agency token paths sit under the register's, but the credentials are this package's: the register
(``gateway.agency``) knows nothing of tokens. Listings are for operators (admin and auditor); every change is
for admins. A token's secret appears once, in the answer that issues it; listings show its id and instants.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gateway.agency.errors import AgencyNotFound
from gateway.agency.schemas import TokenOut
from gateway.auth.errors import (
    OperatorExists,
    OperatorInvalid,
    OperatorNotFound,
    OperatorRevoked,
    OperatorSelfRevoke,
    TokenExpiryInvalid,
    TokenNotFound,
)
from gateway.auth.schemas import OperatorCreate, OperatorCreated, OperatorList, OperatorOut, TokenCreate, TokenList
from gateway.auth.service import AgencyTokens, Operators, list_operators, list_tokens
from gateway.deps import CurrentAdmin, CurrentOperator, DatabaseDep, SessionDep, json_body, json_request_body
from gateway.problem_handlers import problems
from gateway.problems import BodyTooLarge, Forbidden, RequestInvalid, Unauthenticated

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])
operators_router = APIRouter(prefix="/v1/operators", tags=["operators"])
_AUTH = (Unauthenticated, Forbidden)
_BODY_LIMIT = 16 * 1024


# -- agency tokens -----------------------------------------------------------------------------------------------

@router.get("/{code}/tokens", response_model=TokenList, responses=problems(*_AUTH, AgencyNotFound))
async def agency_tokens(code: str, operator: CurrentOperator, session: SessionDep) -> TokenList:
    """The agency's tokens, oldest first, revoked and expired ones too: ids and instants, never the secret."""
    return TokenList(items=await list_tokens(session, agency=code))


@router.post(
    "/{code}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    openapi_extra=json_request_body(TokenCreate, required=False),
    responses=problems(*_AUTH, BodyTooLarge, RequestInvalid, AgencyNotFound, TokenExpiryInvalid),
)
async def issue_token(code: str, request: Request, admin: CurrentAdmin, db: DatabaseDep) -> TokenOut:
    """Issue an agency token, shown once. Optional body ``{"expires_at": "…"}``: the token is refused from
    then on (without it, it does not expire)."""
    body = await json_body(request, TokenCreate, required=False, limit=_BODY_LIMIT)
    expires_at = body.expires_at if body else None
    token_id, token = await AgencyTokens(db, actor=admin.actor).issue(code, expires_at)
    return TokenOut(id=token_id, token=token, expires_at=expires_at)


@router.delete(
    "/{code}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(*_AUTH, TokenNotFound),
)
async def revoke_token(code: str, token_id: str, admin: CurrentAdmin, db: DatabaseDep) -> Response:
    await AgencyTokens(db, actor=admin.actor).revoke(code, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- operators ---------------------------------------------------------------------------------------------------

@operators_router.get("", response_model=OperatorList, responses=problems(*_AUTH))
async def operators(operator: CurrentOperator, session: SessionDep) -> OperatorList:
    """Every operator, revoked ones too, oldest first."""
    return OperatorList(items=await list_operators(session))


@operators_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OperatorCreated,
    openapi_extra=json_request_body(OperatorCreate, required=True),
    responses=problems(*_AUTH, BodyTooLarge, RequestInvalid, OperatorInvalid, OperatorExists, TokenExpiryInvalid),
)
async def create_operator(request: Request, admin: CurrentAdmin, db: DatabaseDep) -> OperatorCreated:
    """Create an operator (admin or auditor) and its first token, shown once (the same code path as
    `gateway operator create`)."""
    body = await json_body(request, OperatorCreate, required=True, limit=_BODY_LIMIT)
    assert body is not None
    out, token_id, token = await Operators(db, by=admin).create(body.name, body.role, body.expires_at)
    return OperatorCreated(operator=out, token=TokenOut(id=token_id, token=token, expires_at=body.expires_at))


@operators_router.post(
    "/{name}/revoke",
    response_model=OperatorOut,
    responses=problems(*_AUTH, OperatorNotFound, OperatorSelfRevoke),
)
async def revoke_operator(name: str, admin: CurrentAdmin, db: DatabaseDep) -> OperatorOut:
    """Revoke an operator: every token of theirs is revoked and their console sessions end, at once. Final;
    repeating it changes nothing. An admin cannot revoke themselves (409 ``operator-self-revoke``)."""
    return await Operators(db, by=admin).revoke(name)


@operators_router.get("/{name}/tokens", response_model=TokenList, responses=problems(*_AUTH, OperatorNotFound))
async def operator_tokens(name: str, operator: CurrentOperator, session: SessionDep) -> TokenList:
    """The operator's tokens, oldest first: ids and instants, never the secret."""
    return TokenList(items=await list_tokens(session, operator=name))


@operators_router.post(
    "/{name}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    openapi_extra=json_request_body(TokenCreate, required=False),
    responses=problems(*_AUTH, BodyTooLarge, RequestInvalid, OperatorNotFound, OperatorRevoked, TokenExpiryInvalid),
)
async def issue_operator_token(name: str, request: Request, admin: CurrentAdmin, db: DatabaseDep) -> TokenOut:
    """Issue another token for the operator, shown once; optional body ``{"expires_at": "…"}``."""
    body = await json_body(request, TokenCreate, required=False, limit=_BODY_LIMIT)
    token_id, token, expires_at = await Operators(db, by=admin).issue_token(name, body.expires_at if body else None)
    return TokenOut(id=token_id, token=token, expires_at=expires_at)


@operators_router.delete(
    "/{name}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(*_AUTH, OperatorNotFound, TokenNotFound),
)
async def revoke_operator_token(name: str, token_id: str, admin: CurrentAdmin, db: DatabaseDep) -> Response:
    await Operators(db, by=admin).revoke_token(name, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
