"""The register's JSON shapes (the names are part of the HTTP contract: add fields, never rename)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.agency.codes import ALIAS_PATTERN, CODE_PATTERN
from gateway.agency.models import Agency, AgencyCertificate

CodeStr = Annotated[str, Field(max_length=64, examples=["000.00.00.H41"], description=f"pattern {CODE_PATTERN}")]
AliasStr = Annotated[str, Field(max_length=64, pattern=f"^{ALIAS_PATTERN.pattern}$", examples=["28.22.H17"])]


def _distinct(aliases: list[str] | None) -> list[str] | None:
    if aliases is not None and len(set(aliases)) != len(aliases):
        raise ValueError("each alias at most once")
    return aliases


_ALIASES_DOC = (
    "other codes the agency is known by in the wild (an old-format code, the QĐ 20/2020 identifier, a SaaS "
    "tenant id): each 1 to 64 of A-Z a-z 0-9 . _ -, compared exactly, and unique across the register (never "
    "an agency's code or alt_code, nor another agency's alias)"
)
Aliases = Annotated[list[AliasStr], AfterValidator(_distinct), Field(description=_ALIASES_DOC)]


class PushDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["push"]
    endpoint: Annotated[str, Field(max_length=2000, examples=["https://qlvb.example.gov.vn/edxml/inbox"])]


class PullDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["pull"]


class UpstreamDelivery(BaseModel):
    """Reached through the upstream axis (issue 15). Only ``gateway upstream agencies sync`` gives an agency this
    mode, so it is in the agency as shown and never in what an operator sends (POST or PATCH refuse it as an
    invalid request). A document to such an agency is forwarded to the upstream axis (README, "Federation"); with
    no upstream configured it is refused (``recipient-upstream-not-forwarded``)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["upstream"]


#: what an operator may set (POST, PATCH)
Delivery = Annotated[PushDelivery | PullDelivery, Field(discriminator="mode")]
#: what an agency may have
DeliveryOut = Annotated[PushDelivery | PullDelivery | UpstreamDelivery, Field(discriminator="mode")]
SignaturePolicy = Literal["required", "channel"]
Source = Literal["local", "upstream"]


class AgencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: CodeStr
    name: Annotated[str, Field(max_length=1000)]
    parent_code: CodeStr | None = None
    alt_code: Annotated[str | None, Field(max_length=64, description="a second identifier (QĐ 20/2020)")] = None
    aliases: Aliases = []
    delivery: Delivery
    signature_policy: SignaturePolicy = "required"
    active: bool = True


class AgencyUpdate(BaseModel):
    """Only the fields present are changed; ``parent_code: null`` removes the parent, ``alt_code: null`` the
    alt_code, and ``aliases`` replaces the whole list (``[]`` or ``null`` removes every alias)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(max_length=1000)] = None
    parent_code: CodeStr | None = None
    alt_code: Annotated[str | None, Field(max_length=64)] = None
    aliases: Aliases | None = None
    delivery: Delivery | None = None
    signature_policy: SignaturePolicy | None = None
    active: bool | None = None


class CertificateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pem: Annotated[str, Field(max_length=64 * 1024)]


class CertificateOut(BaseModel):
    sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    added_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, cert: AgencyCertificate) -> CertificateOut:
        return cls(
            sha256=cert.sha256,
            subject=cert.subject,
            not_before=cert.not_before,
            not_after=cert.not_after,
            added_at=cert.added_at,
            revoked_at=cert.revoked_at,
        )


class AgencyOut(BaseModel):
    code: str
    name: str
    parent_code: str | None
    alt_code: str | None
    aliases: Annotated[list[str], Field(description="the agency's aliases, sorted")]
    delivery: DeliveryOut
    signature_policy: SignaturePolicy
    active: bool
    source: Annotated[Source, Field(description=(
        "local: registered by an operator; upstream: imported from the upstream axis's register by `gateway "
        "upstream agencies sync`, which keeps it up to date and never touches a local agency"))]
    synced_at: Annotated[datetime | None, Field(
        description="the last sync that found the agency listed upstream; null for a local agency")]
    created_at: datetime
    updated_at: datetime
    certificates: list[CertificateOut]

    @classmethod
    def of(cls, agency: Agency, certificates: list[AgencyCertificate], aliases: list[str]) -> AgencyOut:
        delivery: PushDelivery | PullDelivery | UpstreamDelivery
        if agency.delivery_mode == "push":
            assert agency.endpoint is not None
            delivery = PushDelivery(mode="push", endpoint=agency.endpoint)
        elif agency.delivery_mode == "upstream":
            delivery = UpstreamDelivery(mode="upstream")
        else:
            delivery = PullDelivery(mode="pull")
        return cls(
            code=agency.code,
            name=agency.name,
            parent_code=agency.parent_code,
            alt_code=agency.alt_code,
            aliases=sorted(aliases),
            delivery=delivery,
            signature_policy="channel" if agency.signature_policy == "channel" else "required",
            active=agency.active,
            source="upstream" if agency.source == "upstream" else "local",
            synced_at=agency.synced_at,
            created_at=agency.created_at,
            updated_at=agency.updated_at,
            certificates=[CertificateOut.of(c) for c in certificates],
        )


class AgencyList(BaseModel):
    items: list[AgencyOut]


class TokenOut(BaseModel):
    id: str
    token: str = Field(description="shown once; the gateway keeps only its hash")
    expires_at: datetime | None = Field(default=None, description="the token is refused from this instant on; "
                                                                  "null: it does not expire")
