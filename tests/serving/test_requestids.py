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
