"""``optimize``: cheaper candidates of a LightGBM version, measured and registered."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from setpoint.demo import lending
from setpoint.errors import PlatformMismatchError, UsageError
from setpoint.models import _training_data as training_data
from setpoint.models.flavors import load
from setpoint.models.optimize import CANDIDATES, optimize
from setpoint.models.registry import ModelVersion
from setpoint.models.spec import TrainSpec
from setpoint.workspace import Workspace

# Model formats, not the stores: the registry is tested on both databases elsewhere.
pytestmark = pytest.mark.one_database

CALLS = 5  # one-row timings are not what these tests check


def spec(estimator: str = "lightgbm.LGBMClassifier", **params: Any) -> dict[str, Any]:
    return {
        "model": "credit-risk",
        "dataset": "loans@latest",
        "target": lending.TARGET,
        "exclude": [lending.TIME_COLUMN],
        "estimator": {"class": estimator, "params": {"n_estimators": 40, **params}},
        "seed": 1,
    }


def trained(workspace: Workspace, **params: Any) -> ModelVersion:
    """A LightGBM classifier on the demo's loans, which have categorical columns and
    missing values."""
    history = lending.applications(1500, start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    workspace.add_dataset("loans", history)
    return workspace.train(spec(**params))


def holdout_rows(workspace: Workspace, version: ModelVersion) -> pd.DataFrame:
    assert version.spec is not None
    table = workspace.load_dataset("loans@1")
    rows, _ = training_data.holdout(TrainSpec.from_dict(version.spec), table, "classification")
    frame = rows.to_pandas()
    # Values the training data never had: an unseen category and missing ones.
    frame.loc[0, "grade"] = "Z"
    frame.loc[1, ["grade", "employment_years"]] = None, np.nan
    return frame


def test_every_candidate_is_registered_with_its_lineage(workspace: Workspace) -> None:
    original = trained(workspace)
    report = optimize(workspace, original.ref, calls=CALLS)

    assert [row.candidate for row in report.rows] == [
        "original",
        *(name for name in CANDIDATES if name != "quantized"),
    ]
    first = report.rows[0]
    assert (first.ref, first.same_labels, first.max_difference, first.delta) == (None, 1, 0, 0)
    flavors = {}
    for row in report.rows[1:]:
        assert row.ref is not None
        version = workspace.model(row.ref)
        flavors[row.candidate] = version.flavor
        assert version.lineage["optimized_from"] == original.ref
        assert version.lineage["optimization"] == row.candidate
        assert version.training_dataset == "loans@1"
        assert version.evaluation["optimization"]["candidate"] == row.candidate
        assert version.evaluation["metrics"]["validation"]["roc_auc"] == pytest.approx(row.value)
        assert row.delta == pytest.approx(row.value - first.value)  # type: ignore[operator]
        assert row.size_bytes > 0
        assert row.p50_ms > 0
        assert row.rows_per_second > 0
    assert flavors == {
        "compiled": "compiled",
        "onnx": "onnx",
        "pruned": "lightgbm",
        "distilled": "lightgbm",
    }
    assert any("no int8 quantization" in note for note in report.notes)


def test_compiled_and_onnx_agree_with_the_original(workspace: Workspace) -> None:
    original = trained(workspace)
    report = optimize(workspace, original.ref, only=["compiled", "onnx"], calls=CALLS)
    rows = holdout_rows(workspace, original)
    expected = workspace.load_model(original.ref).predict_proba(rows)
    assert expected is not None
    for row in report.rows[1:]:
        assert row.max_difference <= 1e-5
        assert row.same_labels == 1.0
        assert row.ref is not None
        got = workspace.load_model(row.ref).predict_proba(rows)  # as the registry loads it
        assert got is not None
        assert np.max(np.abs(got - expected)) <= 1e-5, row.candidate
        # No TreeSHAP of their own: explained against the background sample kept with
        # them, the contributions adding up to the probabilities.
        version = workspace.model(row.ref)
        explainer = workspace.registry.explainer(
            version, workspace.load_model(row.ref), permutations=2
        )
        explained = explainer.explain(rows.head(3))
        total = explained.contributions.sum(axis=-1) + explained.base
        np.testing.assert_allclose(total, got[:3], atol=1e-6)


def test_pruned_keeps_a_budget_of_trees_and_no_register_registers_nothing(
    workspace: Workspace,
) -> None:
    original = trained(workspace)
    report = optimize(
        workspace, original.ref, only=["pruned"], trees=5, register=False, calls=CALLS
    )
    assert [(row.candidate, row.ref) for row in report.rows] == [
        ("original", None),
        ("pruned", None),
    ]
    assert report.rows[1].note == "first 5 of 40 trees (--trees)"
    assert [v.version for v in workspace.registry.versions("credit-risk")] == [1]


def test_a_regressor_gets_every_candidate(workspace: Workspace) -> None:
    history = lending.applications(800, start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    workspace.add_dataset("loans", history)
    regression = spec("lightgbm.LGBMRegressor") | {"target": "income"}
    regression["exclude"] = [lending.TIME_COLUMN, lending.TARGET]
    original = workspace.train(regression)
    report = optimize(workspace, original.ref, trees=5, calls=CALLS)
    by_name = {row.candidate: row for row in report.rows}
    assert set(by_name) == {"original", "compiled", "onnx", "pruned", "distilled"}
    assert by_name["compiled"].max_difference <= 1e-6 * 100_000  # values, not probabilities
    assert by_name["compiled"].same_labels is None
    assert by_name["distilled"].metric == "rmse"


def test_mistakes_are_usage_errors(workspace: Workspace) -> None:
    original = trained(workspace)
    with pytest.raises(UsageError, match=r"unknown candidate.*int4"):
        optimize(workspace, original.ref, only=["int4"])
    with pytest.raises(UsageError, match="trees must be"):
        optimize(workspace, original.ref, trees=0)
    with pytest.raises(UsageError, match=r"quantized does not apply.*no dense weights"):
        optimize(workspace, original.ref, only=["quantized"])
    logistic = spec("sklearn.linear_model.LogisticRegression")
    logistic["estimator"]["params"] = {"max_iter": 500}
    linear = workspace.train(logistic)
    with pytest.raises(UsageError, match=r"compiled does not apply.*LightGBM model's trees"):
        optimize(workspace, linear.ref, only=["compiled"])


def test_a_scikit_learn_pipeline_in_onnx_and_its_weights_in_int8(workspace: Workspace) -> None:
    history = lending.applications(1500, start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    workspace.add_dataset("loans", history)
    logistic = spec("sklearn.linear_model.LogisticRegression")
    logistic["estimator"]["params"] = {"max_iter": 500}
    linear = workspace.train(logistic)
    network = spec("sklearn.neural_network.MLPClassifier") | {"model": "network"}
    network["estimator"]["params"] = {"hidden_layer_sizes": [16], "max_iter": 200}
    mlp = workspace.train(network)

    report = optimize(workspace, linear.ref, calls=CALLS)
    assert [(row.candidate, row.flavor) for row in report.rows] == [
        ("original", "sklearn"),
        ("onnx", "onnx-pipeline"),
    ]
    assert report.rows[1].max_difference <= 1e-5
    assert report.notes == [
        "quantized: not built; the model has no dense weights (MatMul, Gemm) to quantize"
    ]
    rows = holdout_rows(workspace, linear)
    rows.loc[2, "grade"] = None  # the pipeline's imputer fills it, in ONNX as in Python
    expected = workspace.load_model(linear.ref).predict_proba(rows)
    assert report.rows[1].ref is not None
    got = workspace.load_model(report.rows[1].ref).predict_proba(rows)
    assert expected is not None
    assert got is not None
    assert np.max(np.abs(got - expected)) <= 1e-5

    report = optimize(workspace, mlp.ref, only=["quantized"], calls=CALLS)
    quantized = report.rows[1]
    assert (quantized.candidate, quantized.flavor) == ("quantized", "onnx-pipeline")
    assert quantized.note == "int8 weights (dynamic quantization)"
    assert 0 < quantized.max_difference < 0.2  # int8 weights: close, not equal
    assert quantized.same_labels is not None
    assert quantized.same_labels > 0.9


def test_a_model_not_trained_by_setpoint_has_no_holdout(workspace: Workspace) -> None:
    import lightgbm as lgb

    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60) % 2})
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(frame[["x"]], frame["y"])
    version = workspace.register_model("outside", model, reference=frame, target="y")
    with pytest.raises(UsageError, match="not trained by setpoint"):
        optimize(workspace, version.ref)


def test_a_compiled_model_refuses_another_platform(workspace: Workspace) -> None:
    original = trained(workspace)
    report = optimize(workspace, original.ref, only=["compiled"], calls=CALLS)
    assert report.rows[1].ref is not None
    version = workspace.model(report.rows[1].ref)
    files = {role: workspace.artifacts.get(digest) for role, digest in version.artifacts.items()}
    files.pop("background", None)
    metadata = dict(version.flavor_metadata)
    metadata["platform"] = {**metadata["platform"], "machine": "riscv64"}
    with pytest.raises(PlatformMismatchError, match=r"machine riscv64.*setpoint optimize"):
        load("compiled", files, metadata)


def test_a_compiled_library_is_not_loaded_from_a_folder_others_can_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from setpoint.errors import StoreError
    from setpoint.models.flavors import compiled

    monkeypatch.setattr(compiled.tempfile, "gettempdir", lambda: str(tmp_path))
    path = compiled._library_file(b"not really a library")
    assert Path(path).read_bytes() == b"not really a library"
    folder = tmp_path / f"setpoint-compiled-{compiled.os.getuid()}"
    folder.chmod(0o777)  # as one another user made, or opened to everyone
    with pytest.raises(StoreError, match="only this user can write"):
        compiled._library_file(b"not really a library")
