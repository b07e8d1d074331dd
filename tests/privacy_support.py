"""What the privacy tests share: data with an account number nobody else spells, and
a way to read any file of a workspace as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from setpoint.demo import lending

# When the tests' traffic starts, and the model they train on the lending data.
START = datetime(2026, 3, 2, tzinfo=UTC)
SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
    "seed": 1,
}


def with_accounts(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The frame with ``account``: a nine-digit number no other field can spell."""
    accounts = rng.choice(np.arange(100_000_000, 999_999_999), len(frame), replace=False)
    return frame.assign(account=accounts.astype(np.int64))


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]


def text_of(path: Path) -> str:
    """What a file holds, as text: Parquet read back (values are compressed there)."""
    return text_of_bytes(path.read_bytes())


def text_of_bytes(data: bytes) -> str:
    """What a file's bytes hold, as text: Parquet read back."""
    if data[:4] == b"PAR1":
        return json.dumps(pq.read_table(pa.BufferReader(data)).to_pylist(), default=str)
    return data.decode("utf-8", errors="replace")
