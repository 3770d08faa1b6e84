"""The web console (``/console``) in this process over httpx, both databases: signing in and out with the cookie's
flags, login CSRF, idle expiry, revocation; every page with the element ids the browser tests use, a strict
Content-Security-Policy and no asset from elsewhere; search, trace and receipt; the admin's retry of a dead delivery
ledgered with the operator, the auditor refused; the CSRF check on every POST; the live feed.
The same in a real Chromium against a real server: ``test_console_browser.py``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from console_support import console_sign_in, csrf_of
from delivery_support import Recipient, always, delivery_rows, eventually, ledger_types
from gateway.auth.models import ApiToken, Operator
from gateway.auth.service import AuthService
from gateway.config import Settings
from gateway.ledger.models import LedgerEntry
from gateway.webconsole.models import ConsoleSession
from gateway.webconsole.repository import ConsoleRepository
from gateway.webconsole.session import SESSION_COOKIE, session_id_of
from gw import Agency, register, submit
from test_ledger_verify import drop_append_only_guard, edit

G22, H41, H47 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H47"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The push worker on and quick, so that a recipient answering 404 makes a dead delivery within the test."""
    return settings.model_copy(update={
        "run_workers": True,
        "worker_poll_seconds": 0.05,
        "delivery_backoff_base_seconds": 0.05,
        "delivery_backoff_cap_seconds": 0.2,
        "delivery_max_attempts": 3,
        "delivery_timeout_seconds": 5.0,
        "events_poll_seconds": 0.05,
        "events_recheck_seconds": 0.1,
    })


@pytest.fixture
def servers() -> Iterator[list[Recipient]]:
    started: list[Recipient] = []
    yield started
    for server in started:
        server.stop()


def browser(app: FastAPI, base_url: str = "http://gateway.test") -> httpx.AsyncClient:
    """A client that keeps cookies, like a browser tab (and follows no redirect, to see them)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def operator(app: FastAPI, name: str, role: str) -> tuple[str, str]:
    """A new operator: (token id, token)."""
    async with app.state.db.transaction() as session:
        _, token_id, token = await AuthService(session).create_operator(name, role, actor="console:test")
    return token_id, token


def cookie_of(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


async def entries_of_type(app: FastAPI, kind: str) -> list[LedgerEntry]:
    async with app.state.db.read() as session:
        rows = await session.execute(select(LedgerEntry).where(LedgerEntry.type == kind).order_by(LedgerEntry.seq))
        return list(rows.scalars())


async def one_document(client: httpx.AsyncClient, admin_headers: dict[str, str], **spec: Any) -> tuple[Agency,
                                                                                                       Agency, str,
                                                                                                       bytes]:
    """G22 sends H41 (a pull agency) one document: (sender, recipient, gateway id, the receipt intake gave)."""
    sender = await register(client, admin_headers, G22, "Sở Tài chính")
    recipient = await register(client, admin_headers, H41, "Sở Y tế")
    answer = await submit(client, sender, sender.envelope(recipient, **spec))
    assert answer.status_code == 201, answer.text
    return sender, recipient, answer.headers["X-Gateway-Document-Id"], answer.content


# -- signing in and out ------------------------------------------------------------------------------------------

async def test_sign_in_with_an_operator_token_sets_an_http_only_strict_cookie_and_is_ledgered(app: FastAPI) -> None:
    _, token = await operator(app, "Nguyễn Văn An", "admin")
    async with browser(app) as tab:
        anonymous = await tab.get("/console/documents?q=x")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/console/login?next=/console/documents%3Fq%3Dx"
        form = await tab.get("/console/login")
        assert {"login-form", "token", "login-submit"} <= ids_in(form.text)
        login_cookie = cookie_of(form, "gateway_console_login")
        assert "HttpOnly" in login_cookie
        assert "SameSite=strict" in login_cookie
        assert "Path=/console/login" in login_cookie
        signed_in = await tab.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text),
                                                           "next": "/console/documents?q=x"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/documents?q=x"
        cookie = cookie_of(signed_in, SESSION_COOKIE)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/console;" in cookie + ";"
        assert "Secure" not in cookie  # plain http here; see the https case below
        secret = cookie.split(";")[0].split("=", 1)[1]
        page = await tab.get("/console")
        assert page.status_code == 200
        assert "Nguyễn Văn An" in page.text
    # only the secret's digest is stored
    async with app.state.db.read() as session:
        stored = await session.get(ConsoleSession, session_id_of(secret))
        assert stored is not None
        assert stored.ended_at is None
        assert secret not in json.dumps([stored.id, stored.csrf_token])
    [entry] = await entries_of_type(app, "console.signed_in")
    assert entry.actor == "operator:Nguyễn Văn An"
    assert secret not in entry.details
    assert token not in entry.details


async def test_the_cookie_is_secure_over_https_and_when_the_setting_says_so(app: FastAPI, settings: Settings) -> None:
    _, token = await operator(app, "admin", "admin")
    async with browser(app, "https://gateway.test") as tab:
        form = await tab.get("/console/login")
        answer = await tab.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text)})
        assert "Secure" in cookie_of(answer, SESSION_COOKIE)
    app.state.settings = settings.model_copy(update={"console_cookie_secure": True})  # TLS ended at a proxy
    async with browser(app) as tab:
        form = await tab.get("/console/login")
        assert "Secure" in cookie_of(form, "gateway_console_login")
        nonce = csrf_of(form.text)  # a client keeps a Secure cookie from plain http: the proxy's side of TLS
        answer = await tab.post("/console/login", data={"token": token, "csrf_token": nonce},
                                headers={"Cookie": f"gateway_console_login={nonce}"})
        assert "Secure" in cookie_of(answer, SESSION_COOKIE)


async def test_an_agency_token_or_an_unknown_one_is_refused_with_a_reason(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agency = await register(client, admin_headers, G22)
    async with browser(app) as tab:
        for token, status, slug in ((agency.token, 403, "console-operator-token-required"),
                                    ("gw_not-a-token", 401, "unauthenticated")):
            form = await tab.get("/console/login")
            refused = await tab.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text)})
            assert refused.status_code == status
            assert 'id="flash"' in refused.text
            assert slug in refused.text
            assert f"{SESSION_COOKIE}=" not in refused.headers.get("set-cookie", "")
        assert (await tab.get("/console")).status_code == 303
    assert await entries_of_type(app, "console.signed_in") == []


async def test_a_sign_in_without_its_form_token_is_refused(app: FastAPI) -> None:
    """Login CSRF: another site posting its own token to the form has no double-submit cookie."""
    _, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        forged = await tab.post("/console/login", data={"token": token, "csrf_token": "guessed"})
        assert forged.status_code == 403
        assert "console-csrf-invalid" in forged.text
        form = await tab.get("/console/login")
        wrong = await tab.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text) + "x"})
        assert wrong.status_code == 403
        assert f"{SESSION_COOKIE}=" not in wrong.headers.get("set-cookie", "")
    assert await entries_of_type(app, "console.signed_in") == []


async def test_sign_out_ends_the_session_and_the_old_cookie_no_longer_works(app: FastAPI) -> None:
    _, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        csrf = await console_sign_in(tab, token)
        secret = tab.cookies[SESSION_COOKIE]
        out = await tab.post("/console/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/login"
        assert 'gateway_console=""' in cookie_of(out, SESSION_COOKIE)
    async with browser(app) as stolen:  # the old cookie, replayed
        stolen.cookies.set(SESSION_COOKIE, secret, domain="gateway.test", path="/console")
        again = await stolen.get("/console")
        assert again.status_code == 303
        assert again.headers["location"].startswith("/console/login")
    [entry] = await entries_of_type(app, "console.signed_out")
    assert entry.actor == "operator:admin"


async def test_an_idle_session_is_ended_and_sent_to_sign_in_while_activity_keeps_one_alive(
    app: FastAPI, settings: Settings
) -> None:
    _, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        await console_sign_in(tab, token)
        session_id = session_id_of(tab.cookies[SESSION_COOKIE])
        # a page a minute ago: still signed in, and the page view counts as activity
        async with app.state.db.transaction() as session:
            await ConsoleRepository(session).set_last_seen(session_id, datetime.now(UTC) - timedelta(seconds=60))
        assert (await tab.get("/console")).status_code == 200
        async with app.state.db.read() as session:
            row = await session.get(ConsoleSession, session_id)
            assert row is not None
            assert datetime.now(UTC) - row.last_seen_at < timedelta(seconds=30)
        # nothing for longer than the idle limit: sent to sign in, and the session is over for good
        async with app.state.db.transaction() as session:
            await ConsoleRepository(session).set_last_seen(
                session_id, datetime.now(UTC) - timedelta(seconds=settings.console_idle_seconds + 1))
        idle = await tab.get("/console/deliveries")
        assert idle.status_code == 303
        assert idle.headers["location"] == "/console/login?next=/console/deliveries"
        async with app.state.db.transaction() as session:
            await ConsoleRepository(session).set_last_seen(session_id, datetime.now(UTC))
        assert (await tab.get("/console")).status_code == 303
        async with app.state.db.read() as session:
            row = await session.get(ConsoleSession, session_id)
            assert row is not None
            assert row.ended_at is not None


async def test_a_session_past_its_maximum_age_is_over(app: FastAPI) -> None:
    _, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        await console_sign_in(tab, token)
        session_id = session_id_of(tab.cookies[SESSION_COOKIE])
        async with app.state.db.transaction() as session:
            await session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id)
                                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert (await tab.get("/console")).status_code == 303


@pytest.mark.parametrize("revoked", ["token", "operator", "token-expired"])
async def test_a_session_ends_when_its_token_or_operator_is_revoked(app: FastAPI, revoked: str) -> None:
    token_id, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        await console_sign_in(tab, token)
        now = datetime.now(UTC)
        async with app.state.db.transaction() as session:
            if revoked == "token":
                await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now))
            elif revoked == "token-expired":
                await session.execute(update(ApiToken).where(ApiToken.id == token_id)
                                      .values(expires_at=now - timedelta(seconds=1)))
            else:
                await session.execute(update(Operator).where(Operator.name == "admin").values(revoked_at=now))
        gone = await tab.get("/console")
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/console/login")
        # and it cannot sign in again with that token
        form = await tab.get("/console/login")
        again = await tab.post("/console/login", data={"token": token, "csrf_token": csrf_of(form.text)})
        assert again.status_code == 401


# -- the CSRF check on every POST --------------------------------------------------------------------------------

async def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(app: FastAPI) -> None:
    _, token = await operator(app, "admin", "admin")
    _, other_token = await operator(app, "admin 2", "admin")
    async with browser(app) as other:
        others_csrf = await console_sign_in(other, other_token)
    async with browser(app) as tab:
        csrf = await console_sign_in(tab, token)
        for form in ({}, {"csrf_token": ""}, {"csrf_token": csrf[:-1]}, {"csrf_token": others_csrf}):
            for path in ("/console/verify", "/console/logout",
                         "/console/deliveries/00000000-0000-0000-0000-000000000000/retry"):
                refused = await tab.post(path, data=form)
                assert refused.status_code == 403, (path, form)
                assert "console-csrf-invalid" in refused.text
                assert refused.headers["content-security-policy"].startswith("default-src 'self'")
        # the refused sign-out did not sign out; the right token does
        assert (await tab.get("/console")).status_code == 200
        assert (await tab.post("/console/logout", data={"csrf_token": csrf})).status_code == 303
    assert await entries_of_type(app, "delivery.refused") == []


# -- pages -------------------------------------------------------------------------------------------------------

NO_OUTSIDE_ASSET = re.compile(r"""(?:src|href|action|data|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def assert_console_page(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert NO_OUTSIDE_ASSET.search(response.text) is None
    assert "<style" not in response.text
    assert " style=" not in response.text
    assert "<script>" not in response.text


async def test_every_page_renders_with_its_ids_a_strict_policy_and_nothing_from_elsewhere(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    _, _, doc, _ = await one_document(client, admin_headers)
    _, token = await operator(app, "Trần Thị Bình", "admin")
    async with browser(app) as tab:
        login = await tab.get("/console/login")
        assert_console_page(login)
        await console_sign_in(tab, token)
        expected = {
            "/console": {"figures", "verify-form", "verify-ledger", "events", "logout-form", "logout"},
            "/console/documents": {"search-form", "results"},
            f"/console/documents/{doc}": {"timeline", "recipients", "attachments", "deviations", "receipt-download"},
            "/console/deliveries": {"logout-form"},
        }
        for path, ids in expected.items():
            page = await tab.get(path)
            assert_console_page(page)
            assert ids <= ids_in(page.text), (path, ids - ids_in(page.text))
            for href in ("/console", "/console/documents", "/console/deliveries", "/console/agencies",
                         "/console/report"):
                assert f'href="{href}"' in page.text
        overview = await tab.get("/console")
        assert 'data-figure="documents-today"' in overview.text
        for static in ("/console/static/console.css", "/console/static/console.js"):
            asset = await tab.get(static)
            assert asset.status_code == 200
            assert NO_OUTSIDE_ASSET.search(asset.text) is None
            assert "http" not in asset.text
        missing = await tab.get("/console/no-such-page")
        assert missing.status_code == 404
        assert "not-found" in missing.text
        assert missing.headers["content-type"].startswith("text/html")
        unknown = await tab.get("/console/documents/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404
        assert "document-not-found" in unknown.text
        hostile = await tab.get("/console/documents", params={"q": '"><script>alert(1)</script>'})
        assert_console_page(hostile)  # the form shows the query back, escaped
        assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in hostile.text
        bad = await tab.get("/console/documents", params={"state": "asleep"})
        assert bad.status_code == 422
        assert 'id="flash"' in bad.text
        assert "document-filter-invalid" in bad.text
    # the API keeps answering problem+json
    api = await client.get("/v1/no-such-route")
    assert api.headers["content-type"].startswith("application/problem+json")


async def test_search_finds_a_document_by_document_id_and_its_trace_shows_the_ledger_and_the_receipt(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sender, recipient, doc, receipt = await one_document(client, admin_headers,
                                                         subject="Về việc tổ chức Hội nghị tổng kết năm 2026")
    other = await submit(client, sender, sender.envelope(recipient, subject="Báo cáo quý", code_number="77"))
    assert other.status_code == 201
    view = (await client.get(f"/v1/documents/{doc}", headers=admin_headers)).json()
    # the pull recipient fetches and acknowledges: the trace shows it received
    delivery = view["recipients"][0]["delivery_id"]
    assert (await client.get(f"/v1/inbox/{delivery}", headers=recipient.headers)).status_code == 200
    ack = await client.post(f"/v1/inbox/{delivery}/ack", json={"result": "done"}, headers=recipient.headers)
    assert ack.status_code == 200, ack.text
    _, token = await operator(app, "auditor", "auditor")
    async with browser(app) as tab:
        await console_sign_in(tab, token)
        found = await tab.get("/console/documents", params={"document_id": view["document_id"]})
        assert_console_page(found)
        # the document, and the gateway's status 01 about it (a status carries the DocumentId it is about)
        assert f'class="document-link" href="/console/documents/{doc}"' in found.text
        found = await tab.get("/console/documents", params={"document_id": view["document_id"], "kind": "document"})
        assert re.findall(r'class="document-link" href="([^"]+)"', found.text) == [f"/console/documents/{doc}"]
        by_subject = await tab.get("/console/documents", params={"q": "hội nghị tổng kết"})
        assert re.findall(r'class="document-link" href="([^"]+)"', by_subject.text) == [f"/console/documents/{doc}"]
        everything = await tab.get("/console/documents", params={"sender": G22, "kind": "document"})
        assert len(re.findall(r'class="document-link"', everything.text)) == 2

        trace = await tab.get(f"/console/documents/{doc}")
        assert_console_page(trace)
        timeline = re.search(r'<ol id="timeline".*?</ol>', trace.text, re.DOTALL)
        assert timeline is not None
        shown = re.findall(r'<li data-type="([^"]+)"', timeline.group(0))
        in_ledger = [t for t, _, _ in await ledger_types(app.state.db, doc)]
        assert shown[:len(in_ledger)] == in_ledger
        assert {"envelope.accepted", "delivery.fetched", "delivery.delivered"} <= set(shown)
        assert "status.auto_arrived" in shown or "status.accepted" in shown  # the gateway's status 01 about it
        row = re.search(rf'<tr data-recipient="{re.escape(H41)}".*?</tr>', trace.text, re.DOTALL)
        assert row is not None
        assert 'class="state state-delivered"' in row.group(0)
        assert view["attachments"][0]["sha256"] in trace.text
        assert "Về việc tổ chức Hội nghị tổng kết năm 2026" in trace.text
        assert "(+07:00)" in trace.text

        download = await tab.get(f"/console/documents/{doc}/receipt")
        assert download.status_code == 200
        assert download.headers["content-disposition"] == f'attachment; filename="receipt-{doc}.xml"'
        assert download.content == receipt  # the very bytes intake answered with
    async with browser(app) as anonymous:
        assert (await anonymous.get(f"/console/documents/{doc}/receipt")).status_code == 303


async def test_an_admin_retries_a_dead_delivery_ledgered_with_the_operator_and_an_auditor_cannot(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], servers: list[Recipient]
) -> None:
    gone = Recipient(H47, app.state.gateway_key.certificate, always(404)).start()
    servers.append(gone)
    sender = await register(client, admin_headers, G22)
    h47 = await register(client, admin_headers, H47, delivery=gone.delivery)
    doc = (await submit(client, sender, sender.envelope(h47))).headers["X-Gateway-Document-Id"]

    async def dead() -> bool:
        return (await delivery_rows(app.state.db, doc))[H47].state == "dead"

    await eventually(dead, what="dead delivery")
    delivery = (await delivery_rows(app.state.db, doc))[H47].id
    _, auditor_token = await operator(app, "Lê Kiểm Soát", "auditor")
    _, admin_token = await operator(app, "Phạm Quản Trị", "admin")

    async with browser(app) as auditor:
        csrf = await console_sign_in(auditor, auditor_token)
        page = await auditor.get("/console/deliveries")
        assert_console_page(page)
        assert f'<tr data-delivery="{delivery}"' in page.text
        assert 'class="retry' not in page.text
        forged = await auditor.post(f"/console/deliveries/{delivery}/retry", data={"csrf_token": csrf})
        assert forged.status_code == 403
        assert "urn:gateway:problem:forbidden" in forged.text
    assert (await delivery_rows(app.state.db, doc))[H47].state == "dead"

    async with browser(app) as admin:
        csrf = await console_sign_in(admin, admin_token)
        page = await admin.get("/console/deliveries", params={"state": "dead"})
        row = re.search(rf'<tr data-delivery="{delivery}".*?</tr>', page.text, re.DOTALL)
        assert row is not None
        action = f'action="/console/deliveries/{delivery}/retry"'
        assert f'<form class="retry inline" method="post" {action}>' in row.group(0)
        assert '<button type="submit" class="retry">' in row.group(0)
        retried = await admin.post(f"/console/deliveries/{delivery}/retry",
                                   data={"csrf_token": csrf, "reason": "đã sửa địa chỉ nhận", "back": "dead"})
        assert retried.status_code == 303
        assert retried.headers["location"] == f"/console/deliveries?done={delivery}&state=dead"
        # again while it is no longer dead: refused with the API's problem type, and ledgered as the API's
        await eventually(lambda: len(gone.all()) >= 2, what="the re-queued push")
        again = await admin.post(f"/console/deliveries/{delivery}/retry", data={"csrf_token": csrf})
        if again.status_code != 303:  # dead again already (the recipient still answers 404) is retryable
            assert again.status_code == 409
            assert "delivery-not-retryable" in again.text
    [requeued] = [e for e in await entries_of_type(app, "delivery.requeued") if e.document == doc][:1]
    assert requeued.actor == "operator:Phạm Quản Trị"
    details = json.loads(requeued.details)
    assert details["from_state"] == "dead"
    assert details["reason"] == "đã sửa địa chỉ nhận"
    assert all(e.actor != "operator:Lê Kiểm Soát" for e in await entries_of_type(app, "delivery.requeued"))


async def test_verifying_the_ledger_from_the_overview_shows_the_result(app: FastAPI) -> None:
    _, token = await operator(app, "auditor", "auditor")
    async with browser(app) as tab:
        csrf = await console_sign_in(tab, token)
        # no timestamping authority configured: the overview says so (tests/test_ledger_stamping.py: ok, failing)
        assert 'data-figure="timestamping" data-state="off"' in (await tab.get("/console")).text
        for mode in ("genesis", "checkpoint"):
            verified = await tab.post("/console/verify", data={"csrf_token": csrf, "mode": mode})
            assert_console_page(verified)
            assert 'id="verify-result" data-ok="true"' in verified.text
        # a broken chain says so (the same verification as GET /v1/ledger/verify)
        await drop_append_only_guard(app.state.db)
        await edit(app.state.db, 1)
        broken = await tab.post("/console/verify", data={"csrf_token": csrf})
        assert 'id="verify-result" data-ok="false"' in broken.text


# -- the live feed -----------------------------------------------------------------------------------------------

async def test_the_live_feed_streams_ledger_entries_and_ends_with_the_session(app: FastAPI) -> None:
    _, token = await operator(app, "admin", "admin")
    async with browser(app) as tab:
        await console_sign_in(tab, token)
        session_id = session_id_of(tab.cookies[SESSION_COOKIE])
        stream = asyncio.create_task(tab.get("/console/events", params={"after": "0"}))
        # an in-process client sees the body when the stream ends: end the session, the stream follows
        async with app.state.db.read() as session:
            head = (await session.execute(select(LedgerEntry.seq).order_by(LedgerEntry.seq.desc()).limit(1))).scalar()
        await asyncio.sleep(0.3)
        async with app.state.db.transaction() as session:
            await ConsoleRepository(session).end(session_id, datetime.now(UTC))
        answer = await asyncio.wait_for(stream, 10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    ids = [int(i) for i in re.findall(r"^id: (\d+)", answer.text, re.MULTILINE)]
    assert ids == list(range(1, (head or 0) + 1))
    data = [json.loads(d) for d in re.findall(r"^data: (\{.*\})\r?$", answer.text, re.MULTILINE)]
    assert data[-1] == {"reason": "the console session ended"}
    assert "console.signed_in" in [d.get("type") for d in data]
    assert "event: console.closed" in answer.text
    async with browser(app) as anonymous:
        assert (await anonymous.get("/console/events")).status_code == 303

