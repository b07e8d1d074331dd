"""The prediction cache: the same inputs to the same model version, answered again.

Keys are the model version and the request's canonical inputs: the contract's
columns, in contract order, serialized once with orjson. Request ids and column
order in the body do not matter; any other difference (``1`` against ``1.0``) is a
different key, which costs a miss, never a wrong answer. Entries expire after
``ttl_s`` and the least recently used goes first when the cache is full. The cache
lives on the event loop thread, so it needs no lock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Cached:
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None


class PredictionCache:
    def __init__(self, size: int, ttl_s: float) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[bytes, tuple[float, Cached]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(
        version_id: int, names: Sequence[str], columns: Mapping[str, list[Any]]
    ) -> bytes | None:
        """The canonical key of a request, or None when its values cannot be keyed."""
        values = [columns.get(name) for name in names]
        for column in values:
            # orjson writes NaN and infinities as null: such a request must not share
            # null's key (an infinity is a contract violation, not a cache hit).
            if column and any(type(v) is float and not math.isfinite(v) for v in column):
                return None
        try:
            return orjson.dumps([version_id, values])
        except TypeError:  # a value orjson cannot write: do not cache
            return None

    def get(self, key: bytes) -> Cached | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            if found is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: bytes, value: Cached) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
