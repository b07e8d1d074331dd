"""A circuit breaker per model lane.

Closed: batches go to the model and failures are counted; ``failures`` failed (or
too slow) batches in a row open the circuit. Open: requests do not reach the model
for ``cooldown_s``. Half-open: one trial batch is let through; its success closes
the circuit, its failure opens it again for another cool-down. All calls happen on
the event loop thread.
"""

from __future__ import annotations

import math
import time
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(self, *, failures: int = 5, cooldown_s: float = 5.0) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None  # when the half-open trial was let through
        self.opened = 0  # how many times the circuit opened

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return State.CLOSED
        if time.monotonic() - self._opened_at < self.cooldown_s:
            return State.OPEN
        return State.HALF_OPEN

    def allow(self) -> bool:
        """May a request go to the model now? In half-open, only one trial at a time."""
        if self._opened_at is None:
            return True  # closed: the usual case, decided without the clock
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN:
            now = time.monotonic()
            # One trial at a time; a trial that never reported back (its request was
            # shed, or failed on its own bad input) is replaced after a cool-down.
            if self._trial_at is None or now - self._trial_at >= self.cooldown_s:
                self._trial_at = now
                return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until the circuit lets a trial through."""
        if self._opened_at is None:
            return 1
        left = self.cooldown_s - (time.monotonic() - self._opened_at)
        return max(1, math.ceil(left))

    def success(self) -> None:
        if self.state is State.OPEN:
            return  # a batch from before the circuit opened: the cool-down still holds
        self._failures = 0
        self._opened_at = None
        self._trial_at = None

    def failure(self) -> None:
        self._trial_at = None
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.threshold:
            if self._opened_at is None or self.state is not State.OPEN:
                self.opened += 1
            self._opened_at = time.monotonic()
