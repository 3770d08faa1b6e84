"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) against a real
``gateway serve`` on 127.0.0.1, for the console and ``/docs`` tests.

The test modules' fixtures are thin wrappers of the context managers here: ``served_gateway`` (the gateway,
with delivery workers, an admin and an auditor made with ``gateway operator create``), ``console_world``
(agencies registered and a document submitted over HTTP, one of its push deliveries dead) and ``chromium_for``
(one Chromium per test; on failure its screenshot and page source are kept under the test's ``tmp_path``).
Chromium and chromedriver missing is a skip locally and a failure under ``CI=true`` (``.ci/run`` installs
them).

Chromium runs with a fresh profile and without its own background traffic (component updates, sync, field
trials): on a closed network those connections are refused, and a test here asserts that the browser asked
nothing of any host but the gateway's.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from delivery_support import Recipient, fail_first
from gateway.config import Settings
from gateway.envelope import derive_document_id
from gw import Agency, register, submit
from pg import free_port
from real_processes import gateway_cli, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: the bound of every explicit wait, page load and script
WAIT = 20.0
WINDOW = (1366, 768)
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    "--metrics-recording-only", "--disable-features=Translate,OptimizationHints,MediaRouter",
    f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=vi-VN",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the operators ``served_gateway`` makes (Vietnamese names: they must survive the CLI, the database and the page)
ADMIN = "Trần Thị Hoa"
AUDITOR = "Lê Văn Kiểm"


def browser_missing() -> str | None:
    """Why Chromium cannot run here, or None when it can."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return None
    return (f"{' and '.join(missing)} missing: install the Debian packages chromium and chromium-driver "
            "(README, 'OS packages'; .ci/run installs them)")


def require_browser() -> None:
    """Skip when Chromium is missing, except under ``CI=true``, where that fails the test."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: they must be here)")
    pytest.skip(reason + "; CI=true makes this a failure")


def start_chromium(profile: Path) -> WebDriver:
    """Headless Chromium with a fresh profile under ``profile``, its network log on, bounded page loads and
    scripts. The driver is the OS package's: Selenium Manager never downloads anything."""
    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # The page itself gets the whole 1366x768 (the window's size also counts the browser's own bars).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


# -- what the browser did ----------------------------------------------------------------------------------------

def network_events(driver: WebDriver) -> list[dict[str, Any]]:
    """The DevTools ``Network.*`` events logged since the last call (the log is drained by reading it)."""
    events = []
    log: list[dict[str, Any]] = driver.get_log("performance")  # type: ignore[no-untyped-call]
    for entry in log:
        message = json.loads(entry["message"])["message"]
        if str(message.get("method", "")).startswith("Network."):
            events.append(message)
    return events


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


def foreign_requests(urls: list[str], host: str = "127.0.0.1") -> list[str]:
    """The URLs that went over the network to a host other than ``host`` (``data:`` and ``blob:`` stay in the
    browser)."""
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).hostname != host]


def document_statuses(events: list[dict[str, Any]], method: str, path: str) -> list[int]:
    """The HTTP statuses of the main-frame answers to ``method path`` among ``events``."""
    wanted = {e["params"]["requestId"] for e in events if e["method"] == "Network.requestWillBeSent"
              and e["params"]["request"]["method"] == method and urlsplit(e["params"]["request"]["url"]).path == path}
    return [int(e["params"]["response"]["status"]) for e in events
            if e["method"] == "Network.responseReceived" and e["params"]["requestId"] in wanted]


def save_png(driver: WebDriver, path: Path) -> bytes:
    """A screenshot of the page at ``path``; its bytes, checked to be a real PNG of the window's size."""
    assert driver.save_screenshot(str(path)), path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == WINDOW, (width, height)
    # A blank page compresses to a few hundred bytes; a rendered page with text is tens of kilobytes.
    assert len(data) > 10_000, len(data)
    return data


def wait_for(driver: WebDriver, css: str, what: str | None = None, timeout: float = WAIT) -> WebElement:
    """The first element matching ``css`` once it is present (at most ``timeout`` seconds)."""
    try:
        found: WebElement = WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css))
    except TimeoutException:
        raise AssertionError(f"no {what or css} on {driver.current_url} within {timeout:g} s") from None
    return found


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float = WAIT) -> Any:
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:g} s on {driver.current_url} waiting for {what}") from None


# -- the gateway -------------------------------------------------------------------------------------------------

@dataclass
class Served:
    base: str
    env: dict[str, str]
    admin_token: str
    auditor_token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@contextmanager
def served_gateway(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    """``gateway serve`` on a free loopback port, on the ``settings`` fixture's database (SQLite and PostgreSQL),
    delivery workers on and quick; an admin and an auditor made as an operator would (``gateway operator
    create``, the token on the last line). Its log: ``tmp_path/serve.log``. Only the browser tests start it,
    so Chromium missing skips (or fails, see ``require_browser``) before anything starts."""
    require_browser()
    port = free_port()
    assert settings.signing_key_file is not None
    assert settings.signing_cert_file is not None
    env = {**os.environ, "GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_PORT": str(port),
           "GATEWAY_DATABASE_URL": settings.effective_database_url, "GATEWAY_RUN_WORKERS": "true",
           # one process, as on SQLite (`--workers` defaults to one per core on PostgreSQL)
           "GATEWAY_WORKERS": "1",
           "GATEWAY_WORKER_POLL_SECONDS": "0.1", "GATEWAY_LOG_LEVEL": "warning",
           "GATEWAY_SIGNING_KEY_FILE": str(settings.signing_key_file),
           "GATEWAY_SIGNING_CERT_FILE": str(settings.signing_cert_file)}
    # The operators are made while the gateway starts (three processes at once: each start takes seconds).
    with ThreadPoolExecutor(2) as pool:
        made = {role: pool.submit(gateway_cli, env, "operator", "create", name, "--role", role)
                for name, role in ((ADMIN, "admin"), (AUDITOR, "auditor"))}
        with serving(env, port, tmp_path, tmp_path / "serve.log"):
            tokens = {role: out.result().strip().splitlines()[-1] for role, out in made.items()}
            yield Served(f"http://127.0.0.1:{port}", env, tokens["admin"], tokens["auditor"])


@dataclass
class ConsoleWorld:
    """What the console tests look at: one signed document from G22 to H41 (push, whose system refused the
    first push for good: that delivery is dead) and H42 (pull)."""

    served: Served
    sender: Agency
    pull: Agency  # H42, a pull recipient of the same document
    document: str  # the gateway's id
    document_id: str  # the edXML DocumentId
    subject: str
    recipient: str  # the push recipient whose delivery is dead
    dead_delivery: str

    async def recipient_state(self) -> tuple[str, int]:
        """The dead recipient's (state, attempts), as the API shows them to the sender."""
        async with httpx.AsyncClient(base_url=self.served.base, timeout=WAIT) as api:
            r = await api.get(f"/v1/documents/{self.document}", headers=self.sender.headers)
        assert r.status_code == 200, r.text
        [row] = [x for x in r.json()["recipients"] if x["code"] == self.recipient]
        return row["state"], row["attempts"]

    async def ledger(self, type_: str) -> list[dict[str, Any]]:
        """The document's ledger entries of one type (``GET /v1/ledger`` as the admin)."""
        async with httpx.AsyncClient(base_url=self.served.base, timeout=WAIT) as api:
            r = await api.get("/v1/ledger", params={"document": self.document, "type": type_},
                              headers=self.served.admin)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


async def until(check: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Await ``check()`` until it is truthy (at most ``within`` seconds); its value."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def console_world(served: Served) -> AsyncIterator[ConsoleWorld]:
    """Agencies registered and a document submitted over the real server's HTTP API; the push recipient's
    system answers its first push 404 (a permanent refusal: the delivery goes dead at once) and accepts every
    later one, so a retry from the console is seen to deliver."""
    system = Recipient("000.00.00.H41", script=fail_first(1, status=404)).start()
    try:
        async with httpx.AsyncClient(base_url=served.base, timeout=WAIT) as api:
            sender = await register(api, served.admin, "000.00.00.G22", "Văn phòng Chính phủ")
            push = await register(api, served.admin, "000.00.00.H41", "UBND tỉnh Nghệ An", delivery=system.delivery)
            pull = await register(api, served.admin, "000.00.00.H42", "UBND tỉnh Hà Tĩnh")
            subject = "Về việc thử nghiệm bảng điều khiển: Công văn số 15 gửi Sở Y tế"
            document_id = derive_document_id(sender.code, date.today(), "15", "VPCP-KSTT")
            r = await submit(api, sender, sender.envelope(push, pull, document_id=document_id, code_number="15",
                                                          code_notation="VPCP-KSTT", subject=subject))
            assert r.status_code == 201, r.text
            document = r.headers["X-Gateway-Document-Id"]
        world = ConsoleWorld(served, sender, pull, document, document_id, subject, push.code, "")
        [dead] = await until(lambda: world.ledger("delivery.dead"), "the push delivery to go dead")
        world.dead_delivery = dead["details"]["delivery"]
        assert await world.recipient_state() == ("dead", 1)
        yield world
    finally:
        system.stop()


# -- the browser -------------------------------------------------------------------------------------------------

_FAILED = pytest.StashKey[bool]()


class _Outcomes:
    """Marks a test whose call failed (the browser fixture keeps evidence of it at teardown)."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when == "call" and report.failed:
            item.stash[_FAILED] = True
        return report


@contextmanager
def chromium_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDriver]:
    """One headless Chromium for the test, quit afterwards; if the test failed, its last screenshot and page
    source are kept as ``tmp_path/failure.png`` and ``failure.html``. Chromium missing: see ``require_browser``."""
    require_browser()
    manager = request.config.pluginmanager
    if not manager.has_plugin("browser-outcomes"):
        manager.register(_Outcomes(), "browser-outcomes")
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        if request.node.stash.get(_FAILED, False):
            try:
                driver.save_screenshot(str(tmp_path / "failure.png"))
                (tmp_path / "failure.html").write_text(driver.page_source, encoding="utf-8")
                print(f"browser evidence: {tmp_path / 'failure.png'}, {tmp_path / 'failure.html'} "
                      f"(at {driver.current_url})")
            except Exception as exc:  # the evidence is a help; the failure is already reported
                print(f"no browser evidence: {exc!r}")
        driver.quit()
