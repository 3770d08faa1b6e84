"""``/docs`` (Swagger UI) and ``/redoc`` render in a real headless Chromium against a real ``gateway serve`` with
every script, style sheet and font served by the gateway itself: on a closed government network a public CDN
is unreachable and the pages would stay blank. Chromium's network log shows every request it made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from browser_support import (
    WAIT,
    Served,
    chromium_for,
    foreign_requests,
    network_events,
    requested_urls,
    save_png,
    served_gateway,
    wait_until,
)
from gateway.config import Settings


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    with served_gateway(settings, tmp_path) as gateway:
        yield gateway


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDriver]:
    with chromium_for(request, tmp_path) as driver:
        yield driver


def _title(served: Served) -> str:
    r = httpx.get(f"{served.base}/openapi.json", timeout=WAIT)
    assert r.status_code == 200, r.text
    title: str = r.json()["info"]["title"]
    assert title
    return title


def _scripts_from_the_gateway(served: Served, browser: WebDriver) -> list[str]:
    """Every URL the page asked for (none outside 127.0.0.1), having checked that its scripts came from the
    gateway and loaded (a 200 each)."""
    events = network_events(browser)
    urls = requested_urls(events)
    assert foreign_requests(urls) == [], foreign_requests(urls)
    # (ReDoc also starts a worker from a blob: URL, which the page made itself.)
    scripts = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in events
               if e["method"] == "Network.requestWillBeSent" and e["params"].get("type") == "Script"
               and urlsplit(e["params"]["request"]["url"]).scheme in ("http", "https")}
    assert scripts, urls
    assert all(u.startswith(served.base + "/") for u in scripts.values()), scripts
    answered = {e["params"]["requestId"]: e["params"]["response"]["status"] for e in events
                if e["method"] == "Network.responseReceived" and e["params"]["requestId"] in scripts}
    assert answered == dict.fromkeys(scripts, 200), (scripts, answered)
    return urls


async def test_swagger_ui_renders_with_its_assets_from_the_gateway(
    served: Served, browser: WebDriver, tmp_path: Path
) -> None:
    title = _title(served)
    network_events(browser)  # drain whatever the browser did before the page
    browser.get(f"{served.base}/docs")
    wait_until(browser, lambda d: title in d.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text,
               "Swagger UI's title")
    # The operations are listed: the spec was fetched and rendered, not only the page's frame.
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 10, "the operations")
    save_png(browser, tmp_path / "docs.png")
    urls = _scripts_from_the_gateway(served, browser)
    assert f"{served.base}/openapi.json" in urls


async def test_redoc_renders_with_its_assets_from_the_gateway(
    served: Served, browser: WebDriver, tmp_path: Path
) -> None:
    title = _title(served)
    network_events(browser)
    browser.get(f"{served.base}/redoc")
    wait_until(browser, lambda d: any(title in h.text for h in d.find_elements(By.CSS_SELECTOR, "h1")),
               "ReDoc's title")
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-section-id*='operation/']")) > 10,
               "the operations")
    save_png(browser, tmp_path / "redoc.png")
    urls = _scripts_from_the_gateway(served, browser)
    assert {urlsplit(u).path for u in urls} >= {"/redoc", "/openapi.json"}
