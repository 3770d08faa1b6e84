"""Write the README's two console screenshots, ``docs/console-overview.png`` and ``docs/console-trace.png``
(1366x768, the console's smallest supported screen), from a real gateway with the demo's data.

    .venv/bin/python scripts/console_screenshots.py        # or: make screenshots

It runs ``gateway demo``'s story (a real ``gateway serve`` in a temporary directory, three agencies, a signed
Công văn delivered by push and by pull, the statuses back, the ledger verified), then signs in to the console
in a headless Chromium (the OS packages ``chromium`` and ``chromium-driver``, started as the browser tests start
it), verifies the ledger on the overview and opens the document's trace. Nothing is downloaded; the temporary
directory is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' Chromium: same flags, same driver

from browser_support import browser_missing, save_png, start_chromium, wait_for  # noqa: E402
from gateway.auth.service import AuthService  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.db import create_database  # noqa: E402
from gateway.demo import Demo, run_story  # noqa: E402

OPERATOR = "Nguyễn Thị Lan"


class ConsoleScreenshots(Demo):
    """The demo's story, then the two screenshots (``out`` is set before the story runs)."""

    out: Path = ROOT / "docs"
    base: str = ""

    def start_gateway(self) -> str:
        self.base = super().start_gateway()
        return self.base

    def console_token(self) -> str:
        url = Settings(data_dir=self.workdir / "var").effective_database_url

        async def create() -> str:
            db = create_database(url)
            try:
                async with db.transaction() as session:
                    _, _, token = await AuthService(session).create_operator(OPERATOR, "admin",
                                                                              actor="console:screenshots")
                    return token
            finally:
                await db.dispose()

        return asyncio.run(create())

    def run(self) -> None:
        super().run()
        self.say("")
        self.say(f"[9] console           {self.base}/console in headless Chromium, 1366x768")
        driver = start_chromium(self.workdir / "chromium-profile")
        try:
            driver.get(f"{self.base}/console/login")
            wait_for(driver, "#token").send_keys(self.console_token())
            driver.find_element("css selector", "#login-submit").click()
            wait_for(driver, "#figures")
            driver.find_element("css selector", "#verify-ledger").click()
            wait_for(driver, "#verify-result")
            self.shot(driver, "console-overview.png")

            driver.get(f"{self.base}/console/documents?sender=000.00.00.G22&kind=document")
            wait_for(driver, "#results a.document-link").click()
            timeline = wait_for(driver, '#timeline li[data-type="envelope.accepted"]')
            # The timeline is the trace's point: scroll it to the top, its heading just above.
            driver.execute_script(
                "const list = arguments[0].closest('#timeline');"
                "const top = (list.previousElementSibling || list).getBoundingClientRect().top;"
                "window.scrollTo(0, top + window.scrollY - 16);", timeline)
            self.shot(driver, "console-trace.png")
        finally:
            driver.quit()

    def shot(self, driver: Any, name: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        data = save_png(driver, self.out / name)
        self.say(f"    {self.out / name}  ({len(data)} bytes, {driver.current_url.removeprefix(self.base)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="directory for the two PNG files")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run")
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    ConsoleScreenshots.out = args.out
    return run_story(ConsoleScreenshots, timeout=args.timeout, keep=False)


if __name__ == "__main__":
    sys.exit(main())
