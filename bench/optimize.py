"""One-row latency of the candidates ``setpoint optimize`` builds, against LightGBM's own
``Booster.predict`` on the same row.

    PYTHONPATH=src:bench python bench/optimize.py [--rows 20000] [--trees 100] [--calls 2000]

The demo's lending model (a LightGBM classifier with categorical columns, as
``bench/serving.py`` trains it) is optimised into its compiled, ONNX, pruned and
distilled candidates (not registered: measured only). Then, on one hold-out row:

- ``Booster.predict``: LightGBM's native call on the row's float matrix, with the
  library's default threads (what the lightgbm flavor calls) and with one thread;
- each candidate's engine alone on the same matrix (the compiled library, the ONNX
  session, the smaller boosters), and the whole ``predict_proba`` from the record a
  JSON request decodes to (input conversion included), as serving calls it.

The calls are interleaved, a slice of each in turn, round after round, so a change in
the machine's speed touches every row alike. The ratio is Booster.predict's p50
(default threads) over the engine's p50: above 1 means faster than LightGBM. Batch
rows/s and agreement come from ``optimize``'s own report (the whole hold-out).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from setpoint.demo import lending
from setpoint.models import _training_data as training_data
from setpoint.models.optimize import optimize
from setpoint.models.spec import TrainSpec
from setpoint.workspace import Workspace

SLICE = 50  # calls of one kind before the next kind's turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per row kind")
    args = parser.parse_args()
    console = Console(width=110)

    with tempfile.TemporaryDirectory() as folder:
        with console.status("training the lending model"):
            ws = Workspace.init(Path(folder) / "ws", actor="bench")
            history = lending.applications(
                args.rows, start=datetime(2026, 1, 1, tzinfo=UTC), seed=3
            )
            ws.add_dataset("loans", history)
            version = ws.train(
                {
                    "model": "credit-risk",
                    "dataset": "loans@latest",
                    "target": lending.TARGET,
                    "exclude": [lending.TIME_COLUMN],
                    "estimator": {
                        "class": "lightgbm.LGBMClassifier",
                        "params": {"n_estimators": args.trees},
                    },
                    "seed": 1,
                }
            )
        with console.status("building and measuring the candidates"):
            report = optimize(ws, version.ref, register=False, calls=200)
        assert version.spec is not None
        holdout, _ = training_data.holdout(
            TrainSpec.from_dict(version.spec), ws.load_dataset("loans@1"), "classification"
        )
        record = holdout.slice(7, 1).drop([lending.TARGET]).to_pylist()[0]
        original: Any = ws.load_model(version.ref)
        matrix = original.encoder(record)
        booster = original.booster

        kinds: dict[str, Callable[[], object]] = {
            "Booster.predict": lambda: booster.predict(matrix),
            "Booster.predict, 1 thread": lambda: booster.predict(matrix, num_threads=1),
        }
        for row in report.rows:
            candidate: Any = report.predictors[row.candidate]
            engine = candidate.scores if hasattr(candidate, "scores") else None
            if engine is None:
                engine = candidate.booster.predict
            kinds[f"{row.candidate} engine"] = lambda e=engine: e(matrix)
            kinds[f"{row.candidate} predict_proba"] = lambda c=candidate: c.predict_proba(record)
        with console.status("timing one-row calls, interleaved"):
            timings = interleaved(kinds, args.calls)
        ws.close()

    base = float(np.percentile(timings["Booster.predict"], 50))

    def cells(name: str) -> list[str]:
        if name not in timings:
            return ["", ""]
        return [f"{x:.1f}" for x in np.percentile(timings[name], [50, 99]) * 1e6]

    table = Table(title=f"One-row latency (µs), {args.trees} trees, {args.calls} calls each")
    headers = ["", "engine p50", "p99", "vs Booster", "proba p50", "p99", "rows/s", "max |Δp|"]
    for header in headers:
        table.add_column(header, justify="right" if header else "left")
    for name in ("Booster.predict", "Booster.predict, 1 thread"):
        ratio = base / float(np.percentile(timings[name], 50))
        table.add_row(name, *cells(name), f"{ratio:.2f}x", "", "", "", "")
    for row in report.rows:
        engine = f"{row.candidate} engine"
        ratio = base / float(np.percentile(timings[engine], 50))
        table.add_row(
            row.candidate,
            *cells(engine),
            f"{ratio:.2f}x",
            *cells(f"{row.candidate} predict_proba"),
            f"{row.rows_per_second:,.0f}",
            f"{row.max_difference:.1e}",
        )
    console.print(table)
    console.print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"hold-out {report.holdout_rows:,} rows; the original's roc_auc "
        f"{report.rows[0].value:.4f}"
    )
    console.print(
        "sizes: " + ", ".join(f"{r.candidate} {r.size_bytes / 1024:.0f} KB" for r in report.rows)
    )
    for row in report.rows[1:]:
        console.print(
            f"{row.candidate}: {row.note}; same label {row.same_labels:.1%}, "
            f"roc_auc {row.value:.4f} ({row.delta:+.4f}), {row.size_bytes / 1024:.0f} KB"
        )


def interleaved(kinds: dict[str, Callable[[], object]], calls: int) -> dict[str, np.ndarray]:
    """Each kind's per-call seconds, ``SLICE`` calls of each in turn until ``calls``."""
    for call in kinds.values():  # warm up: first calls load and allocate
        for _ in range(20):
            call()
    timings = {name: np.empty(calls) for name in kinds}
    clock = time.perf_counter
    for start in range(0, calls, SLICE):
        for name, call in kinds.items():
            out = timings[name]
            for k in range(start, min(start + SLICE, calls)):
                begin = clock()
                call()
                out[k] = clock() - begin
    return timings


if __name__ == "__main__":
    main()
