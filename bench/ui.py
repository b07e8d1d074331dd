"""The dashboard's server time per page, with a year of hourly windows on five endpoints.

    python bench/ui.py [--workspace PATH] [--rounds 15] [--database-url URL]

Builds the bench workspace (``bench/ui_workspace.py``: five endpoints, 8,760 hourly
monitor windows each, alerts and rollouts over the year, a candidate waiting for
approval) in a temporary folder, or uses ``--workspace`` when it exists already, then
asks every page in turn, round after round, so a slow spell of this shared machine
falls on all pages alike. Server time is measured inside the app, from the request's
arrival to the last byte of the answer (an ASGI wrapper around ``setpoint ui``'s app),
so the client's own cost is not in it. The table gives each page's median and slowest
round, its size, and its ratio to the sign-in page (a template with no data, measured
in the same rounds: the baseline).

Target: every page under 300 ms (median) with that workspace.

A second table compares drawing one chart of 168 points with matplotlib (which the
offline report uses) and with ``setpoint.ui.charts``: the reason the dashboard draws
its own SVG.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from starlette.testclient import TestClient

from setpoint.ui import charts
from setpoint.ui.app import create_ui_app
from setpoint.workspace import Workspace
from ui_workspace import NAMES, build

TARGET_MS = 300.0
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class Timed:
    """An ASGI app around ``app`` that notes each request's time inside the app."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last = time.perf_counter() - began

        await self.app(scope, receive, sending)


def pages(ws: Workspace) -> list[tuple[str, str]]:
    """(what, path) for every kind of page, the heaviest variant of each."""
    first = NAMES[0]
    awaiting = ws.audit(action="rollout.awaiting_approval", limit=1)
    rollout = awaiting[0].entity if awaiting else "1"
    model = "credit-risk"
    versions = [v.version for v in ws.registry.versions(model)]
    dataset = ws.datasets.list("loans")[-1]
    return [
        ("sign-in (baseline)", "/ui/login"),
        ("overview", "/ui/"),
        ("endpoint, default (week)", f"/ui/endpoints/{first}"),
        ("endpoint, 30 days", f"/ui/endpoints/{first}?range=30d"),
        ("endpoint, 90 days", f"/ui/endpoints/{first}?range=90d"),
        ("endpoint, year", f"/ui/endpoints/{first}?range=365d"),
        ("models", "/ui/models"),
        ("model", f"/ui/models/{model}"),
        ("compare two versions", f"/ui/models/{model}/compare?a={versions[0]}&b={versions[-1]}"),
        ("datasets", "/ui/datasets"),
        ("dataset version", f"/ui/datasets/{dataset.name}/{dataset.version}"),
        ("rollouts", "/ui/rollouts"),
        ("rollout awaiting approval", f"/ui/rollouts/{rollout}"),
        ("alerts", "/ui/alerts"),
        ("audit", "/ui/audit"),
        ("live refresh (overview)", "/ui/?fragment=main"),
    ]


def measure(ws: Workspace, rounds: int) -> list[dict[str, Any]]:
    listed = pages(ws)
    timed = Timed(create_ui_app(ws))
    times: dict[str, list[float]] = {path: [] for _, path in listed}
    sizes: dict[str, int] = {}
    with TestClient(timed) as client:  # type: ignore[arg-type]
        for what, path in listed:  # once each before timing: imports, template compiles
            answer = client.get(path)
            if answer.status_code != 200:
                raise SystemExit(
                    f"{what} ({path}) answered {answer.status_code}: {answer.text[:300]}"
                )
        for _ in range(rounds):
            for _, path in listed:
                answer = client.get(path)
                times[path].append(timed.last * 1000)
                sizes[path] = len(answer.content)
    base = statistics.median(times["/ui/login"])
    out = []
    for what, path in listed:
        median = statistics.median(times[path])
        out.append(
            {
                "page": what,
                "path": path,
                "median_ms": median,
                "max_ms": max(times[path]),
                "ratio": median / base,
                "kb": sizes[path] / 1024,
                "ok": median < TARGET_MS,
            }
        )
    return out


def chart_cost(repeat: int = 20) -> list[tuple[str, float]]:
    """Milliseconds to draw one line chart of 168 hourly points, two ways."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    start = datetime(2026, 1, 1, tzinfo=UTC)
    xs = [start + timedelta(hours=i) for i in range(168)]
    ys = [100 + 30 * ((i % 24) / 24) for i in range(168)]

    def ours() -> None:
        charts.line_chart([charts.Series("rows", list(zip(xs, ys, strict=True)))], title="rows")

    def matplotlibs() -> None:
        figure = Figure(figsize=(7.2, 2.0))
        axes = figure.add_subplot()
        axes.plot(xs, ys)
        axes.set_title("rows")
        figure.savefig(io.StringIO(), format="svg")

    out = []
    for what, draw in (
        ("setpoint.ui.charts.line_chart", ours),
        ("matplotlib Figure -> SVG", matplotlibs),
    ):
        draw()
        began = time.perf_counter()
        for _ in range(repeat):
            draw()
        out.append((what, (time.perf_counter() - began) / repeat * 1000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="reuse (or build here) the workspace")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="setpoint-ui-bench-")) / "ws"
    if not (folder / "setpoint.toml").exists():
        print(f"building the workspace in {folder} (about a minute)…", flush=True)
        made = build(folder, database_url=args.database_url)
        print(
            f"  {made.windows:,} windows on {len(made.endpoints)} endpoints in {made.seconds:.0f} s"
        )
    with Workspace.open(folder) as ws:
        rows = measure(ws, args.rounds)
    print(f"\nServer time per page, median of {args.rounds} rounds (target < {TARGET_MS:.0f} ms)\n")
    print(f"{'page':<28} {'median ms':>10} {'max ms':>8} {'x sign-in':>10} {'KB':>7}  ")
    for r in rows:
        verdict = "ok" if r["ok"] else "OVER"
        print(
            f"{r['page']:<28} {r['median_ms']:>10.1f} {r['max_ms']:>8.1f} {r['ratio']:>10.1f} "
            f"{r['kb']:>7.1f}  {verdict}"
        )
    print("\nOne line chart of 168 points\n")
    for what, ms in chart_cost():
        print(f"{what:<32} {ms:>8.2f} ms")
    if not all(r["ok"] for r in rows):
        raise SystemExit("some page is over the target")


if __name__ == "__main__":
    main()
