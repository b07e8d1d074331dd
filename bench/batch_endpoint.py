"""Batch scoring through an endpoint against the model alone: what logging the rows costs.

    python bench/batch_endpoint.py [--rows 200000] [--rounds 3]

Writes a Parquet file of N rows x 20 numeric features and registers a LightGBM
classifier of 100 trees (as ``bench/batch.py`` does), deploys it as an endpoint, then
scores the file in this process, interleaved ``--rounds`` times:

- model: ``Workspace.predict_files("risk@champion", ...)``: read, check, score, write;
- endpoint: ``Workspace.predict_files("credit", ...)``: the same, and each scored row
  written to the endpoint's prediction log as the server writes one (JSON lines,
  fsynced), which is what makes the batch monitored like online traffic.

Prints the best CPU seconds (this process, every thread) of each, rows per CPU-second,
the endpoint's cost over the model's, and the log's bytes per row.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from batch import _register, write_input  # bench/batch.py
from setpoint.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="setpoint-bench-endpoint-"))
    best = {"model": float("inf"), "endpoint": float("inf")}
    try:
        data = folder / "input.parquet"
        write_input(data, args.rows)
        root = folder / "ws"
        _register(root, folder, 100, folder / "booster.txt")
        with Workspace.open(root) as ws:
            ws.deploy("credit", model="risk")
            for n in range(args.rounds):
                for name, target in (("model", "risk@champion"), ("endpoint", "credit")):
                    started = time.process_time()
                    ws.predict_files(target, data, folder / f"out-{name}-{n}.parquet")
                    best[name] = min(best[name], time.process_time() - started)
        logged = sum(p.stat().st_size for p in (root / "logs" / "predictions").rglob("*.*"))
        per_row = logged / (args.rows * args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    table = Table(title=f"{args.rows:,} rows x 20 features, best of {args.rounds}")
    for column in ("scored", "CPU s", "rows/CPU-s", "vs model"):
        table.add_column(column, justify="left" if column == "scored" else "right")
    for name, seconds in best.items():
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{args.rows / seconds:,.0f}",
            f"{seconds / best['model']:.2f}x",
        )
    console = Console()
    console.print(table)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    console.print(
        f"log: {per_row:,.0f} bytes per row as JSON lines; {python}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
