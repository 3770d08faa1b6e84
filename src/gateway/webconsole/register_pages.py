"""The register in the console: every agency (``/console/agencies``) and one agency with its aliases,
certificates, tokens and VXP systems (``/console/agencies/{code}``).

Read-only, for admins and auditors alike: changes to the register go through the API or the CLI, which
validate and ledger them. The pages read through the domain packages' own services and repositories
(``gateway.agency``, ``gateway.auth``, ``gateway.vxp``); an unknown code is the register's own
``agency-not-found``, shown as the console's 404 page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.agency.models import Agency, AgencyCertificate
from gateway.agency.service import AgencyService
from gateway.auth.service import list_tokens
from gateway.deps import SessionDep
from gateway.vxp.models import VxpSystem
from gateway.vxp.repository import VxpRepository
from gateway.vxp.systems import VxpSystemService, served_codes
from gateway.webconsole.render import render
from gateway.webconsole.session import CurrentConsoleUser

router = APIRouter()

#: a certificate whose end of validity is this close is highlighted, so that its agency renews it in time
EXPIRING_WITHIN = timedelta(days=30)

CertificateState = Literal["valid", "expiring", "expired", "revoked", "not-yet-valid"]

DELIVERY_MODES = {"push": "Đẩy (push)", "pull": "Kéo (pull)", "upstream": "Qua trục quốc gia"}
SOURCES = {"local": "Đăng ký tại cổng", "upstream": "Đồng bộ từ trục"}
SIGNATURE_POLICIES = {"required": "Bắt buộc ký số", "channel": "Xác thực kênh truyền"}
CERTIFICATE_STATES: dict[CertificateState, str] = {
    "valid": "Còn hiệu lực",
    "expiring": "Sắp hết hạn",
    "expired": "Đã hết hạn",
    "revoked": "Đã thu hồi",
    "not-yet-valid": "Chưa có hiệu lực",
}
TOKEN_STATES = {"active": "Đang dùng", "expired": "Đã hết hạn", "revoked": "Đã thu hồi"}


def certificate_state(not_before: datetime, not_after: datetime, revoked_at: datetime | None,
                      now: datetime) -> CertificateState:
    """What an operator must know of a certificate at ``now``: revoked wins (nothing more to renew), then
    expired (``not_after`` past), expiring (within :data:`EXPIRING_WITHIN`), not yet valid, valid."""
    if revoked_at is not None:
        return "revoked"
    if not_after <= now:
        return "expired"
    if not_after - now <= EXPIRING_WITHIN:
        return "expiring"
    if not_before > now:
        return "not-yet-valid"
    return "valid"


def serial_of(pem: str) -> str:
    """The serial number in upper-case hex (as certificate viewers show it); empty if the stored PEM does not
    read (it was checked when registered, so only a hand-edited row would)."""
    try:
        serial = x509.load_pem_x509_certificate(pem.encode("ascii")).serial_number
    except (ValueError, UnicodeEncodeError):
        return ""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


@dataclass(frozen=True)
class CertificateRow:
    fingerprint: str
    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    added_at: datetime
    revoked_at: datetime | None
    state: CertificateState

    @property
    def state_label(self) -> str:
        return CERTIFICATE_STATES[self.state]

    @classmethod
    def of(cls, cert: AgencyCertificate, now: datetime) -> CertificateRow:
        return cls(fingerprint=cert.sha256, subject=cert.subject, serial=serial_of(cert.pem),
                   not_before=cert.not_before, not_after=cert.not_after, added_at=cert.added_at,
                   revoked_at=cert.revoked_at,
                   state=certificate_state(cert.not_before, cert.not_after, cert.revoked_at, now))


@dataclass(frozen=True)
class AgencyRow:
    code: str
    name: str
    delivery_mode: str
    active: bool
    source: str
    certificates: int
    #: the worst state among its certificates not revoked ("expired", "expiring") or None
    attention: CertificateState | None

    @property
    def delivery_label(self) -> str:
        return DELIVERY_MODES.get(self.delivery_mode, self.delivery_mode)

    @property
    def source_label(self) -> str:
        return SOURCES.get(self.source, self.source)


def _attention(rows: Sequence[CertificateRow]) -> CertificateState | None:
    states = {r.state for r in rows}
    worst: tuple[CertificateState, ...] = ("expired", "expiring")
    return next((state for state in worst if state in states), None)


@dataclass(frozen=True)
class SystemRow:
    system_id: str
    agency: str
    serves: str
    created_at: datetime
    revoked_at: datetime | None
    #: registered for this agency (True) or for an ancestor whose subtree it serves (False)
    own: bool

    @property
    def serves_label(self) -> str:
        return "Cơ quan và các đơn vị trực thuộc" if self.serves == "subtree" else "Chỉ cơ quan này"


def systems_serving(code: str, systems: Sequence[VxpSystem],
                    links: Sequence[tuple[str, str | None]]) -> list[SystemRow]:
    """The VXP systems that speak for ``code``: its own, and those of an ancestor that serve their subtree
    (gateway.vxp.systems, the same rule the VXP face authenticates by)."""
    out = []
    for system in systems:
        if system.agency_code == code or (
                system.serves == "subtree" and code in served_codes(system.agency_code, system.serves, links)):
            out.append(SystemRow(system.system_id, system.agency_code, system.serves, system.created_at,
                                 system.revoked_at, own=system.agency_code == code))
    return out


def _agency_row(agency: Agency, certs: Sequence[CertificateRow]) -> AgencyRow:
    return AgencyRow(code=agency.code, name=agency.name, delivery_mode=agency.delivery_mode, active=agency.active,
                     source=agency.source, certificates=len(certs), attention=_attention(certs))


@router.get("/agencies", response_class=HTMLResponse)
async def agencies_page(request: Request, user: CurrentConsoleUser, session: SessionDep) -> HTMLResponse:
    now = datetime.now(UTC)
    views = await AgencyService(session, actor=user.principal.actor).list()
    rows = [_agency_row(v.agency, [CertificateRow.of(c, now) for c in v.certificates]) for v in views]
    return render(request, "agencies.html", {"agencies": rows}, user=user)


@router.get("/agencies/{code}", response_class=HTMLResponse)
async def agency_page(code: str, request: Request, user: CurrentConsoleUser, session: SessionDep) -> HTMLResponse:
    now = datetime.now(UTC)
    view = await AgencyService(session, actor=user.principal.actor).view(code)  # AgencyNotFound: the 404 page
    certificates = [CertificateRow.of(c, now) for c in view.certificates]
    tokens = await list_tokens(session, agency=view.agency.code)
    systems = systems_serving(view.agency.code, await VxpSystemService(session).list(),
                              await VxpRepository(session).parent_links())
    context = {
        "agency": view.agency,
        "row": _agency_row(view.agency, certificates),
        "aliases": view.aliases,
        "certificates": certificates,
        "tokens": tokens,
        "token_states": TOKEN_STATES,
        "systems": systems,
        "signature_policy": SIGNATURE_POLICIES.get(view.agency.signature_policy, view.agency.signature_policy),
        "expiring_days": EXPIRING_WITHIN.days,
    }
    return render(request, "agency.html", context, user=user)
