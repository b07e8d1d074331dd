"""Prediction log: group commit against one fsync per record.

    python bench/log.py [--seconds 2] [--rounds 3] [--dir /path/on/the/disk/to/test]

Callers append single prediction records (20 inputs, ~600 bytes of JSON) as fast as
they can for ``--seconds`` per configuration, and each append is timed:

- durable: ``RecordLog.append`` from N threads; it returns once the record is written
  and fsynced, concurrent appends sharing one write + fsync (group commit);
- durable aio: ``await RecordLog.append_async`` from N tasks on one event loop,
  the way the HTTP server calls it;
- async: ``RecordLog(durable=False).append`` from N threads; it only queues
  (written and fsynced in the background every 5 ms);
- naive: the baseline, N threads each doing its own ``write`` + ``fdatasync`` per
  record on one shared ``O_APPEND`` file (same orjson encoding, no validation).

Configurations run interleaved, ``--rounds`` times; each row is the round with the
median records/s. "vs naive" is records/s over the naive writer's with the same
concurrency. Run it on the disk you will serve from: fsync on tmpfs costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from setpoint.serving.log import RecordLog


def make_record(i: int) -> dict[str, Any]:
    return {
        "request_id": f"req-{i:012d}",
        "ts": dt.datetime.now(dt.UTC),
        "endpoint": "credit",
        "model": "credit-risk",
        "version": 3,
        "route": "champion",
        "inputs": {f"feature_{j}": 1000.5 + j for j in range(20)},
        "outputs": {"probability": 0.125, "label": 0},
        "latency_ms": 1.25,
        "cached": False,
        "fallback": False,
    }


class NaiveLog:
    """The baseline: write + fdatasync per record."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.fsyncs = 0

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        options = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
        os.write(self.fd, b"".join(orjson.dumps(r, option=options) for r in records))
        os.fdatasync(self.fd)
        self.fsyncs += 1  # not exact under threads; close enough for a ratio

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class Result:
    records: int
    seconds: float
    latencies: list[float]
    fsyncs: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1e6


def run(
    append: Callable[[Sequence[Mapping[str, Any]]], None], threads: int, seconds: float
) -> Result:
    stop = threading.Event()
    start = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def worker(t: int) -> None:
        own = latencies[t]
        i = t * 10_000_000
        start.wait()
        while not stop.is_set():
            record = [make_record(i)]
            began = time.perf_counter()
            append(record)
            own.append(time.perf_counter() - began)
            i += 1

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = [x for own in latencies for x in own]
    return Result(len(merged), elapsed, merged, 0)


def run_asyncio(log: RecordLog, tasks: int, seconds: float) -> Result:
    latencies: list[float] = []

    async def worker(t: int, stop: asyncio.Event) -> None:
        i = t * 10_000_000
        while not stop.is_set():
            record = [make_record(i)]
            began = time.perf_counter()
            await log.append_async(record)
            latencies.append(time.perf_counter() - began)
            i += 1

    async def main() -> float:
        stop = asyncio.Event()
        began = time.perf_counter()
        workers = [asyncio.create_task(worker(t, stop)) for t in range(tasks)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*workers)
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    return Result(len(latencies), elapsed, latencies, 0)


def measure(kind: str, threads: int, seconds: float, folder: Path) -> Result:
    target = folder / f"{kind}-{threads}-{time.monotonic_ns()}"
    if kind == "durable aio":
        log = RecordLog(target)
        result = run_asyncio(log, threads, seconds)
        log.close()
        result.fsyncs = log.stats.fsyncs
        return result
    if kind == "naive":
        target.mkdir()
        naive = NaiveLog(target / "naive.log")
        result = run(naive.append, threads, seconds)
        naive.close()
        result.fsyncs = naive.fsyncs
        return result
    log = RecordLog(target, durable=kind == "durable")  # or "async"
    result = run(log.append, threads, seconds)
    log.close()
    result.fsyncs = log.stats.fsyncs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp folder)")
    args = parser.parse_args()

    plan = [
        *(("durable", n) for n in (1, 16, 64)),
        *(("durable aio", n) for n in (16, 64)),
        *(("async", n) for n in (1, 16, 64)),
        *(("naive", n) for n in (1, 16, 64)),
    ]
    console = Console()
    rounds: dict[tuple[str, int], list[Result]] = {key: [] for key in plan}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for round_ in range(args.rounds):
            for kind, threads in plan:
                with console.status(f"round {round_ + 1}: {kind}, {threads} callers"):
                    result = measure(kind, threads, args.seconds, Path(folder))
                rounds[kind, threads].append(result)
    results = {
        key: sorted(runs, key=lambda r: r.rate)[len(runs) // 2] for key, runs in rounds.items()
    }

    table = Table(title="Prediction log: single-record appends")
    for column in ("mode", "callers", "records/s", "p50 µs", "p99 µs", "recs/fsync"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    table.add_column("vs naive", justify="right")
    for (kind, threads), result in results.items():
        naive = results["naive", threads]
        table.add_row(
            kind,
            str(threads),
            f"{result.rate:,.0f}",
            f"{result.percentile(50):,.0f}",
            f"{result.percentile(99):,.0f}",
            f"{result.records / max(result.fsyncs, 1):,.1f}",
            f"{result.rate / naive.rate:.1f}x",
        )
    console.print(table)
    console.print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"{args.seconds:g} s x {args.rounds} rounds per row, "
        f"files under {args.dir or tempfile.gettempdir()}"
    )


if __name__ == "__main__":
    main()
