"""How result objects show themselves: one short line as a repr, a small escaped HTML
table in Jupyter, and the tables they hold as DataFrames in one call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from setpoint.data.catalog import DatasetVersion
from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.profile import ColumnProfile, Profile
from setpoint.data.quarantine import QuarantineBatch
from setpoint.loop.gates import Check, GateReport
from setpoint.models.registry import ModelVersion
from setpoint.monitoring.window import Window
from setpoint.serving.config import DeploymentConfig
from setpoint.serving.deployments import Deployment
from setpoint.workspace import ValidationOutcome, Workspace

HOSTILE = "<script>alert(1)</script>"
WHEN = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
MAX_REPR = 200


def _one_short_line(text: str) -> str:
    assert "\n" not in text
    assert len(text) <= MAX_REPR, text
    return text


def _profile(n_rows: int, n_columns: int) -> Profile:
    columns = tuple(
        ColumnProfile(f"c{i}", "double", "numeric", n_rows, 0, 0.0, n_rows, 0.0, 1.0)
        for i in range(n_columns)
    )
    return Profile(n_rows, columns)


def _dataset(name: str = "loans", description: str = "") -> DatasetVersion:
    profile = _profile(30_000, 12)
    return DatasetVersion(
        id=1,
        name=name,
        version=3,
        content_hash="ab" * 32,
        artifact="x",
        row_count=30_000,
        columns=[{"name": c.name, "type": "double"} for c in profile.columns],
        profile=profile,
        owner="ana",
        description=description,
        tags={"team": "risk"},
        pii_columns=[],
        source="loans.csv",
        created_at=WHEN,
    )


def _model(name: str = "credit-risk") -> ModelVersion:
    return ModelVersion(
        id=1,
        name=name,
        version=2,
        flavor="sklearn",
        task="classification",
        artifacts={"model": "x" * 64},
        flavor_metadata={"big": list(range(1000))},
        contract={"columns": {f"c{i}": {"kind": "numeric"} for i in range(200)}},
        spec=None,
        evaluation={"metrics": {"train": {"roc_auc": 0.99}, "validation": {"roc_auc": 0.912}}},
        lineage={"datasets": [{"ref": "loans@3", "id": 1, "role": "train"}]},
        description="",
        created_by="ana",
        created_at=WHEN,
        aliases=("champion",),
    )


def _window(endpoint: str = "credit") -> Window:
    results = {
        "judged": True,
        "drift": {"drift_share": 0.25, "drifted": False, "drifted_features": ["income"]},
        "big": list(range(5000)),
    }
    return Window(WHEN, datetime(2026, 12, 5, 9, 30, tzinfo=UTC), 1234, results, endpoint)


def _gates(passed: bool) -> GateReport:
    checks = [
        Check("metric:roc_auc", passed, 0.01, 0.0, "roc_auc improved by 0.01"),
        Check("latency", True, 3.0, 50.0, "p99 latency 3 ms"),
    ]
    return GateReport(
        passed=passed,
        checks=checks,
        n_samples=500,
        champion={"roc_auc": 0.88, "accuracy": 0.8},
        candidate={"roc_auc": 0.89, "accuracy": 0.81},
    )


# -- reprs ------------------------------------------------------------------------------


def test_a_dataset_version_repr_is_one_short_line_with_its_size_and_date() -> None:
    text = _one_short_line(repr(_dataset()))
    assert text == "<DatasetVersion loans@3: 30,000 rows x 12 columns, 2026-12-04>"


def test_a_model_version_repr_names_flavor_task_aliases_and_headline_metric() -> None:
    text = _one_short_line(repr(_model()))
    assert text.startswith("<ModelVersion credit-risk@2: ")
    for fact in ("sklearn", "classification", "champion", "roc_auc 0.912"):
        assert fact in text


def test_a_window_repr_shows_endpoint_span_rows_and_drift_share() -> None:
    text = _one_short_line(repr(_window()))
    for fact in ("credit", "2026-12-04 09:30", "2026-12-05 09:30", "1,234 rows", "judged", "0.25"):
        assert fact in text


def test_a_gate_report_repr_says_passed_or_which_gate_failed() -> None:
    passed = _one_short_line(repr(_gates(True)))
    failed = _one_short_line(repr(_gates(False)))
    assert "passed" in passed
    assert "0.89" in passed
    assert "0.88" in passed
    assert "failed" in failed
    assert "metric:roc_auc" in failed
    assert "latency" not in failed


def test_other_results_have_short_reprs_not_their_whole_fields() -> None:
    contract = Contract(
        columns={f"c{i}": ColumnRule(kind="categorical", categories=("a",) * 50) for i in range(40)}
    )
    deployment = Deployment(
        "credit", 3, DeploymentConfig(model="credit-risk@champion"), "", "ana", WHEN
    )
    batch = QuarantineBatch(
        1,
        "loans@3",
        1,
        "in.csv",
        100,
        7,
        [{"column": "age", "rule": "range", "count": 7}] * 50,
        "ana",
        WHEN,
        "x",
    )
    shown = {
        "Contract": repr(contract),
        "Profile": repr(_profile(10, 300)),
        "Deployment": repr(deployment),
        "QuarantineBatch": repr(batch),
    }
    for kind, text in shown.items():
        assert text.startswith(f"<{kind} "), text
        _one_short_line(text)
    assert "credit-risk@champion" in shown["Deployment"]
    assert "revision 3" in shown["Deployment"]
    assert "7 of 100 rows" in shown["QuarantineBatch"]
    assert "age range" in shown["QuarantineBatch"]
    assert "40 columns" in shown["Contract"]


def test_reprs_stay_short_for_long_values() -> None:
    _one_short_line(repr(_dataset(name="n" * 300)))
    _one_short_line(repr(_model(name="m" * 300)))
    _one_short_line(repr(_window(endpoint="e" * 300)))


def test_equality_is_still_the_dataclass_one() -> None:
    assert _dataset() == _dataset()
    assert _model() == _model()
    assert _dataset() != _dataset(description="other")


# -- HTML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thing", "facts"),
    [
        (_dataset(name=HOSTILE, description=HOSTILE), ["30,000", "12", "2026-12-04"]),
        (_model(name=HOSTILE), ["sklearn", "classification", "champion", "0.912"]),
        (_window(endpoint=HOSTILE), ["1,234", "0.25", "income"]),
        (_gates(False), ["failed", "metric:roc_auc", "0.89", "0.88"]),
    ],
)
def test_html_escapes_user_values_and_shows_the_key_facts(thing: object, facts: list[str]) -> None:
    page = thing._repr_html_()  # type: ignore[attr-defined]
    assert "<script>" not in page
    assert "<table" in page
    assert "http" not in page
    for fact in facts:
        assert fact in page


def test_a_hostile_check_detail_is_escaped_in_the_gate_report() -> None:
    report = GateReport(False, [Check(HOSTILE, False, None, None, HOSTILE)], 10)
    assert "<script>" not in report._repr_html_()
    assert "&lt;script&gt;" in report._repr_html_()


# -- through a workspace: the validation outcome --------------------------------------------


@pytest.fixture
def outcome(workspace: Workspace) -> ValidationOutcome:
    frame = pd.DataFrame({"age": [30, 40, 50, 60] * 5, "city": ["a", "b"] * 10})
    workspace.add_dataset("people", frame)
    batch = pd.DataFrame({"age": [35, 500, 45, -3], "city": ["a", HOSTILE, "b", "a"]})
    return workspace.validate("people@1", batch, mode="quarantine")


def test_a_validation_outcome_repr_counts_rows_and_names_the_top_problems(
    outcome: ValidationOutcome,
) -> None:
    text = _one_short_line(repr(outcome))
    assert text.startswith("<ValidationOutcome quarantine: 2 of 4 rows accepted, 2 rejected")
    assert "top: age max (1), age min (1), city category (1)" in text
    assert _one_short_line(repr(outcome.report)).startswith("<ValidationReport ")


def test_a_validation_outcome_renders_escaped_html(outcome: ValidationOutcome) -> None:
    page = outcome._repr_html_()
    assert "<script>" not in page
    assert "quarantine" in page
    assert "age" in page
    assert "<table" in page


def test_to_pandas_gives_the_same_rows_as_the_arrow_tables(outcome: ValidationOutcome) -> None:
    assert outcome.to_pandas().to_dict("records") == outcome.accepted.to_pylist()
    violations = outcome.report.violations
    assert outcome.violations_to_pandas().to_dict("records") == violations.to_pylist()
    assert outcome.report.to_pandas().to_dict("records") == violations.to_pylist()


def test_quarantined_rows_come_as_a_dataframe_too(
    workspace: Workspace, outcome: ValidationOutcome
) -> None:
    assert outcome.quarantine is not None
    rows = workspace.quarantine.rows(outcome.quarantine.id)
    frame = workspace.quarantined_rows(outcome.quarantine.id)
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == rows.to_pylist()
    assert isinstance(rows, pa.Table)


def test_a_monitor_repr_names_its_window_and_reference() -> None:
    from setpoint.monitoring.monitor import Monitor
    from setpoint.monitoring.reference import Reference
    from setpoint.monitoring.settings import MonitorConfig
    from setpoint.monitoring.summary import ReferenceSummary

    table = pa.table({f"c{i}": [1.0, 2.0, 3.0] for i in range(50)})
    kinds = dict.fromkeys(table.column_names, "numeric")
    reference = Reference(
        "credit-risk@2",
        "loans@3",
        "classification",
        [0, 1],
        kinds,
        ReferenceSummary.build(table, kinds),
        "x",
        None,
        {},
        3,
    )
    monitor = Monitor(1, "credit", MonitorConfig(window="1h"), reference, WHEN, "ana")
    text = _one_short_line(repr(monitor))
    assert text == (
        "<Monitor credit: window 1h, credit-risk@2 against loans@3 (3 rows), 50 features>"
    )


def test_a_file_validation_repr_counts_rows_and_names_the_top_problems(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_dataset("people", pd.DataFrame({"age": [30, 40, 50, 60] * 5}))
    path = tmp_path / "batch.csv"
    pd.DataFrame({"age": [35, 500, 45, 41]}).to_csv(path, index=False)
    checked = workspace.validate_file("people@1", path, mode="quarantine")
    text = _one_short_line(repr(checked))
    assert text == (
        "<FileValidation quarantine: 3 of 4 rows accepted, 1 violations, top: age max (1)>"
    )
