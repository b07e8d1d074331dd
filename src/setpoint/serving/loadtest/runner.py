"""``setpoint loadtest`` as a function: aim, step up, plan, record, plot."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from setpoint.cost import Prices
from setpoint.errors import ServerUnavailableError, UsageError
from setpoint.serving.loadtest import generator, target
from setpoint.serving.loadtest.plan import CapacityPlan, measure_batch
from setpoint.serving.loadtest.runs import LoadTest
from setpoint.serving.loadtest.schedule import StepResult, rates
from setpoint.store import audit

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

# The generator is behind when it wakes this late (p99) in a step: its own core is
# full, and the step says more about the client than the server.
_CLIENT_LAG_MS = 5.0


@dataclass(frozen=True)
class Options:
    url: str = target.DEFAULT_URL
    allow_remote: bool = False
    key: str | None = None
    start_rate: float = 50.0
    step: float = 50.0
    max_rate: float = 2000.0
    step_seconds: float = 10.0
    warmup: float = 2.0
    p99_ms: float = 50.0
    connections: int = 64
    timeout: float = 5.0
    workers: int | None = None  # None: as the server's /metrics says, else 1
    target_rps: float | None = None
    batch: bool = True  # measure batch scoring for the comparison
    rows: int = target.ROWS

    def check(self) -> None:
        if self.start_rate <= 0 or self.max_rate < self.start_rate:
            raise UsageError("give 0 < --start-rate <= --max-rate")
        if self.step < 0 or self.step_seconds <= 0 or self.p99_ms <= 0:
            raise UsageError("--step must be 0 or more, --step-seconds and --p99-ms above 0")
        if self.connections < 1 or (self.workers or 1) < 1 or self.timeout <= 0:
            raise UsageError("--connections and --workers must be 1 or more, --timeout above 0")

    def recorded(self) -> dict[str, Any]:
        """The settings kept with the run (never the key)."""
        out = asdict(self)
        del out["key"]
        return out


@dataclass(frozen=True)
class Report:
    test: LoadTest
    plan: CapacityPlan
    client_behind: list[float]  # rates at which the generator itself fell behind

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.test.to_dict(),
            "plan": self.plan.to_dict(),
            "client_behind": self.client_behind,
        }


def loadtest(
    ws: Workspace,
    endpoint: str,
    options: Options,
    *,
    progress: generator.Progress | None = None,
    on_batch: Callable[[], None] | None = None,
) -> Report:
    """Load ``endpoint`` on the server at ``options.url`` step by step, measure batch
    scoring beside it, record the run and return it with its capacity plan."""
    options.check()
    where = target.address(options.url, allow_remote=options.allow_remote)
    info = target.served_version(where, endpoint, options.key, timeout=options.timeout)
    model, version = str(info["model"]), int(info["version"])
    workers = options.workers or target.served_workers(where, timeout=options.timeout) or 1
    ref = f"{model}@{version}"
    records = target.reference_records(ws, ref, limit=options.rows)
    path = f"/v1/endpoints/{quote(endpoint, safe='')}/predict"
    requests = generator.http_requests(where.host, where.port, path, records, options.key)
    steps = rates(options.start_rate, options.step, options.max_rate)
    settings = generator.Settings(
        connections=options.connections,
        seconds=options.step_seconds,
        warmup=options.warmup,
        objective_ms=options.p99_ms,
        timeout=options.timeout,
    )
    load = generator.LoadGenerator(where.host, where.port, requests, settings, progress=progress)
    started = audit.now()
    try:
        results, sustainable = generator.run(load, steps)
    except OSError as exc:
        raise ServerUnavailableError(
            f"cannot connect to {where.url} ({exc.strerror or exc}); is `setpoint serve` "
            "still running there?"
        ) from None
    finished = audit.now()
    if on_batch is not None:
        on_batch()
    batch = measure_batch(ws, ref, records) if options.batch else None
    plan = CapacityPlan(
        sustainable_rps=sustainable,
        workers=workers,
        target_rps=options.target_rps,
        cpu_hour_price=Prices.of(ws.settings).cpu_hour,  # the one price (cost.py)
        batch_rows_per_cpu_second=batch,
    )
    test = ws.load_tests.record(
        endpoint=endpoint,
        model=model,
        version=version,
        url=where.url,
        settings={**options.recorded(), "workers": workers},
        steps=results,
        sustainable_rps=sustainable,
        plan=plan.to_dict(),
        started_at=started,
        finished_at=finished,
    )
    behind = [r.rate for r in results if r.lag_p99_ms > _CLIENT_LAG_MS]
    return Report(test, plan, behind)


def api_key(given: str | None) -> str | None:
    return given or os.environ.get("SETPOINT_API_KEY") or None


def latency_chart(test: LoadTest) -> str:
    """p50 and p99 against the offered rate, with the objective: an SVG document."""
    from setpoint.ui.charts import Series, line_chart

    steps: list[StepResult] = test.steps
    p50 = Series("p50", [(s.rate, s.p50_ms) for s in steps])
    p99 = Series("p99", [(s.rate, s.p99_ms) for s in steps], dashed=True)
    objective = test.settings.get("p99_ms")
    svg = line_chart(
        [p50, p99],
        title=f"Latency of {test.endpoint} ({test.ref}) against the offered rate",
        unit="ms",
        y_min=0,
        threshold=objective,
        threshold_label="p99 objective",
        x_unit="req/s offered",
        width=720,
        height=320,
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + str(svg) + "\n"


def write_chart(test: LoadTest, path: Path) -> None:
    try:
        path.write_text(latency_chart(test), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); check its folder") from None
