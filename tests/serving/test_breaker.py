"""The circuit breaker: opens after consecutive failures, stays open for the cool-down,
lets one trial through half-open, and closes or reopens on the trial's outcome."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from setpoint.serving import breaker as breaker_module
from setpoint.serving.breaker import CircuitBreaker, State


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def use_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    # Only the breaker module's view of ``time`` moves, not the process's clock.
    monkeypatch.setattr(breaker_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def state_of(breaker: CircuitBreaker) -> State:
    """The state now (a call, so a type checker does not narrow it across clock moves)."""
    return breaker.state


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return use_clock(monkeypatch)


def test_it_opens_after_consecutive_failures_only(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=5)
    assert state_of(breaker) is State.CLOSED
    assert breaker.allow()
    breaker.failure()
    breaker.failure()
    breaker.success()  # resets the count
    breaker.failure()
    breaker.failure()
    assert state_of(breaker) is State.CLOSED
    assert breaker.allow()
    assert breaker.opened == 0
    breaker.failure()
    assert state_of(breaker) is State.OPEN
    assert not breaker.allow()
    assert breaker.opened == 1
    breaker.failure()  # a batch in flight fails while open: not a new opening
    assert breaker.opened == 1


def test_it_stays_open_for_the_cooldown_then_lets_one_trial_through(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=5)
    breaker.failure()
    clock.now += 4.999
    assert state_of(breaker) is State.OPEN
    assert not breaker.allow()
    clock.now += 0.001
    assert state_of(breaker) is State.HALF_OPEN
    assert breaker.allow()  # the trial
    assert state_of(breaker) is State.HALF_OPEN
    assert not breaker.allow()  # one at a time
    clock.now += 4.999
    assert not breaker.allow()  # while the trial may still report back
    clock.now += 0.001
    assert breaker.allow()  # a trial that never reported is replaced after a cool-down


def test_a_late_success_does_not_cut_the_cooldown_short(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=5)
    breaker.failure()
    breaker.success()  # a batch that started before the circuit opened
    assert state_of(breaker) is State.OPEN
    assert not breaker.allow()


def test_a_successful_trial_closes_the_circuit(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=5)
    breaker.failure()
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.success()
    assert state_of(breaker) is State.CLOSED
    assert all(breaker.allow() for _ in range(3))
    breaker.failure()  # the count starts again from zero
    assert state_of(breaker) is State.CLOSED
    breaker.failure()
    assert state_of(breaker) is State.OPEN
    assert breaker.opened == 2


def test_a_failed_trial_reopens_for_another_cooldown(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=5)
    breaker.failure()
    breaker.failure()
    clock.now += 7
    assert breaker.allow()
    breaker.failure()
    assert state_of(breaker) is State.OPEN
    assert breaker.opened == 2
    assert not breaker.allow()
    assert breaker.retry_after() == 5  # counted from the trial's failure
    clock.now += 5
    assert state_of(breaker) is State.HALF_OPEN
    assert breaker.allow()  # a new trial


def test_retry_after_counts_down_in_whole_seconds(clock: Clock) -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=3.5)
    assert breaker.retry_after() == 1  # closed
    breaker.failure()
    seen = []
    for _ in range(10):
        seen.append(breaker.retry_after())
        clock.now += 0.5
    assert seen == [4, 3, 3, 2, 2, 1, 1, 1, 1, 1]  # ceil of what is left, at least 1
    assert state_of(breaker) is State.HALF_OPEN


# A sequence of operations, with the clock moved between them: invariants at every step.
OPERATIONS = st.lists(
    st.one_of(
        st.just(("success", 0.0)),
        st.just(("failure", 0.0)),
        st.just(("allow", 0.0)),
        st.tuples(
            st.just("advance"),
            st.sampled_from([0.25, 1.0, 4.0]) | st.floats(min_value=0.0, max_value=4.0),
        ),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(
    threshold=st.integers(min_value=1, max_value=4),
    cooldown=st.sampled_from([0.5, 1.0, 2.5, 3.0]),
    operations=OPERATIONS,
)
@example(  # a failed trial, then the next cool-down: a new trial must be allowed
    threshold=1,
    cooldown=1.0,
    operations=[("failure", 0), ("advance", 4), ("allow", 0)] * 2,
)
def test_invariants_hold_for_any_sequence_of_operations(
    threshold: int, cooldown: float, operations: list[tuple[str, float]]
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clock = use_clock(monkeypatch)
        breaker = CircuitBreaker(failures=threshold, cooldown_s=cooldown)
        trial_at: float | None = None  # when a half-open allow() said yes, outcome not in
        streak = 0  # failures since the last success
        openings = 0
        for operation, seconds in operations:
            before = breaker.state
            if operation == "advance":
                clock.now += seconds
            elif operation == "allow":
                allowed = breaker.allow()
                if before is State.OPEN:
                    assert not allowed
                elif before is State.CLOSED:
                    assert allowed
                else:  # one trial at a time; a lost one is replaced after a cool-down
                    free = trial_at is None or clock.now - trial_at >= cooldown
                    assert allowed is free
                    if allowed:
                        trial_at = clock.now
            elif operation == "success":
                breaker.success()
                if before is State.OPEN:  # late news from before the circuit opened
                    assert state_of(breaker) is State.OPEN
                else:
                    trial_at, streak = None, 0
                    assert state_of(breaker) is State.CLOSED
            else:
                breaker.failure()
                trial_at = None
                streak += 1
                if before is not State.OPEN and breaker.state is State.OPEN:
                    openings += 1
                if before is not State.CLOSED or streak >= threshold:
                    assert state_of(breaker) is State.OPEN
                    assert breaker.retry_after() == math.ceil(cooldown)
                else:
                    assert state_of(breaker) is State.CLOSED

            state = breaker.state
            assert breaker.opened == openings
            assert 1 <= breaker.retry_after() <= math.ceil(cooldown)
            # allow() takes the trial, so check it without changing the breaker's state:
            if state is State.OPEN:
                assert not breaker.allow()
            elif state is State.CLOSED:
                assert breaker.allow()
            elif trial_at is not None and clock.now - trial_at < cooldown:
                assert not breaker.allow()
