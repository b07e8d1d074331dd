"""Explain against predict on the same server: single-row latency and throughput.

    python bench/explain.py [--duration 2] [--rounds 5] [--connections 1,16]

One ``setpoint serve`` process pinned to core 0 serves two endpoints, a LightGBM
classifier (100 trees, explained by its own TreeSHAP) and a scikit-learn pipeline (a
logistic regression, explained by shap's permutation explainer against the version's
100-row background sample); wrk (Debian package ``wrk``) on core 1 posts one row at a
time to ``/predict`` and ``/explain`` (default ``top``) of each, the four in turn for
short slices, round after round, so a slow spell of this shared machine falls on all
of them alike (see bench/serving.py, whose helpers start the server and run wrk). The
table shows each figure's median over the rounds; the ratios explain / predict are the
medians of the ratios within each round.

Target for trees: explain p50 <= 2x predict p50 (at one connection).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from serving import SPEC, free_port, medians, post_script, running, wrk
from setpoint.demo import lending
from setpoint.workspace import Workspace

LINEAR = {
    **SPEC,
    "model": "credit-linear",
    "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
}
ENDPOINTS = {"gbm": SPEC["model"], "linear": LINEAR["model"]}
ROUTES = ("predict", "explain")


def prepare(root: Path, console: Console) -> tuple[str, Path]:
    """A workspace at ``root / "ws"`` serving ``gbm`` and ``linear`` (an API key
    required), and a wrk script posting one of their rows: (the key, the script)."""
    with console.status("training and deploying the models"):
        ws = Workspace.init(root / "ws", actor="bench")
        history = lending.applications(20_000, start=datetime(2026, 1, 1, tzinfo=UTC), seed=3)
        ws.add_dataset("loans", history)
        for endpoint, spec in zip(ENDPOINTS, (SPEC, LINEAR), strict=True):
            version = ws.train(spec)
            ws.promote(version.name, version.version)
            ws.deploy(endpoint, model=version.name)
        _, key = ws.keys.create("predict", note="bench")
        ws.close()
    return key, post_script(root, history, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per slice")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of one slice per route")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; install the Debian package: apt-get install wrk")
    levels = [int(c) for c in args.connections.split(",")]
    console = Console()
    targets = [(e, r) for e in ENDPOINTS for r in ROUTES]
    samples: dict[tuple[str, str], dict[int, list[tuple[float, float, float, int]]]] = {
        t: {c: [] for c in levels} for t in targets
    }
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-") as tmp:
        root = Path(tmp)
        key, script = prepare(root, console)
        body = (root / "body.json").read_bytes()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from setpoint.cli import main; main()"]
        command += ["-w", str(root / "ws"), "serve", "--port", str(port)]
        auth = {"Authorization": f"Bearer {key}"}
        with contextlib.ExitStack() as stack:
            with console.status("starting the server"):
                stack.enter_context(running(command, f"{base}/readyz", dict(os.environ), auth))
            urls = {(e, r): f"{base}/v1/endpoints/{e}/{r}" for e, r in targets}
            for url in urls.values():
                wrk(url, script, 4, 2)  # warm up (shap's first import, the caches)
            for c in levels:
                for round_ in range(args.rounds):
                    for target, url in urls.items():
                        with console.status(f"{c} connections, round {round_ + 1}: {target}"):
                            samples[target][c].append(wrk(url, script, c, args.duration))
                            # Requests wrk gave up on are still being answered (an
                            # explanation without TreeSHAP takes a fraction of a second):
                            # one more, answered after them, so the next slice starts idle.
                            httpx.post(url, content=body, headers=auth, timeout=600)

    table = Table(
        title=f"Single-row requests, setpoint serve on one core, wrk on the other (medians "
        f"of {args.rounds} rounds of {args.duration}-s slices; ratios within rounds)"
    )
    for column in ("endpoint", "route", "conn", "req/s", "p50 ms", "p99 ms", "non-2xx"):
        table.add_column(column, justify="left" if column in ("endpoint", "route") else "right")
    table.add_column("p50 vs predict", justify="right")
    table.add_column("req/s vs predict", justify="right")
    ratios: dict[tuple[str, int], tuple[float, float]] = {}
    for endpoint in ENDPOINTS:
        for c in levels:
            explained, predicted = (
                samples[(endpoint, "explain")][c],
                samples[(endpoint, "predict")][c],
            )
            pairs = list(zip(explained, predicted, strict=True))
            ratios[(endpoint, c)] = (  # a slice with no answer (0) has no ratio
                statistics.median([e[1] / p[1] for e, p in pairs if p[1]] or [float("nan")]),
                statistics.median([e[0] / p[0] for e, p in pairs if p[0]] or [float("nan")]),
            )
            for route in ROUTES:
                rate, p50, p99, errors = medians(samples[(endpoint, route)][c])
                p50_ratio, rate_ratio = ratios[(endpoint, c)] if route == "explain" else (1, 1)
                table.add_row(
                    endpoint,
                    route,
                    str(c),
                    f"{rate:,.0f}",
                    f"{p50:.2f}",
                    f"{p99:.2f}",
                    str(errors),
                    f"{p50_ratio:.2f}x",
                    f"{rate_ratio:.0%}",
                )
    console.print(table)
    p50_ratio = ratios[("gbm", min(levels))][0]
    console.print(
        f"target for trees at {min(levels)} connection(s) (explain p50 <= 2x predict p50): "
        f"{'met' if p50_ratio <= 2 else 'NOT met'} ({p50_ratio:.2f}x)"
    )


if __name__ == "__main__":
    main()
