"""The console's refusals and how they are shown: an HTML page, not problem+json.

A console page is read by a person in a browser, so every :class:`~gateway.problems.GatewayError` raised
under ``/console`` (by the console's own checks or by the services its pages call) is rendered as a page
that still carries the stable ``type`` slug; a signed-out or expired visitor is sent to the sign-in form.
Everywhere else the gateway's problem+json handlers answer as before (``install`` wraps them).

The console's own problem types are not answered over the documented API (its routes are not in the
OpenAPI spec), so ``tests/test_problem_types.py`` lists them as never in the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.problems import GatewayError, NotFound, RequestInvalid

PREFIX = "/console"


class ConsoleCsrfInvalid(GatewayError):
    """A console POST without the form's anti-forgery token, or with another session's (or a sign-in form
    posted without its double-submit cookie)."""

    status = 403
    slug = "console-csrf-invalid"
    title = "The form's anti-forgery token is missing or wrong; reload the page and try again"


class ConsoleOperatorTokenRequired(GatewayError):
    """An agency token offered at the console's sign-in: only operators sign in to the console."""

    status = 403
    slug = "console-operator-token-required"
    title = "Only an operator token signs in to the console"


class SignInRequired(Exception):
    """No console session, or one that ended, idled out, expired, or whose operator or token was revoked:
    the visitor is sent to the sign-in form, then back to ``next``."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign-in required")
        self.next_url = next_url


def login_url(next_url: str | None) -> str:
    if not next_url or not safe_next(next_url):
        return f"{PREFIX}/login"
    return f"{PREFIX}/login?next={quote(next_url, safe='/')}"


def safe_next(next_url: str) -> bool:
    """Only a console path is a place to go back to after sign-in (never another site: ``//evil``)."""
    return (next_url == PREFIX or next_url.startswith(PREFIX + "/")) and "\\" not in next_url \
        and not next_url.startswith("//") and all(" " < c < "\x7f" for c in next_url)


def _is_console(request: Request) -> bool:
    path = request.url.path
    return (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(PREFIX + "/static/")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _console_first(api_handler: Handler, console_handler: Handler) -> Handler:
    """A handler that answers console pages with ``console_handler`` and everything else as the API did."""

    async def handle(request: Request, exc: Exception) -> Response:
        if _is_console(request):
            return await console_handler(request, exc)
        return await api_handler(request, exc)

    return handle


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    # 303: a POST from an expired session becomes a GET of the form
    return RedirectResponse(login_url(exc.next_url), status_code=303, headers={"Cache-Control": "no-store"})


async def _on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _error_page(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, RequestInvalid("the form's values are not valid"))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _error_page(request, NotFound("no such page"))
    if exc.status_code == 405:
        return _error_page(request, RequestInvalid("this page does not take that kind of request"), status=405)
    return _error_page(request, RequestInvalid("the request was not understood"), status=exc.status_code)


def _error_page(request: Request, error: GatewayError, *, status: int | None = None) -> Response:
    from gateway.webconsole.render import render  # render imports this module's PREFIX

    user = getattr(request.state, "console_user", None)
    return render(request, "error.html", {"error": error}, user=user, status_code=status or error.status)


def install(app: FastAPI) -> None:
    """Console pages answer errors with HTML; call after :func:`gateway.problem_handlers.install`, whose
    handlers keep answering everything outside the console."""
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    for kind, console_handler in ((GatewayError, _on_gateway_error), (RequestValidationError, _on_validation_error),
                                  (StarletteHTTPException, _on_http_exception)):
        api_handler: Handler = app.exception_handlers[kind]  # type: ignore[assignment]  # Starlette's loose union
        app.add_exception_handler(kind, _console_first(api_handler, console_handler))
