"""End to end through the Python API: a dataset shipped with scikit-learn, written to
CSV, registered, trained on from a spec file, reloaded from the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from s3_support import outside
from setpoint.data import io
from setpoint.errors import NotFoundError
from setpoint.models import flavors
from setpoint.models.spec import TrainSpec
from setpoint.models.training import fit
from setpoint.workspace import Workspace, find_root

SPEC = """\
model: cancer-clf
dataset: cancer@latest
target: malignant
estimator:
  class: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 60}
split: {method: random, test_size: 0.25}
segments: [size]
seed: 3
description: Breast cancer, from the copy that ships with scikit-learn.
"""


@pytest.fixture
def cancer_csv(tmp_path: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame = frame.rename(columns={"target": "malignant"})
    frame["size"] = pd.cut(
        frame["mean_radius"], [0, 12, 16, 100], labels=["small", "mid", "large"]
    ).astype(str)
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_model_trained_from_a_spec_reloads_and_predicts_identically(
    workspace: Workspace, cancer_csv: Path, tmp_path: Path
) -> None:
    data = workspace.add_dataset("cancer", cancer_csv)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC, encoding="utf-8")
    steps: list[tuple[str, float]] = []

    version = workspace.train(spec_file, progress=lambda step, f: steps.append((step, f)))

    assert steps[-1][1] == 1.0
    assert version.ref == "cancer-clf@1"
    assert version.lineage["datasets"] == [{"ref": "cancer@1", "id": data.id, "role": "train"}]
    assert version.lineage["spec"]["dataset"] == "cancer@latest"
    assert version.spec == version.lineage["spec"]
    assert version.lineage["cpu_seconds"] > 0
    assert "scikit-learn" in version.lineage["packages"] or "sklearn" in version.lineage["packages"]
    assert version.evaluation["metrics"]["validation"]["roc_auc"] > 0.95
    assert set(version.evaluation["segments"]["size"]) <= {"small", "mid", "large"}
    assert [m.ref for m in workspace.registry.trained_on(data)] == ["cancer-clf@1"]

    # The same spec on the same data, fitted here, predicts what the registry gives back.
    table = io.read_file(cancer_csv)
    result = fit(TrainSpec.from_yaml(SPEC), table)
    fresh = flavors.from_object(
        result.estimator,
        features=result.features,
        task=result.task,
        kinds=result.kinds,
        categories=result.categories,
    )
    reloaded = workspace.load_model("cancer-clf@1")
    batch = table.drop_columns(["malignant"])
    np.testing.assert_array_equal(reloaded.predict(batch), fresh.predict(batch))
    np.testing.assert_array_equal(reloaded.predict_proba(batch), fresh.predict_proba(batch))
    assert reloaded.features == result.features


def test_open_finds_the_workspace_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SETPOINT_WORKSPACE", raising=False)
    Workspace.init(tmp_path / "ws").close()
    inner = tmp_path / "ws" / "notebooks" / "eda"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert find_root(None) == (tmp_path / "ws").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFoundError, match="setpoint init"):
        find_root(None)
    monkeypatch.setenv("SETPOINT_WORKSPACE", str(tmp_path / "ws"))
    assert find_root(None) == (tmp_path / "ws").resolve()


@pytest.mark.every_store
def test_objects_are_kept_where_the_settings_say(workspace: Workspace, storage: str | None) -> None:
    """The ``every_store`` runs really use the bucket: the objects are there, the
    workspace folder holds none, and the workspace opened again finds them."""
    version = workspace.add_dataset("numbers", pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    expected = str(workspace.root / "data") if storage is None else f"{storage}/data"
    assert workspace.data_store.uri == expected
    fs, _ = outside(expected)
    assert fs.exists(workspace.data_store.path(version.artifact))
    if storage is not None:
        assert not (workspace.root / "data").exists()
        assert not (workspace.root / "artifacts").exists()
    with Workspace.open(workspace.root) as again:
        assert again.data_store.uri == expected
        assert again.load_dataset("numbers@1").column("x").to_pylist() == [1.0, 2.0, 3.0]
