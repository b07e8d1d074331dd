"""The loop inside another process: ``setpoint serve`` runs the job worker (or the whole
loop) in a thread beside the server.

``worker`` takes due jobs (a retraining a policy asked for) as ``setpoint worker``
would; ``loop`` also ticks the monitors, policies and rollouts every ``every`` seconds
as ``setpoint loop`` would. Both stop when the server stops: the job under way is
abandoned to its lease, and a worker elsewhere (or this server, started again) takes
it over. Heavy retraining competes with serving for the process's CPU; a deployment
that cares runs ``setpoint serve --background off`` and ``setpoint worker`` apart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from setpoint.errors import UsageError

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

logger = logging.getLogger(__name__)

Mode = Literal["off", "worker", "loop"]
MODES = ("off", "worker", "loop")


def background(
    workspace: Workspace, mode: str, *, every: float = 300.0, poll_seconds: float = 2.0
) -> Callable[[threading.Event], None] | None:
    """What a server thread runs until its stop event is set (None for ``off``)."""
    if mode not in MODES:
        raise UsageError(f"--background {mode!r}: use off, worker or loop")
    if every <= 0:
        raise UsageError("--loop-every must be a positive number of seconds")
    if mode == "off":
        return None

    def work(stop: threading.Event) -> None:
        from setpoint.loop.handlers import HANDLERS, SCHEDULES
        from setpoint.worker import Worker

        if mode == "worker":
            Worker(workspace, HANDLERS, schedules=SCHEDULES).run(stop, poll_seconds=poll_seconds)
            return
        from setpoint.loop.controller import Loop

        loop = Loop(workspace)
        while not stop.is_set():
            try:
                loop.tick()
            except Exception:  # the store may be away for a moment: try again next time
                logger.exception("a tick of the loop failed; trying again in %.0f s", every)
            stop.wait(every)

    return work
