"""Contract validation throughput: 1,000,000 rows x 25 columns on one core.

    python bench/validate.py [--rows 1000000] [--repeat 3]

Measures setpoint's vectorized validation (every rule, every violation collected)
against a baseline measured in the same run: the same checks written with pandas,
on a DataFrame already in memory (so the baseline is not charged for conversion).
Reports rows per second, the ratio to the baseline, and the peak working memory of
one validation (Arrow allocations plus Python/NumPy allocations), then prints a
table. The target is at least 2 million rows/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from setpoint.data.contract import Contract
from setpoint.data.profile import profile_table

N_NUMERIC, N_INTEGER, N_CATEGORICAL = 15, 5, 5
TARGET_ROWS_PER_SECOND = 2_000_000


def make_batch(rows: int, seed: int = 0) -> pa.Table:
    """25 columns of varied kinds; about 1 value in 1,000 breaks the contract."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(N_NUMERIC):
        values = rng.normal(100 * i, 10 + i, rows)
        values[rng.random(rows) < 0.01] = np.nan  # nullable numeric columns
        columns[f"num_{i}"] = pa.array(values, from_pandas=True)
    for i in range(N_INTEGER):
        columns[f"int_{i}"] = pa.array(rng.integers(0, 1000, rows))
    labels = np.array([f"level_{j}" for j in range(12)])
    for i in range(N_CATEGORICAL):
        columns[f"cat_{i}"] = pa.array(labels[rng.integers(0, 12, rows)])
    return pa.table(columns)


def corrupt(table: pa.Table, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    out = {}
    for name in table.column_names:
        column = table.column(name).to_numpy(zero_copy_only=False).copy()
        bad = rng.random(len(column)) < 0.001
        if name.startswith("num_"):
            column[bad] = 1e12
        elif name.startswith("int_"):
            column[bad] = -1
        else:
            column[bad] = "unexpected"
        out[name] = pa.array(column, from_pandas=True)
    return pa.table(out)


def pandas_baseline(contract: Contract) -> Callable[[pd.DataFrame], int]:
    """The same rules with pandas: per column, masks for nulls, range and categories."""
    rules = contract.columns

    def check(frame: pd.DataFrame) -> int:
        found = 0
        for name, rule in rules.items():
            column = frame[name]
            masks = []
            if not rule.nullable:
                masks.append(column.isna())
            if rule.min is not None:
                masks.append(column < rule.min)
            if rule.max is not None:
                masks.append(column > rule.max)
            if rule.categories is not None:
                masks.append(~column.isin(rule.categories) & column.notna())
            for mask in masks:
                found += len(np.flatnonzero(mask.to_numpy()))
        return found

    return check


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated by one call: Arrow's pool plus Python and NumPy."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        fn()
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    return int(pool.max_memory() or 0) + python_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    console = Console()
    with console.status("generating data"):
        reference = make_batch(100_000, seed=0)
        contract = Contract.infer(profile_table(reference), range_tolerance=0.1)
        batch = corrupt(make_batch(args.rows, seed=2)).combine_chunks()
        frame = batch.to_pandas()
    baseline = pandas_baseline(contract)

    with console.status("measuring"):
        ours_s, report = measure(lambda: contract.validate(batch), args.repeat)
        pandas_s, pandas_found = measure(lambda: baseline(frame), args.repeat)
        ours_mem = peak_memory(lambda: contract.validate(batch))
        pandas_mem = peak_memory(lambda: baseline(frame))

    table = Table(
        title=f"Contract validation, {args.rows:,} rows x {batch.num_columns} columns, one core"
    )
    for column in ("implementation", "seconds", "rows/s", "ratio", "violations", "peak MiB"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    table.add_row(
        "setpoint (Arrow)",
        f"{ours_s:.3f}",
        f"{args.rows / ours_s:,.0f}",
        f"{pandas_s / ours_s:.2f}x",
        f"{report.n_violations:,}",
        f"{ours_mem / 2**20:.0f}",
    )
    table.add_row(
        "pandas baseline (same rules)",
        f"{pandas_s:.3f}",
        f"{args.rows / pandas_s:,.0f}",
        "1.00x",
        f"{pandas_found:,}",
        f"{pandas_mem / 2**20:.0f}",
    )
    console.print(table)
    rate = args.rows / ours_s
    verdict = "meets" if rate >= TARGET_ROWS_PER_SECOND else "MISSES"
    console.print(f"target {TARGET_ROWS_PER_SECOND:,} rows/s: {verdict} ({rate:,.0f} rows/s)")
    if report.n_violations != pandas_found:
        console.print("[red]the baseline found a different number of violations[/]")


if __name__ == "__main__":
    main()
