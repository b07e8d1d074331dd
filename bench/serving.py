"""Serving throughput and latency: the full server against two bare baselines.

    python bench/serving.py [--duration 2] [--rounds 7] [--connections 1,16,64]
    python bench/serving.py --engine ray      # setpoint's replica vs a bare Ray Serve one

Three servers, each one uvicorn process pinned to core 0, loaded one at a time by
wrk (a C load generator, Debian package ``wrk``) pinned to core 1, with single-row
requests:

- full: ``setpoint serve`` — API key auth, contract validation, micro-batching, the
  durable prediction log (fsync before answering) and metrics, all on;
- bare predict: a bare Starlette endpoint calling the same model's predict_proba per
  request;
- constant: a bare Starlette endpoint returning a constant (HTTP cost alone).

This machine is shared and its speed drifts by tens of percent within a minute, the
constant endpoint's included. So the three servers run side by side and are loaded
in turn for short slices (``--duration`` seconds), round after round: each round
measures all three within a few seconds of each other. The table shows each figure's
median over the rounds, and the ratios to the constant endpoint are the medians of
the ratios within each round.

Target at concurrency 64: at least 50% of the constant endpoint's throughput, p99
under 3x its p99.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from setpoint.demo import lending
from setpoint.workspace import Workspace

HERE = Path(__file__).resolve().parent
SPEC = {
    "model": "credit-risk",
    "dataset": "loans@latest",
    "target": lending.TARGET,
    "exclude": [lending.TIME_COLUMN],
    "estimator": {"class": "lightgbm.LGBMClassifier", "params": {"n_estimators": 100}},
    "seed": 1,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    command: list[str], ready_url: str, env: dict[str, str], headers: dict[str, str]
) -> Iterator[None]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(ready_url, timeout=1, headers=headers).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"server did not start: {' '.join(command)}")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
SERVERS = ("full", "bare predict", "constant")


def medians(runs: list[tuple[float, float, float, int]]) -> tuple[float, float, float, int]:
    """Median req/s, p50 and p99 of the rounds (each on its own), and all non-2xx."""
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        statistics.median(r[2] for r in runs),
        sum(r[3] for r in runs),
    )


def wrk(url: str, script: Path, connections: int, duration: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx responses)."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, percentile("50"), percentile("99"), int(errors.group(1)) if errors else 0


def prepare(root: Path, console: Console) -> tuple[str, Path]:
    """A workspace at ``root / "ws"`` serving endpoint ``credit`` (LightGBM, an API key
    required), and a wrk script posting one of its rows: (the key, the script)."""
    with console.status("training and deploying the model"):
        ws = Workspace.init(root / "ws", actor="bench")
        history = lending.applications(20_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=3)
        ws.add_dataset("loans", history)
        version = ws.train(SPEC)
        ws.promote(version.name, version.version)
        ws.deploy("credit", model="credit-risk")
        _, key = ws.keys.create("predict", note="bench")
        ws.close()
    return key, post_script(root, history, key)


def post_script(root: Path, history: Any, key: str) -> Path:
    """A wrk script (in ``root``) posting the first row of ``history`` with ``key``."""
    record = {
        k: (None if v != v else v)
        for k, v in history.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
        .iloc[0]
        .to_dict()
        .items()
    }
    body = root / "body.json"
    body.write_bytes(orjson.dumps({"records": [record]}, option=orjson.OPT_SERIALIZE_NUMPY))
    script = root / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = io.open("{body}"):read("*a")\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per slice")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of one slice per server")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="ray: setpoint's replica against a bare Ray Serve deployment, both behind "
        "Ray Serve's proxy on a local Ray",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; install the Debian package: apt-get install wrk")
    levels = [int(c) for c in args.connections.split(",")]
    console = Console()

    if args.engine == "ray":
        ray_main(args, levels, console)
        return

    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        root = Path(tmp)
        key, script = prepare(root, console)
        auth = {"Authorization": f"Bearer {key}"}
        env = dict(os.environ, SETPOINT_WORKSPACE=str(root / "ws"), BENCH_MODEL="credit-risk")
        python = sys.executable
        commands: dict[str, tuple[list[str], str, str]] = {}
        for name in SERVERS:
            port = free_port()
            if name == "full":
                command = [
                    python,
                    "-c",
                    "from setpoint.cli import main; main()",
                    "-w",
                    str(root / "ws"),
                    "serve",
                    "--port",
                    str(port),
                ]
                url, ready = (
                    f"http://127.0.0.1:{port}/v1/endpoints/credit/predict",
                    f"http://127.0.0.1:{port}/readyz",
                )
            else:
                factory = "constant_app" if name == "constant" else "bare_predict_app"
                command = [
                    python,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(HERE),
                    f"_servers:{factory}",
                    "--factory",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ]
                url = ready = f"http://127.0.0.1:{port}/predict"
            commands[name] = (command, url, ready)
        # All three run side by side (idle while another is loaded) and take turns,
        # round after round, so that a slow spell of this shared machine falls on
        # all of them alike.
        samples: dict[str, dict[int, list[tuple[float, float, float, int]]]] = {
            name: {c: [] for c in levels} for name in SERVERS
        }
        with contextlib.ExitStack() as stack:
            for name, (command, _, ready) in commands.items():
                with console.status(f"starting {name}"):
                    stack.enter_context(running(command, ready, env, auth))
            for _, url, _ in commands.values():
                wrk(url, script, 16, 2)  # warm up
            for c in levels:
                for round_ in range(args.rounds):
                    for name, (_, url, _) in commands.items():
                        with console.status(f"{c} connections, round {round_ + 1}: {name}"):
                            samples[name][c].append(wrk(url, script, c, args.duration))
        servers = {
            name: {c: medians(runs) for c, runs in by_level.items()}
            for name, by_level in samples.items()
        }
        ratios = {  # within each round, then the median over the rounds
            name: {
                c: (
                    statistics.median(
                        r[0] / b[0] for r, b in zip(runs, samples["constant"][c], strict=True)
                    ),
                    statistics.median(
                        r[2] / b[2] for r, b in zip(runs, samples["constant"][c], strict=True)
                    ),
                )
                for c, runs in by_level.items()
            }
            for name, by_level in samples.items()
        }

    table = Table(
        title=f"Single-row requests, one uvicorn worker on one core, wrk on the other "
        f"(medians of {args.rounds} rounds of {args.duration}-s slices; ratios within rounds)"
    )
    for column in (
        "server",
        "connections",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "req/s vs constant",
        "p99 vs constant",
    ):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, results in servers.items():
        for c, (rate, p50, p99, errors) in results.items():
            rate_ratio, p99_ratio = ratios[name][c]
            table.add_row(
                name,
                str(c),
                f"{rate:,.0f}",
                f"{p50:.2f}",
                f"{p99:.2f}",
                str(errors),
                f"{rate_ratio:.0%}",
                f"{p99_ratio:.1f}x",
            )
    console.print(table)
    top = max(levels)
    rate_ratio, p99_ratio = ratios["full"][top]
    ok = rate_ratio >= 0.5 and p99_ratio <= 3
    console.print(
        f"target at {top} connections (>= 50% of constant req/s, p99 <= 3x): "
        f"{'met' if ok else 'NOT met'} ({rate_ratio:.0%}, {p99_ratio:.1f}x)"
    )


def ray_main(args: argparse.Namespace, levels: list[int], console: Console) -> None:
    """setpoint's Ray Serve replica (the full server: key, contract, batching, durable
    log) against a bare Ray Serve deployment returning a constant, one replica each
    behind the same proxy on a local Ray; wrk pinned to core 1, Ray where it likes."""
    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    from setpoint.serving import ray_engine

    constant = orjson.dumps({"predictions": [0], "probabilities": [[0.9, 0.1]]})

    # The same admission as our replica (Ray's default of 5 ongoing requests queues
    # the rest in the proxy, which would flatter us at high concurrency).
    @serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=64)
    class Constant:
        async def __call__(self, request: Request) -> Response:
            await request.body()
            return Response(constant, media_type="application/json")

    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        root = Path(tmp)
        _, script = prepare(root, console)
        with console.status("starting Ray and both deployments"):
            ray.init(
                address="local",
                num_cpus=2,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
            )
            ws = Workspace.open(root / "ws")
            base = ray_engine.deploy(
                ws,
                overrides={},
                port=free_port(),
                replicas=ray_engine.Replicas(fixed=1),
                replica=ray_engine.ReplicaSettings(cpus=1),
            )
            serve.run(Constant.bind(), name="constant", route_prefix="/constant")
        urls = {
            "setpoint on Ray": f"{base}/v1/endpoints/credit/predict",
            "bare Ray Serve": f"{base}/constant",
        }
        samples: dict[str, dict[int, list[tuple[float, float, float, int]]]] = {
            name: {c: [] for c in levels} for name in urls
        }
        try:
            for url in urls.values():
                wrk(url, script, 16, 2)  # warm up
            for c in levels:
                for round_ in range(args.rounds):
                    for name, url in urls.items():
                        with console.status(f"{c} connections, round {round_ + 1}: {name}"):
                            samples[name][c].append(wrk(url, script, c, args.duration))
        finally:
            serve.shutdown()
            ray.shutdown()
            ws.close()

    table = Table(
        title=f"Single-row requests through Ray Serve's proxy, one replica each, wrk on "
        f"core 1 (medians of {args.rounds} rounds of {args.duration}-s slices)"
    )
    for column in ("deployment", "connections", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    ratios: dict[int, float] = {}
    for c in levels:
        ratios[c] = statistics.median(
            r[0] / b[0]
            for r, b in zip(
                samples["setpoint on Ray"][c], samples["bare Ray Serve"][c], strict=True
            )
        )
    for name, by_level in samples.items():
        for c, runs in by_level.items():
            rate, p50, p99, errors = medians(runs)
            ratio = f"{ratios[c]:.0%}" if name == "setpoint on Ray" else ""
            table.add_row(
                name, str(c), f"{rate:,.0f}", f"{p50:.2f}", f"{p99:.2f}", str(errors), ratio
            )
    console.print(table)
    top = max(levels)
    console.print(
        f"target at {top} connections (>= 80% of the bare deployment's req/s): "
        f"{'met' if ratios[top] >= 0.8 else 'NOT met'} ({ratios[top]:.0%})"
    )


if __name__ == "__main__":
    main()
