"""The sign-in form, signing in with an operator token, and signing out.

The sign-in form is protected against login CSRF (another site signing a visitor in to a session of its
choosing) by a double-submit token: the form's hidden ``csrf_token`` must equal the short-lived
``gateway_console_login`` cookie set with the form.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import SettingsDep
from gateway.problems import AgencySuspended, Unauthenticated
from gateway.webconsole.errors import ConsoleCsrfInvalid, ConsoleOperatorTokenRequired, safe_next
from gateway.webconsole.render import SECURITY_HEADERS, render
from gateway.webconsole.session import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_COOKIE_PATH,
    LOGIN_FORM_SECONDS,
    SESSION_COOKIE,
    CheckedConsoleUser,
    ConsoleSessionsDep,
    cookie_secure,
    csrf_matches,
)

router = APIRouter()


def _login_form(request: Request, *, secure: bool, next_url: str, flash: str | None = None,
                flash_slug: str | None = None, status_code: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"csrf_token": nonce, "next": next_url if safe_next(next_url) else "",
                                              "flash": flash, "flash_slug": flash_slug},
                      user=None, status_code=status_code)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_FORM_SECONDS, path=LOGIN_COOKIE_PATH, httponly=True,
                        samesite="strict", secure=secure)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, settings: SettingsDep, next: str = "") -> HTMLResponse:
    return _login_form(request, secure=cookie_secure(request, settings.console_cookie_secure), next_url=next)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    sessions: ConsoleSessionsDep,
    token: Annotated[str, Form(max_length=400)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    secure = cookie_secure(request, settings.console_cookie_secure)
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), csrf_token):
        raise ConsoleCsrfInvalid()
    try:
        secret, _ = await sessions.sign_in(token.strip())
    except ConsoleOperatorTokenRequired as refused:
        return _login_form(request, secure=secure, next_url=next, status_code=403, flash_slug=refused.slug,
                           flash="Đây là mã truy cập của một cơ quan: chỉ mã của người vận hành (quản trị hoặc "
                                 "kiểm soát) đăng nhập được bảng điều khiển.")
    except (Unauthenticated, AgencySuspended) as refused:
        return _login_form(request, secure=secure, next_url=next, status_code=401, flash_slug=refused.slug,
                           flash="Mã truy cập không đúng, đã bị thu hồi hoặc đã hết hạn.")
    response = RedirectResponse(next if safe_next(next) else "/console", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(SESSION_COOKIE, secret, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
    return response


@router.post("/logout")
async def logout(request: Request, user: CheckedConsoleUser, settings: SettingsDep,
                 sessions: ConsoleSessionsDep) -> Response:
    await sessions.sign_out(user)
    secure = cookie_secure(request, settings.console_cookie_secure)
    response = RedirectResponse("/console/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
    return response
