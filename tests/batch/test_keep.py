"""``--keep``: columns outside the contract (a row id) carried to the output, unchecked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_score import classifier, inputs

from setpoint.errors import SetpointError, UsageError
from setpoint.workspace import Workspace


def test_a_kept_id_column_is_left_out_of_the_check_and_copied_beside_the_predictions(
    workspace: Workspace, tmp_path: Path
) -> None:
    ref = classifier(workspace)
    rows = inputs(300)
    rows["row_id"] = [f"r{i}" for i in range(300)]
    rows["batch"] = np.arange(300) % 7
    rows.loc[[5, 250], "x1"] = np.nan
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    # The contract rejects columns it does not declare: the id refuses the file.
    with pytest.raises(SetpointError, match="row_id"):
        workspace.predict_files(ref, source, out)
    assert not out.exists()

    run = workspace.predict_files(ref, source, out, keep=["row_id", "batch"], block_size=1_000)
    assert (run.n_scored, run.n_quarantined) == (298, 2)
    scored = pq.read_table(out).to_pandas()
    assert list(scored.columns) == [
        "x1",
        "x2",
        "row_id",
        "batch",
        "prediction",
        "proba_no",
        "proba_yes",
    ]
    kept = rows.drop(index=[5, 250])
    assert scored["row_id"].tolist() == kept["row_id"].tolist()
    assert scored["batch"].tolist() == kept["batch"].tolist()
    expected = workspace.load_model(ref).predict(kept[["x1", "x2"]])
    assert scored["prediction"].tolist() == expected.tolist()
    [batch] = run.quarantine
    held = workspace.quarantine.rows(batch.id).to_pandas()
    assert held["row_id"].tolist() == ["r5", "r250"]  # a refused row keeps its id too


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (["x1"], "is a column of clf@1's contract"),
        (["prediction"], "writes a column of that name"),
        (["row_id", "row_id"], "given twice"),
        (["absent"], "no column 'absent' to keep"),
    ],
)
def test_a_kept_column_that_cannot_be_kept_is_refused(
    workspace: Workspace, tmp_path: Path, keep: list[str], message: str
) -> None:
    ref = classifier(workspace)
    rows = inputs(5)
    rows["row_id"] = range(5)
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    with pytest.raises(UsageError, match=message):
        workspace.predict_files(ref, source, tmp_path / "out.csv", keep=keep)
    assert not (tmp_path / "out.csv").exists()
