"""Which triggers hold: in monitor windows built by hand, on a schedule, on labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from setpoint.loop.policy import Policy
from setpoint.loop.triggers import Firing, in_windows, on_labels, on_schedule
from setpoint.monitoring.window import Window

OUTPUTS = ["__prediction__", "__score__"]
MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def policy(*triggers: str) -> Policy:
    """A policy of these triggers, each written as in a YAML file (``drift: any``)."""
    return Policy.from_yaml("triggers:\n" + "".join(f"  - {t}\n" for t in triggers))


def window(
    day: int = 0,
    *,
    drifted: list[str] | None = None,
    features: list[str] | None = None,
    share: float | None = None,
    reference: dict[str, Any] | None = None,
    realized: dict[str, Any] | None = None,
    estimated: dict[str, Any] | None = None,
    performance: bool = True,
) -> Window:
    """A window as a monitor computes it, with only what triggers read filled in."""
    start = MONDAY + timedelta(days=day)
    drifted = drifted or []
    features = features if features is not None else ["income", "grade", "age", *OUTPUTS]
    if share is None:
        share = len(drifted) / len(features) if features else 0.0
    results: dict[str, Any] = {
        "drift": {
            "judged": True,
            "drift_share": share,
            "drifted": share >= 0.5,
            "drifted_features": drifted,
            "features": {name: {"drifted": name in drifted} for name in features},
        },
        "performance": (
            {"reference": reference or {}, "realized": realized, "estimated": estimated}
            if performance
            else None
        ),
    }
    return Window(start, start + timedelta(days=1), 1000, results)


def estimate(value: float | None) -> dict[str, Any]:
    return {"value": value, "low": None if value is None else value - 0.05, "high": None}


def keys(firings: list[Firing]) -> list[str]:
    return [f.key for f in firings]


# --- drift ----------------------------------------------------------------------------


def test_drift_any_fires_on_any_feature_and_names_it() -> None:
    (fired,) = in_windows(policy("drift: any"), [window(drifted=["grade"])], OUTPUTS)
    assert fired.key == f"window:{MONDAY.isoformat()}"
    assert fired.trigger == {"drift": "any"}
    assert fired.evidence == {"drifted_features": ["grade"]}
    assert "grade" in fired.message
    assert "2024-01-01 00:00" in fired.message
    assert fired.since == MONDAY
    assert in_windows(policy("drift: any"), [window()], OUTPUTS) == []


def test_drift_of_named_features_fires_only_for_them() -> None:
    named = policy("drift: [income, age]")
    assert in_windows(named, [window(drifted=["grade"])], OUTPUTS) == []
    (fired,) = in_windows(named, [window(drifted=["grade", "age"])], OUTPUTS)
    assert fired.evidence == {"drifted_features": ["age"]}  # only the named ones
    assert fired.trigger == {"drift": ["income", "age"]}
    (one,) = in_windows(policy("drift: income"), [window(drifted=["income"])], OUTPUTS)
    assert one.evidence == {"drifted_features": ["income"]}


def test_the_model_outputs_never_count_as_features() -> None:
    outputs_only = window(drifted=["__prediction__", "__score__"])
    assert in_windows(policy("drift: any"), [outputs_only], OUTPUTS) == []
    named = policy("drift: [__prediction__]")  # even when named
    assert in_windows(named, [outputs_only], OUTPUTS) == []
    mixed = window(drifted=["__score__", "income"])
    (fired,) = in_windows(policy("drift: any"), [mixed], OUTPUTS)
    assert fired.evidence == {"drifted_features": ["income"]}


def test_drift_share_is_inclusive_of_its_threshold() -> None:
    features = ["a", "b", "c", "d"]
    at = window(drifted=["a"], features=features)  # 1 of 4: exactly 0.25
    below = window(drifted=[], features=features)
    (fired,) = in_windows(policy("drift_share: 0.25"), [at], OUTPUTS)
    assert fired.evidence == {"drift_share": 0.25, "drifted_features": ["a"]}
    assert fired.trigger == {"drift_share": 0.25}
    assert "25% of the features drifted" in fired.message
    assert in_windows(policy("drift_share: 0.26"), [at], OUTPUTS) == []
    assert in_windows(policy("drift_share: 0.25"), [below], OUTPUTS) == []


def test_drift_share_is_the_monitors_one_share_of_the_input_features() -> None:
    # The monitor judges its outputs apart and leaves them out of the share: the
    # prediction and the score drifting with one of three features is 1 of 3.
    skewed = window(drifted=["income"], features=["income", "grade", "age"])
    skewed.results["drift"]["prediction"] = {name: {"drifted": True} for name in OUTPUTS}
    assert in_windows(policy("drift_share: 0.5"), [skewed], OUTPUTS) == []
    (fired,) = in_windows(policy("drift_share: 0.3"), [skewed], OUTPUTS)
    assert fired.evidence["drift_share"] == pytest.approx(1 / 3)
    assert fired.evidence["drifted_features"] == ["income"]
    # A window too small to judge has no share, and fires nothing.
    small = window(drifted=[], features=["income"])
    small.results["drift"].update(judged=False, drift_share=None)
    assert in_windows(policy("drift_share: 0.01"), [small], OUTPUTS) == []


def test_drift_share_without_per_feature_detail_uses_the_monitors_share() -> None:
    bare = window(share=0.4, drifted=["a", "b"], features=[])
    (fired,) = in_windows(policy("drift_share: 0.4"), [bare], OUTPUTS)
    assert fired.evidence["drift_share"] == 0.4


def test_a_window_without_drift_or_performance_results_fires_nothing() -> None:
    empty = Window(MONDAY, MONDAY + timedelta(days=1), 0, {})
    everything = policy(
        "drift: any",
        "drift_share: 0.1",
        "performance: {metric: roc_auc, below: 0.9}",
        "performance: {metric: roc_auc, source: estimated, drop: 0.01}",
    )
    assert in_windows(everything, [empty], OUTPUTS) == []
    none_inside = Window(
        MONDAY, MONDAY + timedelta(days=1), 0, {"drift": None, "performance": None}
    )
    assert in_windows(everything, [none_inside], OUTPUTS) == []


# --- performance ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "value", "fires", "limit"),
    [
        # higher is better: roc_auc, reference 0.80
        ("{metric: roc_auc, below: 0.7}", 0.69, True, 0.7),
        ("{metric: roc_auc, below: 0.7}", 0.70, False, None),  # not worse than the value
        ("{metric: roc_auc, below: 0.7}", 0.95, False, None),
        ("{metric: roc_auc, drop: 0.1}", 0.71, True, 0.72),  # 10 % below 0.80 is 0.72
        ("{metric: roc_auc, drop: 0.1}", 0.73, False, None),
        ("{metric: roc_auc, drop: 0.1}", 0.90, False, None),
        # lower is better: log_loss, reference 0.40
        ("{metric: log_loss, below: 0.5}", 0.51, True, 0.5),  # "below" is the worst allowed
        ("{metric: log_loss, below: 0.5}", 0.49, False, None),
        ("{metric: log_loss, below: 0.5}", 0.10, False, None),
        ("{metric: log_loss, drop: 0.25}", 0.51, True, 0.5),  # 25 % worse than 0.40
        ("{metric: log_loss, drop: 0.25}", 0.49, False, None),
        ("{metric: log_loss, drop: 0.25}", 0.30, False, None),
    ],
)
@pytest.mark.parametrize("source", ["realized", "estimated"])
def test_performance_fires_when_the_metric_is_worse_in_its_own_direction(
    trigger: str, value: float, fires: bool, limit: float | None, source: str
) -> None:
    written = trigger.replace("{", "{" + f"source: {source}, ", 1)
    reference = {"roc_auc": 0.80, "log_loss": 0.40}
    metric = "roc_auc" if "roc_auc" in trigger else "log_loss"
    if source == "realized":
        measured = window(reference=reference, realized={metric: value, "labels": 500})
    else:
        measured = window(reference=reference, estimated={metric: estimate(value)})

    fired = in_windows(policy(f"performance: {written}"), [measured], OUTPUTS)

    if not fires:
        assert fired == []
        return
    (firing,) = fired
    assert firing.evidence["metric"] == metric
    assert firing.evidence["source"] == source
    assert firing.evidence["value"] == value
    assert firing.evidence["limit"] == pytest.approx(limit)
    assert firing.message.startswith(f"{source} {metric} {value:.3f} is worse than")
    assert firing.trigger["performance"]["source"] == source


def test_realized_and_estimated_are_separate_sources() -> None:
    # realized says bad, the estimate says fine: each trigger reads its own
    bad_realized = window(
        realized={"roc_auc": 0.5, "labels": 800}, estimated={"roc_auc": estimate(0.9)}
    )
    realized_trigger = policy("performance: {metric: roc_auc, below: 0.7}")
    estimated_trigger = policy("performance: {metric: roc_auc, source: estimated, below: 0.7}")
    assert len(in_windows(realized_trigger, [bad_realized], OUTPUTS)) == 1
    assert in_windows(estimated_trigger, [bad_realized], OUTPUTS) == []


def test_a_drop_is_measured_from_a_negative_reference_too() -> None:
    # r2 can be below 0; 10 % worse than -0.5 is -0.55, and -0.52 is better than that
    reference = {"r2": -0.5}
    drop = policy("performance: {metric: r2, drop: 0.1}")
    better = window(reference=reference, realized={"r2": -0.52, "labels": 90})
    assert in_windows(drop, [better], OUTPUTS) == []
    (fired,) = in_windows(
        drop, [window(reference=reference, realized={"r2": -0.6, "labels": 90})], OUTPUTS
    )
    assert fired.evidence["limit"] == pytest.approx(-0.55)


EVERY_PERFORMANCE_TRIGGER = policy(
    "performance: {metric: roc_auc, below: 0.99}",
    "performance: {metric: roc_auc, drop: 0.01}",
    "performance: {metric: roc_auc, source: estimated, below: 0.99}",
    "performance: {metric: roc_auc, source: estimated, drop: 0.01}",
)


REFERENCE = {"roc_auc": 0.8}


@pytest.mark.parametrize(
    "measured",
    [
        window(reference=REFERENCE, realized=None, estimated=None),  # no labels, no estimator
        window(performance=False),
        window(reference=REFERENCE, realized={"labels": 0}, estimated={}),  # none arrived
        window(reference=REFERENCE, realized={"roc_auc": None, "labels": 3}),  # one class
        window(reference=REFERENCE, estimated={"roc_auc": None}),
        window(reference=REFERENCE, estimated={"roc_auc": estimate(None)}),
    ],
)
def test_missing_values_never_fire(measured: Window) -> None:
    assert in_windows(EVERY_PERFORMANCE_TRIGGER, [measured], OUTPUTS) == []


def test_realized_performance_counts_from_enough_labels() -> None:
    below = policy("performance: {metric: roc_auc, below: 0.7}")
    few = window(realized={"roc_auc": 0.5, "labels": 49})
    enough = window(realized={"roc_auc": 0.5, "labels": 50})
    unknown = window(realized={"roc_auc": 0.5})  # no count of labels: none to trust
    assert in_windows(below, [few], OUTPUTS, min_labels=50) == []
    assert len(in_windows(below, [enough], OUTPUTS, min_labels=50)) == 1
    assert len(in_windows(below, [few], OUTPUTS)) == 1  # one label is enough by default
    assert in_windows(below, [unknown], OUTPUTS) == []
    # an estimate needs no labels
    guessed = policy("performance: {metric: roc_auc, source: estimated, below: 0.7}")
    estimated = window(realized={"labels": 0}, estimated={"roc_auc": estimate(0.5)})
    assert len(in_windows(guessed, [estimated], OUTPUTS, min_labels=50)) == 1


def test_only_some_triggers_can_be_asked_about() -> None:
    both = policy("drift: any", "performance: {metric: roc_auc, below: 0.7}")
    measured = window(drifted=["income"], realized={"roc_auc": 0.5, "labels": 100})
    assert len(in_windows(both, [measured], OUTPUTS)) == 2
    performance_only = [t for t in both.triggers if t.kind == "performance"]
    (fired,) = in_windows(both, [measured], OUTPUTS, only=performance_only)
    assert fired.trigger["performance"]["metric"] == "roc_auc"
    assert in_windows(both, [measured], OUTPUTS, only=[]) == []


@pytest.mark.parametrize("reference", [{}, {"roc_auc": None}, {"accuracy": 0.9}])
def test_a_drop_needs_the_reference_figure(reference: dict[str, Any]) -> None:
    measured = window(
        reference=reference,
        realized={"roc_auc": 0.1, "labels": 40},
        estimated={"roc_auc": estimate(0.1)},
    )
    fired = in_windows(EVERY_PERFORMANCE_TRIGGER, [measured], OUTPUTS)
    assert [f.trigger["performance"] for f in fired] == [
        {"metric": "roc_auc", "source": "realized", "below": 0.99},
        {"metric": "roc_auc", "source": "estimated", "below": 0.99},
    ]


# --- many windows, many triggers ------------------------------------------------------


def test_each_window_and_each_trigger_that_holds_is_a_firing_oldest_first() -> None:
    both = policy("drift: any", "drift_share: 0.2")
    windows = [window(0, drifted=["income"]), window(1), window(2, drifted=["age", "grade"])]
    fired = in_windows(both, windows, OUTPUTS)
    assert [(f.since.day, next(iter(f.trigger))) for f in fired] == [
        (1, "drift"),
        (1, "drift_share"),
        (3, "drift"),
        (3, "drift_share"),
    ]
    # every firing of one window has that window's key: one rollout per window
    assert keys(fired) == [
        f"window:{(MONDAY + timedelta(days=d)).isoformat()}" for d in (0, 0, 2, 2)
    ]


def test_window_firing_keys_are_stable() -> None:
    both = policy("drift: any", "performance: {metric: roc_auc, below: 0.7}")
    seen = window(3, drifted=["income"], realized={"roc_auc": 0.5, "labels": 60})
    again = window(3, drifted=["income"], realized={"roc_auc": 0.5, "labels": 60})
    first = in_windows(both, [seen], OUTPUTS)
    assert first == in_windows(both, [again], OUTPUTS)
    assert first == in_windows(both, [seen], OUTPUTS)
    assert keys(first) == [f"window:{(MONDAY + timedelta(days=3)).isoformat()}"] * 2
    assert first[0].to_dict()["since"] == (MONDAY + timedelta(days=3)).isoformat()


def test_schedule_and_labels_triggers_do_not_fire_in_windows() -> None:
    timed = policy("schedule: '0 3 * * 1'", "labels: 10")
    assert in_windows(timed, [window(drifted=["income"])], OUTPUTS) == []


# --- the schedule ---------------------------------------------------------------------

WEEKLY = policy("schedule: '0 3 * * 1'")  # Mondays at 03:00 UTC
TICK = MONDAY + timedelta(hours=3)


def test_the_first_look_only_starts_the_clock() -> None:
    assert on_schedule(WEEKLY, None, TICK + timedelta(days=30)) == []


def test_a_tick_between_the_last_look_and_now_fires_once_naming_the_tick() -> None:
    (fired,) = on_schedule(WEEKLY, TICK - timedelta(hours=1), TICK + timedelta(minutes=5))
    assert fired.key == f"schedule:{TICK.isoformat()}"
    assert fired.since == TICK
    assert fired.evidence == {"due": TICK.isoformat()}
    assert fired.trigger == {"schedule": "0 3 * * 1"}
    assert "2024-01-01 03:00" in fired.message
    # now exactly on the tick counts; the tick itself as the last look does not
    assert keys(on_schedule(WEEKLY, TICK - timedelta(minutes=1), TICK)) == [fired.key]
    assert on_schedule(WEEKLY, TICK, TICK + timedelta(days=6)) == []


def test_no_tick_in_between_no_firing() -> None:
    assert on_schedule(WEEKLY, TICK + timedelta(minutes=1), TICK + timedelta(days=6)) == []
    assert on_schedule(WEEKLY, TICK - timedelta(hours=2), TICK - timedelta(hours=1)) == []


def test_missed_ticks_fire_once_for_the_first_of_them() -> None:
    fired = on_schedule(WEEKLY, TICK - timedelta(hours=1), TICK + timedelta(days=21))
    assert keys(fired) == [f"schedule:{TICK.isoformat()}"]


def test_the_same_tick_seen_twice_has_the_same_key() -> None:
    early = on_schedule(WEEKLY, TICK - timedelta(hours=5), TICK + timedelta(minutes=1))
    late = on_schedule(WEEKLY, TICK - timedelta(minutes=1), TICK + timedelta(hours=5))
    assert keys(early) == keys(late)


def test_each_schedule_fires_on_its_own() -> None:
    two = policy("schedule: '0 3 * * 1'", "schedule: '0 * * * *'", "drift: any")
    fired = on_schedule(two, TICK - timedelta(minutes=30), TICK + timedelta(minutes=1))
    assert [f.trigger["schedule"] for f in fired] == ["0 3 * * 1", "0 * * * *"]
    assert on_schedule(policy("drift: any"), TICK - timedelta(days=9), TICK) == []


# --- labels ---------------------------------------------------------------------------


def test_labels_fire_at_the_count() -> None:
    enough = policy("labels: 500")
    since = MONDAY
    now = MONDAY + timedelta(days=3)
    assert on_labels(enough, 499, since, now) == []
    (fired,) = on_labels(enough, 500, since, now)
    assert fired.trigger == {"labels": 500}
    assert fired.evidence == {"labels": 500, "since": since.isoformat()}
    assert fired.since == since
    assert "500 new labels since 2024-01-01 00:00" in fired.message
    assert len(on_labels(enough, 12_345, since, now)) == 1
    assert "12,345 new labels" in on_labels(enough, 12_345, since, now)[0].message
    assert on_labels(policy("drift: any"), 10**6, since, now) == []


def test_the_labels_key_names_the_count_since_the_last_retraining() -> None:
    enough = policy("labels: 500")
    since = MONDAY
    first = on_labels(enough, 600, since, MONDAY + timedelta(days=3))
    # a later tick (or a second loop) sees the same labels: the same firing
    again = on_labels(enough, 700, since, MONDAY + timedelta(days=3, minutes=5))
    assert keys(first) == keys(again) == [f"labels:{since.isoformat()}"]
    # after a retraining the count starts again, under a new key
    after = on_labels(enough, 500, MONDAY + timedelta(days=10), MONDAY + timedelta(days=20))
    assert keys(after) != keys(first)


def test_a_firing_is_plain_data() -> None:
    (fired,) = in_windows(policy("drift: any"), [window(drifted=["income"])], OUTPUTS)
    assert fired.to_dict() == {
        "key": f"window:{MONDAY.isoformat()}",
        "trigger": {"drift": "any"},
        "message": fired.message,
        "evidence": {"drifted_features": ["income"]},
        "since": MONDAY.isoformat(),
    }
