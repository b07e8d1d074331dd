"""Monitors end to end: a served model, logged traffic over days, windows and alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitor_support import DAY, SPEC
from webhook_support import Receiver

from setpoint.demo import lending
from setpoint.errors import ConflictError, NotFoundError, UsageError
from setpoint.monitoring.settings import DriftSettings, MonitorConfig, WebhookConfig
from setpoint.serving.log import RecordLog
from setpoint.workspace import Workspace


def replay(ws: Workspace, frame: pd.DataFrame) -> list[str]:
    """Log the model's answers to ``frame`` as the server would, at the rows' times;
    the request ids."""
    model = ws.load_model("credit-risk@champion")
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    proba = model.predict_proba(features)
    assert proba is not None
    records: list[dict[str, Any]] = []
    for i, (row, when) in enumerate(
        zip(features.to_dict(orient="records"), frame[lending.TIME_COLUMN], strict=True)
    ):
        inputs = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        records.append(
            {
                "request_id": f"{when.isoformat()}-{i}",
                "row": 0,
                "ts": when.floor("us").to_pydatetime(),
                "endpoint": "credit",
                "model": "credit-risk",
                "version": 1,
                "route": "champion",
                "inputs": inputs,
                "outputs": {
                    "prediction": int(proba[i, 1] >= 0.5),
                    "probabilities": proba[i].tolist(),
                },
                "latency_ms": 2.0 + i % 5,
                "cached": False,
                "fallback": False,
            }
        )
    log = RecordLog(ws.root, kind="predictions")
    log.append(records)
    log.close()
    return [r["request_id"] for r in records]


def give_labels(ws: Workspace, ids: list[str], labels: np.ndarray, when: datetime) -> None:
    log = RecordLog(ws.root, kind="feedback")
    log.append(
        [
            {"request_id": i, "row": 0, "ts": when, "endpoint": "credit", "label": int(y)}
            for i, y in zip(ids, labels, strict=True)
        ]
    )
    log.close()


def test_daily_windows_find_the_shift_and_raise_alerts_once(served: Workspace) -> None:
    monitors = served.monitors
    monitors.create("credit", MonitorConfig(window="1d", multivariate=True))
    calm = lending.applications(1_500, start=DAY, days=1, seed=21)
    shifted = lending.applications(
        1_500,
        start=DAY + timedelta(days=1),
        days=1,
        drift=lending.Drift(start=DAY, covariate=1.0),
        seed=22,
    )
    calm_ids = replay(served, calm)
    replay(served, shifted)
    give_labels(
        served, calm_ids[:800], calm[lending.TARGET].to_numpy()[:800], DAY + timedelta(days=2)
    )

    windows = monitors.run("credit", until=DAY + timedelta(days=2))
    assert [w.start for w in windows] == [DAY, DAY + timedelta(days=1)]
    first, second = windows
    assert first.n_rows == 1_500
    assert first.results["drift"]["drifted_features"] == []
    assert not first.results["multivariate"]["drifted"]
    # The shifted day: younger applicants, bigger loans, a new channel mix.
    drifted = set(second.results["drift"]["drifted_features"])
    assert {"age", "loan_amount", "channel"} <= drifted
    assert second.results["multivariate"]["drifted"]
    # Labels came for the first day only; its realized figures and coverage say so.
    realized = first.results["performance"]["realized"]
    assert realized["labels"] == 800
    assert realized["coverage"] == pytest.approx(800 / 1_500)
    assert realized["accuracy"] is not None
    assert realized["label_delay_hours"] > 24
    assert second.results["performance"]["realized"]["labels"] == 0
    estimated = first.results["performance"]["estimated"]["accuracy"]
    assert estimated["low"] <= estimated["value"] <= estimated["high"]
    assert first.results["latency"]["p50_ms"] == pytest.approx(4.0)
    assert first.results["quality"]["volume"] == 1_500
    assert first.results["quality"]["expected_volume"] is None  # nothing before it
    assert second.results["quality"]["expected_volume"] == 1_500
    freshness = second.results["freshness"]
    now = datetime.now(UTC)
    newest = (now - (DAY + timedelta(days=2))).total_seconds() / 3600
    assert freshness["prediction_age_hours"] == pytest.approx(newest, abs=0.5)
    assert freshness["label_age_hours"] == pytest.approx(newest, abs=0.5)  # given at day 2
    assert 0 <= freshness["training_data_age_hours"] < 1  # registered by the fixture

    keys = {a.key for a in monitors.alerts.list(endpoint="credit")}
    assert {"drift:feature:age", "drift:feature:channel", "drift:multivariate"} <= keys
    # Nothing new to compute: a second run does nothing and raises nothing new.
    assert monitors.run("credit", until=DAY + timedelta(days=2)) == []
    assert len(monitors.windows("credit")) == 2
    assert all(a.count == 1 for a in monitors.alerts.list(endpoint="credit"))


def test_recompute_replaces_windows_instead_of_adding(served: Workspace) -> None:
    served.monitors.create("credit", MonitorConfig(window="12h", multivariate=False))
    replay(served, lending.applications(600, start=DAY, days=1, seed=3))
    assert len(served.monitors.run("credit", until=DAY + timedelta(days=1))) == 2
    again = served.monitors.run("credit", until=DAY + timedelta(days=1), recompute=True)
    assert len(again) == 2
    assert len(served.monitors.windows("credit")) == 2
    # Later windows follow on from the last one, empty ones included: no traffic is news.
    quiet = served.monitors.run("credit", until=DAY + timedelta(days=2))
    assert [(w.n_rows, w.results["judged"]) for w in quiet] == [(0, False), (0, False)]
    assert quiet[0].results["quality"]["expected_volume"] == 300


def test_mistakes_are_named(served: Workspace) -> None:
    with pytest.raises(NotFoundError, match="setpoint monitor create credit"):
        served.monitors.get("credit")
    with pytest.raises(UsageError, match="span of time"):
        MonitorConfig(window="weekly")
    with pytest.raises(UsageError, match=r"windw: unknown key; did you mean .window.\?"):
        MonitorConfig.from_dict({"windw": "1d"})
    served.monitors.create("credit", MonitorConfig(multivariate=False))
    with pytest.raises(ConflictError, match="--replace"):
        served.monitors.create("credit")
    assert served.monitors.create("credit", replace=True).endpoint == "credit"
    assert served.monitors.run("credit") == []  # no traffic yet: nothing to compute
    events = served.audit(entity_type="monitor")
    assert [e.action for e in events][:2] == ["monitor.replace", "monitor.create"]


def test_the_commands_create_run_show_and_acknowledge(served: Workspace) -> None:
    import json

    from typer.testing import CliRunner

    from setpoint.cli.main import app

    def cli(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, ["-w", str(served.root), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout if code == 0 else " ".join(result.output.split())

    assert "setpoint monitor create credit" in cli("monitor", "show", "credit", code=3)
    created = json.loads(
        cli("monitor", "create", "credit", "--window", "1d", "--late-label-windows", "2", "--json")
    )
    assert created["reference"]["dataset"] == "loans@1"
    assert created["config"]["late_label_windows"] == 2
    shifted = lending.Drift(start=DAY, covariate=1.0)
    replay(served, lending.applications(800, start=DAY, days=1, drift=shifted, seed=5))
    until = "2026-06-02T00:00:00"
    ran = json.loads(cli("monitor", "run", "credit", "--until", until, "--json"))
    assert [w["rows"] for w in ran["credit"]] == [800]
    assert "age" in ran["credit"][0]["drifted"]
    assert "no new complete window" in cli("monitor", "run", "--until", until)
    shown = json.loads(cli("monitor", "show", "credit", "--json"))
    assert [w["start"] for w in shown["windows"]] == ["2026-06-01T00:00:00+00:00"]
    assert "age: distribution moved" in cli("monitor", "show", "credit")
    alerts = json.loads(cli("alerts", "list", "--endpoint", "credit", "--json"))
    age = next(a for a in alerts if a["key"] == "drift:feature:age")
    assert age["state"] == "open"
    cli("alerts", "ack", str(age["id"]), "--note", "expected: the new partner channel")
    acknowledged = json.loads(cli("alerts", "list", "--state", "acknowledged", "--json"))
    assert [a["id"] for a in acknowledged] == [age["id"]]
    assert "there is no alert 99999" in cli("alerts", "ack", "99999", code=3)
    page = served.root / "reports" / "credit.html"
    written = json.loads(cli("report", "credit", "-o", str(page), "--json"))
    assert written == {"report": str(page), "windows": 1}
    html = page.read_text()
    assert "credit-risk" in html
    assert html.count("<svg") >= 4


def test_labels_that_come_after_a_window_bring_its_realized_performance_up_to_date(
    served: Workspace,
) -> None:
    monitors = served.monitors
    monitors.create("credit", MonitorConfig(window="1d", multivariate=False, late_label_windows=2))
    day = lending.applications(1_000, start=DAY, days=1, seed=31)
    ids = replay(served, day)
    [computed] = monitors.run("credit", until=DAY + timedelta(days=1))
    assert computed.results["performance"]["realized"]["labels"] == 0

    # A day later the outcomes come; the next run (no new window yet) takes them in.
    give_labels(served, ids, day[lending.TARGET].to_numpy(), DAY + timedelta(days=1, hours=2))
    assert monitors.run("credit", until=DAY + timedelta(days=1, hours=3)) == []
    [window] = monitors.windows("credit")
    realized = window.results["performance"]["realized"]
    assert realized["labels"] == 1_000
    assert realized["roc_auc"] > 0.6
    assert 2 < realized["label_delay_hours"] < 26  # a day of traffic, labelled 2 h after it
    # The window's digest, which the dashboard's series read, is brought up to date too.
    [digested] = monitors.series("credit")
    assert digested.digest["labels"] == 1_000
    [day_rollup] = monitors.series("credit", daily=True)  # and so is its day's rollup
    assert day_rollup.digest["labels"] == 1_000


def test_late_labels_are_not_looked_for_beyond_the_configured_windows(served: Workspace) -> None:
    monitors = served.monitors
    monitors.create("credit", MonitorConfig(window="1d", multivariate=False, late_label_windows=0))
    day = lending.applications(500, start=DAY, days=1, seed=32)
    ids = replay(served, day)
    monitors.run("credit", until=DAY + timedelta(days=1))
    give_labels(served, ids, day[lending.TARGET].to_numpy(), DAY + timedelta(days=1, hours=2))
    monitors.run("credit", until=DAY + timedelta(days=1, hours=3))
    [window] = monitors.windows("credit")
    assert window.results["performance"]["realized"]["labels"] == 0


def test_a_window_another_process_stored_first_counts_as_computed(served: Workspace) -> None:
    monitors = served.monitors
    monitor = monitors.create("credit", MonitorConfig(window="1d", multivariate=False))
    replay(served, lending.applications(300, start=DAY, days=1, seed=33))
    [window] = monitors.run("credit", until=DAY + timedelta(days=1))
    # A second loop that computed the same window stores nothing and raises nothing.
    assert monitors._store(monitor, window, replace=False) is False
    assert [w.start for w in monitors.windows("credit")] == [DAY]


def answered(ws: Workspace, frame: pd.DataFrame) -> np.ndarray:
    """The labels the champion answered for ``frame`` (as ``replay`` logs them)."""
    proba = ws.load_model("credit-risk@champion").predict_proba(
        frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    )
    assert proba is not None
    return (proba[:, 1] >= 0.5).astype(int)


def test_late_labels_that_bring_accuracy_below_threshold_raise_one_alert(
    served: Workspace, webhook_receiver: Receiver
) -> None:
    monitors = served.monitors
    hook = WebhookConfig(url=webhook_receiver.url)
    config = MonitorConfig(window="1d", multivariate=False, late_label_windows=3, webhooks=(hook,))
    monitors.create("credit", config)
    key = "performance:realized:accuracy"
    first = lending.applications(1_000, start=DAY, days=1, seed=41)
    ids = replay(served, first)
    [window] = monitors.run("credit", until=DAY + timedelta(days=1))
    assert window.results["performance"]["realized"]["labels"] == 0
    assert key not in {a.key for a in monitors.alerts.list(endpoint="credit")}

    # A day later the outcomes come: the model got nine in ten wrong.
    wrong = 1 - answered(served, first)
    wrong[::10] = 1 - wrong[::10]
    give_labels(served, ids, wrong, DAY + timedelta(days=1, hours=2))
    assert monitors.run("credit", until=DAY + timedelta(days=1, hours=3)) == []
    [alert] = [a for a in monitors.alerts.list(endpoint="credit") if a.key == key]
    assert alert.state == "open"
    assert "accuracy 0.100 on 1000 labels" in alert.message
    # The data's time (the window's end), and the clock's when it was noticed.
    assert alert.first_seen == DAY + timedelta(days=1)
    assert alert.noticed_at is not None
    assert abs(alert.noticed_at - datetime.now(UTC)) < timedelta(minutes=10)
    assert [b["key"] for b in webhook_receiver.bodies] == [key]

    # The next day's window has its labels when computed: the same condition raises
    # the same alert (counted, not notified again within the cooldown).
    second = lending.applications(1_000, start=DAY + timedelta(days=1), days=1, seed=42)
    give_labels(
        served,
        replay(served, second),
        1 - answered(served, second),
        DAY + timedelta(days=2, hours=1),
    )
    monitors.run("credit", until=DAY + timedelta(days=2))
    # A day without labels cannot judge realized performance: the alert stays open.
    replay(served, lending.applications(500, start=DAY + timedelta(days=2), days=1, seed=43))
    monitors.run("credit", until=DAY + timedelta(days=3))
    [alert] = [a for a in monitors.alerts.list(endpoint="credit") if a.key == key]
    assert (alert.state, alert.count) == ("open", 2)
    assert alert.last_seen == DAY + timedelta(days=2)
    assert [b["key"] for b in webhook_receiver.bodies] == [key]


def test_windows_too_small_to_judge_say_so_everywhere(served: Workspace, tmp_path: Path) -> None:
    monitors = served.monitors
    config = MonitorConfig(window="1d", multivariate=False, drift=DriftSettings(dataset_share=0.2))
    monitors.create("credit", config)
    shifted = lending.Drift(start=DAY, covariate=1.0)
    replay(served, lending.applications(1_500, start=DAY, days=1, drift=shifted, seed=51))
    replay(served, lending.applications(40, start=DAY + timedelta(days=1), days=1, seed=52))
    # Nothing at all on the third day.
    busy, small, empty = monitors.run("credit", until=DAY + timedelta(days=3))
    assert (busy.n_rows, small.n_rows, empty.n_rows) == (1_500, 40, 0)

    # The model's outputs are judged apart and never counted in the share.
    drift = busy.results["drift"]
    assert set(drift["prediction"]) == {"__prediction__", "__score__"}
    assert not set(drift["features"]) & {"__prediction__", "__score__"}
    share = len(drift["drifted_features"]) / len(drift["features"])
    assert drift["drift_share"] == share
    for window in (small, empty):
        assert window.results["judged"] is False
        assert window.results["drift"]["drift_share"] is None
        assert window.results["drift"]["drifted"] is False

    # One share: the alert, the report's summary and the CLI say the same figure.
    [dataset] = [a for a in monitors.alerts.list(endpoint="credit") if a.key == "drift:dataset"]
    assert f"{share:.0%} of the input features drifted" in dataset.message
    assert dataset.evidence["drift_share"] == share
    # The small and empty days resolve nothing: they judged nothing.
    assert dataset.state == "open"

    from typer.testing import CliRunner

    from setpoint.cli.main import app
    from setpoint.monitoring.report import ReportData, render_report

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["-w", str(served.root), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    shown = json.loads(cli("monitor", "show", "credit", "--json"))
    assert [(w["judged"], w["drift"]["drift_share"]) for w in shown["windows"]] == [
        (True, share),
        (False, None),
        (False, None),
    ]
    table = cli("monitor", "show", "credit")
    assert table.count("not judged") == 3  # two rows and the note under the table
    assert f"{share:.0%}" in table
    assert all(len(line) <= 80 for line in table.splitlines()), table

    page = render_report(ReportData.from_dict(monitors.report_data("credit")))
    verdict = page.split('<p class="verdict">', 1)[1].split("</p>", 1)[0]
    assert verdict.startswith("The latest window (2026-06-03) was not judged: 0 rows")
    assert "in the last judged window (2026-06-01), input drift in" in verdict
    assert "No input drift" not in page
    assert f"({share:.0%} of the input features)" in page


def test_a_monitor_learns_thresholds_from_its_reference_time(served: Workspace) -> None:
    monitors = served.monitors
    config = MonitorConfig(window="7d", multivariate=False, time_column=lending.TIME_COLUMN)
    monitor = monitors.create("credit", config)
    learned = monitor.reference.learned_for("7d")
    assert monitor.reference.time_column == lending.TIME_COLUMN
    assert learned is not None
    assert learned.chunks >= 10  # about 13 weeks of history
    assert set(learned.effects) == {*monitor.reference.features, "__prediction__", "__score__"}
    assert monitor.to_dict()["reference"]["learned_from_time"] == learned.to_dict()
    # A run judges its windows with them: no threshold below what time taught.
    replay(served, lending.applications(2_000, start=DAY, days=7, seed=31))
    [window] = monitors.run("credit", until=DAY + timedelta(days=7))
    features = window.results["drift"]["features"]
    assert all(f["threshold"] >= learned.effects[name] for name, f in features.items())
    # Static thresholds learn nothing; a time column the data lacks is named.
    static = MonitorConfig(window="7d", learn_thresholds=False, time_column=lending.TIME_COLUMN)
    assert monitors.create("credit", static, replace=True).reference.learned == {}
    with pytest.raises(UsageError, match="time column 'when' is not in the reference data"):
        monitors.create("credit", MonitorConfig(time_column="when"), replace=True)


def test_a_time_split_model_is_learned_from_by_its_split_column(served: Workspace) -> None:
    spec = {
        **SPEC,
        "exclude": [],
        "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.3},
    }
    version = served.train(spec)
    served.promote(version.name, version.version)
    monitor = served.monitors.create("credit", MonitorConfig(window="7d", multivariate=False))
    assert monitor.reference.time_column == lending.TIME_COLUMN
    learned = monitor.reference.learned_for("7d")
    assert learned is not None
    # The hold-out (the last 30%: four weeks of 300 labelled rows) taught the allowed drop.
    assert set(learned.performance_drop) == {"accuracy"}
    assert learned.performance_drop["accuracy"] > 0


def test_late_labels_of_an_older_window_do_not_clear_what_a_newer_one_shows(
    served: Workspace,
) -> None:
    monitors = served.monitors
    monitors.create("credit", MonitorConfig(window="1d", multivariate=False, late_label_windows=3))
    key = "performance:realized:accuracy"
    first = lending.applications(600, start=DAY, days=1, seed=44)
    first_ids = replay(served, first)
    monitors.run("credit", until=DAY + timedelta(days=1))  # no labels yet
    second = lending.applications(600, start=DAY + timedelta(days=1), days=1, seed=45)
    give_labels(
        served,
        replay(served, second),
        1 - answered(served, second),
        DAY + timedelta(days=1, hours=23),
    )
    monitors.run("credit", until=DAY + timedelta(days=2))
    [alert] = [a for a in monitors.alerts.list(endpoint="credit") if a.key == key]
    assert alert.state == "open"

    # The first day's outcomes come late, and the model did well on that day: the
    # newer day still shows the drop, so the alert stays open.
    right = answered(served, first)
    give_labels(served, first_ids, right, DAY + timedelta(days=2, hours=1))
    monitors.run("credit", until=DAY + timedelta(days=2, hours=2))
    [older, newer] = monitors.windows("credit")
    assert older.results["performance"]["realized"]["accuracy"] == 1.0
    assert newer.results["performance"]["realized"]["accuracy"] == 0.0
    [alert] = [a for a in monitors.alerts.list(endpoint="credit") if a.key == key]
    assert (alert.state, alert.count) == ("open", 1)


def test_an_hourly_monitor_on_a_long_reference_is_made(served: Workspace) -> None:
    # The champion was trained on 90 days of loans: over 1,800 hours with a loan, more
    # chunks than `cut` takes, and the monitor was refused ("choose a longer period");
    # thresholds are now learned from the reference's last 1,000 hours.
    config = MonitorConfig(window="1h", time_column=lending.TIME_COLUMN)
    monitor = served.monitors.create("credit", config)
    assert monitor.reference.time_column == lending.TIME_COLUMN
