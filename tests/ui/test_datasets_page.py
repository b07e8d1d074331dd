"""The dashboard's dataset pages, in-process: every dataset, a version's profile and its
contract in words, its quarantine batches, and their rows as a CSV file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from starlette.testclient import TestClient
from ui_support import csrf_of

from setpoint.data.contract import ColumnRule
from setpoint.ui.app import create_ui_app
from setpoint.ui.pages.datasets import contract_words
from setpoint.workspace import Workspace
from ui_pages_support import build, loans


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    ws = build(Path(tmp_path_factory.mktemp("datasets")) / "ws")
    with TestClient(create_ui_app(ws)) as client:
        yield client
    ws.close()


def test_the_datasets_page_lists_versions_with_their_facts(client: TestClient) -> None:
    page = client.get("/ui/datasets")
    assert page.status_code == 200
    text = page.text
    assert "loans@2" in text
    assert "loans@1" in text
    assert text.index("loans@2") < text.index("loans@1")  # newest first
    assert "1 batch, 2 rows set aside" in text
    one = client.get("/ui/datasets/loans")
    assert one.status_code == 200
    assert "march.csv" in one.text
    assert 'href="/ui/datasets/quarantine/1.csv"' in one.text


def test_a_version_shows_its_profile_contract_in_words_and_quarantine(
    client: TestClient,
) -> None:
    page = client.get("/ui/datasets/loans/2")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Dataset loans@2</h1>" in text
    assert "a whole number" in text
    assert "commonest: " in text
    assert "<strong>age</strong>: a whole number from 18 to 100; never missing" in text
    assert "<strong>region</strong>: one of north, south; never missing" in text
    assert "revision 2" in text
    assert "<details>" in text
    assert "unknown_columns: reject" in text
    assert "Download batch 1 as CSV" in text
    assert "age: below the smallest value allowed (1 time)" in text  # the top reason
    assert 'href="/ui/models/risk?version=2"' in text  # trained on it
    assert "Download batch" not in client.get("/ui/datasets/loans/1").text


def test_the_quarantine_export_is_the_rejected_rows_with_reasons(client: TestClient) -> None:
    answer = client.get("/ui/datasets/quarantine/1.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="quarantine-1-loans-2.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["row"], r["reasons"]) for r in rows] == [
        ("1", "age: below the smallest value allowed (12)"),
        ("4", "region: not one of the allowed values (east)"),
    ]
    assert rows[1]["region"] == "east"


def test_contract_sentences() -> None:
    rule = ColumnRule(kind="numeric", nullable=True, min=0.5, required=False, pii="drop")
    assert contract_words(rule) == (
        "a number of at least 0.5; may be missing; the column may be left out; "
        "personal data: left out of the logs"
    )
    categories = ColumnRule(kind="categorical", nullable=False, categories=["30 to 49", "A"])
    assert contract_words(categories) == "one of “30 to 49”, A; never missing"


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/ui/datasets/nope", 404, "no dataset &#39;nope&#39;"),
        ("/ui/datasets/loans/9", 404, "loans has versions 1, 2"),
        ("/ui/datasets/quarantine/9.csv", 404, "no quarantine batch 9"),
        ("/ui/datasets/quarantine/x.csv", 400, "batch_id must be a whole number"),
    ],
)
def test_unknown_datasets_and_batches_are_html_errors(
    client: TestClient, path: str, status: int, words: str
) -> None:
    page = client.get(path)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert words in page.text


def test_the_export_is_let_in_like_a_page(tmp_path: Path) -> None:
    """With keys, the CSV needs a session as pages do; a read key's session gets it."""
    ws = Workspace.init(tmp_path / "ws", actor="tester")
    ws.add_dataset("loans", loans())
    ws.validate("loans", loans(3, seed=2).assign(age=[5, 30, 40]), mode="quarantine")
    _, key = ws.keys.create("read", note="auditor")
    with TestClient(create_ui_app(ws)) as client:
        answer = client.get("/ui/datasets/quarantine/1.csv", follow_redirects=False)
        assert answer.status_code == 303
        target = urlparse(answer.headers["location"])
        assert target.path == "/ui/login"
        assert parse_qs(target.query)["next"] == ["/ui/datasets/quarantine/1.csv"]
        login = client.get("/ui/login")
        signed = client.post(
            "/ui/login",
            data={"key": key, "csrf": csrf_of(login.text), "next": "/ui/datasets"},
            follow_redirects=False,
        )
        assert signed.status_code == 303
        answer = client.get("/ui/datasets/quarantine/1.csv")
        assert answer.status_code == 200
        assert "age: below the smallest value allowed (5)" in answer.text
    ws.close()
