"""Policies: the YAML a person writes, its defaults, its mistakes, and the store."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.errors import NotFoundError, UsageError
from setpoint.loop import policy as policy_module
from setpoint.loop.gates import GateConfig, MetricGate
from setpoint.loop.policy import (
    ACTIONS,
    Performance,
    Policy,
    PolicyStore,
    RetrainSettings,
    RolloutSettings,
    Trigger,
    next_run,
)
from setpoint.models.evaluation import METRICS
from setpoint.workspace import Workspace


def docstring_example() -> str:
    """The YAML of the module docstring, as a person would copy it."""
    doc = policy_module.__doc__
    assert doc is not None
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(block)


def parse(text: str) -> Policy:
    return Policy.from_yaml(textwrap.dedent(text))


def mistake(text: str) -> str:
    """The message of the UsageError the policy ``text`` gives."""
    with pytest.raises(UsageError) as caught:
        parse(text)
    return caught.value.message


# --- the example and the defaults ----------------------------------------------------


def test_the_docstring_example_parses_with_every_setting_it_names() -> None:
    policy = Policy.from_yaml(docstring_example())

    assert [t.kind for t in policy.triggers] == [
        "drift",
        "drift_share",
        "performance",
        "schedule",
        "labels",
    ]
    drift, share, performance, schedule, labels = policy.triggers
    assert drift.features == ()  # any feature
    assert share.share == 0.3
    assert (performance.metric, performance.source) == ("roc_auc", "realized")
    assert (performance.drop, performance.below) == (0.05, None)
    assert schedule.cron == "0 3 * * 1"
    assert labels.labels == 5000
    assert policy.actions == ("alert", "retrain", "shadow", "promote", "rollback")
    assert policy.mode == "shadow"
    assert (policy.retrain.window, policy.retrain.min_rows) == ("since_trigger", 1000)
    assert policy.gates.metrics == (MetricGate(metric="roc_auc", min_delta=0.0),)
    assert (policy.gates.confidence, policy.gates.segments) == (0.9, ("channel",))
    assert policy.rollout.span == timedelta(days=7)
    assert (policy.rollout.min_labels, policy.rollout.max_metric_drop) == (200, 0.02)
    assert policy.approval == "required"
    assert policy.promotes_alone is False  # promote, but a person approves
    assert policy.cooldown_span == timedelta(days=7)


def test_the_docstring_example_round_trips() -> None:
    policy = Policy.from_yaml(docstring_example())
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_yaml(policy.to_yaml()) == policy
    # to_dict is plain data: JSON-able and YAML-able as it is
    assert yaml.safe_load(policy.to_yaml()) == policy.to_dict()


def test_defaults_fill_in_everything_but_the_triggers() -> None:
    policy = parse("triggers: [{drift: any}]")
    assert policy.actions == ("alert", "retrain", "shadow", "promote", "rollback")
    assert policy.retrain == RetrainSettings()
    assert (policy.retrain.window, policy.retrain.days) == ("since_trigger", 28.0)
    assert (policy.retrain.include_original, policy.retrain.min_rows) == (False, 1000)
    assert policy.retrain.max_attempts == 3
    assert policy.gates == GateConfig()
    assert policy.rollout == RolloutSettings()
    assert (policy.rollout.duration, policy.rollout.share) == ("7d", 0.1)
    assert policy.approval == "auto"
    assert policy.cooldown == "1d"
    assert policy.mode == "shadow"
    assert policy.promotes_alone is True
    # "performance" defaults to realized; a single action may be written bare
    assert parse("triggers: [{performance: {metric: rmse, below: 3}}]").triggers[0].source == (
        "realized"
    )
    assert parse("triggers: [{drift: any}]\nactions: alert").actions == ("alert",)


@pytest.mark.parametrize(
    ("written", "features"),
    [("any", ()), (None, ()), (True, ()), ("income", ("income",)), (["a", "b"], ("a", "b"))],
)
def test_drift_is_any_feature_or_named_ones(written: Any, features: tuple[str, ...]) -> None:
    trigger = Trigger.from_dict({"drift": written})
    assert trigger.features == features
    assert Trigger.from_dict(trigger.to_dict()) == trigger


def test_modes_and_who_promotes() -> None:
    canary = parse("triggers: [{drift: any}]\nactions: [retrain, canary, promote, rollback]")
    assert (canary.mode, canary.promotes_alone) == ("canary", True)
    gated_only = parse("triggers: [{drift: any}]\nactions: [retrain]")
    assert (gated_only.mode, gated_only.promotes_alone) == (None, False)
    alert_only = parse("triggers: [{drift: any}]\nactions: [alert]")
    assert alert_only.mode is None


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        (" 1.5 h ", timedelta(minutes=90)),
    ],
)
def test_spans(text: str, span: timedelta) -> None:
    assert parse(f"triggers: [{{drift: any}}]\ncooldown: {text}").cooldown_span == span


def test_next_run_is_the_first_tick_strictly_after() -> None:
    monday_3am = datetime(2024, 1, 1, 3, tzinfo=UTC)
    assert next_run("0 3 * * 1", monday_3am - timedelta(minutes=1)) == monday_3am
    assert next_run("0 3 * * 1", monday_3am) == monday_3am + timedelta(days=7)


# --- mistakes: each names the problem and the fix -------------------------------------


def test_an_unknown_top_level_key_names_the_known_ones() -> None:
    message = mistake("""
        triggers: [{drift: any}]
        trigers: [{drift: any}]
    """)
    assert "trigers" in message
    for known in ("actions", "approval", "cooldown", "gates", "retrain", "rollout", "triggers"):
        assert known in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # triggers
        (
            "triggers: [{rain: any}]",
            ["triggers[0].rain: unknown key", "drift, drift_share, performance"],
        ),
        (
            "triggers: [{drift_shar: 0.3}]",
            ["triggers[0].drift_shar: unknown key; did you mean 'drift_share'?"],
        ),
        ("triggers: [drift]", ["triggers[0]: a trigger is one of", "'- drift_share: 0.3'"]),
        ("triggers: [{drift: any, labels: 5}]", ["a trigger is one of"]),
        ("triggers: {drift: any}", ["triggers: give a list"]),
        ("triggers: []", ["triggers: a policy needs at least one trigger", "drift_share: 0.3"]),
        ("actions: [alert]", ["triggers: is required"]),
        ("triggers: [{drift: 3}]", ["triggers[0].drift: give 'any' or a list of feature names"]),
        ("triggers: [{drift_share: 1.5}]", ["drift_share: must be less than or equal to 1"]),
        ("triggers: [{drift_share: 0}]", ["drift_share: must be greater than 0"]),
        ("triggers: [{drift_share: -0.2}]", ["drift_share: must be greater than 0"]),
        ("triggers: [{drift_share: '30%'}]", ["'30%'", "must be a number"]),
        ("triggers: [{drift_share: .nan}]", ["must be a finite number"]),
        (
            "triggers: [{performance: {metric: roc_auc, below: 0.7, drop: 0.05}}]",
            ["triggers[0].performance:", "roc_auc", "either below", "or drop", "not both"],
        ),
        (
            "triggers: [{performance: {metric: roc_auc}}]",
            ["either below", "not both or neither"],
        ),
        (
            "triggers: [{performance: {metric: auc, below: 0.7}}]",
            ["performance.metric: unknown metric 'auc'", "roc_auc", "log_loss", "rmse"],
        ),
        ("triggers: [{performance: {below: 0.7}}]", ["[0].performance.metric: is required"]),
        (
            "triggers: [{performance: {metric: roc_auc, source: guessed, below: 0.7}}]",
            ["performance.source: must be 'realized' or 'estimated', got 'guessed'"],
        ),
        (
            "triggers: [{performance: {metric: roc_auc, below: 0.7, window: 7d}}]",
            ["performance.window: unknown key", "valid keys are metric, source, below, drop"],
        ),
        ("triggers: [{performance: roc_auc}]", ["{metric: NAME, below: VALUE}"]),
        (
            "triggers: [{performance: {metric: roc_auc, below: high}}]",
            ["performance.below: must be a number, got 'high'"],
        ),
        ("triggers: [{performance: {metric: roc_auc, below: .nan}}]", ["finite number"]),
        (
            "triggers: [{performance: {metric: roc_auc, drop: 0}}]",
            ["triggers[0].performance.drop:", "more than 0", "0.05"],
        ),
        ("triggers: [{performance: {metric: roc_auc, drop: -0.1}}]", ["more than 0"]),
        (
            "triggers: [{schedule: every monday}]",
            ["'every monday'", "not a cron expression", "'0 3 * * 1'", "UTC"],
        ),
        ("triggers: [{schedule: '61 3 * * 1'}]", ["not a cron expression"]),
        ("triggers: [{labels: 0}]", ["triggers[0].labels: must be greater than or equal to 1"]),
        ("triggers: [{labels: 10.5}]", ["labels: must be a whole number, got 10.5"]),
        ("triggers: [{labels: many}]", ["'many'", "whole number"]),
        # actions
        (
            "triggers: [{drift: any}]\nactions: [retrain, shadow, canary]",
            ["actions: choose shadow or canary, not both"],
        ),
        (
            "triggers: [{drift: any}]\nactions: [alert, promote]",
            ["promote", "need retrain"],
        ),
        (
            "triggers: [{drift: any}]\nactions: [shadow, rollback]",
            ["shadow, rollback", "need retrain"],
        ),
        (
            "triggers: [{drift: any}]\nactions: [alert, page]",
            ["actions[1]:", "'page'", "'alert', 'retrain', 'shadow', 'canary', 'promote'"],
        ),
        (
            "triggers: [{drift: any}]\nactions: 3",
            ["actions: give a list of actions", "not 3", "known: alert, retrain"],
        ),
        ("triggers: [{drift: any}]\nactions: [[alert]]", ["actions[0]: must be 'alert'"]),
        # approval and spans
        ("triggers: [{drift: any}]\napproval: maybe", ["'maybe'", "'auto' or 'required'"]),
        ("triggers: [{drift: any}]\napproval: yes", ["'auto' or 'required'"]),
        (
            "triggers: [{drift: any}]\ncooldown: 7 weeks",
            ["cooldown: '7 weeks'", "not a span of time", "1.5h, 7d"],
        ),
        ("triggers: [{drift: any}]\ncooldown: 7", ["cooldown: '7'", "1.5h, 7d"]),
        (
            "triggers: [{drift: any}]\nrollout: {duration: 7 weeks}",
            ["rollout.duration: '7 weeks'", "1.5h, 7d"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {duration: 1 week}",
            ["rollout.duration: '1 week'", "1.5h, 7d"],
        ),
        # the rollout
        ("triggers: [{drift: any}]\nrollout: {share: 1.5}", ["rollout.share: must be less than 1"]),
        ("triggers: [{drift: any}]\nrollout: {share: 0}", ["rollout.share: must be greater"]),
        ("triggers: [{drift: any}]\nrollout: {share: half}", ["rollout.share:", "'half'"]),
        (
            "triggers: [{drift: any}]\nrollout: {min_labels: -1}",
            ["rollout.min_labels: must be greater than or equal to 0"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {min_samples: 2.5}",
            ["rollout.min_samples: must be a whole number, got 2.5"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {max_metric_drop: -0.1}",
            ["rollout.max_metric_drop: must be greater than or equal to 0"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {max_latency_ratio: 0}",
            ["rollout.max_latency_ratio: must be greater than 0"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {length: 7d}",
            ["rollout.length: unknown key", "valid keys are duration, share"],
        ),
        (
            "triggers: [{drift: any}]\nrollout: {durations: 7d}",
            ["rollout.durations: unknown key; did you mean 'duration'?"],
        ),
        ("triggers: [{drift: any}]\nrollout: 7d", ["rollout: give a mapping of settings"]),
        # retraining
        (
            "triggers: [{drift: any}]\nretrain: {window: rolling}",
            ["'rolling'", "'since_trigger', 'sliding' or 'expanding'"],
        ),
        (
            "triggers: [{drift: any}]\nretrain: {windw: sliding}",
            ["retrain.windw: unknown key; did you mean 'window'?", "min_rows"],
        ),
        ("triggers: [{drift: any}]\nretrain: {days: 0}", ["retrain.days: must be greater than 0"]),
        (
            "triggers: [{drift: any}]\nretrain: {min_rows: '1000'}",
            ["retrain.min_rows: must be a whole number, got '1000'"],
        ),
        (
            "triggers: [{drift: any}]\nretrain: {max_attempts: 0}",
            ["retrain.max_attempts: must be greater than or equal to 1"],
        ),
        (
            "triggers: [{drift: any}]\nretrain: {include_original: sometimes}",
            ["retrain.include_original: must be true or false, got 'sometimes'"],
        ),
        # gates (a GateConfig) and the document itself
        (
            "triggers: [{drift: any}]\ngates: {metric: roc_auc}",
            ["gates.metric: unknown key; did you mean 'metrics'?"],
        ),
        (
            "triggers: [{drift: any}]\ngates: {metrics: {auc: 0.01}}",
            ["unknown metric 'auc'", "roc_auc"],
        ),
        ("- drift: any", ["the policy is a mapping"]),
        ("triggers: [{drift: any}", ["not valid YAML"]),
        (
            "triggers: [{drift: any}]\ncooldwn: 1d",
            ["cooldwn: unknown key; did you mean 'cooldown'?"],
        ),
    ],
)
def test_every_mistake_names_the_problem_and_the_fix(text: str, words: list[str]) -> None:
    message = mistake(text)
    for word in words:
        assert word in message, message


def test_mistakes_from_python_are_usage_errors_too() -> None:
    drift = (Trigger(drift="any"),)
    with pytest.raises(UsageError, match="at least one trigger"):
        Policy(triggers=())
    with pytest.raises(UsageError, match="shadow or canary"):
        Policy(triggers=drift, actions=("retrain", "shadow", "canary"))
    with pytest.raises(UsageError, match="'rolling'"):
        RetrainSettings(window="rolling")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"share: must be less than 1, got 1\.5"):
        RolloutSettings(share=1.5)
    with pytest.raises(UsageError, match="'7 weeks'"):
        RolloutSettings(duration="7 weeks")
    with pytest.raises(UsageError, match="'7 weeks'"):
        Policy(triggers=drift, cooldown="7 weeks")
    with pytest.raises(UsageError, match="'sometimes'"):
        Policy(triggers=drift, approval="sometimes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="a trigger is one of"):
        Trigger(drift="any", labels=5)
    with pytest.raises(UsageError, match="a trigger is one of"):
        Trigger()
    # a single action given as a string is that action, not its letters
    assert Policy(triggers=drift, actions="alert").actions == ("alert",)  # type: ignore[arg-type]


# --- round trips ----------------------------------------------------------------------

SCHEMA = jsonschema.Draft202012Validator(Policy.model_json_schema())
CRONS = ("0 3 * * 1", "*/15 * * * *", "0 0 1 * *", "30 6 * * 1-5", "@daily")
finite = st.floats(allow_nan=False, allow_infinity=False)
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
spans = st.builds(
    lambda n, frac, unit: f"{n}{frac}{unit}",
    st.integers(1, 400),
    st.sampled_from(["", ".5", ".25"]),
    st.sampled_from("mhd"),
)

triggers = st.one_of(
    st.builds(lambda fs: Trigger(drift=tuple(fs)), st.lists(names, max_size=3)),
    st.builds(lambda s: Trigger(drift_share=s), st.floats(0, 1, exclude_min=True)),
    st.builds(
        lambda metric, source, below: Trigger(
            performance=Performance(metric=metric, source=source, below=below)
        ),
        st.sampled_from(sorted(METRICS)),
        st.sampled_from(["realized", "estimated"]),
        finite,
    ),
    st.builds(
        lambda metric, source, drop: Trigger(
            performance=Performance(metric=metric, source=source, drop=drop)
        ),
        st.sampled_from(sorted(METRICS)),
        st.sampled_from(["realized", "estimated"]),
        st.floats(0, 10, exclude_min=True),
    ),
    st.builds(lambda cron: Trigger(schedule=cron), st.sampled_from(CRONS)),
    st.builds(lambda n: Trigger(labels=n), st.integers(1, 10**9)),
)


@st.composite
def action_lists(draw: st.DrawFn) -> tuple[str, ...]:
    chosen = ["alert"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        chosen.append("retrain")
        mode = draw(st.sampled_from([None, "shadow", "canary"]))
        chosen += [mode] if mode else []
        chosen += [a for a in ("promote", "rollback") if draw(st.booleans())]
    return tuple(draw(st.permutations(chosen)))


retrain_settings = st.builds(
    RetrainSettings,
    window=st.sampled_from(["since_trigger", "sliding", "expanding"]),
    days=st.floats(0, 1e4, exclude_min=True),
    include_original=st.booleans(),
    min_rows=st.integers(1, 10**7),
    max_attempts=st.integers(1, 20),
)
rollout_settings = st.builds(
    RolloutSettings,
    duration=spans,
    share=st.floats(0, 1, exclude_min=True, exclude_max=True),
    min_samples=st.integers(0, 10**6),
    min_labels=st.integers(0, 10**6),
    max_metric_drop=st.floats(0, 1),
    max_error_rate=st.floats(0, 1),
    max_latency_ratio=st.floats(0, 100, exclude_min=True),
)
classification = [m for m in sorted(METRICS) if METRICS[m].task == "classification"]
gate_configs = st.builds(
    GateConfig,
    metrics=st.lists(st.sampled_from(classification), unique=True, max_size=3).map(
        lambda ms: tuple(MetricGate(metric=m, min_delta=0.01 * i) for i, m in enumerate(ms))
    ),
    confidence=st.one_of(st.none(), st.floats(0, 1, exclude_min=True, exclude_max=True)),
    segments=st.lists(names, unique=True, max_size=3).map(tuple),
    max_p99_latency_ms=st.one_of(st.none(), st.floats(0, 1e4, exclude_min=True)),
)
policies = st.builds(
    Policy,
    triggers=st.lists(triggers, min_size=1, max_size=5).map(tuple),
    actions=action_lists(),
    retrain=retrain_settings,
    gates=gate_configs,
    rollout=rollout_settings,
    approval=st.sampled_from(["auto", "required"]),
    cooldown=spans,
)


@settings(max_examples=150, deadline=None)
@given(policies)
def test_any_valid_policy_round_trips(policy: Policy) -> None:
    assert Policy.read(policy.to_dict()) == policy
    assert Policy.from_yaml(policy.to_yaml()) == policy
    SCHEMA.validate(policy.to_dict())


# --- the store ------------------------------------------------------------------------

DRIFT = Policy(triggers=(Trigger(drift_share=0.3),))
SCHEDULED = Policy(triggers=(Trigger(schedule="0 3 * * 1"),), actions=("alert",))


def test_the_store_sets_gets_lists_advances_and_removes(workspace: Workspace) -> None:
    store = PolicyStore(workspace.db, actor="ada")

    first = store.set("credit", DRIFT)
    assert (first.endpoint, first.policy, first.created_by) == ("credit", DRIFT, "ada")
    assert (first.cursor, first.checked_at) == (None, None)
    assert first.updated_at.tzinfo is not None
    assert store.get("credit") == first
    store.set("blender", SCHEDULED)
    assert [s.endpoint for s in store.all()] == ["blender", "credit"]

    cursor = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
    checked = datetime(2024, 3, 4, 0, 5, 30, tzinfo=UTC)
    store.advance("credit", cursor=cursor, checked_at=checked)
    looked = store.get("credit")
    assert (looked.cursor, looked.checked_at) == (cursor, checked)
    later = checked + timedelta(hours=1)
    store.advance("credit", cursor=None, checked_at=later)  # no new window: cursor stays
    assert (store.get("credit").cursor, store.get("credit").checked_at) == (cursor, later)

    replaced = PolicyStore(workspace.db, actor="grace").set("credit", SCHEDULED)
    assert replaced.policy == SCHEDULED
    assert replaced.created_by == "ada"  # who made it first
    assert replaced.cursor == cursor  # what was looked at stays looked at
    assert replaced.updated_at >= first.updated_at
    assert replaced.to_dict()["policy"] == SCHEDULED.to_dict()
    assert replaced.to_dict()["cursor"] == cursor.isoformat()

    store.remove("credit")
    assert [s.endpoint for s in store.all()] == ["blender"]
    with pytest.raises(NotFoundError, match=r"setpoint policy set credit POLICY\.yaml"):
        store.get("credit")
    with pytest.raises(NotFoundError, match="no policy to remove"):
        store.remove("credit")

    events = workspace.audit(entity_type="endpoint", entity="credit")
    assert [(e.action, e.actor) for e in events] == [
        ("policy.remove", "ada"),
        ("policy.set", "grace"),
        ("policy.set", "ada"),
    ]
    removed, replaced_event, created = events
    assert (created.before, created.after) == (None, DRIFT.to_dict())
    assert (replaced_event.before, replaced_event.after) == (DRIFT.to_dict(), SCHEDULED.to_dict())
    assert (removed.before, removed.after) == (None, None)


def test_the_store_keeps_every_setting(workspace: Workspace) -> None:
    policy = Policy.from_yaml(docstring_example())
    store = PolicyStore(workspace.db, actor="ada")
    store.set("credit", policy)
    assert store.get("credit").policy == policy


def test_the_store_checks_the_endpoint_name(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="endpoint"):
        PolicyStore(workspace.db, actor="ada").set("Bad Name!", DRIFT)
    assert PolicyStore(workspace.db, actor="ada").all() == []


def test_actions_are_the_known_ones() -> None:
    assert ACTIONS == ("alert", "retrain", "shadow", "canary", "promote", "rollback")
