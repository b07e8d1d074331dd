"""A dataset version in a local folder and on S3 (moto on loopback): speed and memory.

    python bench/storage.py [--mb 50]

Writes a Parquet file of random floats (about ``--mb`` MB, which compresses to about
the same size), starts an S3 API on loopback (moto in server mode, in this process),
then runs each step in a fresh subprocess, once with the workspace's stores in a
local folder and once in a bucket (``data_uri = s3://…``):

- ``put_file``: the file staged and moved into the artifact store by its hash (on S3
  a multipart upload of 8 MiB parts);
- ``open``: the object read back in 1 MiB pieces, verified against its hash;
- ``data add``: the file registered as a dataset version (read, hashed, profiled,
  stored, recorded);
- ``contract check``: the version checked against its contract, batch by batch, as
  ``attach_contract`` does.

Each child reports its own peak resident memory (``VmHWM``) and the seconds of the
step alone; the baseline child only imports what the others import. Prints a table
with the S3/local ratios. The moto server keeps objects in this process's memory, so
the S3 figures include a loopback HTTP server in Python: read them as an upper bound
on the client's cost, not as what a real S3 would take.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
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

_COLUMNS = 10
STEPS = ("baseline", "put_file", "open", "data add", "contract check")


def write_parquet(path: Path, megabytes: int, seed: int = 0) -> None:
    """Random floats (they do not compress): ``megabytes`` MB of values in row groups."""
    rng = np.random.default_rng(seed)
    rows = megabytes * 1_000_000 // (8 * _COLUMNS)
    schema = pa.schema([(f"x{i}", pa.float64()) for i in range(_COLUMNS)])
    with pq.ParquetWriter(path, schema, use_dictionary=False) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            writer.write_table(pa.table({f"x{i}": rng.normal(size=n) for i in range(_COLUMNS)}))


def child(step: str, workspace: Path, source: Path, data_uri: str) -> None:
    """One step, in this (fresh) process; prints its seconds and peak memory."""
    from setpoint.store.artifacts import ArtifactStore
    from setpoint.workspace import Workspace

    staging = workspace / "staging"
    store = ArtifactStore(data_uri, staging=staging)
    start = time.perf_counter()
    if step == "put_file":
        with store.staging() as staged:
            _copy(source, staged)
            store.put_file(staged)
    elif step == "open":
        digest = _digest(source)
        with store.open(digest) as f:
            while f.read(1 << 20):
                pass
    elif step == "data add":
        with Workspace.open(workspace) as ws:
            ws.add_dataset("big", source)
    elif step == "contract check":
        with Workspace.open(workspace) as ws:
            version = ws.dataset("big@1")
            assert ws.datasets.check_contract(version, ws.contract("big@1")) is not None
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text()
    peak_kib = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kib / 1024}))


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as out:
        while piece := src.read(1 << 20):
            out.write(piece)


def _digest(path: Path) -> str:
    from setpoint.store.artifacts import file_sha256

    return file_sha256(path)


def run(step: str, workspace: Path, source: Path, data_uri: str) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", step, str(workspace), str(source), data_uri]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} on {data_uri} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(folder: Path, source: Path, data_uri: str) -> dict[str, dict[str, float]]:
    from setpoint.workspace import Workspace

    workspace = folder / "ws"
    Workspace.init(workspace, data_uri=data_uri).close()
    return {step: run(step, workspace, source, data_uri) for step in STEPS}


def s3_loopback() -> tuple[object, str]:
    """An S3 API on a free loopback port, the environment pointing at it, a bucket."""
    try:
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise SystemExit(f"{exc}: pip install 'moto[server]' s3fs") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("setpoint-bench")
    return server, "s3://setpoint-bench/data"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="Size of the dataset in MB.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, workspace, source, data_uri = args.child
        child(step, Path(workspace), Path(source), data_uri)
        return
    console = Console()
    server, bucket = s3_loopback()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = folder / "big.parquet"
            write_parquet(source, args.mb)
            size_mb = source.stat().st_size / 1e6
            local = measure(folder / "local", source, str(folder / "local" / "store"))
            s3 = measure(folder / "s3", source, bucket)
    finally:
        server.stop()  # type: ignore[attr-defined]

    table = Table(
        "step", "local s", "S3 s", "S3/local", "local peak MB", "S3 peak MB",
        title=f"a {size_mb:,.0f} MB dataset version, local folder vs S3 on loopback (moto) "
        f"({platform.machine()}, {os.cpu_count()} cores, pyarrow {pa.__version__})",
    )  # fmt: skip
    for step in STEPS:
        a, b = local[step], s3[step]
        table.add_row(
            step, f"{a['seconds']:.2f}", f"{b['seconds']:.2f}",
            f"{b['seconds'] / a['seconds']:.1f}x" if step != "baseline" else "",
            f"{a['peak_mb']:,.0f}", f"{b['peak_mb']:,.0f}",
        )  # fmt: skip
    console.print(table)
    over = s3["open"]["peak_mb"] - s3["baseline"]["peak_mb"]
    put = s3["put_file"]["peak_mb"] - s3["baseline"]["peak_mb"]
    console.print(
        f"S3 memory above the baseline: put_file {put:,.0f} MB, open {over:,.0f} MB "
        f"for a {size_mb:,.0f} MB object (streamed: the same at any size)."
    )


if __name__ == "__main__":
    main()
