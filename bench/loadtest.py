"""`setpoint loadtest`'s generator: how fast a client it is, and whether it agrees with wrk.

    python bench/loadtest.py --clients [--seconds 3] [--rounds 3]
    python bench/loadtest.py [--rates 200,400,800] [--seconds 5] [--rounds 3]

--clients: which HTTP client can offer a server's full rate from one core. Each
client runs closed-loop (64 requests in flight on 64 keep-alive connections) in a
process pinned to core 1, against a bare Starlette endpoint returning a constant
(one uvicorn worker pinned to core 0), with wrk as the reference: httpx, aiohttp
(both on uvloop) and the load generator's own client (serving/loadtest/_client.py:
asyncio protocols, httptools' parser, uvloop). Per client: requests a second, and
the client's CPU time per request, whose inverse is what one client core could offer
a faster server.

Default: agreement with wrk at rates the server holds. `setpoint serve` (the full
server: a LightGBM model, API key, validation, batching, the durable log) is pinned
to core 0; at each rate our generator (one open-loop step) and wrk take turns on
core 1. Debian's wrk is closed-loop: a connection sends its next request when the
last one is answered. It is paced with its Lua ``delay()`` hook: each connection
waits ``d`` ms between an answer and its next request, so C connections offer
about C / (d + latency) a second. The latency is not known in advance, so short
calibration runs estimate it from what they achieved (latency = C / achieved - d) and
set d = C / R - latency (see ``paced_wrk``) before the measured run. Both
tools post the same bodies in turn (the served version's training rows). Compared:
the throughput each achieved (the figure that must agree within 10%), and the
median and p99 latency each measured. The medians differ by construction: ours is
timed from each request's *intended* time, which includes the up-to-1-ms lateness of
the event loop's timer (see schedule.py), wrk's from when it wrote the request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serving import free_port, prepare, running  # noqa: E402  (bench/serving.py)

CLIENTS = ("httpx", "aiohttp", "setpoint")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
BODY = b'{"records": [{"x": 1}]}'


# -- --clients: one client, closed loop, in its own pinned process ----------------------


async def _httpx(url: str, seconds: float, connections: int) -> int:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    done = 0
    async with httpx.AsyncClient(limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await client.post(url, content=BODY)
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done


async def _aiohttp(url: str, seconds: float, connections: int) -> int:
    import aiohttp

    done = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.post(url, data=BODY) as response:
                    await response.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done


async def _setpoint(url: str, seconds: float, connections: int) -> int:
    from setpoint.serving.loadtest._client import Pool
    from setpoint.serving.loadtest.generator import http_requests

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    requests = http_requests("127.0.0.1", port, "/predict", [{"x": 1}], None)
    deadline = time.monotonic() + seconds
    done = 0
    finished = asyncio.get_running_loop().create_future()

    def outcome(_intended: float, _latency: float, _status: int) -> None:
        nonlocal done
        done += 1
        now = time.monotonic()
        if now < deadline:
            pool.dispatcher.offer(now)  # closed loop: the next request at once
        elif pool.dispatcher.in_flight == 0 and not finished.done():
            finished.set_result(None)

    pool = Pool(
        "127.0.0.1", port, requests, size=connections, now=time.monotonic, outcome=outcome,
        timeout=10,
    )  # fmt: skip
    await pool.open()
    for _ in range(connections):
        pool.dispatcher.offer(time.monotonic())
    await finished
    pool.close()
    return done


def client_worker(kind: str, url: str, seconds: float, connections: int) -> None:
    """Runs in the pinned child: prints {requests, seconds, cpu} as JSON."""
    import aiohttp  # noqa: F401  (imported before the clock starts)
    import httpx  # noqa: F401
    import uvloop

    import setpoint.serving.loadtest.generator  # noqa: F401

    run = {"httpx": _httpx, "aiohttp": _aiohttp, "setpoint": _setpoint}[kind]
    # httpx runs on asyncio's own loop: on uvloop it managed ~90 req/s here (its
    # connection pool under 64 concurrent tasks), which says nothing of httpx.
    factory = None if kind == "httpx" else uvloop.new_event_loop
    cpu, wall = time.process_time(), time.monotonic()
    with asyncio.Runner(loop_factory=factory) as runner:
        n = runner.run(run(url, seconds, connections))
    print(
        json.dumps(
            {"requests": n, "seconds": time.monotonic() - wall, "cpu": time.process_time() - cpu}
        )
    )


def measure_client(kind: str, url: str, seconds: float) -> tuple[float, float]:
    """(requests a second, client CPU microseconds a request)."""
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--client-worker", kind, "--url", url,
         "--seconds", str(seconds)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    got = json.loads(out.strip().splitlines()[-1])
    return got["requests"] / got["seconds"], got["cpu"] / got["requests"] * 1e6


def wrk(
    url: str, seconds: float, connections: int, script: Path | None
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx) of one wrk run pinned to core 1."""
    whole = max(1, round(seconds))  # wrk takes whole seconds
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{whole}s",
               "--latency"]  # fmt: skip
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, percentile("50"), percentile("99"), int(errors.group(1)) if errors else 0


def clients_main(args: argparse.Namespace, console: Console) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE),
               "_servers:constant_app", "--factory", "--port", str(port), "--log-level",
               "warning", "--no-access-log"]  # fmt: skip
    url = f"http://127.0.0.1:{port}/predict"
    post = Path(tempfile.mkdtemp(prefix="setpoint-bench-")) / "post.lua"
    post.write_text(f"wrk.method = \"POST\"\nwrk.body = '{BODY.decode()}'\n")
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in ("wrk", *CLIENTS)}
    with running(command, url.replace("/predict", "/predict"), dict(os.environ), {}):
        wrk(url, 1, 64, post)  # warm up
        for round_ in range(args.rounds):
            for kind in ("wrk", *CLIENTS):
                with console.status(f"round {round_ + 1}: {kind}"):
                    if kind == "wrk":
                        rate = wrk(url, args.seconds, 64, post)[0]
                        samples[kind].append((rate, float("nan")))
                    else:
                        samples[kind].append(measure_client(kind, url, args.seconds))
    table = Table(
        title=f"Closed loop, 64 connections, constant endpoint on core 0, client on core 1 "
        f"(medians of {args.rounds} rounds of {args.seconds:g} s)"
    )
    for column in ("client", "req/s", "client CPU us a request", "req/s a client core"):
        table.add_column(column, justify="left" if column == "client" else "right")
    for kind, runs in samples.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        per_core = "-" if cpu != cpu else f"{1e6 / cpu:,.0f}"
        table.add_row(kind, f"{rate:,.0f}", "-" if cpu != cpu else f"{cpu:.0f}", per_core)
    console.print(table)


# -- default: agreement with wrk at held rates -------------------------------------------


def wrk_script(root: Path, requests: list[bytes], key: str, delay_ms: float) -> Path:
    """A wrk script posting the bodies in turn, each connection pausing ``delay_ms``
    between an answer and its next request."""
    bodies = root / "bodies.txt"
    bodies.write_bytes(b"\n".join(r.split(b"\r\n\r\n", 1)[1] for r in requests) + b"\n")
    script = root / "paced.lua"
    script.write_text(
        f"""
local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local i = 0
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}"}}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/endpoints/credit/predict", headers, bodies[i])
end
-- wrk takes whole milliseconds: carry the fraction over, so the mean pause is exact
local owed = 0
delay = function()
  owed = owed + {delay_ms:.4f}
  local now = math.floor(owed)
  owed = owed - now
  return now
end
"""
    )
    return script


def paced_wrk(
    root: Path, url: str, requests: list[bytes], key: str, rate: float, seconds: float, c: int
) -> tuple[float, float, float, int]:
    """wrk offering about ``rate`` a second: up to three 1-s calibration runs, then the
    measured one. Each run's cycle per connection (c / achieved) less its pause is the
    latency; the next pause is the cycle ``rate`` needs less that latency, kept between
    a quarter and all of that cycle, so one slow second of this shared machine cannot
    turn the pacing off (a pause of 0 is wrk unpaced, at the server's full rate)."""
    cycle = c / rate * 1000  # ms a connection may take per request
    delay = cycle
    for _ in range(3):
        achieved = wrk(url, 1, c, wrk_script(root, requests, key, delay))[0]
        if abs(achieved / rate - 1) < 0.03:
            break
        latency = max(0.0, c / achieved * 1000 - delay)
        delay = min(cycle, max(cycle / 4, cycle - latency))
    return wrk(url, seconds, c, wrk_script(root, requests, key, delay))


def ours(
    port: int, requests: list[bytes], rate: float, seconds: float
) -> tuple[float, float, float, int]:
    """One open-loop step in a process pinned to core 1: (achieved, p50, p99, errors)."""
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--step-worker", str(port),
         "--rate", str(rate), "--seconds", str(seconds), "--requests", str(REQUESTS_FILE)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    step = json.loads(out.strip().splitlines()[-1])
    return step["achieved"], step["p50_ms"], step["p99_ms"], step["errors"]


REQUESTS_FILE = Path(tempfile.gettempdir()) / f"setpoint-bench-requests-{os.getpid()}.json"


def step_worker(port: int, rate: float, seconds: float, requests_file: Path) -> None:
    from setpoint.serving.loadtest import generator

    requests = [r.encode("latin-1") for r in json.loads(requests_file.read_text())]
    settings = generator.Settings(
        connections=64, seconds=seconds, warmup=1.0, objective_ms=1e9, timeout=10
    )
    load = generator.LoadGenerator("127.0.0.1", port, requests, settings)
    results, _ = generator.run(load, [rate])
    print(json.dumps(results[0].to_dict()))


def agreement_main(args: argparse.Namespace, console: Console) -> None:
    from setpoint.serving.loadtest import generator, target
    from setpoint.workspace import Workspace

    levels = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        root = Path(tmp)
        key, _ = prepare(root, console)
        with Workspace.open(root / "ws") as ws:
            records = target.reference_records(ws, "credit-risk@1", limit=1000)
        port = free_port()
        requests = generator.http_requests(
            "127.0.0.1", port, "/v1/endpoints/credit/predict", records, key
        )
        REQUESTS_FILE.write_text(json.dumps([r.decode("latin-1") for r in requests]))
        command = [sys.executable, "-c", "from setpoint.cli import main; main()",
                   "-w", str(root / "ws"), "serve", "--port", str(port),
                   "--background", "off"]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        rows: dict[float, dict[str, list[tuple[float, float, float, int]]]] = {
            r: {"ours": [], "wrk": []} for r in levels
        }
        try:
            with running(command, f"{url}/readyz", dict(os.environ), auth):
                for round_ in range(args.rounds):
                    for rate in levels:
                        # wrk first: its pacing holds the rate only roughly, so ours
                        # then offers what wrk achieved, and both see the same load.
                        with console.status(f"round {round_ + 1}, {rate:g}/s: wrk"):
                            paced = paced_wrk(
                                root, url, requests, key, rate, args.seconds, args.wrk_c
                            )
                        rows[rate]["wrk"].append(paced)
                        with console.status(f"round {round_ + 1}, {rate:g}/s: setpoint loadtest"):
                            rows[rate]["ours"].append(ours(port, requests, paced[0], args.seconds))
        finally:
            with contextlib.suppress(FileNotFoundError):
                REQUESTS_FILE.unlink()
    table = Table(
        title=f"setpoint serve (LightGBM, 1 worker) on core 0, wrk and ours on core 1: "
        f"medians of {args.rounds} rounds of {args.seconds:g} s, {args.wrk_c} wrk connections",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("aim/s", "wrk/s", "ours/s", "ratio", "p50 wrk", "p50 ours",
                   "p99 wrk", "p99 ours", "errors"):  # fmt: skip
        table.add_column(column, justify="right", no_wrap=True)
    for rate, by in rows.items():
        o = [statistics.median(x[i] for x in by["ours"]) for i in range(3)]
        w = [statistics.median(x[i] for x in by["wrk"]) for i in range(3)]
        ratio = statistics.median(a[0] / b[0] for a, b in zip(by["ours"], by["wrk"], strict=True))
        errors = sum(x[3] for x in by["ours"]) + sum(x[3] for x in by["wrk"])
        table.add_row(
            f"{rate:g}", f"{w[0]:,.0f}", f"{o[0]:,.0f}", f"{ratio:.3f}", f"{w[1]:.2f}",
            f"{o[1]:.2f}", f"{w[2]:.2f}", f"{o[2]:.2f}", str(errors),
        )  # fmt: skip
    console.print(table)
    console.print(
        "wrk/s: what paced wrk achieved aiming at the rate; ours/s: what our generator "
        "achieved offering wrk's rate; ratio: ours/s over wrk/s within each round "
        "(median); latencies in ms."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", action="store_true", help="compare the HTTP clients")
    parser.add_argument("--rates", default="200,400,800,1600", help="rates to compare at")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds a measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wrk-c", type=int, default=64, help="wrk's connections (ours: 64)")
    parser.add_argument("--client-worker", help=argparse.SUPPRESS)
    parser.add_argument("--step-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        client_worker(args.client_worker, args.url, args.seconds, 64)
        return
    if args.step_worker:
        step_worker(args.step_worker, args.rate, args.seconds, args.requests)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; install the Debian package: apt-get install wrk")
    console = Console(width=max(100, Console().width))  # the tables are 90 columns
    if args.clients:
        clients_main(args, console)
    else:
        agreement_main(args, console)


if __name__ == "__main__":
    main()
