"""Model cards: gathered from a workspace where a model was trained, measured for
fairness, promoted, deployed, noted and monitored; written as Markdown (front matter
that parses, every section) and as HTML that a headless browser opens offline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from browser_support import chromium, requested_urls
from setpoint.cli.main import app
from setpoint.demo import lending
from setpoint.models.card import gather, render_markdown, write_card
from setpoint.models.fairness import fairness_table
from setpoint.monitoring.settings import MonitorConfig
from setpoint.workspace import Workspace

TITLES = [
    "Model details",
    "Intended use",
    "Training data",
    "Evaluation",
    "Fairness",
    "Top features",
    "Known limitations",
    "Serving history",
    "Monitoring",
]
ANCHORS = [
    "details",
    "intended-use",
    "training-data",
    "evaluation",
    "fairness",
    "features",
    "limitations",
    "serving",
    "monitoring",
]
HOSTILE = '<img src="https://example.com/x.png" onerror="document.title=1"> | pipes & co'
DAY = datetime(2026, 3, 2, tzinfo=UTC)
SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    # LightGBM: its own TreeSHAP gives the importance at once (shap's JIT takes a minute).
    "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20}},
    "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.25},
    "segments": ["channel"],
    "seed": 3,
    "description": "Probability that a loan application defaults.",
    "intended_use": "Ranking applications for a credit officer's review.",
    "limitations": HOSTILE,
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """credit-risk@1 trained; @2 the same model with a fairness table by grade,
    promoted after @1, noted, served on ``credit`` and monitored over two days of
    traffic that moved out of the training ranges."""
    root = tmp_path_factory.mktemp("card") / "ws"
    workspace = Workspace.init(root, actor="tester")
    history = lending.applications(600, start=datetime(2026, 1, 1, tzinfo=UTC), days=60, seed=3)
    data = workspace.add_dataset("loans", history)
    first = workspace.train(SPEC)
    predictor = workspace.load_model(first.ref)
    frame = history.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    table = fairness_table(
        history[lending.TARGET],
        predictor.predict(frame),
        history[["grade"]],  # grade G has under 50 rows: too small to judge
        task="classification",
        min_group=50,
    ).to_dict() | {"positive": 1, "max_disparity": 0.05}
    second = workspace.registry.register(
        first.name,
        predictor,
        contract=first.contract,
        evaluation=first.evaluation | {"fairness": table},
        lineage=first.lineage,
        datasets_used=[(data, "train")],
        spec=first.spec,
        description=first.description,
    )
    workspace.promote(first.name, 1)
    workspace.promote(first.name, 2)
    workspace.annotate(second.ref, "Reviewed by model risk.")
    workspace.deploy("credit", model="credit-risk@champion", note="first endpoint")
    workspace.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    shifted = lending.Drift(start=DAY + timedelta(days=1), covariate=1.5)
    traffic = lending.applications(400, start=DAY, days=2, drift=shifted, seed=4)
    workspace.monitors.backfill(
        "credit", traffic, time_column=lending.TIME_COLUMN, label_column=lending.TARGET
    )
    workspace.monitors.run("credit", until=DAY + timedelta(days=2))
    yield workspace
    workspace.close()


def sections_of(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, re.M)


def test_the_markdown_card_has_front_matter_and_every_section(ws: Workspace) -> None:
    card = gather(ws, "credit-risk")
    assert repr(card) == (
        "<ModelCard credit-risk@2: lightgbm classification, trained on loans@1, "
        "fairness measured, served on credit>"
    )
    text = render_markdown(card)

    head, body = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, re.S).groups()  # type: ignore[union-attr]
    meta = yaml.safe_load(head)
    assert meta["library_name"] == "lightgbm"
    assert meta["pipeline_tag"] == "tabular-classification"
    assert meta["datasets"] == ["loans@1"]
    assert "roc_auc" in meta["metrics"]
    [index] = meta["model-index"]
    assert index["name"] == "credit-risk@2"
    splits = {r["dataset"]["split"]: r for r in index["results"]}
    assert set(splits) == {"train", "validation"}
    figures = {m["type"]: m["value"] for m in splits["validation"]["metrics"]}
    version = ws.model("credit-risk@2")
    assert figures["roc_auc"] == pytest.approx(
        version.evaluation["metrics"]["validation"]["roc_auc"], abs=1e-4
    )

    assert body.startswith("\n# Model card: credit-risk@2\n")
    assert sections_of(body) == TITLES
    for words in (
        "**Notes**: Reviewed by model risk.",
        "Ranking applications for a credit officer's review.",
        "**Period**: 2026-01-01 to 2026-03-01 (applied_at)",
        "Overfit gap: roc_auc is",
        "*Hold-out by channel*",
        "| grade=G (too small) |",  # a group too small to judge is listed, marked
        "Rates count 1 as the positive class.",
        "The spec allows a difference of at most 0.05; exceeded by",
        "*The 10 most important features*",
        "*Traffic outside what the model saw in training*",
        "promoted to champion (from version 1)",
        "endpoint credit revision 1: serves credit-risk@champion",
        "Serves now on: credit.",
        "**Latest window**: 2026-03-03 (",
        "**Attribution drift**: ",  # the monitor explains LightGBM's answers
    ):
        assert words in body, words
    alerts = re.findall(r"^\| credit \| (critical|warning) \| open \|", body, re.M)
    assert alerts[0] == "critical"
    assert alerts == sorted(alerts)  # the most severe first
    # The spec's text cannot break a table or bring markup in.
    assert "&lt;img src=" in body
    assert "<img" not in body

    older = render_markdown(gather(ws, "credit-risk@1"))
    assert sections_of(older) == TITLES
    for words in (
        "Not measured; add fairness: to the training spec.",
        "No monitor has measured traffic against this version.",
        "champion moved to version 2 (promote)",
    ):
        assert words in older, words


def test_a_version_with_nothing_recorded_says_so_in_every_section(ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = lending.applications(200, seed=5)
    inputs = frame[["age", "income"]]
    model = LogisticRegression().fit(inputs, frame[lending.TARGET])
    ws.register_model("bare", model, reference=inputs)

    text = render_markdown(gather(ws, "bare"))

    assert sections_of(text) == TITLES
    assert yaml.safe_load(text.split("---\n")[1])["model-index"][0]["results"] == []
    for words in (
        "Not stated; add intended_use: to the training spec.",
        "Not evaluated: the version was registered without labelled data.",
        "Not measured; add fairness: to the training spec.",
        "Not measured at training",
        "None stated; add limitations: to the training spec.",
        "Nothing seen in production yet",
        "Never promoted or deployed.",
        "No monitor has measured traffic against this version.",
    ):
        assert words in text, words


def cli(ws: Workspace, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else " ".join(result.output.split())


def test_the_command_writes_markdown_to_stdout_and_files_by_suffix(
    ws: Workspace, tmp_path: Path
) -> None:
    assert cli(ws, "models", "card", "credit-risk@2").startswith("---\nlibrary_name: lightgbm")
    cli(ws, "models", "card", "credit-risk@2", "-o", str(tmp_path / "card.md"))
    assert (tmp_path / "card.md").read_text(encoding="utf-8").startswith("---\n")
    html = tmp_path / "a" / "card.html"
    done = json.loads(cli(ws, "models", "card", "credit-risk", "-o", str(html), "--json"))
    assert done == {"ref": "credit-risk@2", "format": "html", "path": str(html)}
    forced = tmp_path / "card.txt"
    cli(ws, "models", "card", "credit-risk@2", "-o", str(forced), "--format", "html")
    assert forced.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    wrong = cli(ws, "models", "card", "credit-risk@2", "-o", str(tmp_path / "c.pdf"), code=2)
    assert "the card is written as .md or .html" in wrong
    assert "has no version 9" in cli(ws, "models", "card", "credit-risk@9", code=3)
    assert "use markdown or html" in cli(ws, "models", "card", "m", "--format", "pdf", code=2)
    assert "notes set" in cli(ws, "models", "note", "credit-risk@1", "Kept for comparison.")
    assert "Kept for comparison." in cli(ws, "models", "show", "credit-risk@1")
    assert "notes cleared" in cli(ws, "models", "note", "credit-risk@1", "")


def test_the_html_card_opens_offline_in_a_browser_with_every_section(
    ws: Workspace, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    page = write_card(tmp_path / "card.html", gather(ws, "credit-risk@2"))
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:|//)""", page.read_text(), re.I)

    with chromium(network_log=True) as browser:
        browser.get(page.as_uri())
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        urls = requested_urls(browser)
        title = browser.title
        headings = [browser.find_element(By.CSS_SELECTOR, f"section#{a} h2").text for a in ANCHORS]
        limits = browser.find_element(By.ID, "limitations").text
        tables = len(browser.find_elements(By.CSS_SELECTOR, "table"))

    assert severe == []
    assert [u for u in urls if not u.startswith(("file://", "data:"))] == []
    assert title == "Model card: credit-risk@2"  # the hostile text's handler never ran
    assert headings == TITLES
    assert HOSTILE in limits  # shown as text
    assert tables >= 8
