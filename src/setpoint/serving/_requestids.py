"""Request ids a client chose, kept so that a repeat is refused (409).

Feedback names the prediction it labels by request id, so an id must point at one
prediction of an endpoint. Ids the server makes are unique by construction (a random
prefix per process and a counter, ``lane.new_request_id``); an id a client sends is
checked here. The guarantee is bounded, and said so in docs/architecture.md: an
endpoint refuses an id it answered among its last ``CAPACITY`` client-chosen ids in
this process, or among the newest ``CAPACITY`` ids its prediction log holds from the
``SEED_WINDOW`` before the process started (read whole at start-up: a log with a
large backlog of uncompacted segments takes longer to read). Each worker process
keeps its own ids, so two workers answering the same id at the same moment are not
caught. No store is queried per request: the check is a dict lookup, made only for
requests that carry an id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from setpoint.errors import ConflictError
from setpoint.serving._logremote import LogLocation

logger = logging.getLogger("setpoint.serving")

CAPACITY = 100_000  # ids remembered per endpoint
SEED_WINDOW = dt.timedelta(hours=1)  # of the prediction log read at start-up


class RecentIds:
    """The client-chosen request ids one endpoint answered lately (oldest forgotten)."""

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        # oldest first; an OrderedDict forgets its oldest and releases any id in O(1)
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def claim(self, request_id: str, endpoint: str) -> None:
        """Take ``request_id`` for a request now under way; ConflictError if it is taken
        (answered before, or under way)."""
        if request_id in self._ids:
            raise ConflictError(
                f"request_id {request_id!r} was already used on endpoint {endpoint!r}; "
                "send a new id for each prediction (feedback joins on it), or none and "
                "the server makes one",
                details={"request_id": request_id, "endpoint": endpoint},
            )
        self.add(request_id)

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        self._ids.move_to_end(request_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def release(self, request_id: str) -> None:
        """Free an id whose request was refused (nothing was logged under it): it takes
        no room among the ids remembered."""
        self._ids.pop(request_id, None)


def seed(root: Path | LogLocation, since: dt.datetime) -> dict[str, list[str]]:
    """Endpoint -> the request ids its prediction log holds from ``since`` on, oldest
    first (at most ``CAPACITY`` each); empty, with a warning, when the log cannot be
    read: start-up does not fail for it."""
    from setpoint.serving.log import read_log

    try:
        table = read_log(root, kind="predictions", since=since)
    except Exception:
        logger.warning("could not read the recent request ids from the prediction log; "
                       "repeated ids are caught from now on only", exc_info=True)  # fmt: skip
        return {}
    found: dict[str, list[str]] = {}
    endpoints: Iterable[str] = table.column("endpoint").to_pylist()
    for endpoint, request_id in zip(endpoints, table.column("request_id").to_pylist(), strict=True):
        found.setdefault(endpoint, []).append(request_id)
    return {e: list(dict.fromkeys(ids))[-CAPACITY:] for e, ids in found.items()}
