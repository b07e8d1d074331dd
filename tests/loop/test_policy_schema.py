"""The policy as a declarative model: its JSON Schema accepts what the reader accepts
(the examples in the docs, every stored form), policies round-trip through their plain
form, old stored rows read back, and a misspelled key is refused with a suggestion."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from setpoint.demo.walkthrough import POLICY as DEMO_POLICY
from setpoint.errors import UsageError
from setpoint.loop import gate_config, trigger_config
from setpoint.loop import policy as policy_module
from setpoint.loop.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(Policy.model_json_schema())


def docstring_yaml(module: Any) -> str:
    """The first literal block (``::``) of a module's docstring."""
    block = module.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(block)


def markdown_policies(path: Path) -> list[str]:
    """The YAML blocks of a Markdown file that are policies (they have triggers)."""
    blocks = re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if re.search(r"^triggers:", b, re.M)]


def examples() -> list[str]:
    found = [
        docstring_yaml(policy_module),
        docstring_yaml(gate_config),
        docstring_yaml(trigger_config),
        DEMO_POLICY,
        *markdown_policies(ROOT / "docs" / "loop.md"),
        *markdown_policies(ROOT / "README.md"),
    ]
    # the gates example is a `gates:` section alone: give it a trigger
    return [t if "triggers:" in t else "triggers: [{drift: any}]\n" + t for t in found]


# Every form a person may write, each once.
FORMS = """\
triggers:
  - drift: any
  - drift:
  - drift: income
  - drift: [income, channel]
  - drift_share: 1
  - performance: {metric: accuracy, source: estimated, below: 0.8}
  - performance: {metric: rmse, drop: 0.1, below: null}
  - schedule: "@daily"
  - labels: 1
actions: alert
gates:
  metrics: [f1, {metric: recall, min_delta: -0.01, relative: true}, {precision: 0.02},
            {accuracy: {relative: true}}, {balanced_accuracy: null}]
  segments: channel
  confidence: null
  max_p99_latency_ms: 50
  max_cost_per_1000: 0
rollout: {duration: 0s, min_samples: 0, min_labels: 0}
cooldown: 0m
"""

# What PolicyStore wrote before the policy was a pydantic model: rows keep it.
STORED_BEFORE = [
    {
        "triggers": [
            {"drift": "any"},
            {"drift_share": 0.3},
            {"performance": {"metric": "roc_auc", "source": "realized", "drop": 0.05}},
            {"schedule": "0 3 * * 1"},
            {"labels": 5000},
        ],
        "actions": ["alert", "retrain", "shadow", "promote", "rollback"],
        "retrain": {
            "window": "since_trigger",
            "days": 28.0,
            "include_original": False,
            "min_rows": 1000,
            "max_attempts": 3,
        },
        "gates": {
            "metrics": [{"metric": "roc_auc", "min_delta": 0.0, "relative": False}],
            "min_samples": 200,
            "confidence": 0.9,
            "bootstrap": 500,
            "seed": 0,
            "segments": ["channel"],
            "max_segment_drop": 0.05,
            "min_segment_samples": 100,
            "max_p99_latency_ms": None,
            "max_cost_per_1000": None,
            "cpu_hour_cost": None,
        },
        "rollout": {
            "duration": "7d",
            "share": 0.1,
            "min_samples": 200,
            "min_labels": 200,
            "max_metric_drop": 0.02,
            "max_error_rate": 0.02,
            "max_latency_ratio": 3.0,
        },
        "approval": "required",
        "cooldown": "7d",
    },
    {
        "triggers": [
            {"drift": ["a", "b"]},
            {"performance": {"metric": "rmse", "source": "estimated", "below": 3.0}},
        ],
        "actions": ["alert"],
        "retrain": {
            "window": "sliding",
            "days": 14,
            "include_original": True,
            "min_rows": 500,
            "max_attempts": 3,
        },
        "gates": {
            "metrics": [
                {"metric": "f1", "min_delta": 0.0, "relative": False},
                {"metric": "recall", "min_delta": 0.1, "relative": False},
            ],
            "min_samples": 200,
            "confidence": None,
            "bootstrap": 500,
            "seed": 0,
            "segments": [],
            "max_segment_drop": 0.05,
            "min_segment_samples": 100,
            "max_p99_latency_ms": 5,
            "max_cost_per_1000": None,
            "cpu_hour_cost": None,
        },
        "rollout": {
            "duration": "0m",
            "share": 0.1,
            "min_samples": 200,
            "min_labels": 100,
            "max_metric_drop": 0.02,
            "max_error_rate": 0.02,
            "max_latency_ratio": 3.0,
        },
        "approval": "auto",
        "cooldown": "0s",
    },
]


def test_the_examples_are_found() -> None:
    # the docstrings, the demo, docs/loop.md and the README each give one
    assert len(examples()) == 6


@pytest.mark.parametrize("text", [*examples(), FORMS])
def test_the_schema_accepts_what_the_reader_accepts(text: str) -> None:
    data = yaml.safe_load(text)
    policy = Policy.read(data)
    VALIDATOR.validate(data)
    VALIDATOR.validate(policy.to_dict())
    assert Policy.read(policy.to_dict()) == policy
    assert Policy.from_yaml(policy.to_yaml()) == policy


@pytest.mark.parametrize("row", STORED_BEFORE)
def test_rows_stored_before_read_back_as_they_were(row: dict[str, Any]) -> None:
    policy = Policy.read(row)
    assert policy.to_dict() == row
    VALIDATOR.validate(row)


def test_the_forms_mean_what_they_say() -> None:
    policy = Policy.from_yaml(FORMS)
    assert [t.features for t in policy.triggers[:4]] == [(), (), ("income",), ("income", "channel")]
    assert [t.kind for t in policy.triggers[4:]] == [
        "drift_share",
        "performance",
        "performance",
        "schedule",
        "labels",
    ]
    assert policy.actions == ("alert",)
    gates = policy.gates
    assert [(g.metric, g.min_delta, g.relative) for g in gates.metrics] == [
        ("f1", 0.0, False),
        ("recall", -0.01, True),
        ("precision", 0.02, False),
        ("accuracy", 0.0, True),
        ("balanced_accuracy", 0.0, False),
    ]
    assert gates.segments == ("channel",)
    assert (policy.rollout.span.total_seconds(), policy.cooldown_span.total_seconds()) == (0, 0)


@pytest.mark.parametrize(
    "trigger",
    [
        {"drift": "any", "labels": 5},  # two kinds in one
        {},
        {"rain": "any"},
        {"drift_share": "0.3"},
        {"drift_share": 0},
        {"labels": 0},
        {"performance": "roc_auc"},
        {"performance": {"metric": "auc", "below": 0.7}},
        {"performance": {"metric": "roc_auc", "below": 0.7, "window": "7d"}},
    ],
)
def test_the_schema_refuses_what_the_reader_refuses(trigger: dict[str, Any]) -> None:
    data = {"triggers": [trigger]}
    with pytest.raises(UsageError):
        Policy.read(data)
    assert not VALIDATOR.is_valid(data)


def test_the_schema_gives_each_trigger_as_exactly_one_of_the_kinds() -> None:
    schema = Policy.model_json_schema()["$defs"]["Trigger"]
    assert list(schema["properties"]) == list(trigger_config.KINDS)
    assert schema["oneOf"] == [{"required": [kind]} for kind in trigger_config.KINDS]
    assert (schema["minProperties"], schema["maxProperties"]) == (1, 1)
    assert schema["additionalProperties"] is False


def test_a_misspelled_key_is_refused_with_the_one_meant_at_its_path() -> None:
    text = """\
    triggers:
      - drift_share: 0.3
      - performance: {metrc: roc_auc, drop: 0.05}
    rollout: {durations: 7d}
    cooldwn: 1d
    """
    with pytest.raises(UsageError) as caught:
        Policy.from_yaml(textwrap.dedent(text))
    details = "\n".join(caught.value.details)
    for line in (
        "triggers[1].performance.metrc: unknown key; did you mean 'metric'? ",
        "rollout.durations: unknown key; did you mean 'duration'?",
        "cooldwn: unknown key; did you mean 'cooldown'?",
        "triggers[1].performance.metric: is required",
    ):
        assert line in details
    assert "(the policy) has 4 problems" in caught.value.message


def test_an_error_in_one_trigger_is_reported_at_its_place() -> None:
    text = """\
    triggers:
      - drift: any
      - schedule: "0 3 * * 1"
      - performance: {metric: roc_auc, drop: -0.1}
    """
    with pytest.raises(UsageError) as caught:
        Policy.from_yaml(textwrap.dedent(text))
    (detail,) = caught.value.details
    assert detail.endswith(
        "triggers[2].performance.drop: the fraction of the reference figure the metric may "
        "lose before it fires: give more than 0, e.g. 0.05, not -0.1"
    )


def test_an_empty_section_says_to_fill_it_or_leave_it_out() -> None:
    with pytest.raises(UsageError, match=r"p\.yaml:2:1: rollout: is empty: give its settings"):
        Policy.read_yaml("triggers: [{drift_share: 0.3}]\nrollout:\n", source="p.yaml")
