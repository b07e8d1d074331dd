"""The job kinds the loop's worker runs, by name (``setpoint worker`` runs these)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.worker import JobContext


def retrain(context: JobContext) -> Any:
    """Retrain a rollout's candidate, gate it and put it on live traffic."""
    from setpoint.loop.controller import Loop

    return Loop(context.workspace).run_retraining(context)


HANDLERS: dict[str, Callable[[JobContext], Any]] = {"retrain": retrain}
