"""Batch scoring: ``setpoint predict`` against the model library on the same batches.

    python bench/batch.py [--rows 1000000 10000000] [--trees 100] [--no-ray]

Writes a Parquet file of N rows x 20 numeric features per size (row groups of 100,000
rows), trains a LightGBM classifier (``--trees`` trees) on 50,000 other rows and
registers it in a temporary workspace, then runs, each in a fresh subprocess that
reports its own CPU time (user + system, every thread) and peak resident memory
(``VmHWM``) as it exits:

- setpoint: ``setpoint predict MODEL --input FILE --output OUT.parquet`` (read, the
  contract check per batch, scoring, the output written with ``prediction`` and one
  ``proba_`` column per class);
- the baseline, measured in the same run: the same file read batch by batch with
  ``pyarrow.parquet`` (``pre_buffer=False``, as setpoint reads it: pyarrow's default
  read-ahead holds row groups and grows with the file) and ``Booster.predict`` on each
  batch's matrix, output kept nowhere: the least any scorer of this file must do;
- setpoint on Ray (unless ``--no-ray``): the same command with ``--engine ray
  --address`` a local Ray cluster that this script starts once (``ray.init``, one
  CPU per core) and keeps for every size, so the figure holds the run's own start
  (the actors, each loading the model) but not the cluster's. Its CPU time and
  memory are the actors', which run outside the measured process: only wall time
  and rows/s are shown for it.

Prints rows/s, rows per CPU-second (per core used) and peak memory for each, the
ratio setpoint / baseline per CPU-second (target: at least 0.9) and the peak memory
of the largest size against the smallest (target: within 20 %).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

FEATURES = [f"f{i:02d}" for i in range(20)]
_GROUP = 100_000
# Each child prints its peak memory and CPU time (all threads) when it exits.
_REPORT = (
    "import atexit, re, resource, sys\n"
    "def _report():\n"
    "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "    print('usage', peak, u.ru_utime + u.ru_stime, file=sys.stderr)\n"
    "atexit.register(_report)\n"
)
_CLI = _REPORT + "from setpoint.cli import main; sys.argv[0] = 'setpoint'; main()\n"
_BASELINE = _REPORT + (
    "import lightgbm, numpy as np, pyarrow.parquet as pq\n"
    "booster = lightgbm.Booster(model_file=sys.argv[1])\n"
    "rows = 0\n"
    "source = pq.ParquetFile(sys.argv[2], pre_buffer=False)\n"
    "for batch in source.iter_batches(batch_size=65536):\n"
    "    matrix = np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])\n"
    "    rows += len(booster.predict(matrix))\n"
    "print(rows)\n"
)


def frame(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES)))
    score = values[:, 0] - 0.5 * values[:, 1] + 0.3 * values[:, 2] * values[:, 3]
    columns = {name: values[:, i] for i, name in enumerate(FEATURES)}
    columns["y"] = (score + rng.normal(0, 0.5, rows) > 0).astype(np.int64)
    return pa.table(columns)


def write_input(path: Path, rows: int) -> None:
    schema = pa.schema([(name, pa.float64()) for name in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, _GROUP):
            n = min(_GROUP, rows - start)
            writer.write_table(frame(n, seed=start).select(FEATURES).cast(schema))


def run(argv: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak MB and stdout of a subprocess."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    usage = re.search(r"^usage (\d+) ([\d.]+)$", done.stderr, re.MULTILINE)
    if usage is None:
        raise SystemExit(f"{argv[:4]} did not report its usage:\n{done.stderr}")
    return wall, float(usage.group(2)), int(usage.group(1)) / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray engine")
    args = parser.parse_args()
    console = Console()
    address = None if args.no_ray else _ray_cluster()
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-batch-") as tmp:
        folder = Path(tmp)
        ws_root = folder / "ws"
        model_file = folder / "model.txt"
        _register(ws_root, folder, args.trees, model_file)
        table = Table(title=f"setpoint predict vs Booster.predict, LightGBM {args.trees} trees")
        for name in ("rows", "scorer", "wall s", "CPU s", "rows/s", "rows/CPU-s", "peak MB"):
            table.add_column(name, justify="left" if name == "scorer" else "right")
        peaks: dict[int, float] = {}
        ratios: list[float] = []
        for rows in args.rows:
            source = folder / f"input-{rows}.parquet"
            console.print(f"writing {rows:,} rows x {len(FEATURES)} features...")
            write_input(source, rows)
            base = run([sys.executable, "-c", _BASELINE, str(model_file), str(source)])
            command = [
                sys.executable,
                "-c",
                _CLI,
                "-w",
                str(ws_root),
                "predict",
                "risk@champion",
                "--input",
                str(source),
                "--output",
                str(folder / "out.parquet"),
                "--json",
            ]
            ours = run(command)
            scored = json.loads(ours[3])["n_scored"]
            if scored != rows or int(base[3]) != rows:
                raise SystemExit(f"scored {scored} and {base[3].strip()} of {rows} rows")
            for label, (wall, cpu, peak, _) in (("baseline", base), ("setpoint", ours)):
                table.add_row(
                    f"{rows:,}",
                    label,
                    f"{wall:.1f}",
                    f"{cpu:.1f}",
                    f"{rows / wall:,.0f}",
                    f"{rows / cpu:,.0f}",
                    f"{peak:,.0f}",
                )
            if address is not None:
                wall, *_, said = run([*command, "--engine", "ray", "--address", address])
                if json.loads(said)["n_scored"] != rows:
                    raise SystemExit(f"Ray scored {json.loads(said)['n_scored']} of {rows} rows")
                label = "setpoint/ray"
                table.add_row(
                    f"{rows:,}", label, f"{wall:.1f}", "-", f"{rows / wall:,.0f}", "-", "-"
                )
            peaks[rows] = ours[2]
            ratios.append((rows / ours[1]) / (rows / base[1]))
            source.unlink()
        console.print(table)
        console.print(
            "setpoint / baseline rows per CPU-second: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + " (target >= 0.9)"
        )
        if len(peaks) > 1:
            small, large = peaks[min(peaks)], peaks[max(peaks)]
            console.print(
                f"peak memory at {max(peaks):,} rows against {min(peaks):,}: "
                f"{large / small:.2f}x (target <= 1.2)"
            )
        console.print(
            f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}"
        )


def _ray_cluster() -> str:
    """The address of a Ray cluster on this machine, kept until this script exits."""
    import ray

    # A folder of its own: a cluster another process starts on this machine takes
    # over /tmp/ray's session_latest, and its clean-up there must not reach this one.
    folder = tempfile.mkdtemp(prefix="setpoint-bench-ray-")
    ray.init(
        include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=folder
    )
    return str(ray.get_runtime_context().gcs_address)


def _register(root: Path, folder: Path, trees: int, model_file: Path) -> None:
    """A workspace with a LightGBM classifier trained on 50,000 rows, its booster saved
    for the baseline."""
    from setpoint.workspace import Workspace

    train = folder / "train.parquet"
    pq.write_table(frame(50_000, seed=12345), train)
    ws = Workspace.init(root)
    try:
        ws.add_dataset("train", train)
        spec = {
            "model": "risk",
            "dataset": "train",
            "target": "y",
            "estimator": {
                "class": "lightgbm.LGBMClassifier",
                "params": {"n_estimators": trees, "verbose": -1},
            },
        }
        version = ws.train(spec)
        ws.promote(version.name, version.version, "champion")
        predictor = ws.load_model("risk@champion")
        predictor.booster.save_model(str(model_file))  # type: ignore[attr-defined]
    finally:
        ws.close()


if __name__ == "__main__":
    main()
