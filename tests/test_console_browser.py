"""The operator console in a real headless Chromium against a real ``gateway serve`` (delivery workers on), on
SQLite and PostgreSQL: an admin signs in, finds a document by its DocumentId, opens its trace, retries its dead
delivery (the recipient's system then accepts it), verifies the ledger, watches the live event list, signs out;
an auditor sees no retry and a retry forged in their name is refused; a form without its CSRF token is
refused. Only the element ids of the console contract are used. Each test keeps a screenshot under its
``tmp_path``, and no page asks anything of a host other than the gateway's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from browser_support import (
    ADMIN,
    AUDITOR,
    WAIT,
    ConsoleWorld,
    Served,
    chromium_for,
    console_world,
    document_statuses,
    foreign_requests,
    network_events,
    requested_urls,
    save_png,
    served_gateway,
    until,
    wait_for,
    wait_until,
)
from gateway.config import Settings
from gateway.envelope import derive_document_id
from gw import submit


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    with served_gateway(settings, tmp_path) as gateway:
        yield gateway


@pytest.fixture
async def world(served: Served) -> AsyncIterator[ConsoleWorld]:
    async with console_world(served) as made:
        yield made


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDriver]:
    with chromium_for(request, tmp_path) as driver:
        yield driver


def sign_in(driver: WebDriver, base: str, token: str) -> None:
    """Through the real form, starting where an operator starts: ``/console`` sends them to the sign-in page."""
    driver.get(f"{base}/console")
    wait_for(driver, "#login-form", "the sign-in form")
    assert urlsplit(driver.current_url).path == "/console/login", driver.current_url
    driver.find_element(By.CSS_SELECTOR, "#token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-submit").click()
    wait_for(driver, "#figures", "the overview's figures")
    assert urlsplit(driver.current_url).path == "/console", driver.current_url


def go(driver: WebDriver, href: str, ready: str) -> None:
    """Follow the navigation link to ``href`` (as an operator clicks it) and wait for ``ready``."""
    driver.find_element(By.CSS_SELECTOR, f'nav a[href="{href}"]').click()
    wait_until(driver, lambda d: urlsplit(d.current_url).path == href, f"the page {href}")
    wait_for(driver, ready)


def dead_row(driver: WebDriver, world: ConsoleWorld) -> WebElement:
    return wait_for(driver, f'tr[data-delivery="{world.dead_delivery}"]', "the dead delivery's row")


def forge(driver: WebDriver, action: str, fields: dict[str, str]) -> None:
    """A form that the page never offered, put into it and submitted: a POST to ``action`` with ``fields``."""
    driver.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = arguments[0];
        for (const [name, value] of Object.entries(arguments[1])) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value;
            form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
        """, action, fields)


def reloaded(driver: WebDriver, old: WebElement, what: str) -> None:
    def gone(_: WebDriver) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        return False

    wait_until(driver, gone, what)
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", what)


async def test_an_admin_finds_a_document_retries_its_dead_delivery_verifies_the_ledger_and_signs_out(
    world: ConsoleWorld, browser: WebDriver, tmp_path: Path
) -> None:
    base = world.served.base
    network_events(browser)

    # A wrong token is refused on the sign-in page, with the reason.
    browser.get(f"{base}/console/login")
    browser.find_element(By.CSS_SELECTOR, "#token").send_keys("gw_not-a-token-of-this-gateway")
    browser.find_element(By.CSS_SELECTOR, "#login-submit").click()
    assert wait_for(browser, "#flash", "the refusal").text.strip()
    assert not browser.find_elements(By.CSS_SELECTOR, "#figures")

    sign_in(browser, base, world.served.admin_token)
    assert ADMIN in browser.find_element(By.TAG_NAME, "body").text  # the Vietnamese name, intact

    # Find the document by its DocumentId.
    go(browser, "/console/documents", "#search-form")
    field = browser.find_element(By.CSS_SELECTOR, '#search-form input[name="document_id"]')
    field.send_keys(world.document_id, Keys.ENTER)
    wait_until(browser, lambda d: "document_id=" in d.current_url, "the search's answer")
    links = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results a.document-link"),
                       "the search's results")
    assert [urlsplit(a.get_attribute("href") or "").path for a in links] == [f"/console/documents/{world.document}"]

    # Its trace: accepted, then the push refused for good; the Vietnamese subject as sent.
    links[0].click()
    wait_for(browser, '#timeline li[data-type="envelope.accepted"]', "the acceptance in the timeline")
    assert browser.find_elements(By.CSS_SELECTOR, '#timeline li[data-type="delivery.dead"]')
    assert browser.find_elements(By.CSS_SELECTOR, f'#recipients tr[data-recipient="{world.recipient}"] td.state')
    assert world.subject in browser.find_element(By.TAG_NAME, "body").text
    for section in ("#attachments", "#deviations", "#receipt-download"):
        assert browser.find_elements(By.CSS_SELECTOR, section), section
    trace_url = browser.current_url
    save_png(browser, tmp_path / "console-trace.png")

    # Retry the dead delivery: the page answers, and the recipient's system now accepts the push.
    go(browser, "/console/deliveries", f'tr[data-delivery="{world.dead_delivery}"]')
    row = dead_row(browser, world)
    before = row.find_element(By.CSS_SELECTOR, "td.state").text
    row.find_element(By.CSS_SELECTOR, "form.retry button.retry").click()
    reloaded(browser, row, "the deliveries page after the retry")

    def answered(d: WebDriver) -> bool:
        rows = d.find_elements(By.CSS_SELECTOR, f'tr[data-delivery="{world.dead_delivery}"]')
        changed = not rows or rows[0].find_element(By.CSS_SELECTOR, "td.state").text != before
        return changed or bool(d.find_elements(By.CSS_SELECTOR, "#flash, .flash"))

    wait_until(browser, answered, "the retried row's new state or a flash")
    assert await until(lambda: _delivered(world), "the retried push to be delivered")
    [requeued] = await world.ledger("delivery.requeued")
    assert requeued["actor"] == f"operator:{ADMIN}"
    assert requeued["details"]["delivery"] == world.dead_delivery
    browser.get(trace_url)
    wait_for(browser, '#timeline li[data-type="delivery.requeued"]', "the retry in the timeline")
    assert browser.find_elements(By.CSS_SELECTOR, '#timeline li[data-type="delivery.delivered"]')

    # Verify the ledger from the overview.
    go(browser, "/console", "#verify-form")
    button = browser.find_element(By.CSS_SELECTOR, "#verify-ledger")
    button.click()
    reloaded(browser, button, "the overview after verifying")
    assert wait_for(browser, "#verify-result", "the verification's result").get_attribute("data-ok") == "true"
    save_png(browser, tmp_path / "console-overview.png")

    # The live list follows the ledger: a document sent now appears without reloading the page.
    wait_for(browser, "#events")
    document_id = derive_document_id(world.sender.code, date.today(), "16", "VPCP-KSTT")
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as api:
        r = await submit(api, world.sender, world.sender.envelope(world.pull, document_id=document_id,
                                                                     code_number="16", code_notation="VPCP-KSTT"))
    assert r.status_code == 201, r.text
    wait_until(browser, lambda d: document_id in d.find_element(By.CSS_SELECTOR, "#events").text,
               "the new document in the live event list")

    # Nothing was asked of any host but the gateway's.
    assert foreign_requests(requested_urls(network_events(browser))) == []

    # Sign out: the console sends to the sign-in page again, and the old session cookie is dead on the server.
    cookies = browser.get_cookies()
    assert cookies
    browser.find_element(By.CSS_SELECTOR, "#logout").click()
    wait_for(browser, "#login-form", "the sign-in page after signing out")
    for cookie in cookies:
        browser.add_cookie(cookie)
    browser.get(f"{base}/console")
    wait_for(browser, "#login-form", "the sign-in page for the ended session")
    assert urlsplit(browser.current_url).path == "/console/login"
    assert not browser.find_elements(By.CSS_SELECTOR, "#figures")


async def _delivered(world: ConsoleWorld) -> bool:
    return (await world.recipient_state())[0] == "delivered"


async def test_an_auditor_sees_the_dead_delivery_but_cannot_retry_it(
    world: ConsoleWorld, browser: WebDriver, tmp_path: Path
) -> None:
    base = world.served.base
    sign_in(browser, base, world.served.auditor_token)
    assert AUDITOR in browser.find_element(By.TAG_NAME, "body").text
    go(browser, "/console/deliveries", f'tr[data-delivery="{world.dead_delivery}"]')
    dead_row(browser, world)
    assert browser.find_elements(By.CSS_SELECTOR, "button.retry, form.retry") == []
    save_png(browser, tmp_path / "auditor-deliveries.png")

    # The same POST an admin's form makes, with the auditor's own valid CSRF token: refused.
    csrf = browser.find_element(By.CSS_SELECTOR, '#logout-form input[name="csrf_token"]').get_attribute("value")
    assert csrf
    network_events(browser)
    path = f"/console/deliveries/{world.dead_delivery}/retry"
    forge(browser, f"{base}{path}", {"csrf_token": csrf})
    wait_until(browser, lambda d: urlsplit(d.current_url).path == path, "the forged retry's answer")
    assert document_statuses(network_events(browser), "POST", path) == [403]
    assert await world.recipient_state() == ("dead", 1)
    assert await world.ledger("delivery.requeued") == []


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    world: ConsoleWorld, browser: WebDriver, tmp_path: Path
) -> None:
    base = world.served.base
    path = f"/console/deliveries/{world.dead_delivery}/retry"
    sign_in(browser, base, world.served.admin_token)
    go(browser, "/console/deliveries", f'tr[data-delivery="{world.dead_delivery}"]')

    # The page's own retry form with its hidden csrf_token field taken out.
    form = dead_row(browser, world).find_element(By.CSS_SELECTOR, "form.retry")
    hidden = form.find_element(By.CSS_SELECTOR, 'input[name="csrf_token"]')
    browser.execute_script("arguments[0].remove()", hidden)
    network_events(browser)
    form.find_element(By.CSS_SELECTOR, "button.retry").click()
    wait_until(browser, lambda d: "console-csrf-invalid" in d.page_source, "the CSRF refusal page")
    assert document_statuses(network_events(browser), "POST", path) == [403]
    save_png(browser, tmp_path / "csrf-refused.png")

    # A form forged into a page of the console, with a token that is not the session's.
    browser.get(f"{base}/console")
    wait_for(browser, "#figures")
    forge(browser, f"{base}{path}", {"csrf_token": "f" * 43})
    wait_until(browser, lambda d: urlsplit(d.current_url).path == path, "the forged retry's answer")
    wait_until(browser, lambda d: "console-csrf-invalid" in d.page_source, "the CSRF refusal page")
    assert document_statuses(network_events(browser), "POST", path) == [403]

    assert await world.recipient_state() == ("dead", 1)
    assert await world.ledger("delivery.requeued") == []
