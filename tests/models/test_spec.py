from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from setpoint.errors import InvalidSpecError
from setpoint.models.evaluation import METRICS
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
intended_use: Ranking applications for review.
limitations: Not for applicants under 21.
"""

MINIMAL = {"model": "m", "dataset": "d", "target": "y"}

SCHEMA = Draft202012Validator(TrainSpec.model_json_schema())


def problems(data: Any) -> list[str]:
    with pytest.raises(InvalidSpecError) as caught:
        TrainSpec.from_dict(data)
    details: list[str] = caught.value.details
    if len(details) == 1:
        assert caught.value.message == f"the training spec: {details[0]}"
    else:
        assert caught.value.message.startswith(f"the training spec has {len(details)} problems: ")
    return details


def test_a_full_spec_reads_and_round_trips() -> None:
    spec = TrainSpec.from_yaml(FULL)
    assert spec.estimator == Step("lightgbm.LGBMClassifier", {"n_estimators": 50})
    assert spec.split == Split(method="time", test_size=0.25, time_column="applied_at")
    assert (spec.exclude, spec.segments, spec.seed) == (("applied_at", "id"), ("channel",), 42)
    assert (spec.metrics, spec.overfit_threshold) == (("roc_auc", "accuracy"), 0.1)
    assert (spec.dataset_name, spec.dataset_version) == ("loans", 3)
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    assert TrainSpec.from_yaml(spec.to_yaml()) == spec


def test_defaults_are_sensible() -> None:
    spec = TrainSpec.from_dict(MINIMAL)
    assert spec.split == Split(method="random", test_size=0.2, time_column=None, stratify=True)
    assert (spec.features, spec.exclude, spec.task, spec.metrics) == (None, (), None, None)
    assert (spec.preprocessing, spec.overfit_threshold, spec.seed) == ("auto", 0.05, 0)
    assert spec.estimator_for("classification").cls.endswith("HistGradientBoostingClassifier")
    assert spec.estimator_for("regression").cls.endswith("HistGradientBoostingRegressor")
    assert TrainSpec.from_dict(spec.to_dict()) == spec


def test_shorthands() -> None:
    spec = TrainSpec.from_dict(
        MINIMAL | {"estimator": "sklearn.linear_model.Ridge", "features": "a", "description": None}
    )
    assert spec.estimator == Step("sklearn.linear_model.Ridge", {})
    assert (spec.features, spec.description) == (("a",), "")


def test_an_explicit_pipeline() -> None:
    spec = TrainSpec.from_dict(
        MINIMAL
        | {
            "preprocessing": {
                "pipeline": [
                    {"class": "sklearn.impute.SimpleImputer", "params": {"strategy": "mean"}},
                    "sklearn.preprocessing.StandardScaler",
                ]
            }
        }
    )
    assert spec.pipeline == (
        Step("sklearn.impute.SimpleImputer", {"strategy": "mean"}),
        Step("sklearn.preprocessing.StandardScaler", {}),
    )
    assert TrainSpec.from_dict(spec.to_dict()) == spec


def test_every_problem_is_reported_together_by_path() -> None:
    bad = {
        "model": "Bad Name",
        "dataset": "loans@",
        "features": ["a", "y", "a"],
        "exclude": ["b"],
        "task": "ranking",
        "estimator": {"class": "nodots", "params": [1], "kwargs": {}},
        "preprocessing": {"pipeline": []},
        "split": {"method": "time", "test_size": 1.5, "shuffle": True},
        "metrics": ["auc"],
        "segments": [1],
        "overfit_threshold": float("nan"),
        "seed": -1,
        "description": 3,
        "limitations": ["a list"],
        "learning_rate": 0.1,
        "target": "y",
    }
    paths = {p.split(":")[0] for p in problems(bad)}
    # exclude clashes with features, but that is said once features itself reads: a
    # check between two fields sees only those that are valid.
    assert paths == {
        "model",
        "dataset",
        "features",
        "task",
        "estimator.class",
        "estimator.params",
        "estimator.kwargs",
        "preprocessing.pipeline",
        "split.test_size",
        "split.time_column",
        "split.shuffle",
        "metrics",
        "segments",
        "overfit_threshold",
        "seed",
        "description",
        "limitations",
        "learning_rate",
    }


def test_a_typo_is_named_with_the_valid_keys_and_the_likely_one() -> None:
    [problem] = problems(MINIMAL | {"segmnts": ["region"]})
    assert problem.startswith("segmnts: unknown key; did you mean 'segments'?")
    assert "valid keys are model, dataset, target, features, exclude" in problem
    [nested] = problems(MINIMAL | {"split": {"tset_size": 0.3}})
    assert nested.startswith("split.tset_size: unknown key; did you mean 'test_size'?")
    [step] = problems(MINIMAL | {"estimator": {"class": "a.B", "param": {}}})
    assert step.startswith("estimator.param: unknown key; did you mean 'params'?")


def test_a_misspelled_class_key_is_named_too() -> None:
    # `class` is the file's key (the attribute is `cls`); the suggestion uses the key.
    found = problems(MINIMAL | {"estimator": {"clas": "a.B"}})
    assert found == [
        "estimator.class: is required",
        "estimator.clas: unknown key; did you mean 'class'? valid keys are class, params",
    ]
    [top] = problems(MINIMAL | {"modle": "m"})
    assert top.startswith("modle: unknown key; did you mean 'model'?")
    assert not SCHEMA.is_valid(MINIMAL | {"modle": "m"})


def test_keys_that_are_not_text_are_a_problem_not_a_crash() -> None:
    assert problems({1: "a"} | MINIMAL) == ["keys must be text, got 1"]
    assert problems(MINIMAL | {"split": {1: "a"}}) == ["split: keys must be text, got 1"]


def test_required_keys_are_named() -> None:
    assert problems({"model": "m"}) == ["dataset: is required", "target: is required"]
    assert problems(MINIMAL | {"target": None}) == ["target: is required"]


@pytest.mark.parametrize("ref", ["loans", "loans@3", "loans@latest", "loans-2024.v2@12"])
def test_dataset_refs_that_are_accepted(ref: str) -> None:
    spec = TrainSpec.from_dict(MINIMAL | {"dataset": ref})
    assert spec.dataset == ref
    assert spec.dataset_name == ref.partition("@")[0]


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("loans@", "nothing after '@'"),
        ("loans@champion", "version number or 'latest'"),
        ("loans@0", "numbered from 1"),
        ("Loans", "not a valid dataset name"),
        ("", "non-empty text"),
    ],
)
def test_dataset_refs_that_are_refused(ref: str, why: str) -> None:
    [problem] = problems(MINIMAL | {"dataset": ref})
    assert problem.startswith("dataset: ")
    assert why in problem


def test_metrics_must_fit_a_given_task() -> None:
    [problem] = problems(MINIMAL | {"task": "regression", "metrics": ["rmse", "roc_auc"]})
    assert problem.startswith("metrics: roc_auc do not apply to regression; use mae, rmse")
    # Without a task either kind is fine: training picks the task's own.
    assert TrainSpec.from_dict(MINIMAL | {"metrics": ["rmse", "roc_auc"]}).metrics


def test_fairness_mistakes_are_named_with_the_fix() -> None:
    assert problems(
        MINIMAL | {"task": "regression", "fairness": {"sensitive": "y", "metrics": "precision"}}
    ) == [
        "fairness.sensitive: the target 'y' cannot be a sensitive column",
        "fairness.metrics: precision do not apply to regression; leave metrics out for those "
        "of the task",
    ]
    assert problems(MINIMAL | {"fairness": {"sensitive": [], "mertics": None}}) == [
        "fairness.sensitive: name at least one column whose values make the groups, e.g. [region]",
        "fairness.mertics: unknown key; did you mean 'metrics'? valid keys are sensitive, "
        "metrics, max_disparity, margin, min_group",
    ]
    fairness = TrainSpec.from_dict(MINIMAL | {"fairness": {"sensitive": "region"}}).fairness
    assert fairness is not None
    assert (fairness.max_disparity, fairness.margin, fairness.min_group) == (None, 0.05, 30)
    assert fairness.metrics_for("regression") == ("mean_error",)


def test_the_time_column_cannot_be_a_feature_or_the_target() -> None:
    split = {"method": "time", "time_column": "t"}
    [problem] = problems(MINIMAL | {"features": ["a", "t"], "split": split})
    assert problem.startswith("split.time_column: 't' orders the split")
    [target] = problems(MINIMAL | {"split": split | {"time_column": "y"}})
    assert target == "split.time_column: cannot be the target"
    [random] = problems(MINIMAL | {"split": {"time_column": "t"}})
    assert random == "split.time_column: only applies when split.method is time"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"seed": 2**32}, "seed: must be a whole number from 0 to 4294967295"),
        ({"seed": 1.0}, "seed: must be a whole number"),
        ({"seed": True}, "seed: must be a whole number"),
        ({"overfit_threshold": "high"}, "overfit_threshold: must be a number, got 'high'"),
        ({"overfit_threshold": float("inf")}, "overfit_threshold: must be a finite number"),
        ({"overfit_threshold": -0.1}, "overfit_threshold: must be greater than or equal to 0"),
        ({"split": {"test_size": 0}}, "split.test_size: must be the validation share"),
        ({"split": {"stratify": "yes"}}, "split.stratify: must be true or false"),
        ({"split": "time"}, "split: must be a mapping"),
        ({"preprocessing": "scale"}, "preprocessing: 'scale': use auto, none"),
        ({"features": []}, "features: lists no columns"),
        ({"features": "y"}, "features: the target 'y' cannot also be a feature"),
        ({"estimator": {"class": "sklearn..Ridge"}}, "estimator.class: must be an import path"),
        ({"estimator": {"class": "a.B", "params": {1: 2}}}, "estimator.params: must map"),
    ],
)
def test_values_are_checked_with_readable_messages(changes: dict[str, Any], expected: str) -> None:
    found = problems(MINIMAL | changes)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize("text", ["model: [", "- a\n- b", "42", ""])
def test_text_that_is_not_a_spec(text: str) -> None:
    with pytest.raises(InvalidSpecError):
        TrainSpec.from_yaml(text)


# -- any input: a spec that round-trips, or InvalidSpecError ---------------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
columns = st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)
step = st.sampled_from(["sklearn.linear_model.Ridge", "a.b.C"]) | st.fixed_dictionaries(
    {"class": st.sampled_from(["lightgbm.LGBMClassifier", "x.Y"])},
    optional={"params": st.dictionaries(st.text(max_size=5), scalars | junk, max_size=3)},
)
# Values a spec may hold; any of them may be swapped for a wrong one or for junk.
valid: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["m", "credit-risk"]),
    "dataset": st.sampled_from(["d", "d@1", "d@latest"]),
    "target": st.sampled_from(["y", "z"]),
    "features": columns,
    "exclude": columns,
    "task": st.sampled_from(["classification", "regression", None]),
    "estimator": step,
    "preprocessing": st.sampled_from(["auto", "none"])
    | st.fixed_dictionaries({"pipeline": st.lists(step, min_size=1, max_size=2)}),
    "split": st.fixed_dictionaries(
        {},
        optional={
            "method": st.just("random"),
            "test_size": st.floats(0.01, 0.99),
            "stratify": st.booleans(),
        },
    )
    | st.fixed_dictionaries(
        {"method": st.just("time"), "time_column": st.sampled_from(["t", "u"])},
        optional={"test_size": st.floats(0.01, 0.99)},
    ),
    "metrics": st.lists(st.sampled_from(list(METRICS)), min_size=1, max_size=3, unique=True),
    "segments": columns,
    "overfit_threshold": st.floats(0, 10) | st.integers(0, 3),
    "seed": st.integers(0, 2**32 - 1),
    "description": st.text(max_size=10) | st.none(),
    "intended_use": st.text(max_size=10) | st.none(),
}
wrong: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["Bad Name", ""]),
    "dataset": st.sampled_from(["d@", "d@x", "d@0", "D"]),
    "task": st.just("ranking"),
    "preprocessing": st.just("scaled"),
    "split": st.fixed_dictionaries(
        {},
        optional={
            "method": st.sampled_from(["random", "time", "both"]),
            "test_size": scalars,
            "time_column": st.sampled_from(["t", "y", ""]) | scalars,
            "stratify": scalars,
            "shuffle": scalars,
        },
    ),
    "metrics": st.lists(st.sampled_from([*METRICS, "auc"]), max_size=3),
    "seed": scalars,
}
required = ("model", "dataset", "target")
mostly_valid = st.fixed_dictionaries(
    {key: valid[key] for key in required},
    optional={key: values for key, values in valid.items() if key not in required},
)
anything = st.fixed_dictionaries(
    {},
    optional={key: values | wrong.get(key, st.nothing()) | junk for key, values in valid.items()},
)
specs = mostly_valid | anything | st.dictionaries(st.text(max_size=10) | st.integers(), junk)


@settings(max_examples=500, deadline=None)
@given(specs | junk)
def test_any_input_is_a_spec_that_round_trips_or_our_error(data: Any) -> None:
    try:
        spec = TrainSpec.from_dict(data)
    except InvalidSpecError as caught:
        error: InvalidSpecError | None = caught
    else:
        error = None
    if error is not None:
        assert error.details, "a spec error lists its problems"
        return
    SCHEMA.validate(spec.to_dict())
    again = TrainSpec.from_dict(spec.to_dict())
    assert repr(again) == repr(spec)  # repr: NaN parameter values compare unequal
    assert repr(TrainSpec.from_yaml(spec.to_yaml())) == repr(spec)


# -- the stored form and the schema -------------------------------------------------------

# What version.spec holds for a version trained before the spec was a pydantic model:
# the stored form must read back for as long as such rows exist.
STORED: dict[str, Any] = {
    "model": "credit-risk",
    "dataset": "loans@3",
    "target": "defaulted",
    "features": None,
    "exclude": ["applied_at", "id"],
    "task": "classification",
    "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 50}},
    "preprocessing": {
        "pipeline": [{"class": "sklearn.preprocessing.StandardScaler", "params": {}}]
    },
    "split": {"method": "time", "test_size": 0.25, "time_column": "applied_at", "stratify": True},
    "metrics": ["roc_auc", "accuracy"],
    "segments": ["channel"],
    "overfit_threshold": 0.1,
    "seed": 42,
    "description": "Default risk.",
    "intended_use": "Ranking applications for review.",
    "limitations": "",
}

EXAMPLES = [
    MINIMAL,
    STORED,
    yaml.safe_load(FULL),
    MINIMAL | {"features": ["a", "b"], "preprocessing": "none", "metrics": "rmse"},
    MINIMAL | {"fairness": {"sensitive": ["region", "sex"], "max_disparity": 0.1, "margin": None}},
]


def test_the_stored_form_reads_back_as_it_was_written() -> None:
    spec = TrainSpec.from_dict(STORED)
    assert spec.to_dict() == STORED
    assert spec.pipeline == (Step("sklearn.preprocessing.StandardScaler"),)


@pytest.mark.parametrize("data", EXAMPLES)
def test_to_dict_reads_back_equal(data: dict[str, Any]) -> None:
    spec = TrainSpec.read(data)
    assert TrainSpec.read(spec.to_dict()) == spec
    assert TrainSpec.from_yaml(spec.to_yaml()) == spec


@pytest.mark.parametrize("data", EXAMPLES)
def test_the_schema_accepts_what_to_dict_gives(data: dict[str, Any]) -> None:
    SCHEMA.validate(data)
    SCHEMA.validate(TrainSpec.read(data).to_dict())


@pytest.mark.parametrize(
    "changes",
    [
        {"estimator": "sklearn.linear_model.Ridge"},
        {"estimator": {"class": "sklearn.linear_model.Ridge"}},
        {"estimator": {"class": "sklearn.linear_model.Ridge", "params": None}},
        {"features": "a"},
        {"exclude": "id", "segments": "region", "metrics": "roc_auc"},
        {"preprocessing": {"pipeline": ["sklearn.preprocessing.StandardScaler"]}},
        {"description": None, "limitations": None, "exclude": None, "segments": None},
        {"split": {"method": "time", "time_column": "t"}},
        {"overfit_threshold": 1, "seed": 2**32 - 1},
        {"fairness": {"sensitive": "region", "metrics": "false_positive_rate"}},
    ],
)
def test_the_schema_accepts_the_shorthands_the_reader_takes(changes: dict[str, Any]) -> None:
    TrainSpec.read(MINIMAL | changes)
    SCHEMA.validate(MINIMAL | changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"estimator": "nodots"},
        {"estimator": {"class": "a.B", "kwargs": {}}},
        {"preprocessing": "scale"},
        {"preprocessing": {"pipeline": []}},
        {"features": []},
        {"split": {"method": "both"}},
        {"seed": -1},
        {"model": "Bad Name"},
        {"dataset": "loans@champion"},
        {"fairness": {"sensitive": []}},
        {"fairness": {"sensitive": "region", "metrics": ["auc"]}},
        {"fairness": {"sensitive": "region", "max_disparity": -0.1}},
    ],
)
def test_the_schema_refuses_what_an_editor_can_catch(changes: dict[str, Any]) -> None:
    assert not SCHEMA.is_valid(MINIMAL | changes)
    with pytest.raises(InvalidSpecError):
        TrainSpec.read(MINIMAL | changes)
