"""Drift statistics: 1,000,000 reference rows against 1,000,000 current rows; what
one window's estimated performance and domain classifier cost.

    python bench/drift.py [--rows 1000000] [--repeat 3] [--previous/--no-previous]
                          [--log-rows 280000] [--log-days 28] [--workers 2]
                          [--part all|drift|monitor]

25 features generated with numpy (no downloads): 20 numeric (normal, lognormal,
uniform, exponential and integer-valued, a quarter of them with nulls, a few with
infinities in the current window) and 5 categorical (12 to 300 labels, some unseen in
the current window). Two parts are measured, each pinned to one core:

- floor: the least any histogram-based drift check can do, one vectorized pass of
  plain numpy over the same columns: ``np.quantile`` edges from the reference,
  ``np.searchsorted`` + ``np.bincount`` of the current, for every numeric column;
  Arrow ``value_counts`` of both sides for every categorical one. No statistics.
- ours: :func:`compute_all` — what a monitor computes for a window with its default
  settings: ``ReferenceSummary.build`` + ``summarize`` + ``drift.detect`` (for every
  feature KS, Wasserstein, PSI, Jensen-Shannon, total variation, chi-square, the
  null-rate test, one Benjamini-Hochberg correction, and the decisions) + the domain
  classifier (gradient boosting on 5,000-row samples, 3-fold out-of-fold AUC).

Targets: ours within 3x of the floor's wall time, and ours' peak working memory
under 2x the in-memory size of the data (both tables).

Two costs of one window are measured apart, as CPU time of the whole process (every
thread counted: ``time.process_time``):

- the domain classifier alone on the same two tables, in a fresh process that is not
  pinned to a core (so threads it might start would run, and count). Target: at most
  one CPU-second.
- estimated performance of a classifier (binary and three classes, windows of 2,500
  and 50,000 rows, a 10,000-row labelled hold-out to calibrate on), in a fresh process
  pinned to one core, each way in turn ``--repeat`` times: the point estimate
  alone (``ConfidenceEstimator.expected``) against the estimate with its band
  (``estimate``), on the same windows. Target: the band at most doubles the cost. With
  ``--previous`` (the default) the way the band was computed before (200 label draws
  and 20 refit calibrations, 21 scikit-learn ROC AUC calls a window) runs on the same
  windows too, from a copy kept in ``bench/_previous_estimate.py``.

How memory is measured. Each run is a fresh subprocess that reads both tables from an
uncompressed Arrow IPC file (so loading leaves no generation temporaries behind),
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs the part once,
and reports ``VmHWM - VmRSS before`` from ``/proc/self/status``: the peak resident
memory the part added on top of the loaded data. Resident memory is what the machine
actually pays and counts every allocator (numpy, Arrow's pool, scipy, Python);
``tracemalloc`` plus Arrow's pool would miss allocations made outside those two and
slows the numpy code it traces. Where ``/proc`` is missing, the child falls back to
``getrusage(RUSAGE_SELF).ru_maxrss`` minus the RSS after loading.

A monitor run over a log, sequential and in parallel (``--part monitor``): a
workspace with the lending demo's model behind an endpoint, ``--log-rows`` answered
predictions spread over ``--log-days`` days (a third of them labelled), written one
day at a time and compacted into the log's Parquet partitions, and a monitor of daily
windows with its default settings. ``setpoint monitor run`` computes every window
(``recompute``) in a fresh process, once with one worker and once with ``--workers``
processes, in alternation ``--repeat`` times; the table gives rows of log per second
of the run (reading the log, measuring and storing every window, starting the
workers), medians, and the speed-up: the median of the ratios of the two runs of a
round, which a slow spell of the machine affects on both sides alike. Both runs may
use every core: the question is what ``--workers`` gains over the default on the same
machine.

The machine is shared and noisy (2 cores): each part runs ``--repeat`` times, in
alternation, and the table shows medians.

The figures, with the command and the machine, are in docs/benchmarks.md. The
summaries beat the floor because they sort each column once and find every bin with
one binary search per edge, where the floor searches each value among 1,000 edges.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

import setpoint
from setpoint.demo import lending
from setpoint.monitoring.drift import detect
from setpoint.monitoring.multivariate import domain_classifier
from setpoint.monitoring.performance import ConfidenceEstimator
from setpoint.monitoring.settings import MonitorConfig
from setpoint.monitoring.summary import ReferenceSummary, summarize
from setpoint.serving.log import RecordLog, compact

sys.path.insert(0, str(Path(__file__).parent))
from _previous_estimate import ConfidenceEstimator as PreviousEstimator

N_NUMERIC, N_CATEGORICAL = 20, 5
BINS = 1000
TARGET_TIME_RATIO = 3.0
TARGET_MEMORY_RATIO = 2.0
TARGET_BAND_RATIO = 2.0
TARGET_DOMAIN_CPU = 1.0
ESTIMATE_CASES = [(2, 2_500), (2, 50_000), (3, 2_500), (3, 50_000)]  # classes, rows
ESTIMATE_WINDOWS = 5
LOG_START = datetime(2026, 6, 1, tzinfo=UTC)
MONITOR_SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "seed": 1,
}


def make_table(rows: int, *, seed: int, drift: bool) -> pa.Table:
    """20 numeric and 5 categorical columns; ``drift`` shifts some of them."""
    rng = np.random.default_rng(seed)
    shift = 0.05 if drift else 0.0
    columns: dict[str, pa.Array] = {}
    for i in range(N_NUMERIC):
        family = i % 5
        if family == 0:
            values = rng.normal(10.0 * i + shift * (i % 3), 1.0 + i / 10, rows)
        elif family == 1:
            values = rng.lognormal(0.0 + shift, 1.0, rows)
        elif family == 2:
            values = rng.uniform(-1.0, 1.0 + 4 * shift, rows)
        elif family == 3:
            values = rng.exponential(2.0 + shift, rows)
        else:
            values = rng.poisson(3.0 + 10 * shift + i, rows).astype(np.float64)
        if i % 4 == 1:  # a quarter of the columns have nulls, more of them when drifting
            values[rng.random(rows) < 0.02 + shift / 5] = np.nan
        if drift and i % 7 == 0 and family != 4:
            values[rng.random(rows) < 1e-4] = np.inf
        if family == 4:
            array = pa.array(values, pa.float64(), from_pandas=True).cast(pa.int64())
        else:
            array = pa.array(values, from_pandas=True)
        columns[f"num_{i:02d}"] = array
    for i in range(N_CATEGORICAL):
        n_labels = (12, 40, 100, 250, 300)[i]
        labels = np.array([f"level_{j:03d}" for j in range(n_labels + (5 if drift else 0))])
        weights = 1.0 / np.arange(1, labels.size + 1) ** (1.0 + shift)
        codes = rng.choice(labels.size, rows, p=weights / weights.sum())
        columns[f"cat_{i}"] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32)), pa.array(labels)
        ).cast(pa.string())
    return pa.table(columns)


def kinds_of(table: pa.Table) -> dict[str, str]:
    return {
        name: "categorical" if name.startswith("cat_") else "numeric" for name in table.column_names
    }


def floor(reference: pa.Table, current: pa.Table) -> int:
    """Quantile edges, bin counts and value counts with plain numpy/Arrow, nothing more."""
    levels = np.linspace(0.0, 1.0, BINS)
    total = 0
    for name in reference.column_names:
        if name.startswith("cat_"):
            total += len(pc.value_counts(reference.column(name)))
            total += len(pc.value_counts(current.column(name)))
            continue
        ref = reference.column(name).to_numpy().astype(np.float64, copy=False)
        cur = current.column(name).to_numpy().astype(np.float64, copy=False)
        edges = np.quantile(ref[np.isfinite(ref)], levels)
        counts = np.bincount(
            np.searchsorted(edges, cur[np.isfinite(cur)]), minlength=edges.size + 1
        )
        total += int(counts[0])
    return total


def compute_all(reference_table: pa.Table, current_table: pa.Table) -> dict[str, Any]:
    """What a monitor computes for one window with its default settings: the reference
    summary, the window's counts, every feature's drift decision (KS, Wasserstein,
    PSI, chi-square, Jensen-Shannon, total variation, the null-rate test, one
    Benjamini-Hochberg correction) and the domain classifier on 5,000-row samples."""
    kinds = kinds_of(reference_table)
    reference = ReferenceSummary.build(reference_table, kinds, bins=BINS)
    report = detect(reference, summarize(current_table, reference))
    domain = domain_classifier(reference_table, current_table, kinds)  # type: ignore[arg-type]
    return {"drift": report.to_dict(), "multivariate": domain.to_dict()}


# A monitor run over a log, sequential and in parallel.

_MONITOR_CHILD = f"""
import argparse, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
import drift
parser = argparse.ArgumentParser()
for flag in ("--data", "--log-days", "--workers"):
    parser.add_argument(flag)
args = parser.parse_args()
drift.monitor_child(Path(args.data), int(args.log_days), int(args.workers))
"""


def build_log(root: Path, rows: int, days: int) -> None:
    """A workspace at ``root``: endpoint ``credit`` serving the lending model, ``rows``
    answered predictions over ``days`` days (one segment a day, then compacted), a
    third of them labelled, and a monitor of daily windows."""
    ws = setpoint.Workspace.init(root)
    try:
        history = lending.applications(4_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=11)
        ws.add_dataset("loans", history)
        version = ws.train(MONITOR_SPEC)
        ws.promote(version.name, version.version)
        ws.deploy("credit", model="credit-risk")
        ws.monitors.create("credit", MonitorConfig(window="1d"))
        model = ws.load_model("credit-risk@champion")
        for day in range(days):
            start = LOG_START + timedelta(days=day)
            drift = lending.Drift(start=start, covariate=day / days)
            frame = lending.applications(rows // days, start=start, days=1, drift=drift, seed=day)
            features = frame.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
            proba = model.predict_proba(features)
            assert proba is not None
            ids = [f"d{day}-{i}" for i in range(len(frame))]
            when = [t.floor("us").to_pydatetime() for t in frame[lending.TIME_COLUMN]]
            with RecordLog(root, kind="predictions", durable=False) as log:
                log.append(
                    [
                        {
                            "request_id": ids[i],
                            "row": 0,
                            "ts": when[i],
                            "endpoint": "credit",
                            "model": "credit-risk",
                            "version": 1,
                            "route": "champion",
                            "inputs": {
                                k: (None if isinstance(v, float) and v != v else v)
                                for k, v in row.items()
                            },
                            "outputs": {
                                "prediction": int(proba[i, 1] >= 0.5),
                                "probabilities": proba[i].tolist(),
                            },
                            "latency_ms": 2.0 + i % 5,
                            "cached": False,
                            "fallback": False,
                        }
                        for i, row in enumerate(features.to_dict(orient="records"))
                    ]
                )
            labels = frame[lending.TARGET].to_numpy()
            with RecordLog(root, kind="feedback", durable=False) as log:
                log.append(
                    [
                        {
                            "request_id": ids[i],
                            "row": 0,
                            "ts": when[i] + timedelta(hours=6),
                            "endpoint": "credit",
                            "label": int(labels[i]),
                        }
                        for i in range(0, len(frame), 3)
                    ]
                )
        for kind in ("predictions", "feedback"):
            compact(root, kind=kind)
    finally:
        ws.close()


def monitor_child(root: Path, days: int, workers: int) -> None:
    """One ``monitor run`` of every window of the log at ``root``, timed."""
    ws = setpoint.Workspace.open(root)
    try:
        start = time.perf_counter()
        windows = ws.monitors.run(
            "credit", until=LOG_START + timedelta(days=days), recompute=True, workers=workers
        )
        seconds = time.perf_counter() - start
    finally:
        ws.close()
    rows = sum(w.n_rows for w in windows)
    print(json.dumps({"seconds": seconds, "rows": rows, "windows": len(windows)}))


def measure_monitor(console: Console, args: argparse.Namespace, cores: list[int]) -> dict[str, Any]:
    """Sequential and parallel runs over one log, in alternation; medians."""
    runs: dict[int, list[dict[str, Any]]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        with console.status("writing the prediction log"):
            build_log(root, args.log_rows, args.log_days)
        with console.status("measuring monitor runs") as status:
            for i in range(args.repeat):
                for workers in runs:
                    status.update(
                        f"measuring: monitor run, {workers} worker(s), run {i + 1} of {args.repeat}"
                    )
                    extra = ["--log-days", str(args.log_days), "--workers", str(workers)]
                    runs[workers].append(run_child("monitor", root, cores=cores, extra=extra))
    seconds = {w: statistics.median(r["seconds"] for r in rs) for w, rs in runs.items()}
    # The ratio within each round (the two runs back to back) is what a slow spell of
    # the shared machine moves least; its median is the speed-up reported.
    ratios = [
        one["seconds"] / many["seconds"]
        for one, many in zip(runs[1], runs[args.workers], strict=True)
    ]
    rows = runs[1][0]["rows"]
    return {
        "rows": rows,
        "windows": runs[1][0]["windows"],
        "seconds": seconds,
        "ratios": ratios,
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def print_monitor(
    console: Console, result: dict[str, Any], args: argparse.Namespace, cores: list[int]
) -> None:
    seconds, rows = result["seconds"], result["rows"]
    table = Table(
        title=f"Monitor run, {rows:,} logged rows in {result['windows']} daily windows, "
        f"all cores, median of {args.repeat}"
    )
    for column in ("workers", "seconds", "rows/s", "speed-up"):
        table.add_column(column, justify="right")
    speed_up = statistics.median(result["ratios"])
    for workers, spent in seconds.items():
        table.add_row(
            f"{workers} ({'sequential' if workers == 1 else 'processes'})",
            f"{spent:.2f}",
            f"{rows / spent:,.0f}",
            "1.00x" if workers == 1 else f"{speed_up:.2f}x",
        )
    console.print(table)
    rounds = ", ".join(f"{r:.2f}x" for r in result["ratios"])
    load = "" if result["load"] is None else f"; load average {result['load']:.1f} at the end"
    console.print(
        f"speed-up of {args.workers} workers, round by round: {rounds} "
        f"(the table gives their median){load}; {len(cores) or '?'} cores"
    )


# One measured run, in a fresh process.


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(part: str, data_dir: Path) -> None:
    with pa.memory_map(str(data_dir / "reference.arrow")) as source:
        reference = pa.ipc.open_file(source).read_all().combine_chunks()
    with pa.memory_map(str(data_dir / "current.arrow")) as source:
        current = pa.ipc.open_file(source).read_all().combine_chunks()
    # combine_chunks of a one-chunk table is free; copy out of the map so the data
    # is ordinary resident memory, like data a monitor has just read.
    reference = pa.Table.from_batches([_owned(b) for b in reference.to_batches()])
    current = pa.Table.from_batches([_owned(b) for b in current.to_batches()])
    if part == "domain":
        kinds = kinds_of(reference)
        cpu, start = time.process_time(), time.perf_counter()
        domain = domain_classifier(reference, current, kinds)  # type: ignore[arg-type]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - start
        print(json.dumps({"cpu": cpu, "seconds": wall, **domain.to_dict()}))
        return
    before = _status_kib("VmRSS")
    has_proc = before is not None and _reset_peak()
    fn = compute_all if part == "ours" else floor
    start = time.perf_counter()
    result = fn(reference, current)
    seconds = time.perf_counter() - start
    if has_proc:
        peak_kib = (_status_kib("VmHWM") or 0) - (before or 0)
    else:  # ru_maxrss is KiB on Linux; the baseline is a best effort here
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - (before or 0)
    flagged = len(result["drift"]["drifted_features"]) if isinstance(result, dict) else -1
    print(json.dumps({"seconds": seconds, "peak_bytes": peak_kib * 1024, "flagged": flagged}))


def _owned(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = [pa.concat_arrays([column]) for column in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def run_child(
    part: str, data_dir: Path, *, cores: list[int], extra: list[str] | None = None
) -> Any:
    """One part in a fresh process on ``cores`` (the parent runs pinned to one); what
    it printed last, as JSON."""

    def place() -> None:
        if cores:
            os.sched_setaffinity(0, cores)

    command = [sys.executable, __file__, "--child", part, "--data", str(data_dir)]
    if part == "monitor":
        # A main module without a file, as a console script's is small: a worker of
        # the run imports its caller's main module, and this one is not what
        # `setpoint monitor run` would make it import.
        command = [sys.executable, "-c", _MONITOR_CHILD, "--data", str(data_dir)]
    completed = subprocess.run(
        [*command, *(extra or [])],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=place,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{part} run failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--previous",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the estimate's band the way it was computed before (slow)",
    )
    parser.add_argument("--log-rows", type=int, default=280_000)
    parser.add_argument("--log-days", type=int, default=28)
    parser.add_argument("--workers", type=int, default=2, help="of the parallel monitor run")
    parser.add_argument(
        "--part",
        choices=["all", "drift", "monitor"],
        default="all",
        help="drift: the one-window parts; monitor: the monitor run over a log",
    )
    parser.add_argument(
        "--child",
        choices=["ours", "floor", "domain", "estimate", "monitor"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "monitor":  # on the cores it was given: every one
        monitor_child(args.data, args.log_days, args.workers)
        return
    if args.child == "domain":  # on every core: any thread it starts runs, and counts
        child(args.child, args.data)
        return
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[0]})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    if args.child == "estimate":
        print(json.dumps(estimate_costs(args.repeat, previous=args.previous)))
        return
    if args.child:
        child(args.child, args.data)
        return

    console = Console()
    if args.part in ("all", "monitor"):
        print_monitor(console, measure_monitor(console, args, cores), args, cores)
    if args.part == "monitor":
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        with console.status("generating data"):
            reference = make_table(args.rows, seed=0, drift=False)
            current = make_table(args.rows, seed=1, drift=True)
            data_bytes = reference.nbytes + current.nbytes
            for name, table in (("reference", reference), ("current", current)):
                path = str(data_dir / f"{name}.arrow")
                with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                    writer.write_table(table)
            del reference, current
        runs: dict[str, list[dict[str, Any]]] = {"floor": [], "ours": [], "domain": []}
        with console.status("measuring") as status:
            for i in range(args.repeat):
                for part in ("floor", "ours", "domain"):
                    status.update(f"measuring: {part}, run {i + 1} of {args.repeat}")
                    where = cores if part == "domain" else cores[:1]
                    runs[part].append(run_child(part, data_dir, cores=where))
            status.update("measuring: estimated performance")
            flags = [
                "--repeat",
                str(args.repeat),
                "--previous" if args.previous else "--no-previous",
            ]
            costs: list[dict[str, Any]] = run_child(
                "estimate", data_dir, cores=cores[:1], extra=flags
            )

    seconds = {part: statistics.median(r["seconds"] for r in rs) for part, rs in runs.items()}
    peaks = {
        part: statistics.median(r["peak_bytes"] for r in rs)
        for part, rs in runs.items()
        if part != "domain"
    }
    time_ratio = seconds["ours"] / seconds["floor"]
    memory_ratio = peaks["ours"] / data_bytes
    mib = 1024 * 1024

    table = Table(
        title=(
            f"Drift statistics, {args.rows:,} + {args.rows:,} rows x "
            f"{N_NUMERIC} numeric + {N_CATEGORICAL} categorical, one core, "
            f"median of {args.repeat}"
        )
    )
    for column in ("part", "seconds", "vs floor", "peak MiB", "vs data"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, label in (("floor", "floor (numpy binning)"), ("ours", "ours (compute_all)")):
        table.add_row(
            label,
            f"{seconds[part]:.3f}",
            f"{seconds[part] / seconds['floor']:.2f}x",
            f"{peaks[part] / mib:,.0f}",
            f"{peaks[part] / data_bytes:.2f}x",
        )
    table.add_row("data (both tables)", "", "", f"{data_bytes / mib:,.0f}", "1.00x")
    console.print(table)
    flagged = statistics.median(r["flagged"] for r in runs["ours"])
    console.print(
        f"features drifted (significant and material, default settings): {flagged:.0f} of 25"
    )
    verdict = (
        f"time {time_ratio:.2f}x the floor (target <= {TARGET_TIME_RATIO:.0f}x): "
        f"{'met' if time_ratio <= TARGET_TIME_RATIO else 'MISSED'}; "
        f"peak {memory_ratio:.2f}x the data (target < {TARGET_MEMORY_RATIO:.0f}x): "
        f"{'met' if memory_ratio < TARGET_MEMORY_RATIO else 'MISSED'}"
    )
    console.print(verdict)
    print_domain(console, runs["domain"], args.rows, cores)
    print_estimates(console, costs, args.repeat)


# One window's domain classifier and estimated performance.


def print_domain(console: Console, runs: list[dict[str, Any]], rows: int, cores: list[int]) -> None:
    cpu = statistics.median(r["cpu"] for r in runs)
    wall = statistics.median(r["seconds"] for r in runs)
    last = runs[-1]
    table = Table(
        title=f"Domain classifier, one window of {rows:,} + {rows:,} rows, median of {len(runs)}"
    )
    for column in ("CPU s (all threads)", "wall s", "rows a side", "AUC", "drifted"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{cpu:.3f}",
        f"{wall:.3f}",
        f"{last['n_reference']:,}",
        f"{last['auc']:.3f} ± {last['auc_se']:.3f}",
        str(last["drifted"]),
    )
    console.print(table)
    console.print(
        f"domain classifier {cpu:.2f} CPU-s on {len(cores) or '?'} cores "
        f"(target <= {TARGET_DOMAIN_CPU:.0f} s): "
        f"{'met' if cpu <= TARGET_DOMAIN_CPU else 'MISSED'}"
    )


def estimate_costs(repeat: int, *, previous: bool) -> list[dict[str, Any]]:
    """Per case, the median CPU seconds per window of the point estimate, the estimate
    with its band, and (``previous``) the band as computed before, on the same windows
    and in alternation."""
    out = []
    for k, rows in ESTIMATE_CASES:
        rng = np.random.default_rng(k * rows)
        logits = rng.normal(size=(10_000 + ESTIMATE_WINDOWS * rows, k)) * 1.5
        truth = (rng.random((len(logits), 1)) > _softmax(logits).cumsum(axis=1)).sum(axis=1)
        scores = _softmax(logits * 1.3)  # an over-confident model
        holdout, labels = scores[:10_000], truth[:10_000]
        windows = [(w, w.argmax(axis=1)) for w in np.split(scores[10_000:], ESTIMATE_WINDOWS)]
        ours = ConfidenceEstimator(list(range(k))).fit(holdout, labels)
        ways: dict[str, Any] = {
            "point": lambda w, c, e=ours: e.expected(w, c),
            "band": lambda w, c, e=ours: e.estimate(w, c),
        }
        if previous:
            before = PreviousEstimator(list(range(k))).fit(holdout, labels)
            ways["previous"] = lambda w, c, e=before: e.estimate(w, c)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeat):
            for name, way in ways.items():
                start = time.process_time()
                for window, chosen in windows:
                    way(window, chosen)
                times[name].append((time.process_time() - start) / len(windows))
        out.append(
            {"classes": k, "rows": rows}
            | {name: statistics.median(values) for name, values in times.items()}
        )
    return out


def print_estimates(console: Console, costs: list[dict[str, Any]], repeat: int) -> None:
    table = Table(
        title=f"Estimated performance, CPU ms per window, median of {repeat} "
        f"x {ESTIMATE_WINDOWS} windows"
    )
    columns = ["classes", "rows", "point", "+ band", "ratio"]
    if "previous" in costs[0]:
        columns += ["previous", "ratio"]
    for column in columns:
        table.add_column(column, justify="right")
    worst = 0.0
    for cost in costs:
        ratio = cost["band"] / cost["point"]
        worst = max(worst, ratio)
        cells = [
            str(cost["classes"]),
            f"{cost['rows']:,}",
            f"{cost['point'] * 1e3:.1f}",
            f"{cost['band'] * 1e3:.1f}",
            f"{ratio:.2f}x",
        ]
        if "previous" in cost:
            cells += [f"{cost['previous'] * 1e3:.0f}", f"{cost['previous'] / cost['point']:.0f}x"]
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"the band costs at most {worst:.2f}x the point estimate (target <= "
        f"{TARGET_BAND_RATIO:.0f}x): {'met' if worst <= TARGET_BAND_RATIO else 'MISSED'}"
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


if __name__ == "__main__":
    main()
