"""What a window's traffic did against the model's data contract.

The server answers a row that breaks only soft rules (past a bound, an unseen
category) and marks it in its prediction-log record; it refuses a row with a hard or
enforced violation and keeps it in the refused log (``serving/lane.py``). Per window
this module counts both, by column and rule, as the results' ``quality.contract``::

    {"scored": rows answered with soft violations, "refused": rows refused,
     "rules": [{"column", "rule", "scored", "refused"}, ...]}   # most rows first

and adds the refused rows' inputs to the window's feature counts: they are traffic
the model was sent, and a value past the range is the drift that matters most. They
have no outputs, so they take no part in prediction drift or performance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from setpoint.monitoring.counts import CategoricalCounts, ColumnCounts, NumericCounts
from setpoint.monitoring.reference import Reference
from setpoint.monitoring.summary import ReferenceSummary, WindowSummary, summarize
from setpoint.monitoring.traffic import Refused, Traffic


def refused_in(traffic: Traffic, start: datetime, end: datetime) -> Refused:
    """The rows refused in [start, end) (none when the traffic was read without them)."""
    if traffic.refused is None:
        empty = traffic.inputs.schema.empty_table()
        return Refused(pa.array([], pa.timestamp("us", tz="UTC")), empty, pa.array([], pa.string()))
    return traffic.refused.between(start, end)


def contract_quality(traffic: Traffic, rows: pa.Array, refused: Refused) -> dict[str, Any]:
    """``quality.contract`` and ``quality.rejected`` (the refused rows) of the window of
    ``traffic``'s answered ``rows`` and the ``refused`` rows."""
    marks = None if traffic.violations is None else traffic.violations.take(rows)
    scored = _per_rule(_parsed(marks))
    refusals = _per_rule(_parsed(refused.reasons))
    keys = sorted(scored.keys() | refusals.keys(), key=lambda k: (-scored[k] - refusals[k], k))
    rules = [
        {"column": c, "rule": r, "scored": scored[c, r], "refused": refusals[c, r]} for c, r in keys
    ]
    scored_rows = 0 if marks is None else len(marks) - marks.null_count
    counts = {"scored": scored_rows, "refused": refused.num_rows, "rules": rules}
    return {"contract": counts, "rejected": refused.num_rows}


def with_refused(summary: WindowSummary, refused: Refused, ref: Reference) -> WindowSummary:
    """``summary`` with the refused rows' inputs added to the counts of the reference's
    features (the model's outputs stay the answered rows' own)."""
    return add_inputs(summary, refused.inputs, ref.summary, ref.features)


def add_inputs(
    summary: WindowSummary, inputs: pa.Table, reference: ReferenceSummary, features: Iterable[str]
) -> WindowSummary:
    """``summary`` with more rows' ``inputs`` added to the counts of ``features`` only."""
    if inputs.num_rows == 0:
        return summary
    extra = summarize(inputs, reference)
    columns = dict(summary.columns)
    for name in features:
        if name in columns:
            columns[name] = _add(columns[name], extra.columns[name])
    return WindowSummary(columns, summary.n_rows + inputs.num_rows)


def _add(a: ColumnCounts, b: ColumnCounts) -> ColumnCounts:
    if isinstance(a, NumericCounts) and isinstance(b, NumericCounts):
        return a + b
    if isinstance(a, CategoricalCounts) and isinstance(b, CategoricalCounts):
        return a + b
    raise TypeError("a feature's counts are numeric on one side and categorical on the other")


def _parsed(texts: pa.Array | None) -> list[list[Mapping[str, Any]]]:
    if texts is None or len(texts) == texts.null_count:
        return []
    return [orjson.loads(text) for text in texts.drop_null().to_pylist()]


def _per_rule(rows: list[list[Mapping[str, Any]]]) -> Counter[tuple[str, str]]:
    """Rows per (column, rule): a row counts once for each rule it broke."""
    return Counter(key for row in rows for key in {(v["column"], v["rule"]) for v in row})
