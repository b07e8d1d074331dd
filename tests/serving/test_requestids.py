"""The ids clients chose: a repeat is refused, the oldest are forgotten past capacity."""

from __future__ import annotations

import pytest

from setpoint.errors import ConflictError
from setpoint.serving._requestids import RecentIds


def test_a_claimed_id_is_refused_until_released() -> None:
    ids = RecentIds(capacity=10)
    ids.claim("a", "credit")
    with pytest.raises(ConflictError, match="'a' was already used on endpoint 'credit'"):
        ids.claim("a", "credit")
    ids.release("a")
    ids.claim("a", "credit")


def test_the_oldest_ids_are_forgotten_past_capacity() -> None:
    ids = RecentIds(capacity=3)
    for request_id in "abcd":
        ids.claim(request_id, "credit")
    assert len(ids) == 3
    assert "a" not in ids
    assert all(i in ids for i in "bcd")


def test_released_ids_take_no_room_among_those_remembered() -> None:
    ids = RecentIds(capacity=3)
    ids.claim("kept", "credit")
    for n in range(10):  # refused requests: claimed, then released
        ids.claim(f"refused-{n}", "credit")
        ids.release(f"refused-{n}")
    ids.claim("next", "credit")
    assert "kept" in ids
    with pytest.raises(ConflictError):
        ids.claim("kept", "credit")


def test_an_id_released_and_claimed_again_counts_as_new() -> None:
    ids = RecentIds(capacity=2)
    ids.claim("a", "credit")
    ids.claim("b", "credit")
    ids.release("a")
    ids.claim("a", "credit")  # now the newest
    ids.claim("c", "credit")  # forgets the oldest: b
    assert ("a" in ids, "b" in ids, "c" in ids) == (True, False, True)
