"""Headless Chromium for the tests that open a page as a person would.

Debian's browser and its chromedriver, driven by selenium, so nothing is downloaded.
Without them a browser test skips, except when ``SETPOINT_REQUIRE_BROWSER=1`` (set by
CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_BROWSER = os.environ.get("SETPOINT_REQUIRE_BROWSER", "") not in ("", "0")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


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
        reason = (
            f"headless browser not available (missing {', '.join(missing)}); install it with: "
            "apt-get install -y chromium chromium-driver"
        )
        if REQUIRE_BROWSER:
            pytest.fail(reason + " (SETPOINT_REQUIRE_BROWSER is set, so this fails)")
        pytest.skip(reason)
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
