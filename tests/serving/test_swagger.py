"""/docs: Swagger UI from the installed package, offline, where a person tries a request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from serving_support import SPEC, setpoint_serve
from starlette.testclient import TestClient

from browser_support import chromium, requested_urls
from setpoint.workspace import Workspace


def test_docs_is_swagger_ui_served_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "docs/static/swagger-ui-bundle.js" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "needs an API key" not in page.text  # this server needs none
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert client.get(f"/docs/static/{asset}").status_code == 200, asset
    script = client.get("/docs/setpoint.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "validatorUrl: null" in script.text  # the validator would call out
    assert client.get("/docs/static/../openapi.json").status_code == 404


def test_a_person_tries_a_prediction_in_swagger_ui(tmp_path: Path, history: pd.DataFrame) -> None:
    from selenium.webdriver.common.by import By

    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", history)
    version = ws.train(SPEC)
    ws.promote(version.name, version.version)
    ws.deploy("credit", model="credit-risk", docs_values=True)
    _, key = ws.keys.create("admin")  # keys are now required: the page asks for one
    ws.close()
    with (
        setpoint_serve(ws.root, tmp_path / "server.log") as served,
        chromium(network_log=True) as browser,
    ):
        browser.get(f"{served.url}/docs")
        field = wait(browser, lambda: browser.find_elements(By.NAME, "key"))[0]
        field.send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#setpoint-key button").click()

        operation = wait(
            browser, lambda: browser.find_elements(By.ID, "operations-credit-predict_credit")
        )[0]
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait(browser, lambda: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
        wait(browser, lambda: operation.find_elements(By.CSS_SELECTOR, ".execute"))[0].click()

        def answered() -> list[Any]:
            cells = operation.find_elements(
                By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
            )
            return [c for c in cells if c.text.strip()]

        status = wait(browser, answered)[0]
        body = operation.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
        assert status.text.strip() == "200", body
        assert '"predictions"' in body

        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
        urls = requested_urls(browser)
        assert any(u.endswith("/v1/endpoints/credit/predict") for u in urls), urls
        elsewhere = [u for u in urls if not u.startswith((served.url + "/", "data:"))]
        assert elsewhere == []


def wait(browser: Any, found: Any, seconds: float = 30) -> Any:
    """Poll ``found()`` until it returns something truthy, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := found()):
        if time.monotonic() > deadline:
            text = browser.execute_script("return document.body.innerText")
            raise AssertionError(f"{text}\n{browser.get_log('browser')}")
    return result
