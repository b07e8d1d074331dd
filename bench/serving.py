"""Serving throughput, latency and CPU per request: the full server against two bare baselines.

    python bench/serving.py [--duration 2] [--rounds 7] [--connections 1,16,64]
    python bench/serving.py --routes native,oip,invocations --connections 64
    python bench/serving.py --engine ray      # setpoint's replica vs a bare Ray Serve one

Servers, each one uvicorn process pinned to core 0, loaded one at a time by wrk (a C
load generator, Debian package ``wrk``) pinned to core 1, with single-row requests
drawn in turn from 1,000 distinct rows of the data:

- ``setpoint serve`` — API key auth, contract validation, micro-batching, the
  durable prediction log (fsync before answering), metrics and cost accounting, all
  on — through each of its protocols: ``native`` (``/v1/endpoints/credit/predict``),
  ``oip`` (Open Inference Protocol v2, JSON tensors) and ``invocations`` (MLflow's
  scoring protocol, ``dataframe_split``);
- bare predict: a bare Starlette endpoint calling the same model's predict_proba per
  request;
- constant: a bare Starlette endpoint returning a constant (HTTP cost alone).

Before the load, every route's answers to 200 of the rows are checked against the
model's own predictions in this process. For each slice the table gives req/s, p50
and p99 (wrk's), and the server process's CPU time per request (user + system from
``/proc``, over the requests wrk completed): on a shared machine, the steadiest of
the figures.

This machine is shared and its speed drifts by tens of percent within a minute, the
constant endpoint's included. So the servers run side by side and are loaded in turn
for short slices (``--duration`` seconds), round after round: each round measures
all of them within seconds of each other. The table shows each figure's median over
the rounds; the ratios are the medians of the ratios within each round.

Targets at the highest concurrency (issue 17): the native route at >= 85% of the
constant endpoint's throughput, <= 1.2x its CPU per request and p99 <= 2x; OIP v2
and /invocations within 1.3x of the native route's CPU per request.
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from typing import Any, NamedTuple

import httpx
import orjson
from rich import box
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
) -> Iterator[int]:
    """Run ``command`` pinned to core 0 until it answers ``ready_url``; its pid (taskset
    becomes the command)."""
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
        yield process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
ROUTES = ("native", "oip", "invocations")
BODIES, CHECKED = 1_000, 200
SERVER = "setpoint.serving.server"


class Slice(NamedTuple):
    """One wrk run against one route: requests/s, p50 and p99 ms, non-2xx answers, and
    the server's CPU microseconds per request completed."""

    rate: float
    p50: float
    p99: float
    errors: int
    cpu_us: float


def medians(runs: list[Slice]) -> Slice:
    """Median req/s, p50, p99 and CPU per request of the rounds (each on its own), and
    all non-2xx."""
    return Slice(
        statistics.median(r.rate for r in runs),
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p99 for r in runs),
        sum(r.errors for r in runs),
        statistics.median(r.cpu_us for r in runs),
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children so far (Linux
    /proc): granian answers from a worker process of its own."""
    tree, total = {pid}, 0.0
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    grew = True
    while grew:  # children, then theirs
        found = {p for p, fields in stats.items() if int(fields[1]) in tree}
        grew = not found <= tree
        tree |= found
    for p in tree:
        if p in stats:
            total += int(stats[p][11]) + int(stats[p][12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, connections: int, duration: int, pid: int | None = None) -> Slice:
    """One wrk run; the CPU per request is that of process ``pid`` (NaN without one)."""
    before = cpu_seconds(pid) if pid is not None else math.nan
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    spent = cpu_seconds(pid) - before if pid is not None else math.nan
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Slice(
        rate,
        percentile("50"),
        percentile("99"),
        int(errors.group(1)) if errors else 0,
        spent / max(done, 1) * 1e6,
    )


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
    return key, post_script(root, [_records(history)[0]], key, "native")


def _records(history: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: the features only, NaN as null."""
    features = history.drop(columns=[lending.TARGET, lending.TIME_COLUMN])
    return [
        {k: (None if v != v else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]


def body(route: str, record: dict[str, Any], datatypes: dict[str, str]) -> dict[str, Any]:
    """One row as ``route`` takes it (``datatypes``: the OIP input tensors' types)."""
    if route == "oip":
        return {
            "inputs": [
                {"name": k, "shape": [1], "datatype": datatypes[k], "data": [v]}
                for k, v in record.items()
            ]
        }
    if route == "invocations":
        return {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}}
    return {"records": [record]}


def post_script(root: Path, bodies: list[Any], key: str, name: str) -> Path:
    """A wrk script (in ``root``) posting ``bodies`` in turn (JSON, one per line)."""
    lines = root / f"{name}.jsonl"
    lines.write_bytes(
        b"\n".join(orjson.dumps(b, option=orjson.OPT_SERIALIZE_NUMPY) for b in bodies) + b"\n"
    )
    script = root / f"{name}.lua"
    script.write_text(
        "local bodies = {}\n"
        f'for line in io.lines("{lines}") do bodies[#bodies + 1] = line end\n'
        "local i = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\n"
        "end\n"
    )
    return script


def check_answers(
    base: str, key: str, records: list[dict[str, Any]], datatypes: dict[str, str], root: Path
) -> None:
    """Every route answers ``records`` as the model does in this process."""
    import numpy as np
    import pandas as pd

    ws = Workspace.open(root / "ws")
    try:
        predictor = ws.load_model("credit-risk")
        expected = np.asarray(predictor.predict_proba(pd.DataFrame(records)))
    finally:
        ws.close()
    auth = {"Authorization": f"Bearer {key}"}
    paths = {
        "native": "/v1/endpoints/credit/predict",
        "oip": "/v2/models/credit/infer",
        "invocations": "/invocations",
    }
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        for route, path in paths.items():
            got = []
            for record in records:
                answer = client.post(path, json=body(route, record, datatypes))
                answer.raise_for_status()
                data = answer.json()
                if route == "oip":
                    (output,) = [o for o in data["outputs"] if o["name"] == "probabilities"]
                    got.append(output["data"])
                else:
                    got.append(data["probabilities"][0])
            worst = float(np.abs(np.asarray(got) - expected).max())
            if worst > 1e-9:
                raise SystemExit(f"{route} answered {worst:g} away from the model's own answers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per slice")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of one slice per server")
    parser.add_argument(
        "--routes",
        default="native",
        help="the full server's protocols to load, of: " + ", ".join(ROUTES),
    )
    parser.add_argument(
        "--granian",
        action="store_true",
        help="also load the native route and the constant endpoint served by granian",
    )
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="also load the native route of the same app under uvicorn's own protocol "
        "(every request through ASGI), against setpoint serve's (the hot routes without)",
    )
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
    if args.granian and not Path(sys.executable).with_name("granian").exists():
        raise SystemExit("granian is not installed here; pip install -c constraints.txt granian")
    levels = [int(c) for c in args.connections.split(",")]
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = sorted(set(routes) - set(ROUTES))
    if unknown:
        raise SystemExit(f"unknown route(s) {', '.join(unknown)}; choose from {', '.join(ROUTES)}")
    console = Console()

    if args.engine == "ray":
        ray_main(args, levels, console)
        return

    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        root = Path(tmp)
        key, _ = prepare(root, console)
        history = lending.applications(BODIES, start=datetime(2026, 4, 1, tzinfo=UTC), seed=17)
        records = _records(history)
        auth = {"Authorization": f"Bearer {key}"}
        env = dict(os.environ, SETPOINT_WORKSPACE=str(root / "ws"), BENCH_MODEL="credit-risk")
        python = sys.executable
        full_port = free_port()
        processes: dict[str, tuple[list[str], str]] = {
            "full": (
                [python, "-c", "from setpoint.cli import main; main()", "-w", str(root / "ws"),
                 "serve", "--port", str(full_port)],
                f"http://127.0.0.1:{full_port}/readyz",
            ),
        }  # fmt: skip
        targets: dict[str, tuple[str, str]] = {}  # name -> (process, url)
        paths = {
            "native": "/v1/endpoints/credit/predict",
            "oip": "/v2/models/credit/infer",
            "invocations": "/invocations",
        }
        for route in routes:
            targets[route] = ("full", f"http://127.0.0.1:{full_port}{paths[route]}")
        for name in ("bare predict", "constant"):
            port = free_port()
            factory = "constant_app" if name == "constant" else "bare_predict_app"
            processes[name] = (
                [python, "-m", "uvicorn", "--app-dir", str(HERE), f"_servers:{factory}",
                 "--factory", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                f"http://127.0.0.1:{port}/predict",
            )  # fmt: skip
            targets[name] = (name, f"http://127.0.0.1:{port}/predict")
        if args.asgi or args.granian:
            env.update(SETPOINT_SERVE_OVERRIDES="{}", SETPOINT_SERVE_BACKGROUND="worker:300")
        if args.asgi:
            # The app setpoint serve runs, under uvicorn's own httptools protocol.
            port = free_port()
            processes["native [asgi]"] = (
                [python, "-m", "uvicorn", "--factory", f"{SERVER}:app_from_environment",
                 "--port", str(port), "--http", "httptools", "--log-level", "warning",
                 "--no-access-log", "--no-proxy-headers", "--no-server-header"],
                f"http://127.0.0.1:{port}/readyz",
            )  # fmt: skip
            targets["native [asgi]"] = (
                "native [asgi]",
                f"http://127.0.0.1:{port}{paths['native']}",
            )
        if args.granian:
            # The same apps under granian (one worker, uvloop), beside uvicorn's.
            for name, app in (
                ("native [granian]", "setpoint.serving.server:app_from_environment"),
                ("constant [granian]", "_servers:constant_app"),
            ):
                port = free_port()
                ready = "/readyz" if name.startswith("native") else "/predict"
                processes[name] = (
                    [str(Path(python).with_name("granian")), "--interface", "asgi", "--factory",
                     "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop",
                     "uvloop", "--log-level", "warning", "--working-dir", str(HERE), app],
                    f"http://127.0.0.1:{port}{ready}",
                )  # fmt: skip
                path = paths["native"] if name.startswith("native") else "/predict"
                targets[name] = (name, f"http://127.0.0.1:{port}{path}")
        samples: dict[str, dict[int, list[Slice]]] = {
            name: {c: [] for c in levels} for name in targets
        }
        with contextlib.ExitStack() as stack:
            pids = {}
            for name, (command, ready) in processes.items():
                with console.status(f"starting {name}"):
                    pids[name] = stack.enter_context(running(command, ready, env, auth))
            base = f"http://127.0.0.1:{full_port}"
            datatypes = {
                t["name"]: t["datatype"]
                for t in httpx.get(f"{base}/v2/models/credit", headers=auth).json()["inputs"]
            }
            with console.status("checking every route's answers against the model's"):
                check_answers(base, key, records[:CHECKED], datatypes, root)
            scripts = {
                name: post_script(
                    root,
                    [body(name if name in ROUTES else "native", r, datatypes) for r in records],
                    key,
                    re.sub(r"\W+", "_", name),
                )
                for name in targets
            }
            for name, (_, url) in targets.items():
                wrk(url, scripts[name], 16, 2)  # warm up
            # Side by side (each idle while another is loaded), in turns, round after
            # round, so that a slow spell of this shared machine falls on all alike.
            for c in levels:
                for round_ in range(args.rounds):
                    for name, (process, url) in targets.items():
                        with console.status(f"{c} connections, round {round_ + 1}: {name}"):
                            samples[name][c].append(
                                wrk(url, scripts[name], c, args.duration, pids[process])
                            )
    report(console, samples, routes, args)


def _within(runs: list[Slice], base: list[Slice], figure: str) -> float:
    """The median over the rounds of ``runs``' figure over ``base``'s in the same round."""
    return statistics.median(
        getattr(r, figure) / getattr(b, figure) for r, b in zip(runs, base, strict=True)
    )


def report(
    console: Console,
    samples: dict[str, dict[int, list[Slice]]],
    routes: list[str],
    args: argparse.Namespace,
) -> None:
    table = Table(
        title=f"Single-row requests, 1,000 distinct rows; medians of {args.rounds} rounds "
        f"of {args.duration}-s slices; c: connections; p50, p99 in ms; CPU µs per "
        "request; fail: non-2xx; x: to the constant endpoint, within rounds; (g): granian; "
        "(a): uvicorn's own protocol",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = ("server", "c", "req/s", "p50", "p99", "fail", "CPU",
               "x req", "x p99", "x CPU")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "server" else "right", no_wrap=True)
    for name, by_level in samples.items():
        for c, runs in by_level.items():
            m = medians(runs)
            constant = samples["constant"][c]
            table.add_row(
                name.replace(" predict", "")
                .replace(" [granian]", " (g)")
                .replace(" [asgi]", " (a)"),
                str(c),
                f"{m.rate:,.0f}",
                f"{m.p50:.2f}",
                f"{m.p99:.1f}",
                str(m.errors),
                f"{m.cpu_us:.0f}",
                f"{_within(runs, constant, 'rate'):.0%}",
                f"{_within(runs, constant, 'p99'):.1f}",
                f"{_within(runs, constant, 'cpu_us'):.2f}",
            )
    console.print(table)
    top = max(samples["constant"])
    if "native" in samples:
        native, constant = samples["native"][top], samples["constant"][top]
        rate, p99 = _within(native, constant, "rate"), _within(native, constant, "p99")
        cpu = _within(native, constant, "cpu_us")
        ok = rate >= 0.85 and cpu <= 1.2 and p99 <= 2
        console.print(
            f"native route at {top} connections (>= 85% of constant req/s, <= 1.2x its CPU "
            f"per request, p99 <= 2x): {'met' if ok else 'NOT met'} "
            f"({rate:.0%}, {cpu:.2f}x, {p99:.1f}x)"
        )
        for route in routes:
            if route != "native":
                ratio = _within(samples[route][top], native, "cpu_us")
                console.print(
                    f"{route} CPU per request vs native at {top} connections (<= 1.3x): "
                    f"{'met' if ratio <= 1.3 else 'NOT met'} ({ratio:.2f}x)"
                )
    if "native [asgi]" in samples:
        mine, asgi = samples["native"][top], samples["native [asgi]"][top]
        console.print(
            f"native route answered below ASGI (setpoint serve) against through it (uvicorn's "
            f"protocol) at {top} connections: req/s {_within(mine, asgi, 'rate'):.0%}, "
            f"p99 {_within(mine, asgi, 'p99'):.2f}x, "
            f"CPU per request {_within(mine, asgi, 'cpu_us'):.2f}x"
        )
    if "native [granian]" in samples:
        for name in ("native", "constant"):
            mine, theirs = samples[name][top], samples[f"{name} [granian]"][top]
            console.print(
                f"{name} under granian against uvicorn at {top} connections: "
                f"req/s {_within(theirs, mine, 'rate'):.0%}, "
                f"p99 {_within(theirs, mine, 'p99'):.2f}x, "
                f"CPU per request {_within(theirs, mine, 'cpu_us'):.2f}x"
            )
        native, constant = samples["native [granian]"][top], samples["constant [granian]"][top]
        console.print(
            f"under granian, native against constant at {top} connections: "
            f"req/s {_within(native, constant, 'rate'):.0%}, "
            f"p99 {_within(native, constant, 'p99'):.1f}x, "
            f"CPU per request {_within(native, constant, 'cpu_us'):.2f}x"
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
        samples: dict[str, dict[int, list[Slice]]] = {
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
            rate, p50, p99, errors, _ = medians(runs)
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
