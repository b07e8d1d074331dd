"""Reading the prediction log: segments against compacted Parquet, here and in a store.

    python bench/log_read.py [--records 200000] [--rounds 3]

Writes ``--records`` prediction records (20 inputs each, as the server logs them) to
a log in a temporary folder, in segments of 8 MiB, then times ``read_log`` (CPU
seconds of this process, the best of ``--rounds``):

- local segments: the log as writers leave it (JSON lines);
- local Parquet: after ``compact`` (the hourly job, or ``setpoint logs compact``);
- store segments / store Parquet: the same with the log shipped to an S3 API on
  loopback (moto in server mode, when installed): ``log_uri`` as machines share it.
  Wall time is shown as well: a store's reads wait on the network, not the CPU.

Also times shipping (moving the sealed segments to the store) in CPU seconds and
MB/s. The ratio column is each read against local segments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from setpoint.serving._logremote import LogLocation, ship
from setpoint.serving.log import RecordLog, compact, read_log
from storage import s3_loopback  # bench/storage.py

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def write(root: Path, records: int) -> int:
    """The records, in 8 MiB segments; the bytes written."""
    with RecordLog(root, durable=False, max_segment_bytes=8 << 20) as log:
        for start in range(0, records, 1000):
            log.append(
                [
                    {
                        "request_id": f"r{i}",
                        "ts": T0 + dt.timedelta(seconds=i),
                        "endpoint": "credit",
                        "model": "credit-risk",
                        "version": 1,
                        "route": "champion",
                        "latency_ms": 1.0,
                        "cached": False,
                        "fallback": False,
                        "inputs": {f"f{k:02d}": float(i + k) for k in range(20)},
                        "outputs": {"prediction": 1, "proba_1": 0.5},
                    }
                    for i in range(start, min(start + 1000, records))
                ]
            )
        return log.stats.bytes


def timed(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best CPU seconds and best wall seconds over ``rounds``."""
    cpu, wall = [], []
    for _ in range(rounds):
        started, clock = time.process_time(), time.perf_counter()
        work()
        cpu.append(time.process_time() - started)
        wall.append(time.perf_counter() - clock)
    return min(cpu), min(wall)


def store() -> tuple[str, Callable[[], None]] | None:
    """A bucket on an S3 API on loopback and how to stop it; None without moto."""
    try:
        import moto  # noqa: F401
    except ImportError:
        return None
    server, uri = s3_loopback()
    return uri.rsplit("/", 1)[0] + "/logs", server.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    folder = Path(tempfile.mkdtemp(prefix="setpoint-bench-log-"))
    try:
        size = write(folder / "local", args.records)
        local = folder / "local"
        rows.append(("local segments", *timed(lambda: read_log(local), args.rounds)))
        compact(local)
        rows.append(("local Parquet", *timed(lambda: read_log(local), args.rounds)))
        shipped = ""
        found = store()
        if found is not None:
            uri, stop = found
            try:
                location = LogLocation(folder / "node", uri)
                write(location.root, args.records)
                cpu, wall = timed(lambda: ship(location, "predictions"), 1)
                shipped = (
                    f"shipping {size / 1e6:,.0f} MB of segments: {cpu:.2f} CPU-s, "
                    f"{size / 1e6 / wall:,.0f} MB/s"
                )
                rows.append(("store segments", *timed(lambda: read_log(location), args.rounds)))
                compact(location)
                rows.append(("store Parquet", *timed(lambda: read_log(location), args.rounds)))
            finally:
                stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    console = Console()
    table = Table(title=f"read_log of {args.records:,} records ({size / 1e6:,.0f} MB of JSON)")
    for name in ("log", "CPU s", "wall s", "records/CPU-s", "vs local segments"):
        table.add_column(name, justify="left" if name == "log" else "right")
    base = rows[0][1]
    for name, cpu, wall in rows:
        table.add_row(
            name, f"{cpu:.2f}", f"{wall:.2f}", f"{args.records / cpu:,.0f}", f"{base / cpu:.1f}x"
        )
    console.print(table)
    if shipped:
        console.print(shipped)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    console.print(f"{python}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
