"""Signing in to the web console the way a browser does, for the console's tests (in-process httpx)."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a console page's forms carry (the first ``csrf_token`` hidden field)."""
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token field on the page"
    return found.group(1)


async def console_sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign in through the real form (its double-submit cookie included) and return the session's CSRF
    token; ``client`` keeps the session cookie. Fails the test when the sign-in is refused."""
    form = await client.get("/console/login")
    assert form.status_code == 200, form.text
    answer = await client.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"
    overview = await client.get("/console")
    assert overview.status_code == 200, overview.text
    return csrf_of(overview.text)
