"""The prediction cache: hits and misses, LRU eviction, TTL expiry on a moved clock, and
the canonical key (column order and extra columns ignored; version and values count)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.serving import cache as cache_module
from setpoint.serving.cache import Cached, PredictionCache


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    # Only the cache module's view of ``time`` moves, not the process's clock.
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def cached(n: int) -> Cached:
    return Cached("credit-risk", n, [n], None, None)


def test_a_miss_then_a_hit_are_counted(clock: Clock) -> None:
    cache = PredictionCache(size=4, ttl_s=60)
    assert cache.get(b"a") is None
    assert (cache.hits, cache.misses) == (0, 1)
    cache.put(b"a", cached(1))
    assert cache.get(b"a") == cached(1)
    assert cache.get(b"a") == cached(1)
    assert cache.get(b"b") is None
    assert (cache.hits, cache.misses) == (2, 2)
    assert len(cache) == 1


def test_the_least_recently_used_entry_goes_first_when_full(clock: Clock) -> None:
    cache = PredictionCache(size=3, ttl_s=60)
    for n, key in enumerate((b"a", b"b", b"c")):
        cache.put(key, cached(n))
    cache.put(b"d", cached(3))  # nothing used since: the oldest put goes
    assert len(cache) == 3
    assert cache.get(b"a") is None

    assert cache.get(b"b") == cached(1)  # used: c is now the least recent
    cache.put(b"e", cached(4))
    assert cache.get(b"c") is None
    assert [cache.get(k) for k in (b"b", b"d", b"e")] == [cached(1), cached(3), cached(4)]

    cache.put(b"b", cached(5))  # put again: replaced and most recent; d is the oldest now
    cache.put(b"f", cached(6))
    assert cache.get(b"d") is None
    assert cache.get(b"b") == cached(5)
    assert len(cache) == 3


def test_entries_expire_after_ttl_and_a_hit_does_not_extend_them(clock: Clock) -> None:
    cache = PredictionCache(size=4, ttl_s=10)
    cache.put(b"a", cached(1))
    clock.now += 6
    assert cache.get(b"a") == cached(1)
    cache.put(b"b", cached(2))  # expires 6 s after a
    clock.now += 4  # exactly ttl_s after the put: still valid
    assert cache.get(b"a") == cached(1)
    clock.now += 0.001
    assert cache.get(b"a") is None  # expired although it was just read
    assert len(cache) == 1  # and dropped
    assert cache.get(b"b") == cached(2)
    clock.now += 6
    assert cache.get(b"b") is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (3, 2)

    cache.put(b"a", cached(3))  # a new put starts a new ttl
    clock.now += 10
    assert cache.get(b"a") == cached(3)


NAMES = ["income", "age", "purpose"]


def test_the_key_ignores_column_order_and_other_columns() -> None:
    columns: dict[str, list[Any]] = {
        "income": [5.0, 6.5],
        "age": [30, 41],
        "purpose": ["car", None],
    }
    key = PredictionCache.key(7, NAMES, columns)
    assert key is not None
    reordered: dict[str, list[Any]] = {
        "purpose": ["car", None],
        "income": [5.0, 6.5],
        "age": [30, 41],
    }
    assert PredictionCache.key(7, NAMES, reordered) == key
    with_extra = {**columns, "request_id": ["r-1", "r-2"]}
    assert PredictionCache.key(7, NAMES, with_extra) == key


def test_the_key_depends_on_the_version_and_the_values() -> None:
    columns: dict[str, list[Any]] = {"income": [5.0], "age": [30], "purpose": ["car"]}
    key = PredictionCache.key(7, NAMES, columns)
    assert PredictionCache.key(8, NAMES, columns) != key
    assert PredictionCache.key(7, NAMES, {**columns, "age": [31]}) != key
    assert PredictionCache.key(7, NAMES, {**columns, "purpose": [None]}) != key
    # Another contract order is another key (the contract fixes the order).
    assert PredictionCache.key(7, ["age", "income", "purpose"], columns) != key
    # 1 and 1.0 are written differently: a miss, never a wrong answer.
    assert PredictionCache.key(7, NAMES, {**columns, "age": [30.0]}) != key


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, 2**64, b"\xff"],
    ids=["object", "set", "int-over-64-bit", "bytes"],
)
def test_a_value_orjson_cannot_write_gives_no_key(value: Any) -> None:
    columns: dict[str, list[Any]] = {"income": [5.0], "age": [value], "purpose": ["car"]}
    assert PredictionCache.key(7, NAMES, columns) is None
    # An unwritable value outside the contract's columns does not matter.
    assert PredictionCache.key(7, NAMES, {**{n: [1] for n in NAMES}, "note": [value]}) is not None


# JSON-like values as a request body decodes them; NaN and infinities are left out
# (orjson writes them as null, and JSON bodies cannot carry them).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
COLUMN_NAMES = st.text(min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    version=st.integers(min_value=0, max_value=2**31),
    columns=st.dictionaries(COLUMN_NAMES, st.lists(JSON, min_size=1, max_size=4), max_size=6),
    extra_names=st.lists(COLUMN_NAMES, max_size=2),
    data=st.data(),
)
def test_the_key_is_canonical_and_tells_values_apart(
    version: int,
    columns: dict[str, list[Any]],
    extra_names: list[str],
    data: st.DataObject,
) -> None:
    # The contract: some of the request's columns (maybe not all), maybe some it lacks.
    chosen = data.draw(
        st.lists(st.sampled_from(sorted(columns)), unique=True) if columns else st.just([])
    )
    names = list(dict.fromkeys([*chosen, *extra_names]))
    key = PredictionCache.key(version, names, columns)
    assert key is not None

    shuffled = dict(data.draw(st.permutations(list(columns.items()))))
    assert PredictionCache.key(version, names, shuffled) == key
    assert PredictionCache.key(version + 1, names, columns) != key

    present = [n for n in names if n in columns]
    if not present:
        return
    name = data.draw(st.sampled_from(present))
    row = data.draw(st.integers(min_value=0, max_value=len(columns[name]) - 1))
    old = columns[name][row]
    new = data.draw(JSON.filter(lambda v: orjson.dumps(v) != orjson.dumps(old)))
    changed = {**columns, name: [*columns[name][:row], new, *columns[name][row + 1 :]]}
    assert PredictionCache.key(version, names, changed) != key


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_not_keyed_like_null(value: float) -> None:
    # orjson writes them as null; an infinity must reach the contract, not a cached answer.
    assert PredictionCache.key(1, ["a"], {"a": [value]}) is None
    assert PredictionCache.key(1, ["a"], {"a": [None]}) is not None
