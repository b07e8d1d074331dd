"""The dashboard's model pages, in-process: every model, one model with its evaluation,
lineage and champion history, two versions compared in words, and the errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from setpoint.ui.app import create_ui_app
from setpoint.ui.pages.compare import better_words
from ui_pages_support import build


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    ws = build(Path(tmp_path_factory.mktemp("models")) / "ws")
    with TestClient(create_ui_app(ws)) as client:
        yield client
    ws.close()


def test_the_models_page_lists_every_version_newest_first(client: TestClient) -> None:
    page = client.get("/ui/models")
    assert page.status_code == 200
    text = page.text
    assert "risk@2" in text
    assert "risk@1" in text
    assert text.index("risk@2") < text.index("risk@1")
    assert "champion" in text
    assert "0.83" in text
    assert "roc_auc on validation rows, higher is better" in text
    assert 'href="/ui/datasets/loans/2"' in text  # the data it was trained on
    assert 'href="/ui/models/risk/compare?a=1&amp;b=2"' in text


def test_a_model_page_shows_metrics_segments_fairness_history_and_lineage(
    client: TestClient,
) -> None:
    page = client.get("/ui/models/risk")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Model risk</h1>" in text
    assert "Version 2 in detail" in text  # the champion by default
    assert "By region" in text
    assert "0.86" in text
    assert "selection rate differs by 0.20 between region=north (0.50) and region=south" in text
    assert "over the 0.1 allowed" in text
    assert "version 2 replaced version 1 as the champion" in text
    # Lineage: dataset versions -> model versions -> the endpoint serving the champion.
    assert "<svg" in text
    assert "chart-lineage" in text
    for href in ("/ui/datasets/loans/1", "/ui/models/risk?version=1", "/ui/endpoints/scoring"):
        assert f'href="{href}"' in text
    assert "serves v2 now" in text
    older = client.get("/ui/models/risk", params={"version": "1"})
    assert "Version 1 in detail" in older.text


def test_workspace_text_is_escaped(client: TestClient) -> None:
    text = client.get("/ui/models/risk").text
    assert "<script>alert(1)</script>" not in text
    assert "Reviewed &lt;script&gt;alert(1)&lt;/script&gt; by risk" in text


def test_compare_shows_both_versions_and_the_differences_in_words(client: TestClient) -> None:
    page = client.get("/ui/models/risk/compare", params={"a": "1", "b": "2"})
    assert page.status_code == 200
    text = page.text
    assert "version 1 and version 2" in text
    assert "version 2 is 0.02 better on roc_auc than version 1" in text
    assert "version 2 is 0.06 better on roc_auc than version 1" in text  # the north segment
    assert "loans@1" in text
    assert "loans@2" in text
    assert "estimator.params.C" in text  # the setting that changed
    for field in ('for="compare-a"', 'for="compare-b"'):
        assert field in text


def test_the_delta_sentence_follows_the_metrics_direction() -> None:
    assert (
        better_words("log_loss", 1, 0.5, 2, 0.4)
        == "version 2 is 0.1 better on log_loss than version 1"
    )
    assert (
        better_words("roc_auc", 1, 0.8, 2, 0.7)
        == "version 1 is 0.1 better on roc_auc than version 2"
    )
    assert better_words("roc_auc", 1, 0.8, 2, 0.8) == "the same on roc_auc"
    assert better_words("roc_auc", 1, None, 2, 0.8) == "not known for both versions"


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/ui/models/nope", 404, "no model &#39;nope&#39;"),
        ("/ui/models/risk?version=9", 404, "has no version 9"),
        ("/ui/models/risk/compare?a=1&b=7", 404, "has no version 7"),
        ("/ui/models/risk/compare?a=x&b=2", 400, "a must be a whole number"),
    ],
)
def test_unknown_models_and_versions_are_html_errors_naming_the_fix(
    client: TestClient, path: str, status: int, words: str
) -> None:
    page = client.get(path)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert words in page.text


def test_pages_name_themselves_and_keep_their_place_in_the_navigation(
    client: TestClient,
) -> None:
    text = client.get("/ui/models/risk/compare", params={"a": "1", "b": "2"}).text
    assert "<title>risk: version 1 and version 2 · setpoint</title>" in text
    assert 'href="/ui/models" aria-current="page"' in text
