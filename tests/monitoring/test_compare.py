"""setpoint.compare: a current table against a reference, chunk by chunk, no workspace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import setpoint
from setpoint.errors import InvalidDataError, SetpointError, UsageError
from setpoint.monitoring.comparison import Comparison


def loans(
    n: int, start: str, *, seed: int, shift: float = 0.0, wrong: bool = False
) -> pd.DataFrame:
    """Loan applications every 37 minutes from ``start``; ``pred`` is the model's
    answer, ``y`` the outcome (as the model learned it, or ``wrong``: the other way)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift, 10, n)
    y = (income + rng.normal(0, 5, n) > 52).astype(np.int64)
    pred = (income > 52).astype(np.int64)
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq="37min"),
            "income": income,
            "age": rng.integers(20, 70, n),
            "grade": rng.choice(["A", "B", "C"], n),
            "y": 1 - y if wrong else y,
            "pred": pred,
        }
    )


def run(reference: object, current: object, **options: object) -> Comparison:
    defaults: dict[str, object] = {
        "time_column": "ts",
        "chunk": "1M",
        "target": "y",
        "prediction": "pred",
        "multivariate": False,
    }
    return setpoint.compare(reference, current, **{**defaults, **options})  # type: ignore[arg-type]


def test_pandas_polars_and_arrow_give_the_same_comparison() -> None:
    reference = loans(3_000, "2024-01-01", seed=1)
    current = loans(1_800, "2024-06-01", seed=2, shift=4.0)
    results = [
        run(reference, current, multivariate=True).to_dict(),
        run(pl.from_pandas(reference), pl.from_pandas(current), multivariate=True).to_dict(),
        run(pa.Table.from_pandas(reference), pa.table(current), multivariate=True).to_dict(),
    ]
    texts = [json.dumps(r, sort_keys=True, allow_nan=False) for r in results]
    assert texts[0] == texts[1] == texts[2]
    chunks = results[0]["chunks"]
    assert [c["label"] for c in chunks] == ["2024-06", "2024-07"]
    assert chunks[0]["multivariate"]["auc"] > 0.5


def test_each_chunk_holds_the_results_document_a_monitor_stores() -> None:
    comparison = run(loans(3_000, "2024-01-01", seed=3), loans(1_800, "2024-06-01", seed=4))
    first = comparison.chunks[0]
    for key in ("judged", "reference", "drift", "multivariate", "quality", "performance"):
        assert key in first
    assert first["start"] == "2024-06-01T00:00:00+00:00"
    assert first["end"] == "2024-07-01T00:00:00+00:00"
    assert set(first["drift"]["features"]) == {"income", "age", "grade"}  # not ts, y, pred
    assert set(first["drift"]["prediction"]) == {"__prediction__"}
    realized = first["performance"]["realized"]
    assert realized["labels"] == first["n_rows"]
    assert 0.75 < realized["accuracy"] < 0.95
    assert first["performance"]["reference"]["accuracy"] == pytest.approx(
        realized["accuracy"], abs=0.05
    )
    assert not comparison.drifted  # the same process, another time
    assert [v.verdict for v in comparison.verdicts()] == ["ok", "ok"]


def test_a_shift_and_a_drop_in_performance_are_judged_per_chunk() -> None:
    reference = loans(3_000, "2024-01-01", seed=5)
    current = pd.concat(
        [
            loans(1_100, "2024-06-01", seed=6),
            loans(1_100, "2024-07-01", seed=7, shift=8.0),
            loans(1_100, "2024-08-01", seed=8, wrong=True),
        ]
    )
    comparison = run(reference, current)
    verdicts = comparison.verdicts()
    assert [v.label for v in verdicts] == ["2024-06", "2024-07", "2024-08"]
    assert [v.verdict for v in verdicts] == ["ok", "drift", "perf. drop"]
    assert verdicts[1].drifted == ["income", "pred"]  # the answers moved with income
    assert verdicts[2].metric is not None
    assert verdicts[2].metric < 0.3
    keys = [a["key"] for a in comparison.chunks[2]["alerts"]]
    assert keys == ["performance:realized:accuracy"]


def test_it_prints_as_a_table_that_fits_80_columns_and_converts() -> None:
    reference = loans(3_000, "2024-01-01", seed=9)
    current = loans(1_800, "2024-06-01", seed=10, shift=8.0)
    comparison = run(reference, current, features=["income", "age", "grade"])
    text = str(comparison)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "2024-06" in text
    assert "drift" in text
    assert "accuracy" in text
    assert "<table>" in comparison._repr_html_()
    frame = comparison.to_pandas()
    assert len(frame) == 2 * 4  # chunks x (three features and the prediction)
    assert set(frame["role"]) == {"input", "prediction"}
    income = frame[(frame["feature"] == "income") & (frame["chunk"] == "2024-06")]
    assert bool(income["drifted"].iloc[0])
    assert income["effect"].iloc[0] > 0.5
    assert "pred" in set(frame["feature"])


def test_a_long_list_of_drifted_features_folds_with_every_name_whole() -> None:
    names = [f"applicant_{part}_in_thousands_of_euros" for part in ("income", "savings", "debt")]
    reference = loans(2_000, "2024-01-01", seed=9)
    current = loans(1_000, "2024-06-01", seed=10, shift=8.0)
    for frame in (reference, current):
        frame[names[1]] = frame["income"] * 2
        frame[names[2]] = frame["income"] * 3
    reference, current = (f.rename(columns={"income": names[0]}) for f in (reference, current))
    text = run(reference, current, features=names, chunk=None).table()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in names:
        assert name in text


def test_the_report_is_the_monitors_report(tmp_path: Path) -> None:
    comparison = run(loans(3_000, "2024-01-01", seed=11), loans(1_800, "2024-06-01", seed=12))
    page = comparison.write_report(tmp_path / "report.html").read_text()
    assert "Monitoring report: current against reference" in page
    assert "2024-06 to 2024-07" in page  # chunks named as months
    untimed = setpoint.compare(
        loans(3_000, "2024-01-01", seed=11).drop(columns="ts"),
        loans(1_800, "2024-06-01", seed=12).drop(columns="ts"),
        chunk=1_000,
        multivariate=False,
    )
    assert [c["label"] for c in untimed.chunks] == ["rows 1-1,000", "rows 1,001-1,800"]
    page = untimed.write_report(tmp_path / "rows.html").read_text()
    assert "rows 1-1,000 to rows 1,001-1,800" in page
    assert "1970" not in page


def test_files_are_read_by_path(tmp_path: Path) -> None:
    reference, current = loans(2_000, "2024-01-01", seed=13), loans(1_000, "2024-06-01", seed=14)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_parquet(tmp_path / "current.parquet", index=False)
    from_files = run(str(tmp_path / "reference.csv"), tmp_path / "current.parquet")
    assert from_files.reference["source"] == "reference.csv"
    assert from_files.current["source"] == "current.parquet"
    in_memory = run(reference, current)
    assert [c["drift"]["drift_share"] for c in from_files.chunks] == [
        c["drift"]["drift_share"] for c in in_memory.chunks
    ]


def test_mistakes_are_named_with_their_fix() -> None:
    reference, current = loans(500, "2024-01-01", seed=15), loans(500, "2024-06-01", seed=16)
    cases: list[tuple[dict[str, object], type[SetpointError], str]] = [
        ({"target": "outcome"}, UsageError, "target 'outcome' is not a column of the reference"),
        ({"features": ["income", "zip"]}, UsageError, "feature(s) zip are not columns"),
        ({"time_column": "income"}, UsageError, "holds double values, not times"),
        ({"chunk": "1 month"}, UsageError, "unknown unit 'month'; write a period such as 1d"),
        ({"time_column": None}, UsageError, "name the time column to cut by"),
        ({"features": ["ts"], "time_column": None, "chunk": None}, UsageError, "dates or times"),
        (
            {"drift": {"alpah": 0.1}},
            UsageError,
            "drift settings: alpah: unknown key; did you mean 'alpha'?",
        ),
    ]
    for options, error, message in cases:
        with pytest.raises(error) as caught:
            run(reference, current, **options)
        assert message in caught.value.message, options
    with pytest.raises(UsageError, match="lacks the reference's feature\\(s\\) grade"):
        run(reference, current.drop(columns="grade"))
    with pytest.raises(UsageError, match="prediction 'pred' is not a column of the current"):
        run(reference, current.drop(columns="pred"))
    with pytest.raises(InvalidDataError, match="not a time"):
        run(reference, current.assign(ts="soon"))
    with pytest.raises(UsageError, match=r"workspace\.load_dataset"):
        run("loans@1", current)
    with pytest.raises(UsageError, match="no such file"):
        run("missing.csv", current)
    with pytest.raises(UsageError, match="a Polars DataFrame"):
        run(object(), current)
