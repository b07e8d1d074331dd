"""Prediction latency of the native tree flavors against the libraries' sklearn wrappers.

    python bench/predict.py [--repeat 300] [--trees 100]

A binary classifier on 16 numeric and 4 categorical features (12 levels each), fitted
the way a user would: ``LGBMClassifier`` / ``XGBClassifier`` on a DataFrame with
pandas category columns. setpoint wraps it with ``flavors.from_object`` (categories
taken from the model) and predicts through the native booster on a float matrix.

For one row and for 1,000 rows this reports the median latency of:

- setpoint: ``predictor.predict_proba`` on plain records (dicts, what a JSON request
  decodes to), input conversion included;
- of which conversion: ``MatrixEncoder`` alone, records to matrix;
- baseline: the wrapper's ``predict_proba`` on a DataFrame already built with the
  right category dtypes (so the baseline is not charged for building it).

The ratio is baseline / setpoint: above 1 means setpoint is faster. Probabilities
are checked to agree before anything is timed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from rich.console import Console
from rich.table import Table

from setpoint.data.kinds import Kind
from setpoint.models import flavors
from setpoint.models.inputs import MatrixEncoder

N_NUMERIC, N_CATEGORICAL, LEVELS, TRAIN_ROWS = 16, 4, 12, 5000


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {f"num_{i}": rng.normal(size=rows) for i in range(N_NUMERIC)}
    levels = [f"level_{j}" for j in range(LEVELS)]
    for i in range(N_CATEGORICAL):
        columns[f"cat_{i}"] = pd.Categorical(
            np.asarray(levels)[rng.integers(0, LEVELS, rows)], categories=levels
        )
    return pd.DataFrame(columns)


def make_target(frame: pd.DataFrame, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    signal = frame["num_0"] + frame["num_1"] * frame["num_2"] + (frame["cat_0"] == "level_3")
    return (signal + rng.normal(scale=0.5, size=len(frame)) > 0.5).astype(int)


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain Python records, as a JSON request body decodes to."""
    plain = frame.astype({c: object for c in frame.columns if c.startswith("cat_")})
    return [{str(k): v for k, v in row.items()} for row in plain.to_dict(orient="records")]


def median_us(call: Callable[[], Any], repeat: int) -> float:
    for _ in range(max(3, repeat // 10)):  # warm caches and lazy initialisation
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300, help="timed calls per cell")
    parser.add_argument("--trees", type=int, default=100, help="boosting rounds")
    args = parser.parse_args()

    train = make_frame(TRAIN_ROWS, seed=0)
    y = make_target(train, seed=1)
    features = list(train.columns)
    kinds: dict[str, Kind] = {
        name: "categorical" if name.startswith("cat_") else "numeric" for name in features
    }
    models: dict[str, Any] = {
        "LightGBM": lgb.LGBMClassifier(n_estimators=args.trees, verbose=-1, random_state=0),
        "XGBoost": xgb.XGBClassifier(
            n_estimators=args.trees, max_depth=6, enable_categorical=True, random_state=0
        ),
    }
    test = make_frame(1000, seed=2)
    batches = {1: test.iloc[:1].reset_index(drop=True), 1000: test}

    table = Table(title=f"predict_proba latency, median µs ({args.trees} trees, 20 features)")
    for column in ("model", "rows", "setpoint (records)", "of which conversion", "baseline"):
        table.add_column(column, justify="right" if column != "model" else "left")
    table.add_column("baseline / setpoint", justify="right")

    for name, model in models.items():
        model.fit(train, y)
        predictor = flavors.from_object(model, features=features, kinds=kinds)
        encoder = MatrixEncoder(features, kinds, predictor.metadata()["categories"])
        for rows, frame in batches.items():
            records = records_of(frame)
            data: Any = records[0] if rows == 1 else records
            ours = predictor.predict_proba(data)
            assert ours is not None
            np.testing.assert_allclose(ours, model.predict_proba(frame), rtol=1e-5, atol=1e-7)
            repeat = args.repeat if rows == 1 else max(10, args.repeat // 10)
            setpoint_us = median_us(partial(predictor.predict_proba, data), repeat)
            convert_us = median_us(partial(encoder, data), repeat)
            baseline_us = median_us(partial(model.predict_proba, frame), repeat)
            table.add_row(
                name,
                f"{rows:,}",
                f"{setpoint_us:,.1f}",
                f"{convert_us:,.1f}",
                f"{baseline_us:,.1f}",
                f"{baseline_us / setpoint_us:.1f}x",
            )

    console = Console()
    console.print(table)
    console.print(
        f"Python {platform.python_version()}, lightgbm {lgb.__version__}, "
        f"xgboost {xgb.__version__}, pandas {pd.__version__}, {platform.machine()}"
    )


if __name__ == "__main__":
    main()
