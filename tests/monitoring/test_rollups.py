"""Daily rollups: a day of windows merged into one digest, kept with the windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from monitor_support import DAY

from setpoint.demo import lending
from setpoint.monitoring.digest import digest, merge
from setpoint.monitoring.settings import MonitorConfig
from setpoint.store.db import Database, sqlite_url
from setpoint.store.schema import monitor_rollups, monitor_windows, monitors
from setpoint.workspace import Workspace

SUMMED = (
    "rows", "refused", "marked", "out_of_range", "unseen", "labels", "alerts", "windows",
    "measured",
)  # fmt: skip
HIGHEST = ("p99_ms", "drift_share", "auc", "max_null_rate")


def _figure(x: float) -> float:
    return float(f"{x:.4g}")  # what a digest stores


figures = st.floats(0, 1e4, allow_nan=False).map(_figure)
counts = st.integers(0, 10_000)
features = st.sampled_from(["age", "income", "grade", "term"])
digests = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "rows": counts,
        "p50_ms": st.none() | figures,
        "p99_ms": st.none() | figures,
        "judged": st.booleans(),
        "drift_share": st.none() | figures,
        "drifted": st.lists(features, unique=True),
        "scores": st.dictionaries(features, st.none() | figures),
        "prediction_drifted": st.none() | st.booleans(),
        "auc": st.none() | figures,
        "refused": st.none() | counts,
        "marked": st.none() | counts,
        "refused_by_rule": st.dictionaries(
            st.tuples(features, st.sampled_from(["type", "range"])), st.integers(1, 50)
        ).map(lambda d: [[c, r, n] for (c, r), n in sorted(d.items(), key=lambda kv: -kv[1])]),
        "max_null_rate": st.none() | figures,
        "out_of_range": st.none() | counts,
        "unseen": st.none() | counts,
        "metric": st.none() | st.sampled_from(["accuracy", "rmse"]),
        "estimated": st.none()
        | st.fixed_dictionaries({k: st.none() | figures for k in ("value", "low", "high")}),
        "labels": st.none() | counts,
        "realized": st.dictionaries(st.sampled_from(["accuracy", "roc_auc"]), figures),
        "alerts": st.none() | counts,
        "cost": st.none() | figures,
        "measured": st.none() | counts,
    }
)


@given(digests)
def test_merging_one_digest_gives_back_its_figures(one: dict[str, Any]) -> None:
    assert merge([one]) == {**one, "windows": 1}


@given(st.lists(digests, min_size=1, max_size=8), st.integers(1, 7))
def test_a_merge_of_merges_is_the_merge_of_all(ds: list[dict[str, Any]], cut: int) -> None:
    parts = [ds[:cut], ds[cut:]] if cut < len(ds) else [ds]
    whole, of_parts = merge(ds), merge([merge(p) for p in parts])
    for key in (*SUMMED, *HIGHEST, "drifted", "scores", "judged", "prediction_drifted"):
        assert of_parts[key] == whole[key], key
    assert sorted(map(tuple, of_parts["refused_by_rule"])) == sorted(
        map(tuple, whole["refused_by_rule"])
    )
    assert of_parts["metric"] == whole["metric"]
    # A cost is a sum kept to four significant digits: a merge of merges rounds twice.
    if whole["cost"] is None:
        assert of_parts["cost"] is None
    else:
        assert of_parts["cost"] == pytest.approx(whole["cost"], rel=1e-3, abs=1e-9)


def test_means_are_weighted_by_rows_and_realized_by_labels() -> None:
    quiet = {**digest({}, 10), "p50_ms": 10.0, "labels": 0, "realized": {"accuracy": 0.5}}
    busy = {**digest({}, 30), "p50_ms": 30.0, "labels": 100, "realized": {"accuracy": 0.9}}
    busy["estimated"] = {"value": 0.8, "low": 0.7, "high": 0.9}
    merged = merge([quiet, busy])
    assert merged["p50_ms"] == 25.0
    assert merged["realized"] == {"accuracy": 0.9}  # the quiet window had no labels
    assert merged["estimated"] == {"value": 0.8, "low": 0.7, "high": 0.9}
    assert (merged["rows"], merged["labels"], merged["windows"]) == (40, 100, 2)
    assert (merged["refused"], merged["alerts"]) == (None, None)  # nobody knew them


def test_windows_stored_roll_up_by_day_in_the_same_transaction(served: Workspace) -> None:
    served.monitors.backfill(
        "credit",
        lending.applications(600, start=DAY, days=2, seed=43),
        time_column=lending.TIME_COLUMN,
        label_column=lending.TARGET,
    )
    served.monitors.create("credit", MonitorConfig(window="12h", multivariate=False))
    served.monitors.run("credit", until=DAY + timedelta(days=2))
    windows = served.monitors.series("credit")
    days = served.monitors.series("credit", daily=True)
    assert [(d.start, d.end) for d in days] == [
        (DAY, DAY + timedelta(days=1)),
        (DAY + timedelta(days=1), DAY + timedelta(days=2)),
    ]
    assert [d.digest for d in days] == [
        merge([w.digest for w in windows[:2]]),
        merge([w.digest for w in windows[2:]]),
    ]
    assert [d.n_rows for d in days] == [
        windows[0].n_rows + windows[1].n_rows,
        days[1].digest["rows"],
    ]
    # A range cut inside a day reads that day whole.
    assert [
        d.start
        for d in served.monitors.series("credit", since=DAY + timedelta(hours=30), daily=True)
    ] == [DAY + timedelta(days=1)]

    # Recomputing keeps them right; rebuilding makes the same.
    served.monitors.run("credit", until=DAY + timedelta(days=2), recompute=True)
    assert [d.digest["windows"] for d in served.monitors.series("credit", daily=True)] == [2, 2]
    with served.db.write() as conn:
        conn.execute(sa.delete(monitor_rollups))
    assert served.monitors.rebuild_rollups("credit") == 2
    assert served.monitors.series("credit", daily=True) == days

    # Replacing the monitor drops its windows and their rollups.
    served.monitors.create("credit", MonitorConfig(window="12h"), replace=True)
    assert served.monitors.series("credit", daily=True) == []


def test_windows_stored_before_0013_are_rolled_up_on_upgrade(
    tmp_path: Path, database_url: str | None
) -> None:
    db = Database(database_url or sqlite_url(tmp_path / "meta.db"))
    db.migrate("0012")
    now = datetime.now(UTC)
    first = datetime(2026, 6, 1, tzinfo=UTC)
    hours = [first + timedelta(hours=h) for h in range(0, 72, 6)]  # 3 days, 4 a day
    with db.write() as conn:
        monitor_id = conn.execute(
            sa.insert(monitors)
            .values(
                endpoint="credit",
                config={},
                reference={},
                created_at=now,
                updated_at=now,
                created_by="tester",
            )
            .returning(monitors.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(monitor_windows),
            [
                {
                    "monitor_id": monitor_id,
                    "start": start,
                    "end": start + timedelta(hours=6),
                    "n_rows": i,
                    "computed_at": now,
                    "results": {"drift": {"drift_share": i / 20}},
                    # One window as a writer before 0012 left it.
                    "digest": None if i == 5 else digest({"drift": {"drift_share": i / 20}}, i),
                }
                for i, start in enumerate(hours)
            ],
        )
    db.migrate()
    with db.read() as conn:
        rows = conn.execute(sa.select(monitor_rollups).order_by(monitor_rollups.c.day)).all()
    db.dispose()
    assert [(r.n_windows, r.n_rows) for r in rows] == [(4, 6), (4, 22), (4, 38)]
    assert [r.digest["drift_share"] for r in rows] == [0.15, 0.35, 0.55]
    assert rows[1].digest["rows"] == 22  # the window without a digest counted too
