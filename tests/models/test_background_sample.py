"""The background sample a version is explained against, and what cannot be explained."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from setpoint.errors import NotExplainableError
from setpoint.models import background, flavors


def test_the_sample_keeps_no_training_row_whole_and_no_personal_data() -> None:
    n = 1_000
    ids = np.arange(n)
    table = pa.table({"a": ids, "b": ids * 10, "account": ids + 500_000_000})
    sample = background.sample(table, ["a", "b", "account"], seed=3, personal={"account"})
    assert sample.num_rows == background.ROWS
    a, b = np.asarray(sample["a"]), np.asarray(sample["b"])
    assert set(a) <= set(ids)  # each value a training value
    assert set(b) <= set(ids * 10)
    # Drawn per column: a row of the sample is a training row (b == 10 a) only by chance.
    assert np.mean(b == 10 * a) < 0.05
    assert sample["account"].null_count == background.ROWS
    assert background.from_bytes(background.to_bytes(sample)).equals(sample)


def test_a_version_that_cannot_be_explained_says_why() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    frame = {"x1": x[:, 0].tolist(), "x2": x[:, 1].tolist()}
    scored = flavors.from_object(LogisticRegression().fit(x, y), features=["x1", "x2"])
    with pytest.raises(NotExplainableError, match="retrain"):
        background.Explainer(scored, None, ref="m@1").check()
    ready = background.Explainer(scored, pa.table(frame), ref="m@1")
    ready.check()
    assert ready.layout().rows == 0
    assert ready.layout().outputs == ["1"]
    labels = flavors.from_object(_LabelsOnly(LinearSVC().fit(x, y)), features=["x1", "x2"])
    with pytest.raises(NotExplainableError, match="only labels"):
        background.Explainer(labels, pa.table(frame), ref="m@2").check()


class _LabelsOnly:
    """A classifier with classes but no scores."""

    def __init__(self, model: LinearSVC) -> None:
        self.model = model
        self.classes_ = model.classes_

    def predict(self, data: object) -> object:
        return self.model.predict(np.asarray(data))
