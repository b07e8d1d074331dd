"""The ``setpoint`` command line: a thin layer over :class:`setpoint.Workspace`."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.cli.main import app

__all__ = ["app", "main", "started"]

# Whether ``main`` turned the cyclic garbage collector off for the command's start.
_deferred = False


def main() -> None:
    """The ``setpoint`` command (the console script).

    Its start imports setpoint, then what the command needs (for ``predict``,
    scikit-learn, SciPy and the model's library): hundreds of thousands of objects
    that live as long as the process, which the cyclic collector would walk again
    at every full pass while they arrive. So it is off until the command starts its
    work (:func:`started`, when the workspace opens): ``setpoint predict`` of 1,000
    rows took 1.29 CPU-s with it on, 1.17 with it off until then (medians of 5
    alternated runs with ``bench/batch.py``'s model, docs/benchmarks.md).
    """
    global _deferred
    gc.disable()
    _deferred = True
    try:
        from setpoint.cli.main import main as run

        run()
    finally:
        started()


def started() -> None:
    """The command has loaded what it works with: what is on the heap now is frozen
    out of the collector's passes (as ``setpoint serve`` does after its start), and
    the collector runs as usual from here. A no-op unless ``main`` turned it off."""
    global _deferred
    if _deferred:
        _deferred = False
        gc.freeze()
        gc.enable()


def __getattr__(name: str) -> Any:
    # ``app`` is imported on demand: ``main`` imports it with the collector off.
    if name == "app":
        from setpoint.cli.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
