from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.errors import InvalidSpecError
from setpoint.models.spec import Split, Step, TrainSpec

FULL = """\
model: credit-risk
dataset: loans@3
target: defaulted
exclude: [applied_at, id]
task: classification
estimator:
  class: lightgbm.LGBMClassifier
  params: {n_estimators: 50}
preprocessing: auto
split: {method: time, time_column: applied_at, test_size: 0.25}
metrics: [roc_auc, accuracy]
segments: [channel]
overfit_threshold: 0.1
seed: 42
description: Default risk.
"""


def test_a_full_spec_reads_and_round_trips() -> None:
    spec = TrainSpec.from_yaml(FULL)
    assert spec.estimator == Step("lightgbm.LGBMClassifier", {"n_estimators": 50})
    assert spec.split == Split("time", 0.25, "applied_at", True)
    assert (spec.exclude, spec.segments, spec.seed) == (("applied_at", "id"), ("channel",), 42)
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    assert TrainSpec.from_yaml(spec.to_yaml()) == spec


def test_defaults_are_sensible() -> None:
    spec = TrainSpec.from_dict({"model": "m", "dataset": "d", "target": "y"})
    assert spec.split == Split()
    assert spec.preprocessing == "auto"
    assert spec.estimator_for("classification").cls.endswith("HistGradientBoostingClassifier")
    assert spec.estimator_for("regression").cls.endswith("HistGradientBoostingRegressor")


def test_an_explicit_pipeline() -> None:
    spec = TrainSpec.from_dict(
        {
            "model": "m",
            "dataset": "d",
            "target": "y",
            "preprocessing": {"pipeline": [{"class": "sklearn.preprocessing.StandardScaler"}]},
        }
    )
    assert spec.preprocessing == (Step("sklearn.preprocessing.StandardScaler", {}),)
    assert TrainSpec.from_dict(spec.to_dict()) == spec


def test_every_problem_is_reported_together_by_path() -> None:
    bad = {
        "model": "Bad Name",
        "dataset": "loans@",
        "features": ["a", "y"],
        "exclude": ["b"],
        "task": "ranking",
        "estimator": {"class": "nodots", "params": [1], "kwargs": {}},
        "split": {"method": "time", "test_size": 1.5, "shuffle": True},
        "metrics": ["auc"],
        "seed": -1,
        "learning_rate": 0.1,
        "target": "y",
    }
    with pytest.raises(InvalidSpecError) as caught:
        TrainSpec.from_dict(bad)
    paths = {p.split(":")[0] for p in caught.value.details}
    assert paths == {
        "model",
        "dataset",
        "exclude",
        "features",
        "task",
        "estimator.class",
        "estimator.params",
        "estimator.kwargs",
        "split.test_size",
        "split.time_column",
        "split.shuffle",
        "metrics",
        "seed",
        "learning_rate",
    }
    assert "learning_rate: unknown key" in caught.value.message


def test_required_keys_are_named() -> None:
    with pytest.raises(InvalidSpecError, match="target: is required"):
        TrainSpec.from_dict({"model": "m", "dataset": "d"})


@pytest.mark.parametrize("text", ["model: [", "- a\n- b", "42"])
def test_text_that_is_not_a_spec(text: str) -> None:
    with pytest.raises(InvalidSpecError):
        TrainSpec.from_yaml(text)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(
    ["model", "dataset", "target", "features", "exclude", "task", "estimator", "split",
     "preprocessing", "metrics", "segments", "seed", "overfit_threshold", "description", "x"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=8))
def test_any_dict_is_a_spec_or_our_error(data: dict[str, Any]) -> None:
    try:
        spec = TrainSpec.from_dict(data)
    except InvalidSpecError:
        return
    assert TrainSpec.from_dict(spec.to_dict()) == spec
