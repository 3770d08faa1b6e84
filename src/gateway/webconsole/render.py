"""Rendering console pages: one Jinja2 environment (autoescaped), the filters every page uses, and the
security headers every console answer carries.

Pages are plain HTML with one stylesheet and one script, both served by the gateway itself
(``/console/static``): the Content-Security-Policy allows nothing else, so no inline ``<script>``, no
inline ``<style>`` and no ``style=""`` attribute in a template (an inline ``<svg>`` with presentation
attributes such as ``fill=""`` is fine).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

if TYPE_CHECKING:
    from gateway.webconsole.session import ConsoleUser

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Việt Nam keeps +07:00 all year (no daylight saving), so a fixed offset is exact.
VN = timezone(timedelta(hours=7), "+07:00")

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
                           "object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: The navigation bar: (path, label).
NAV: tuple[tuple[str, str], ...] = (
    ("/console", "Tổng quan"),
    ("/console/documents", "Văn bản"),
    ("/console/deliveries", "Chuyển phát"),
    ("/console/agencies", "Cơ quan"),
    ("/console/report", "Báo cáo"),
)


def vntime(value: datetime | None) -> str:
    """An instant as Vietnamese readers write it, in +07:00: ``dd/mm/yyyy HH:MM:SS (+07:00)``."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # stored instants are UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(VN).strftime("%d/%m/%Y %H:%M:%S") + " (+07:00)"


def filesize(value: int | None) -> str:
    """A byte count for people: ``512 B``, ``1,5 KB``, ``12,0 MB`` (decimal comma, as Vietnamese writes it)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}".replace(".", ",")
        size /= 1024
    raise AssertionError("unreachable")


def shorthash(value: str | None) -> str:
    return "—" if not value else value[:12]


def duration(seconds: float | None) -> str:
    """An age for people: ``45 giây``, ``12 phút``, ``3 giờ 5 phút``, ``2 ngày 4 giờ``."""
    if seconds is None:
        return "—"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} ngày {hours} giờ"
    if hours:
        return f"{hours} giờ {minutes} phút"
    if minutes:
        return f"{minutes} phút"
    return f"{secs} giây"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml", "svg"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["vntime"] = vntime
    env.filters["filesize"] = filesize
    env.filters["shorthash"] = shorthash
    env.filters["duration"] = duration
    return env


environment = _environment()


def render(request: Request, template: str, context: dict[str, Any], *, user: ConsoleUser | None,
           status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """A console page: ``template`` with ``context`` plus the signed-in ``user``, the session's CSRF token
    (every POST form carries it as ``csrf_token``), the navigation and the current path."""
    path = request.url.path
    page: dict[str, Any] = {
        "request": request,
        "user": user,
        "csrf_token": user.csrf_token if user is not None else context.get("csrf_token", ""),
        "nav": [(href, label, path == href or (href != "/console" and path.startswith(href + "/")))
                for href, label in NAV],
        "path": path,
        **context,
    }
    html = environment.get_template(template).render(page)
    return HTMLResponse(html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})
