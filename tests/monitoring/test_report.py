"""The monitoring report: one self-contained, escaped HTML file that a browser opens.

The data is synthetic and built here: eleven features over eight daily windows, three
of which drift from the sixth window on, a classifier whose estimated accuracy slips,
labels that arrive late, a few quality problems and alerts. The browser test opens
the file in headless Chromium (Debian's package, driven by selenium through the
system chromedriver, so nothing is downloaded); without Chromium it skips, except
when ``SETPOINT_REQUIRE_BROWSER=1`` (set by CI), where it fails.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser_support import chromium
from setpoint.errors import InvalidDataError
from setpoint.monitoring.report import ReportData, render_report, write_report

NUMERIC = ["age", "income", "debt_ratio", "loan_amount", "term_months", "credit_lines", "tenure"]
CATEGORICAL = ["region", "channel", "product"]
HOSTILE = "<script>alert(1)</script>"
START = datetime(2026, 6, 1, tzinfo=UTC)


def _numeric(rng: np.random.Generator, shift: float) -> dict[str, Any]:
    reference = rng.normal(50, 10, 4000)
    current = rng.normal(50 + shift, 10, 1000)
    edges = np.quantile(reference, np.linspace(0, 1, 101))
    edges[0], edges[-1] = min(edges[0], current.min()), max(edges[-1], current.max())
    return {
        "edges": edges.tolist(),
        "reference": np.histogram(reference, edges)[0].tolist(),
        "current": np.histogram(current, edges)[0].tolist(),
    }


def _categorical(rng: np.random.Generator, drifted: bool) -> dict[str, Any]:
    categories = ["north", "south", "east", "west", "other"]
    p = [0.3, 0.25, 0.2, 0.15, 0.1]
    q = [0.15, 0.25, 0.2, 0.3, 0.1] if drifted else p
    return {
        "categories": categories,
        "reference": rng.multinomial(4000, p).tolist(),
        "current": rng.multinomial(1000, q).tolist(),
    }


def _feature(rng: np.random.Generator, kind: str, drifted: bool, effect: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "test": "ks" if kind == "numeric" else "chi2",
        "statistic": effect / 2,
        "p_value": 1e-6 if drifted else 0.4,
        "effect": effect,
        "threshold": 0.1,
        "drifted": drifted,
        "null_fraction": 0.02,
        "reference_null_fraction": 0.01,
        "histogram": _numeric(rng, 8 * effect) if kind == "numeric" else _categorical(rng, drifted),
    }


def synthetic(
    n_windows: int = 8, names: tuple[str, ...] = ("age", "income", "region")
) -> dict[str, Any]:
    """A classifier endpoint whose features ``names`` drift from the sixth window on."""
    rng = np.random.default_rng(7)
    windows = []
    for i in range(n_windows):
        drifting = i >= 5
        features = {}
        for name in NUMERIC + CATEGORICAL + [n for n in names if n not in NUMERIC + CATEGORICAL]:
            drifted = drifting and name in names
            effect = 0.25 + 0.05 * (i - 5) if drifted else float(rng.uniform(0.01, 0.08))
            kind = "categorical" if name in CATEGORICAL else "numeric"
            features[name] = _feature(rng, kind, drifted, effect)
        accuracy = 0.86 - (0.0167 * (i - 5) + 0.0167 if drifting else 0.0)
        labelled = max(0, 90 - 15 * i) / 100
        windows.append(
            {
                "start": (START + timedelta(days=i)).isoformat(),
                "end": (START + timedelta(days=i + 1)).isoformat(),
                "n_rows": 1000 + 10 * i,
                "features": features,
                "drift_share": len(names) / len(features) if drifting else 0.0,
                "multivariate": {
                    "auc": 0.72 if drifting else 0.52,
                    "threshold": 0.6,
                    "drifted": drifting,
                },
                "prediction": _feature(rng, "categorical", False, 0.03),
                "quality": {
                    "null_rates": {"income": 0.02 + 0.01 * i, "age": 0.0, "tenure": 0.005},
                    "out_of_range": {"debt_ratio": 3 * i},
                    "unseen": {"region": 12 if drifting else 0},
                    "rejected": 4 + i,
                    "volume": 1000 + 10 * i,
                    "expected_volume": 1050.0,
                },
                "performance": {
                    "estimated": {
                        "accuracy": {
                            "value": accuracy,
                            "low": accuracy - 0.03,
                            "high": accuracy + 0.03,
                        },
                        "roc_auc": {
                            "value": accuracy + 0.05,
                            "low": accuracy + 0.03,
                            "high": accuracy + 0.07,
                        },
                    },
                    "realized": {"accuracy": accuracy - 0.01, "roc_auc": None, "coverage": labelled}
                    if labelled > 0
                    else None,
                },
                "latency": {"p50_ms": 11.0 + i % 3, "p99_ms": 40.0 + 4 * i},
            }
        )
    return {
        "endpoint": "credit-default",
        "model": "credit",
        "version": "3",
        "reference": "dataset credit-train v2 (40,000 rows)",
        "generated_at": "2026-06-09T08:00:00+00:00",
        "windows": windows,
        "alerts": [
            {
                "key": "drift:feature:income",
                "severity": "critical",
                "message": "income drifted: effect 0.35 (threshold 0.10)",
                "state": "open",
                "first_seen": "2026-06-06T00:00:00+00:00",
                "last_seen": "2026-06-09T00:00:00+00:00",
                "count": 3,
            },
            {
                "key": "quality:rejected",
                "severity": "warning",
                "message": "11 rows rejected by the contract",
                "state": "acknowledged",
                "acked_by": "ana",
                "first_seen": "2026-06-08T00:00:00+00:00",
                "last_seen": "2026-06-09T00:00:00+00:00",
                "count": 2,
            },
            {
                "key": "latency:p99",
                "severity": "warning",
                "message": "p99 above 60 ms",
                "state": "resolved",
                "first_seen": "2026-06-02T00:00:00+00:00",
                "last_seen": "2026-06-03T00:00:00+00:00",
            },
        ],
    }


def expected_svgs(doc: dict[str, Any]) -> int:
    """Drift, performance, quality and traffic, plus one per feature drifted now."""
    latest = doc["windows"][-1]["features"]
    return 4 + sum(f["drifted"] for f in latest.values())


@pytest.fixture(scope="module")
def page() -> str:
    """The synthetic endpoint's report, rendered once for the tests that only read it."""
    return render_report(ReportData.from_dict(synthetic()))


def test_the_report_is_one_file_that_references_nothing_outside_it(page: str) -> None:

    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:|//)""", page, re.I)
    assert "<script" not in page.lower()
    assert "@import" not in page
    assert "url(http" not in page
    assert "Content-Security-Policy" in page  # and the page forbids loading anything
    # SVG references stay inside the page, with ids unique across the plots.
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page)) <= {(i, "") for i in ids} | {
        ("", i) for i in ids
    }


def test_one_svg_per_plot_each_with_a_title_and_axis_labels(page: str) -> None:
    doc = synthetic()

    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert len(svgs) == expected_svgs(doc) == 7
    assert all('role="img"' in s and "aria-label=" in s for s in svgs)
    assert all("<text" in s for s in svgs)  # titles and axis labels stay text
    for label in ("Window start (UTC)", "Share of rows (%)", "Milliseconds", "Labelled (%)"):
        assert label in page


def test_the_verdict_says_what_happened_in_plain_words(page: str) -> None:

    verdict = re.search(r'<p class="verdict">(.*?)</p>', page, re.S)
    assert verdict is not None
    assert verdict.group(1) == (
        "Input drift in 3 of 10 features since 2026-06-06; estimated accuracy 0.81 "
        "(likely 0.78 to 0.84), down from 0.86 on 2026-06-01; 2 open alerts."
    )
    assert '<th scope="col">' in page


def test_user_text_is_escaped_everywhere() -> None:
    doc = synthetic(names=(HOSTILE, "price_$", "region"))
    doc["endpoint"] = 'ep"&<b>'
    doc["alerts"][0]["message"] = '<img src=x onerror="alert(1)">'
    doc["windows"][-1]["quality"]["null_rates"][HOSTILE] = 0.3

    page = render_report(ReportData.from_dict(doc))

    assert HOSTILE not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ep&quot;&amp;&lt;b&gt;" in page
    assert "price_$" in page  # shown as written, not read as a formula
    assert len(re.findall(r"<svg\b", page)) == expected_svgs(doc)


def _bare(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("start", "end", "n_rows")
    doc["windows"] = [{k: w[k] for k in keep} for w in doc["windows"]]
    doc["alerts"] = []
    return doc


def _regressor(doc: dict[str, Any]) -> dict[str, Any]:
    for i, w in enumerate(doc["windows"]):
        w["performance"] = {"estimated": None, "realized": {"rmse": 3.0 + 0.1 * i, "coverage": 0.4}}
    return doc


def _no_labels(doc: dict[str, Any]) -> dict[str, Any]:
    for w in doc["windows"]:
        w["performance"]["realized"] = None
    return doc


@pytest.mark.parametrize(
    ("shape", "n_windows", "words", "plots"),
    [
        (lambda d: d, 1, "No input drift in 10 features", 4),
        (_bare, 8, "No feature drift figures were recorded", 1),
        (_bare, 1, "No data quality figures were recorded", 1),
        (_regressor, 8, "no estimate of performance without labels", 7),
        (_regressor, 1, "realized RMSE 3.00 (labels for 40% of predictions)", 4),
        (_no_labels, 1, "no labels yet", 4),
        (lambda d: {**d, "windows": []}, 8, "No monitoring windows have been computed yet", 0),
    ],
    ids=[
        "one-window",
        "bare",
        "bare-one-window",
        "regressor",
        "regressor-one",
        "no-labels",
        "empty",
    ],
)
def test_every_section_renders_when_its_data_is_absent(
    shape: Any, n_windows: int, words: str, plots: int
) -> None:
    doc = shape(synthetic(n_windows=n_windows))

    page = render_report(ReportData.from_dict(doc))

    assert words in page
    assert len(re.findall(r"<svg\b", page)) == plots
    assert page.rstrip().endswith("</html>")
    assert "Alerts" in page


def _as_monitor_stores(doc: dict[str, Any]) -> dict[str, Any]:
    """The same windows in the shape ``monitor.py`` stores them: drift nested, the
    model's outputs as extra columns, unseen categories by name, extra label figures."""
    for w in doc["windows"]:
        features = w.pop("features")
        features["__prediction__"] = w.pop("prediction")
        features["__score__"] = copy.deepcopy(features["age"])
        w["drift"] = {"judged": True, "drift_share": w.pop("drift_share"), "features": features}
        q = w["quality"]
        q["unseen"] = {"region": {"north-east": q["unseen"]["region"]}}
        q["rejected"] = None
        del q["expected_volume"]
        w["performance"]["reference"] = {"accuracy": 0.88, "roc_auc": None}
        if w["performance"]["realized"]:
            w["performance"]["realized"] |= {"labels": 120, "label_delay_hours": 30.0}
    return doc


def test_windows_as_the_monitor_stores_them_are_read_too() -> None:
    doc = _as_monitor_stores(synthetic())

    data = ReportData.from_dict(doc)
    page = render_report(data)

    last = data.windows[-1]
    assert "__score__" not in last.features
    assert last.prediction is not None
    assert last.quality is not None
    assert last.quality.unseen == {"region": 12}
    first = data.windows[0].performance
    assert first is not None
    assert first.realized is not None
    assert "labels" not in first.realized
    assert "down from 0.88 at training; 2 open alerts." in page
    assert "rejected rows not recorded" in page
    assert len(re.findall(r"<svg\b", page)) == 7


def test_rows_outside_the_contract_are_charted_and_tabled_by_column_and_rule() -> None:
    doc = synthetic(n_windows=3)
    for i, w in enumerate(doc["windows"]):
        w["quality"]["contract"] = {
            "scored": 30 * i,
            "refused": 2 * i,
            "rules": [
                {"column": "loan_amount", "rule": "max", "scored": 30 * i, "refused": 0},
                {"column": HOSTILE, "rule": "type", "scored": 0, "refused": 2 * i},
            ],
        }
    data = ReportData.from_dict(doc)
    page = render_report(data)
    quality = data.windows[-1].quality
    assert quality is not None
    assert quality.contract is not None
    assert (quality.contract.scored, quality.contract.refused) == (60, 4)
    assert "4 rows refused by the data contract, 60 answered outside it" in page
    assert "Rows outside the data contract in the latest window" in page
    assert '<th scope="row">loan_amount</th><td>max</td><td>60</td><td>0</td>' in page
    assert HOSTILE not in page
    chart = re.search(r"<svg\b(?:(?!</svg>).)*Rows outside the data contract.*?</svg>", page, re.S)
    assert chart is not None
    assert "answered, marked" in chart.group(0)  # the legend: there is something to show

    doc["windows"][0]["quality"]["contract"]["rules"] = "many"
    with pytest.raises(InvalidDataError, match=r"windows\[0\].quality.contract.rules"):
        ReportData.from_dict(doc)


def test_a_window_without_drift_says_so() -> None:
    doc = synthetic(n_windows=3)
    page = render_report(ReportData.from_dict(doc))
    assert "No feature drifted in the latest window." in page
    assert "No input drift in 10 features in the latest window" in page


def test_a_change_of_reference_is_marked_on_every_time_chart() -> None:
    doc = synthetic()
    for i, window in enumerate(doc["windows"]):
        window["reference"] = "credit@3" if i < 6 else "credit@4"  # promoted on day 7
    page = render_report(ReportData.from_dict(doc))
    marked = [
        s for s in re.findall(r"<svg\b.*?</svg>", page, re.S) if "reference now credit@4" in s
    ]
    # The drift heatmap, performance, quality and traffic charts each name it once.
    assert len(marked) == 4
    assert "From 2026-06-07 the windows are measured against credit@4 (before: credit@3)" in page
    unchanged = render_report(ReportData.from_dict(synthetic()))
    assert "reference now" not in unchanged


def test_labels_that_disagree_with_the_estimate_are_called_concept_drift() -> None:
    doc = synthetic()
    doc["windows"][1]["performance"]["concept_drift"] = {
        "labels": 900,
        "metrics": {"accuracy": {"realized": 0.61, "estimated": 0.86, "low": 0.83, "high": 0.89}},
    }
    page = render_report(ReportData.from_dict(doc))
    caveat = re.search(r'<p class="caveat">(.*?)</p>', page, re.S)
    assert caveat is not None
    assert "In 1 window (2026-06-02) the realized accuracy fell outside" in caveat.group(1)
    assert "concept drift" in caveat.group(1)
    assert '<p class="caveat">' not in render_report(ReportData.from_dict(synthetic()))


def test_the_domain_classifier_auc_is_shown_with_its_standard_error() -> None:
    doc = synthetic(n_windows=3)
    doc["windows"][-1]["multivariate"]["auc_se"] = 0.013
    data = ReportData.from_dict(doc)
    assert data.windows[-1].multivariate is not None
    assert data.windows[-1].multivariate.auc_se == 0.013
    assert "AUC 0.52 ± 0.01, where 0.5 is chance" in render_report(data)
    # Windows stored before the error was reported still read.
    assert "AUC 0.52, where" in render_report(ReportData.from_dict(synthetic(n_windows=3)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("endpoint"), "endpoint is missing"),
        (lambda d: d.update(windows={"a": 1}), "windows should be a list"),
        (lambda d: d["windows"][2].update(start="yesterday"), "windows[2].start"),
        (lambda d: d["windows"][0].update(n_rows=-1), "windows[0].n_rows"),
        (lambda d: d["windows"][0]["features"]["age"].update(kind="text"), "features['age'].kind"),
        (
            lambda d: d["windows"][0]["features"]["age"].update(effect="big"),
            "features['age'].effect",
        ),
        (
            lambda d: d["windows"][0]["features"]["age"]["histogram"]["edges"].pop(),
            "features['age'].histogram.edges",
        ),
        (
            lambda d: d["windows"][1]["features"]["region"]["histogram"].pop("categories"),
            "features['region'].histogram.categories is missing",
        ),
        (
            lambda d: d["windows"][0]["performance"]["estimated"]["accuracy"].update(low=0.99),
            "estimated.accuracy",
        ),
        (lambda d: d["windows"][0]["quality"].update(volume="many"), "windows[0].quality.volume"),
        (lambda d: d["windows"][0]["quality"]["null_rates"].update(age=1.5), "null_rates['age']"),
        (lambda d: d["windows"][0].update(drift_share=float("nan")), "windows[0].drift_share"),
        (lambda d: d["alerts"][0].update(state="snoozed"), "alerts[0].state"),
        (
            lambda d: d["windows"][1].update(fairness={"selection": {"groups": 3}}),
            "windows[1].fairness.selection.groups",
        ),
    ],
)
def test_malformed_data_is_refused_naming_the_field(change: Any, field: str) -> None:
    doc = synthetic(n_windows=3)
    change(doc)
    with pytest.raises(InvalidDataError, match=re.escape(field)):
        ReportData.from_dict(doc)


def test_windows_are_put_in_time_order_and_the_report_is_reproducible(tmp_path: Path) -> None:
    doc = synthetic(n_windows=4)
    shuffled = copy.deepcopy(doc)
    shuffled["windows"].reverse()
    data = ReportData.from_dict(shuffled)
    assert [w.start for w in data.windows] == sorted(w.start for w in data.windows)

    path = write_report(tmp_path / "out" / "report.html", data)

    assert path.read_text(encoding="utf-8") == render_report(ReportData.from_dict(doc))
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


# ---------------------------------------------------------------------------------
# Done when: the report opens in a real browser without errors and shows the plots.
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def test_the_report_opens_in_a_browser_and_shows_every_plot(browser: Any, tmp_path: Path) -> None:
    from matplotlib.image import imread
    from selenium.webdriver.common.by import By

    doc = synthetic()
    doc["windows"][-1]["features"][HOSTILE] = doc["windows"][-1]["features"].pop("tenure")
    report = write_report(tmp_path / "report.html", ReportData.from_dict(doc))

    browser.get(report.as_uri())

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert browser.title == "Monitoring report: credit-default"
    svgs = browser.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert len(svgs) == expected_svgs(doc)
    sizes = [s.size for s in svgs]
    assert all(size["width"] > 100 for size in sizes)
    assert all(size["height"] > 100 for size in sizes)
    # The hostile feature name is text on the page, not markup that ran.
    assert HOSTILE in browser.find_element(By.ID, "drift").text

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 16000))
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    if out := os.environ.get("SETPOINT_REPORT_SCREENSHOT"):  # to look at it by hand
        shutil.copy(shot, out)
    rgb = (imread(shot)[..., :3] * 255).astype(np.uint32).reshape(-1, 3)
    colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    assert (rgb < 200).any(axis=1).mean() > 0.01  # some ink on the page
