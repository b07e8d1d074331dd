"""Peak memory and speed of ``setpoint data add`` on a large CSV file.

    python bench/ingest.py [--rows 5000000] [--keep DIR]

Writes a CSV of ``--rows`` rows x 10 columns (5 numeric, 2 with 5% empty cells; 4
categorical; a customer id, unique per row) to a temporary folder (about 800 MB at
5 million rows), then runs, each in a fresh subprocess:

- ``setpoint data add`` into a new workspace (reading, hashing, profiling, writing
  the Parquet artifact, recording the version);
- ``setpoint data validate`` of the same file against that version's contract;
- the baseline, measured in the same run: ``pyarrow.csv.read_csv`` of the same file
  into memory and nothing else, the least any in-memory ingest must hold.

Each child reports its own peak resident memory (``VmHWM``) as it exits.

Before that it checks, on a small file read in many small blocks, that the streamed
pass gives the same content hash and profile as the in-memory path. Prints a table;
the target is a peak under 400 MB for 5 million x 10, for both commands.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from rich.console import Console
from rich.table import Table

TARGET_MB = 400
_CHUNK = 500_000
# Each child reports its own peak from /proc/self/status (VmHWM, the high-water mark
# of its memory after exec) when it exits. Not ru_maxrss from wait4: Python starts
# children with vfork, and Linux carries the parent's high-water mark into the
# child's ru_maxrss across exec, so it would report this process's peak (the CSV
# writer's) instead of the child's.
_PEAK = (
    "import atexit, re, sys; atexit.register(lambda: print('peak-kib', re.search("
    "r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr)); "
)
_CLI = _PEAK + "from setpoint.cli import main; sys.argv[0] = 'setpoint'; main()"
_BASELINE = _PEAK + "import pyarrow.csv as c; print(c.read_csv(sys.argv[1]).num_rows)"


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` rows of 10 columns, written in chunks so the generator stays small."""
    rng = np.random.default_rng(seed)
    regions = np.array([f"{r}-region" for r in ("north", "south", "east", "west", "centre")])
    grades = np.array([f"grade_{c}" for c in "ABCDEFG"])
    channels = np.array(["online-web", "branch-office", "phone-banking", "broker-partner"])
    products = np.array([f"product-line-{i:03d}-standard" for i in range(40)])
    with pa_csv.CSVWriter(path, _schema()) as writer:
        for start in range(0, rows, _CHUNK):
            n = min(_CHUNK, rows - start)
            income = rng.lognormal(10.5, 0.6, n)
            income[rng.random(n) < 0.05] = np.nan
            debt = rng.normal(25, 9, n)
            debt[rng.random(n) < 0.05] = np.nan
            columns = [
                _ids(start, n),
                pa.array(rng.integers(18, 90, n)),
                pa.array(income, from_pandas=True),
                pa.array(rng.gamma(2.0, 5000.0, n)),
                pa.array(debt, from_pandas=True),
                pa.array(rng.random(n)),
                pa.array(regions[rng.integers(0, len(regions), n)]),
                pa.array(grades[rng.integers(0, len(grades), n)]),
                pa.array(channels[rng.integers(0, len(channels), n)]),
                pa.array(products[rng.integers(0, len(products), n)]),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=_schema()))


def _ids(start: int, n: int) -> pa.Array:
    """Customer ids, one per row: a text column with as many values as rows."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(start, start + n)), pa.string()), 10, "0")
    return pc.binary_join_element_wise("C", digits, "")


def _schema() -> pa.Schema:
    numeric = [
        ("customer", pa.string()),
        ("age", pa.int64()),
        ("income", pa.float64()),
        ("loan_amount", pa.float64()),
        ("debt_to_income", pa.float64()),
        ("score", pa.float64()),
    ]
    categorical = [(n, pa.string()) for n in ("region", "grade", "channel", "product")]
    return pa.schema(numeric + categorical)


def run(argv: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident memory in MB and output of a subprocess."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    peak = re.search(r"^peak-kib (\d+)$", done.stderr, re.MULTILINE)
    if peak is None:
        raise SystemExit(f"{argv[:3]} did not report its peak memory:\n{done.stderr}")
    return seconds, int(peak.group(1)) / 1024, done.stdout


def same_as_in_memory(folder: Path) -> tuple[bool, bool]:
    """On a small file read in 64 KiB blocks: (same hash, same profile) as in memory."""
    from setpoint.data import io
    from setpoint.data.ingest import Ingested, ingest
    from setpoint.data.profile import profile_table
    from setpoint.data.reader import read_batches

    path = folder / "small.csv"
    write_csv(path, 200_000, seed=1)

    def streamed(schema: pa.Schema, batches: object) -> Ingested:
        return ingest(schema, batches, folder / "small.parquet")  # type: ignore[arg-type]

    found = read_batches(path, streamed, block_size=64 << 10)
    table = io.read_file(path)
    return found.content_hash == io.content_hash(table), found.profile == profile_table(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--keep", type=Path, help="Write the files here and keep them.")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        same_hash, same_profile = same_as_in_memory(folder)
        console.print(f"streamed = in memory: hash {same_hash}, profile {same_profile}")
        path = folder / "big.csv"
        start = time.perf_counter()
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        console.print(
            f"wrote {args.rows:,} rows x 10 columns, {size_mb:,.0f} MB, "
            f"in {time.perf_counter() - start:.0f} s"
        )
        workspace = folder / "ws"
        shutil.rmtree(workspace, ignore_errors=True)  # a new version, even with --keep
        run([sys.executable, "-c", _CLI, "init", str(workspace)])
        base_s, base_mb, _ = run([sys.executable, "-c", _BASELINE, str(path)])
        add_s, add_mb, out = run(
            [sys.executable, "-c", _CLI, "-w", str(workspace), "data", "add", "big", str(path)]
        )
        console.print(out.strip())
        check_s, check_mb, _ = run(
            [sys.executable, "-c", _CLI, "-w", str(workspace), "data", "validate", "big@1",
             str(path), "--mode", "warn", "--json"]
        )  # fmt: skip

    table = Table(
        "run", "seconds", "rows/s", "peak RSS MB", "peak vs baseline",
        title=f"{args.rows:,} rows x 10 columns, {size_mb:,.0f} MB CSV "
        f"({platform.machine()}, {os.cpu_count()} cores, pyarrow {pa.__version__})",
    )  # fmt: skip
    for name, seconds, peak in (
        ("setpoint data add (streamed)", add_s, add_mb),
        ("setpoint data validate (streamed)", check_s, check_mb),
        ("baseline: pyarrow.csv.read_csv", base_s, base_mb),
    ):
        table.add_row(
            name, f"{seconds:.1f}", f"{args.rows / seconds:,.0f}", f"{peak:,.0f}",
            f"{peak / base_mb:.2f}x",
        )  # fmt: skip
    console.print(table)
    for name, peak in (("data add", add_mb), ("data validate", check_mb)):
        verdict = "met" if peak < TARGET_MB else "NOT met"
        console.print(f"Target: peak under {TARGET_MB} MB for {name}: {verdict} ({peak:,.0f} MB).")
    if not (same_hash and same_profile):
        raise SystemExit("the streamed hash or profile differs from the in-memory one")


if __name__ == "__main__":
    main()
