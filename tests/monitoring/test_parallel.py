"""A monitor run split over processes (or Ray tasks) gives the sequential run's windows."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytest
from monitor_support import DAY
from test_monitor import give_labels, replay

from ray_support import ray_cluster  # noqa: F401
from setpoint.demo import lending
from setpoint.errors import UsageError
from setpoint.monitoring import parallel
from setpoint.monitoring.monitor import Monitors
from setpoint.monitoring.parallel import shares
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving.log import RecordLog, compact
from setpoint.workspace import Workspace

DAYS = 4
NOW = DAY + timedelta(days=30)  # the runs' clock: freshness is measured from it


def many_files(ws: Workspace) -> None:
    """Four days of traffic, each day written as a file of its own: the first two
    compacted into Parquet partitions, the last two left as segments; the last two
    drifted; labels for some of the first days' rows; a few refused rows."""
    answered: list[str] = []
    for day in range(DAYS):
        frame = lending.applications(
            500,
            start=DAY + timedelta(days=day),
            days=1,
            drift=lending.Drift(start=DAY, covariate=1.0) if day >= 2 else lending.Drift(),
            seed=40 + day,
        )
        ids = replay(ws, frame)
        if day < 2:
            answered += ids[:300]
        if day == 1:
            compact(ws.root)
    labels = [i % 3 == 0 for i in range(len(answered))]
    give_labels(ws, answered, labels, DAY + timedelta(days=2, hours=5))
    with RecordLog(ws.root, kind="refused") as log:
        log.append(
            [
                {
                    "request_id": f"refused-{i}",
                    "ts": DAY + timedelta(hours=7 * i + 1),
                    "endpoint": "credit",
                    "row": 0,
                    "model": "credit-risk",
                    "version": 1,
                    "inputs": {"age": "old", "loan_amount": 1e9},
                    "reasons": [{"column": "age", "rule": "type", "value": "old"}],
                }
                for i in range(10)
            ]
        )


def stored(monitors: Monitors) -> list[dict[str, Any]]:
    return [w.to_dict() for w in monitors.windows("credit")]


def run_both_ways(served: Workspace, **parallel: Any) -> tuple[list[Any], list[Any]]:
    """Every window of the traffic computed split as asked, then by a new monitor
    sequentially: what each run stored."""
    monitors = Monitors(served, clock=lambda: NOW)
    monitors.create("credit", MonitorConfig(window="12h"))
    many_files(served)
    until = DAY + timedelta(days=DAYS)
    split = monitors.run("credit", until=until, **parallel)
    assert len(split) == 2 * DAYS
    stored_split = stored(monitors)
    monitors.create("credit", MonitorConfig(window="12h"), replace=True)  # no window left
    sequential = monitors.run("credit", until=until)
    assert [w.to_dict() for w in split] == [w.to_dict() for w in sequential]
    return stored(monitors), stored_split


def test_four_processes_store_the_sequential_windows(served: Workspace) -> None:
    sequential, split = run_both_ways(served, workers=4)
    assert split == sequential  # every stored number
    # The windows measured something: the comparison is of real figures.
    early, late = sequential[0], sequential[-1]
    assert early["n_rows"] > 200
    assert early["judged"]
    assert early["multivariate"] is not None
    assert early["performance"]["realized"]["labels"] > 0
    assert early["performance"]["estimated"] is not None
    assert early["quality"]["rejected"] > 0
    assert {"age", "loan_amount"} <= set(late["drift"]["drifted_features"])
    assert sequential[1]["quality"]["expected_volume"] == early["n_rows"]
    assert early["freshness"]["prediction_age_hours"] == pytest.approx(
        (NOW - (DAY + timedelta(days=DAYS))).total_seconds() / 3600, abs=0.1
    )


def test_ray_tasks_store_the_sequential_windows(
    served: Workspace,
    ray_cluster: Any,  # noqa: F811
) -> None:
    sequential, split = run_both_ways(served, workers=3, engine="ray")
    assert split == sequential


def test_the_run_is_cut_into_contiguous_shares() -> None:
    spans = list(range(10))
    cut = shares(spans, 4)
    assert cut == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert shares(spans[:2], 4) == [[0], [1]]  # no empty share
    assert shares([], 4) == []


def test_a_run_without_new_windows_starts_no_worker(
    served: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitors = Monitors(served, clock=lambda: NOW)
    monitors.create("credit", MonitorConfig(window="1d"))

    def no_worker(*args: object, **kwargs: object) -> None:
        raise AssertionError("a worker was started")

    monkeypatch.setattr(parallel, "start", no_worker)
    monkeypatch.setattr(parallel, "measure", no_worker)
    assert monitors.run("credit", until=DAY, workers=4) == []  # no traffic at all
    many_files(served)
    assert monitors.run("credit", until=DAY, workers=4) == []  # no complete window yet


def test_mistakes_are_named(served: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    served.monitors.create("credit", MonitorConfig(window="1d"))
    with pytest.raises(UsageError, match="at least 1"):
        served.monitors.run("credit", until=DAY, workers=0)
    with pytest.raises(UsageError, match="local or ray"):
        served.monitors.run("credit", until=DAY, engine="spark")
    with pytest.raises(UsageError, match="address names a Ray cluster"):
        served.monitors.run("credit", until=DAY, workers=2, address="10.0.0.5:6379")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(UsageError, match=r"pip install 'setpoint\[ray\]'"):
        served.monitors.run("credit", until=DAY, engine="ray")
