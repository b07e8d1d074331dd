"""Headless Chromium for the tests that open a page as a person would.

Debian's browser, driven by selenium through its chromedriver or by Playwright through
``executable_path``, so nothing is downloaded (never ``playwright install``). The
dashboard's tests also inject axe-core, the npm package pinned with its hash in
``package-lock.json`` (``npm ci`` in the repository puts it in ``node_modules``, or
``SETPOINT_AXE`` names an ``axe.min.js``).
Without them a browser test skips, except when ``SETPOINT_REQUIRE_BROWSER=1`` (set by
CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

REQUIRE_BROWSER = os.environ.get("SETPOINT_REQUIRE_BROWSER", "") not in ("", "0")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE_VERSION = "4.14.1"
_REPO = Path(__file__).resolve().parent.parent
# WCAG 2.1 A and AA: what the dashboard promises (architecture.md, "The dashboard").
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail when CI requires the browser."""
    if REQUIRE_BROWSER:
        pytest.fail(reason + " (SETPOINT_REQUIRE_BROWSER is set, so this fails)")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium(*, network_log: bool = False) -> Iterator[Any]:
    """A headless Chromium WebDriver keeping its console log (and, with
    ``network_log``, the DevTools performance log, which lists every request)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - selenium is in the dev extra
        missing.append("selenium")
    if missing:
        unavailable(
            f"headless browser not available (missing {', '.join(missing)}); install it with: "
            "apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    logs = {"browser": "ALL", **({"performance": "ALL"} if network_log else {})}
    options.set_capability("goog:loggingPrefs", logs)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (needs ``network_log``)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


# -- Playwright -------------------------------------------------------------------------


@contextlib.contextmanager
def playwright_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in the dev extra
        unavailable("playwright is not installed; pip install -c constraints.txt -e '.[dev]'")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing; install it with: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # No update checks, field trials or the like: the page's own requests only.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def axe_source() -> str:
    """axe-core's script: ``SETPOINT_AXE``, else the repository's ``node_modules``."""
    given = os.environ.get("SETPOINT_AXE")
    path = Path(given) if given else _REPO / "node_modules" / "axe-core" / "axe.min.js"
    if not path.is_file():
        unavailable(
            f"axe-core not found at {path}; install it in the repository with: npm ci "
            f"(or npm install --no-save axe-core@{AXE_VERSION}, or set SETPOINT_AXE to an "
            "axe.min.js)"
        )
    return path.read_text(encoding="utf-8")


def axe_violations(page: Page, source: str) -> list[str]:
    """The serious and critical WCAG 2.1 A/AA violations axe finds on ``page``, each
    with the elements it found them on. The script is evaluated through the DevTools
    protocol, which the page's Content-Security-Policy does not govern."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source)
    found = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")),
            }));
        }""",
        list(AXE_TAGS),
    )
    return [
        f"axe {v['impact']} {v['id']}: {v['help']} at {', '.join(v['targets'][:8])}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@dataclass
class Watcher:
    """What a page did that a person would not want to see: console errors (CSP
    violations are among them), uncaught exceptions, failed requests, error responses
    and requests to anywhere but ``origin`` (nothing may leave the machine)."""

    origin: str
    problems: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    expected_status: dict[str, int] = field(default_factory=dict)  # url -> an error page's

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        return page

    def take(self) -> list[str]:
        """The problems since the last call."""
        problems, self.problems = self.problems, []
        return problems

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            where = message.location.get("url", "")
            if self.expected_status.get(where) and "status of" in message.text:
                return  # Chromium's note that the error page we asked for was an error
            self.problems.append(f"console {message.type}: {message.text} ({where})")

    def _request(self, request: Request) -> None:
        self.requested.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme != "data" and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.problems.append(f"request leaves {self.origin}: {request.method} {request.url}")

    def _failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # cut short by the test's next navigation (CSP would say ERR_BLOCKED_BY_CSP)
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        expected = self.expected_status.get(response.url)
        if response.status >= 400 and response.status != expected:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )
