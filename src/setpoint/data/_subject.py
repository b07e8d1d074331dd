"""Whose rows an erasure removes: a column and a value, matched as a person means it.

The value comes as text (``--where acct=1e20``) but each writer stored it as it had it:
a number in JSON or Parquet, text from a CSV, a keyed hash in a personal-data column
(``data/pii.py``). :class:`Subject` finds it in each form (``erasure.py`` uses it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.data.pii import PiiPolicy, canonical
from setpoint.errors import UsageError


@dataclass(frozen=True)
class Subject:
    """Whose rows: a column and its value, matched in clear or as its keyed hash.

    The value comes as text (``--where acct=1e20``) but is stored as the writer had it:
    a number in JSON or Parquet, text from a CSV. So a value that reads as a number
    also matches every number equal to it (``1e20`` is ``100000000000000000000.0``),
    and its hash is looked for under each canonical spelling a writer may have hashed.
    """

    column: str
    value: str
    hashed: str
    spellings: frozenset[str]  # the canonical texts of the value
    hashes: frozenset[str]  # their keyed hashes
    number: Decimal | None = None  # the value, when it reads as a finite number

    @classmethod
    def of(cls, column: str, value: Any, secret: bytes) -> Subject:
        if not column:
            raise UsageError("name the subject's column: --where COLUMN=VALUE")
        text = canonical(value)
        if not text:
            raise UsageError(f"give the value of {column!r} to erase: --where {column}=VALUE")
        number = _number(value)
        spellings = {text}
        if number is not None:
            spellings.add(canonical(float(number)))
            if number == number.to_integral_value():
                spellings.add(str(int(number)))
        policy = PiiPolicy({column: "hash"}, secret)
        hashes = {policy.hash(s) for s in spellings}
        hashed = policy.hash(text)
        assert hashed is not None
        return cls(
            column,
            text,
            hashed,
            frozenset(spellings),
            frozenset(h for h in hashes if h is not None),
            number,
        )

    def matches(self, value: Any) -> bool:
        if value is None:
            return False
        if self.number is not None and not isinstance(value, bool):
            # A float as floats compare (``0.1`` is the float nearest 0.1); an int exactly.
            if isinstance(value, float):
                return float(self.number) == value
            if isinstance(value, int):
                return Decimal(value) == self.number
        text = canonical(value)
        return text in self.spellings or text in self.hashes

    def mask(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Which values of ``column`` are the subject's (each distinct value checked once)."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if len(column) == 0:
            return np.zeros(0, dtype=bool)
        encoded = pc.dictionary_encode(column)
        hits = [i for i, v in enumerate(encoded.dictionary.to_pylist()) if self.matches(v)]
        if not hits:
            return np.zeros(len(column), dtype=bool)
        found = pc.is_in(encoded.indices, value_set=pa.array(hits, encoded.indices.type))
        return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)

    def in_inputs(self, inputs: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Which log records' JSON ``inputs`` hold the subject's value in the column."""
        texts = inputs.combine_chunks() if isinstance(inputs, pa.ChunkedArray) else inputs
        out = np.zeros(len(texts), dtype=bool)
        if len(texts) == 0:
            return out
        for i in np.flatnonzero(self._candidates(texts)):
            text = texts[int(i)].as_py()
            inputs_of = orjson.loads(text) if text else {}
            out[i] = isinstance(inputs_of, dict) and self.matches(inputs_of.get(self.column))
        return out

    def _candidates(self, texts: pa.Array) -> np.ndarray:
        """A cheap pass over the JSON texts that misses no record of the subject: each
        candidate is then read exactly. Text is looked for as the log's encoder writes
        it (escaped, and ASCII-escaped in case another writer did so); a number can be
        spelled too many ways (``1e20``, ``100000000000000000000.0``), so every record
        that has the column at all is a candidate."""
        key = orjson.dumps(self.column).decode() + ":"
        if self.number is not None:
            needles = [key]
        else:
            needles = sorted(self.hashes)
            for spelling in self.spellings:
                needles.append(orjson.dumps(spelling).decode())
                needles.append(json.dumps(spelling, ensure_ascii=True))
        near = pc.match_substring(texts, needles[0])
        for needle in needles[1:]:
            near = pc.or_(near, pc.match_substring(texts, needle))
        return np.asarray(pc.fill_null(near, False).to_numpy(zero_copy_only=False), dtype=bool)


def _number(value: Any) -> Decimal | None:
    """``value`` as an exact finite number, when it is one or reads as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        found = Decimal(value)
    elif isinstance(value, str):
        try:
            found = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return found if found.is_finite() else None
