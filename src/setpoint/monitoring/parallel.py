"""A monitor run's windows measured in parallel: local processes, or Ray tasks.

The unit of work is a *share* of the run's windows: consecutive windows, with the
traffic of their span of time only (``Traffic.between``: the same rows, values,
types and order the whole run read). A worker measures each window of its share
(``Measurement.measure``: drift, the domain classifier, quality, latency,
performance) and sends back what it found; the run finishes the windows in order
(``Measurement.finish``: freshness, and the volume against the windows before) and
stores them, so the windows hold exactly the sequential run's numbers.

Why windows, not log files: a window's drift counts add up across files, but its
latency percentiles, domain classifier, realized and estimated performance need the
window's rows together. The run reads and parses the log once, as the sequential run
does (a window's values are then those of the sequential run by construction, even
where the log's JSON is typed from all of the run's rows at once); measuring is what
is split, and in a run of many windows it is most of the time (``bench/drift.py``).

Engines: ``local`` starts up to ``workers`` processes (from a fork server that has
imported monitoring once, so a worker starts without importing it again and inherits
no threads of the caller's); ``ray`` runs one task per share on the Ray cluster this
process is connected to (else, as every engine connects, ``setpoint._ray``: the one
``address`` or ``RAY_ADDRESS`` names, or Ray started here for the run and shut down
after it), and is imported only then. ``workers``
is the number of shares. The effect thresholds for the windows' sizes are learned
once by the run and handed to every worker (learning is the costliest step of a
share's first window, and drawn with a fixed seed, so the workers would only learn
the same ones again).

A script that runs monitors with ``workers`` > 1 needs Python's guard of any script
that starts processes by the spawn or fork-server methods: its work under
``if __name__ == "__main__":`` (each worker imports the script's main module).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime
from multiprocessing import forkserver
from typing import TYPE_CHECKING, Any, TypeVar

from setpoint import _ray as _rays
from setpoint.errors import SetpointError, UsageError

if TYPE_CHECKING:
    from setpoint.monitoring.monitor import Monitor
    from setpoint.monitoring.traffic import Traffic
    from setpoint.monitoring.window import Measurement, ReferenceParts

ENGINES = ("local", "ray")

Span = tuple[datetime, datetime]
Measured = tuple[int, dict[str, Any]]  # a window's rows and results, before ``finish``
T = TypeVar("T")


@dataclass(frozen=True)
class Share:
    """Consecutive windows of one run and the traffic of their span: one worker's."""

    monitor: Monitor
    parts: ReferenceParts  # loaded (the sample too): it travels to the worker
    traffic: Traffic
    spans: list[Span]
    learned: dict[int, dict[str, float]]  # the thresholds of its windows' sizes
    threads: int | None = None  # native threads (OpenMP, BLAS) it may use; None: any


def check(engine: str, workers: int | None, address: str | None = None) -> None:
    """Refuse an engine or a number of workers that cannot be, before any work."""
    if engine not in ENGINES:
        raise UsageError(f"engine {engine!r}: use local or ray")
    if address is not None and engine != "ray":
        raise UsageError("address names a Ray cluster: use the ray engine, or leave it out")
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    if engine == "ray":
        _ray()


def start(engine: str, address: str | None = None) -> Callable[[], None]:
    """Get ``engine`` ready while the run reads the log: the fork server starts and
    imports monitoring in the background (the import costs seconds; the run's first
    worker waits only for what is left of it), or Ray is connected (to ``address``).
    What to call when the run is over: it stops a Ray this call started."""
    if engine == "ray":
        ray, started = _connect(address)
        return ray.shutdown if started else _nothing
    multiprocessing.get_context(_START_METHOD).set_forkserver_preload(_PRELOAD)
    forkserver.ensure_running()
    return _nothing


def _nothing() -> None:
    return None


def shares(spans: Sequence[T], workers: int) -> list[list[T]]:
    """``spans`` cut into at most ``workers`` runs of consecutive ones, as even as can
    be (the first ones one longer), none empty."""
    count = min(workers, len(spans))
    if count == 0:
        return []
    size, extra = divmod(len(spans), count)
    out, begin = [], 0
    for i in range(count):
        end = begin + size + (i < extra)
        out.append(list(spans[begin:end]))
        begin = end
    return out


def measure_share(share: Share) -> list[Measured]:
    """What a worker does: measure each window of its share, in order."""
    from threadpoolctl import threadpool_limits

    from setpoint.monitoring.window import Measurement

    with threadpool_limits(share.threads):
        context = Measurement(share.parts, share.monitor, share.traffic, [])
        context.engine.reuse(share.learned)
        return [context.measure(start, end) for start, end in share.spans]


def measure(
    context: Measurement, spans: list[Span], *, engine: str, workers: int | None
) -> Generator[Measured, None, None]:
    """The windows of ``spans`` measured in shares on ``engine``, yielded in order as
    their shares come back."""
    count = workers if workers is not None else _default_workers(engine)
    # The thresholds for the windows' sizes are learned once, here, rather than by
    # every worker again.
    for start, end in spans:
        context.engine.drift_settings(context.judged_rows(start, end))
    learned = context.engine.learned
    # The sample read once, and the model's explainer made once (with the reference's
    # attribution), sent along.
    parts = replace(
        context.parts,
        sample=context.engine.sample,
        attributor=context.engine.attributor,
        predictor=None,
    )
    cuts = shares(spans, count)
    # Local workers share this machine's cores: each gets its part of them for the
    # native thread pools of the domain classifier and numpy, not all of them (four
    # OpenMP pools spinning on two cores run slower than one). Ray gives each task
    # the threads of the CPUs it reserved.
    threads = None if engine == "ray" else max(1, _cores() // max(1, len(cuts)))
    jobs = [
        Share(
            context.monitor,
            parts,
            context.traffic.between(cut[0][0], cut[-1][1]),
            cut,
            learned,
            threads,
        )
        for cut in cuts
    ]
    if not jobs:
        return
    results = _on_ray(jobs) if engine == "ray" else _on_processes(jobs)
    for measured in results:
        yield from measured


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _default_workers(engine: str) -> int:
    if engine == "ray":  # connected by ``start``
        return max(1, int(_ray().cluster_resources().get("CPU", 1)))
    return 1


# -- local processes ------------------------------------------------------------------


# Not fork: the caller may hold threads (a webhook sender, OpenMP's pool after a
# domain classifier) that a forked child would inherit half-way.
_START_METHOD = "forkserver"
_PRELOAD = [__name__, "setpoint.monitoring.window"]


def _on_processes(jobs: list[Share]) -> Iterator[list[Measured]]:
    context = multiprocessing.get_context(_START_METHOD)
    context.set_forkserver_preload(_PRELOAD)
    pool = ProcessPoolExecutor(max_workers=len(jobs), mp_context=context)
    try:
        yield from pool.map(measure_share, jobs)
    except BrokenProcessPool as exc:
        raise SetpointError(
            "a worker process of the monitor run died before it finished (out of memory?); "
            "run again with fewer --workers"
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- Ray --------------------------------------------------------------------------------


def _ray() -> Any:
    return _rays.import_ray(instead="run on this machine with --engine local")


def _connect(address: str | None) -> tuple[Any, bool]:
    """Ray, connected as every engine connects (``setpoint._ray``), and whether this
    call started it."""
    ray = _ray()
    return ray, _rays.connect(ray, address)


def _on_ray(jobs: list[Share]) -> Iterator[list[Measured]]:
    ray = _ray()  # connected by ``start``
    task = ray.remote(num_cpus=1, max_retries=2)(measure_share)
    pending = [task.remote(job) for job in jobs]
    got = 0
    try:
        for ref in pending:
            yield ray.get(ref)
            got += 1
    finally:
        for ref in pending[got:]:  # the run failed or stopped: the rest is not wanted
            ray.cancel(ref)
