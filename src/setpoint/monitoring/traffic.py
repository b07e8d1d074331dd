"""An endpoint's traffic as typed Arrow tables: what monitors read from the logs.

The prediction log stores each record's inputs and outputs as JSON text (a request
may carry any column); monitors need typed columns. The JSON of a whole window is
parsed at once by Arrow's JSON reader, with the contract's kinds as the schema, in
C++; only a window holding a value the reader will not take as its kind (a number
sent as text, which the contract accepts) is parsed row by row instead.

Feedback joins by request id and row; the latest label given for a prediction wins.
Rows the server refused for their values (the refused log) are read beside the
answered ones, their inputs typed the same way: they have no outputs, but they are
traffic the model was sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from setpoint.data._batch import to_table
from setpoint.data.kinds import Kind
from setpoint.monitoring.cost import usage_columns
from setpoint.serving._logremote import LogLocation
from setpoint.serving._logtables import read_log

# How each kind is read from JSON: every number as a float (an integer column may
# hold 3.0), text as text, booleans as booleans; datetimes stay text.
_ARROW: dict[str, pa.DataType] = {
    "numeric": pa.float64(),
    "integer": pa.float64(),
    "boolean": pa.bool_(),
    "categorical": pa.string(),
    "string": pa.string(),
    "datetime": pa.string(),
}
_FIXED = [
    "request_id",
    "row",
    "ts",
    "model",
    "version",
    "route",
    "latency_ms",
    "cached",
    "fallback",
]


@dataclass(frozen=True)
class Refused:
    """Rows the server refused for their values, row for row."""

    ts: pa.Array  # when, by the server's clock
    inputs: pa.Table  # one typed column per feature; a value that is not of its kind is null
    reasons: pa.Array  # JSON text per row: [{column, rule, value}]

    @property
    def num_rows(self) -> int:
        return int(self.inputs.num_rows)

    def between(self, start: dt.datetime, end: dt.datetime) -> Refused:
        """The rows refused in [start, end)."""
        inside = pc.and_(
            pc.greater_equal(self.ts, pa.scalar(start)), pc.less(self.ts, pa.scalar(end))
        )
        return Refused(
            self.ts.filter(inside), self.inputs.filter(inside), self.reasons.filter(inside)
        )


@dataclass(frozen=True)
class Traffic:
    """One window of an endpoint's answered predictions, row for row."""

    log: pa.Table  # request_id, row, ts, model, version, route, latency_ms, cached, fallback
    inputs: pa.Table  # one typed column per feature the kinds name
    predictions: pa.Array  # the label (classifier) or value (regressor) answered
    probabilities: npt.NDArray[np.float64] | None  # rows x classes, where answered
    labels: pa.Array | None = None  # the ground truth given as feedback; null where none
    label_ts: pa.Array | None = None  # when it was given
    # Per answered row, the soft contract rules it broke (JSON text [{column, rule}]),
    # null where none; None when no row was marked.
    violations: pa.Array | None = None
    refused: Refused | None = None  # the rows refused in the same span, when read
    # What each logged row cost (``cost.usage_columns``), shadow copies included.
    usage: pa.Table | None = None

    @property
    def num_rows(self) -> int:
        return int(self.log.num_rows)

    def between(self, start: dt.datetime, end: dt.datetime) -> Traffic:
        """The rows of [start, end), row for row as they are here (same values, same
        types, same order): a window measured on them measures what it would on the
        whole."""
        ts = self.log.column("ts")
        inside = pc.and_(pc.greater_equal(ts, pa.scalar(start)), pc.less(ts, pa.scalar(end)))
        rows = pc.indices_nonzero(inside)

        def take(values: pa.Array | None) -> pa.Array | None:
            return None if values is None else values.take(rows)

        return Traffic(
            self.log.take(rows),
            self.inputs.take(rows),
            self.predictions.take(rows),
            None if self.probabilities is None else self.probabilities[rows.to_numpy()],
            take(self.labels),
            take(self.label_ts),
            violations=take(self.violations),
            refused=None if self.refused is None else self.refused.between(start, end),
            usage=None if self.usage is None else usage_between(self.usage, start, end),
        )


def read_traffic(
    root: Path | LogLocation,
    endpoint: str,
    kinds: Mapping[str, Kind],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    with_labels: bool = True,
    with_refused: bool = True,
) -> Traffic:
    """The predictions ``endpoint`` answered in [since, until) except shadow copies
    (a challenger's answers that nobody received), oldest first, with their inputs
    typed by ``kinds``, the soft contract rules each broke, with ``with_labels`` the
    feedback given for them so far (whenever it was given), and with ``with_refused``
    the rows refused in the same span."""
    log = read_log(root, kind="predictions", endpoint=endpoint, since=since, until=until)
    usage = usage_columns(log)
    log = log.filter(pc.not_equal(log.column("route"), "shadow"))
    inputs = parse_json_column(log.column("inputs"), kinds)
    outputs = log.column("outputs").to_pylist()
    predictions, probabilities = parse_outputs(outputs)
    violations = (
        log.column("violations").combine_chunks() if "violations" in log.column_names else None
    )
    refused = (
        read_refused(root, endpoint, kinds, since=since, until=until) if with_refused else None
    )
    labels = label_ts = None
    if with_labels and log.num_rows:
        labels, label_ts = labels_for(root, endpoint, log)
    return Traffic(
        log.select(_FIXED),
        inputs,
        predictions,
        probabilities,
        labels,
        label_ts,
        violations=violations,
        refused=refused,
        usage=usage,
    )


def usage_between(usage: pa.Table, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """The rows of a ``Traffic.usage`` table logged in [start, end)."""
    ts = usage.column("ts")
    return usage.filter(
        pc.and_(pc.greater_equal(ts, pa.scalar(start)), pc.less(ts, pa.scalar(end)))
    )


def read_refused(
    root: Path | LogLocation,
    endpoint: str,
    kinds: Mapping[str, Kind],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Refused:
    """The rows ``endpoint`` refused for their values in [since, until), oldest first."""
    log = read_log(root, kind="refused", endpoint=endpoint, since=since, until=until)
    return Refused(
        log.column("ts").combine_chunks(),
        parse_json_column(log.column("inputs"), kinds),
        log.column("reasons").combine_chunks(),
    )


def parse_json_column(column: pa.ChunkedArray | pa.Array, kinds: Mapping[str, Kind]) -> pa.Table:
    """A JSON-object-per-row text column as a table with one typed column per kind;
    a key a row lacks is null there."""
    schema = pa.schema([pa.field(name, _ARROW[kind]) for name, kind in kinds.items()])
    texts = pc.fill_null(column, "{}")
    if len(texts) == 0:
        return schema.empty_table()
    data = "\n".join(texts.to_pylist()).encode()
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. a number sent as text
        return _parse_slowly(texts.to_pylist(), kinds, schema)


def _parse_slowly(texts: list[str], kinds: Mapping[str, Kind], schema: pa.Schema) -> pa.Table:
    rows = [orjson.loads(text) for text in texts]
    columns: dict[str, pa.Array] = {}
    for name, kind in kinds.items():
        values = [row.get(name) for row in rows]
        target = _ARROW[kind]
        try:
            columns[name] = pa.array(values, type=target, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Mixed or textual values: as text first, then the kind's reading of text.
            raw = to_table({name: values}).column(name)
            as_text = pc.cast(raw, pa.string()) if raw.type != pa.string() else raw
            if target == pa.bool_():
                words = pc.utf8_lower(pc.utf8_trim_whitespace(as_text))
                columns[name] = pc.is_in(words, pa.array(["true", "yes", "t", "y", "1"]))
            else:
                columns[name] = _to_number(as_text) if target == pa.float64() else as_text
    return pa.table(columns, schema=schema)


def _to_number(text: Any) -> pa.Array:
    """Text as numbers; what does not read as one is null (the contract let it through
    only if it reads)."""
    values = []
    for item in text.to_pylist():
        try:
            values.append(float(item) if item is not None else None)
        except ValueError:
            values.append(None)
    return pa.array(values, type=pa.float64())


def parse_outputs(outputs: list[str | None]) -> tuple[pa.Array, npt.NDArray[np.float64] | None]:
    parsed = [orjson.loads(text) if text else {} for text in outputs]
    predictions = pa.array([p.get("prediction") for p in parsed])
    probabilities = [p.get("probabilities") for p in parsed]
    if not probabilities or any(p is None for p in probabilities):
        return predictions, None
    widths = {len(p) for p in probabilities}
    if len(widths) != 1:  # versions with different classes in one window
        return predictions, None
    return predictions, np.asarray(probabilities, dtype=np.float64)


def labels_for(root: Path | LogLocation, endpoint: str, log: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each prediction's latest label (and when it came), null where none came yet."""
    feedback = read_log(root, kind="feedback", endpoint=endpoint)  # oldest first
    stamp_type = pa.timestamp("us", tz="UTC")
    if feedback.num_rows == 0:
        return pa.nulls(log.num_rows), pa.nulls(log.num_rows, stamp_type)
    latest = (
        pa.table({"key": _keys(feedback), "label": feedback["label"], "given": feedback["ts"]})
        .group_by("key", use_threads=False)  # in order, so "last" is the latest label
        .aggregate([("label", "last"), ("given", "last")])
    )
    wanted = pa.table({"key": _keys(log), "at": pa.array(np.arange(log.num_rows))})
    joined = wanted.join(latest, "key", join_type="left outer").sort_by("at")
    return _json_values(joined["label_last"]), joined["given_last"].combine_chunks()


def _keys(table: pa.Table) -> pa.ChunkedArray:
    row = pc.cast(pc.fill_null(table["row"], 0), pa.string())
    return pc.binary_join_element_wise(table["request_id"], row, "#")


def _json_values(texts: pa.ChunkedArray) -> pa.Array:
    """JSON scalars (labels: numbers, text, booleans) as one Arrow array."""
    values = [None if text is None else orjson.loads(text) for text in texts.to_pylist()]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # labels of mixed types: as text
        return pa.array([None if v is None else str(v) for v in values], pa.string())
