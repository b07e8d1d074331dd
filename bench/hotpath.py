"""The hot path without HTTP: the server's app driven in this process, CPU per request.

    PYTHONPATH=src:bench python bench/hotpath.py [--requests 19200] [--callers 64]
        [--runs 3] [--routes native,oip,invocations] [--profile FILE] [--asgi]

``bench/serving.py`` measures the whole server under wrk; this one takes the socket,
httptools and uvicorn away, so what is left is setpoint's own work per request. The
app of ``setpoint serve`` (API key, contract, micro-batching, the durable log with an
fsync per batch, metrics, cost accounting) is asked for each answer as its protocol
asks (``HotPath.respond``; ``--asgi``: the app is called as an ASGI server calls
it) by ``--callers`` concurrent callers, each posting single-row bodies drawn in turn
from 1,000 distinct rows. The constant endpoint of ``bench/serving.py`` (a bare
Starlette route returning a constant, called through ASGI) runs beside it. CPU is the
whole process's (user + system, every thread: the event loop, the model's worker
thread, the log's fsync), per request answered; runs alternate between the apps so a
slow spell of a shared machine falls on all of them. ``--profile FILE`` writes a
cProfile of the event loop's thread for one run of ``--profile-route`` (default
native; the worker threads are not in it).

Used for the A/B measurements of the hot path in docs/benchmarks.md: change one
thing, run it before and after, compare medians. "loop µs" is the event loop's
thread's part of the CPU (decoding, routing, futures, answers); the rest is the
model's worker thread (predicting, building the log records) and the log's writer.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from _servers import constant_app
from serving import BODIES, ROUTES, _records, body, prepare
from setpoint.demo import lending

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
PATHS = {
    "native": "/v1/endpoints/credit/predict",
    "oip": "/v2/models/credit/infer",
    "invocations": "/invocations",
    "constant": "/predict",
}


class Lifespan:
    """The app's lifespan, as uvicorn runs it: started, then shut down on one channel."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Future[None] | None = None

    async def _step(self, event: str) -> None:
        await self._sent.put({"type": f"lifespan.{event}"})
        message = await self._heard.get()
        if message["type"].endswith("failed"):
            raise SystemExit(f"lifespan {event} failed: {message.get('message')}")

    async def __aenter__(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self._app(scope, self._sent.get, self._heard.put))
        await self._step("startup")

    async def __aexit__(self, *_exc: object) -> None:
        await self._step("shutdown")
        assert self._task is not None
        await self._task


async def drive(
    app: App,
    path: str,
    bodies: list[bytes],
    key: str,
    requests: int,
    callers: int,
    asgi: bool = False,
) -> tuple[float, float]:
    """CPU µs per request of ``requests`` posts of ``bodies`` (in turn) to ``path``: the
    process's, and the event loop's thread's part of it."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
    ]
    raw_path = path.encode()
    # setpoint serve's protocol calls HotPath.respond for a hot route: so does this,
    # unless asked to go through the ASGI app (``asgi``).
    hot = None if asgi else getattr(app, "hot", None)
    found = hot.find(path) if hot is not None else None
    if found is None:
        hot = None
    count = 0
    failures: list[bytes] = []

    async def caller(first: int) -> None:
        nonlocal count
        i = first
        while count < requests:
            count += 1
            payload = bodies[i % len(bodies)]
            i += callers
            scope = {
                "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1", "server": ("127.0.0.1", 8000),
                "client": ("127.0.0.1", 50000 + first), "scheme": "http", "root_path": "",
                "method": "POST", "path": path, "raw_path": raw_path, "query_string": b"",
                "headers": headers, "state": {},
            }  # fmt: skip
            delivered = False

            async def receive(payload: bytes = payload) -> dict[str, Any]:
                nonlocal delivered
                if delivered:  # uvicorn's receive after the body: wait for a disconnect
                    await asyncio.Event().wait()
                delivered = True
                return {"type": "http.request", "body": payload, "more_body": False}

            status = 0

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif status >= 300 and len(failures) < 3:
                    failures.append(message.get("body", b""))

            if hot is None:
                await app(scope, receive, send)
                continue
            status, answer, _ = await hot.respond(*found, scope, payload)  # type: ignore[misc]
            if status >= 300 and len(failures) < 3:
                failures.append(answer)

    started, looped = time.process_time(), time.thread_time()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    spent, looped = time.process_time() - started, time.thread_time() - looped
    if failures:
        raise SystemExit(f"{path} answered with an error: {failures[0][:300]!r}")
    return spent / count * 1e6, looped / count * 1e6


async def get_json(app: App, path: str, key: str) -> Any:
    """The JSON answer of the app to a GET of ``path``."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
        "root_path": "", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": [(b"authorization", f"Bearer {key}".encode())],
        "state": {},
    }  # fmt: skip
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return orjson.loads(b"".join(chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=19_200, help="per run and app")
    parser.add_argument("--callers", type=int, default=64, help="concurrent callers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--routes", default="native", help="of: " + ", ".join(ROUTES))
    parser.add_argument("--profile", type=Path, help="write a cProfile of one run here")
    parser.add_argument("--profile-route", default="native", help="the route --profile profiles")
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="call the app as an ASGI server would, not the hot routes' answer as setpoint "
        "serve's protocol does",
    )
    args = parser.parse_args()
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    console = Console()
    with tempfile.TemporaryDirectory(prefix="setpoint-hotpath-") as tmp:
        root = Path(tmp)
        key, _ = prepare(root, console)
        history = lending.applications(BODIES, start=datetime(2026, 4, 1, tzinfo=UTC), seed=17)
        records = _records(history)
        figures = asyncio.run(run(root, key, records, routes, args))
    table = Table(
        title=f"In-process, no HTTP: CPU µs per request, {args.callers} callers, "
        f"{args.requests:,} requests a run, median of {args.runs}",
        box=box.SIMPLE_HEAD,
    )
    for column in ("app", "CPU µs", "loop µs", "runs", "x constant"):
        table.add_column(column, justify="left" if column == "app" else "right")
    base = statistics.median(total for total, _ in figures["constant"])
    for name, runs in figures.items():
        middle = statistics.median(total for total, _ in runs)
        loop = statistics.median(looped for _, looped in runs)
        spread = ", ".join(f"{total:.0f}" for total, _ in runs)
        table.add_row(name, f"{middle:.1f}", f"{loop:.1f}", spread, f"{middle / base:.2f}")
    console.print(table)


async def run(
    root: Path, key: str, records: list[dict[str, Any]], routes: list[str], args: argparse.Namespace
) -> dict[str, list[tuple[float, float]]]:
    from setpoint.serving.server import build_app

    app = build_app(str(root / "ws"), {}, "off", 300.0)
    constant = constant_app()
    async with Lifespan(app):
        metadata = await get_json(app, "/v2/models/credit", key)
        datatypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
        payloads = {
            route: [orjson.dumps(body(route, r, datatypes)) for r in records] for route in routes
        }
        payloads["constant"] = payloads.get("native") or [
            orjson.dumps(body("native", r, {})) for r in records
        ]
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in (*routes, "constant")}
        for route in routes:  # warm up
            await drive(app, PATHS[route], payloads[route], key, 2_000, args.callers, args.asgi)
        await drive(constant, PATHS["constant"], payloads["constant"], key, 2_000, args.callers)
        for run_ in range(args.runs):
            for name in figures:
                target = constant if name == "constant" else app
                profile = (
                    cProfile.Profile()
                    if args.profile and name == args.profile_route and run_ == 0
                    else None
                )
                if profile is not None:
                    profile.enable()
                figures[name].append(
                    await drive(
                        target,
                        PATHS[name],
                        payloads[name],
                        key,
                        args.requests,
                        args.callers,
                        args.asgi,
                    )
                )
                if profile is not None:
                    profile.disable()
                    profile.dump_stats(args.profile)
    return figures


if __name__ == "__main__":
    main()
