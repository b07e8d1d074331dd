"""Window digests: what the dashboard's series read instead of a window's results."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from monitor_support import DAY

from setpoint.demo import lending
from setpoint.errors import NotFoundError
from setpoint.monitoring.digest import digest
from setpoint.monitoring.settings import MonitorConfig
from setpoint.store.db import Database, sqlite_url
from setpoint.store.schema import monitor_windows, monitors
from setpoint.workspace import Workspace

KEYS = {
    "v", "rows", "p50_ms", "p99_ms", "judged", "drift_share", "drifted", "scores",
    "prediction_drifted", "auc", "refused", "marked", "refused_by_rule", "max_null_rate",
    "out_of_range", "unseen", "metric", "estimated", "labels", "realized", "alerts",
    "cost", "measured",
}  # fmt: skip


def test_windows_are_stored_with_digests_that_series_reads_in_order(served: Workspace) -> None:
    traffic = lending.applications(600, start=DAY, days=1, seed=41)
    traffic["age"] = traffic["age"].astype(object)
    traffic.loc[traffic.index[3], "age"] = "forty"  # refused by the contract
    served.monitors.backfill(
        "credit", traffic, time_column=lending.TIME_COLUMN, label_column=lending.TARGET
    )
    served.monitors.create("credit", MonitorConfig(window="12h"))
    windows = served.monitors.run("credit", until=DAY + timedelta(days=1))

    series = served.monitors.series("credit")
    assert [(s.start, s.end, s.n_rows) for s in series] == [
        (w.start, w.end, w.n_rows) for w in windows
    ]
    first = series[0].digest
    assert set(first) == KEYS
    assert len(json.dumps(first)) < 1500  # eleven features; the results are ~17 KB
    assert set(first["scores"]) == set(windows[0].results["drift"]["features"])
    assert first["rows"] == windows[0].n_rows
    assert first["refused"] == 1
    assert first["refused_by_rule"] == [["age", "type", 1]]
    assert first["metric"] == "accuracy"
    band = first["estimated"]
    assert band["low"] <= band["value"] <= band["high"]
    assert first["labels"] == first["rows"]  # outcomes came with the traffic
    assert 0 < first["realized"]["accuracy"] <= 1
    assert 0 < first["auc"] < 1
    assert isinstance(first["alerts"], int)

    assert [s.start for s in served.monitors.series("credit", since=DAY + timedelta(hours=12))] == [
        DAY + timedelta(hours=12)
    ]
    assert [s.start for s in served.monitors.series("credit", until=DAY + timedelta(hours=12))] == [
        DAY
    ]
    with pytest.raises(NotFoundError):
        served.monitors.series("nowhere")


def test_a_window_stored_without_a_digest_is_digested_as_it_is_read(served: Workspace) -> None:
    served.monitors.backfill(
        "credit",
        lending.applications(300, start=DAY, days=1, seed=42),
        time_column=lending.TIME_COLUMN,
    )
    served.monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    [window] = served.monitors.run("credit", until=DAY + timedelta(days=1))
    with served.db.write() as conn:  # as a writer older than migration 0012 left it
        conn.execute(sa.update(monitor_windows).values(digest=sa.null()))
    [read] = served.monitors.series("credit")
    assert read.digest == digest(window.results, window.n_rows)
    assert (read.digest["labels"], read.digest["realized"]) == (0, {})


def test_sections_that_are_missing_or_old_digest_without_error() -> None:
    empty = digest({}, 0)
    assert set(empty) == KEYS
    assert (empty["rows"], empty["scores"], empty["estimated"], empty["realized"]) == (
        0,
        {},
        None,
        {},
    )
    # Too few rows to judge, no labels, no performance: still a digest.
    unjudged = digest({"judged": False, "drift": {"judged": False, "drift_share": None}}, 3)
    assert (unjudged["judged"], unjudged["drift_share"], unjudged["labels"]) == (False, None, None)
    # An older shape: features at the top, the model's answer among them.
    old = digest(
        {
            "features": {
                "age": {"effect": 0.123456, "threshold": 0.1, "drifted": True},
                "__prediction__": {"effect": 0.5, "threshold": 0.1, "drifted": True},
            },
            "drifted_features": ["age", "__prediction__"],
            "quality": {"rejected": 4, "unseen": {"grade": {"Z": 2, "Y": 1}}, "null_rates": {}},
            "latency": {"p50_ms": math.nan, "p99_ms": "slow"},
        },
        10,
    )
    assert old["scores"] == {"age": 1.235}  # four significant digits
    assert (old["drifted"], old["prediction_drifted"]) == (["age"], True)
    assert (old["refused"], old["unseen"], old["max_null_rate"]) == (4, 3, None)
    assert (old["p50_ms"], old["p99_ms"]) == (None, None)


def _window(results: dict[str, Any]) -> dict[str, Any]:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    return {"start": now, "end": now + timedelta(hours=1), "n_rows": 5, "results": results}


def test_windows_stored_before_0012_get_their_digest_on_upgrade(
    tmp_path: Path, database_url: str | None
) -> None:
    db = Database(database_url or sqlite_url(tmp_path / "meta.db"))
    db.migrate("0011")
    results = {"drift": {"drift_share": 0.5, "features": {"age": {"effect": 2, "threshold": 1}}}}
    now = datetime.now(UTC)
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
            sa.insert(monitor_windows).values(
                monitor_id=monitor_id, computed_at=now, **_window(results)
            )
        )
    db.migrate()
    with db.read() as conn:
        [stored] = conn.execute(sa.select(monitor_windows.c.digest)).scalars()
        columns = [c["name"] for c in sa.inspect(conn).get_columns("monitor_windows")]
    db.dispose()
    assert stored == digest(results, 5)
    if db.is_sqlite:  # read without passing through the results' overflow pages
        assert columns.index("digest") < columns.index("results")
    assert (stored["drift_share"], stored["scores"]) == (0.5, {"age": 2.0})
