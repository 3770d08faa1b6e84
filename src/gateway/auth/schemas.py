"""Operators and token listings (``/v1/operators…``, ``GET /v1/agencies/{code}/tokens``).

A token listing never shows anything derived from the secret (not even its last characters): the id and the
instants only. The secret itself appears once, in the answer that issues it (:class:`~gateway.agency.schemas.
TokenOut`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.agency.schemas import TokenOut


class TokenCreate(BaseModel):
    """Optional body of a token issue: without ``expires_at`` the token does not expire."""

    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 instant with an offset, in the future; the token is refused from then on"
    )


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Nguyễn Văn A"])
    role: Literal["admin", "auditor"] = Field(description="admin: reads and acts; auditor: reads only")
    expires_at: AwareDatetime | None = Field(default=None, description="expiry of the operator's first token")


class OperatorOut(BaseModel):
    name: str
    role: Literal["admin", "auditor"]
    created_at: datetime
    revoked_at: datetime | None = Field(description="set when the operator was revoked: every token and console "
                                                    "session of theirs is refused from then on")
    active_tokens: int = Field(description="tokens neither revoked nor expired")


class OperatorCreated(BaseModel):
    operator: OperatorOut
    token: TokenOut = Field(description="the operator's first token, shown once")


class TokenInfo(BaseModel):
    """A token as listed: never anything derived from its secret."""

    id: str
    agency: str | None = Field(description="the agency code, for an agency token")
    operator: str | None = Field(description="the operator name, for an operator token")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"] = Field(
        description="revoked when revoked_at is set (or the operator was revoked), else expired when expires_at "
        "is past, else active"
    )


class TokenList(BaseModel):
    items: list[TokenInfo]


class OperatorList(BaseModel):
    items: list[OperatorOut]
