"""Rows the server refused for their values, read back for a person to list and export.

The server keeps every row it refuses for its values (a hard contract violation, a
soft one on a column with ``enforce: reject``, a missing or undeclared column) in the
``refused`` log, PII masked, with the violations that refused it. Here that log
becomes a table like the quarantine's: the row's input columns as a client sent them,
and underscored columns for where it came from and why it was refused.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from setpoint.data._batch import to_table
from setpoint.errors import InvalidDataError
from setpoint.serving._logremote import LogLocation
from setpoint.serving._logtables import read_log

# The columns that say where a refused row came from (the rest are its inputs).
META = ("_ts", "_request_id", "_row", "_model", "_version")
REASONS = "_reasons"


def read_refused(
    root: Path | LogLocation,
    endpoint: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> pa.Table:
    """The rows ``endpoint`` refused in [since, until), oldest first: ``_ts``,
    ``_request_id``, ``_row``, ``_model``, ``_version``, one column per input, and
    ``_reasons`` (JSON text: ``[{column, rule, value}]``)."""
    log = read_log(root, kind="refused", endpoint=endpoint, since=since, until=until)
    inputs = [orjson.loads(text) if text else {} for text in log.column("inputs").to_pylist()]
    names = list(dict.fromkeys(name for row in inputs for name in row))
    clash = [n for n in names if n in META or n == REASONS]
    if clash:
        raise InvalidDataError(
            f"refused rows have input column(s) {', '.join(clash)}, names this table uses "
            "for where a row came from; read the log itself: "
            "setpoint.serving.log.read_log(root, kind='refused')",
            details=[{"column": n, "problem": "reserved name"} for n in clash],
        )
    columns: dict[str, Any] = {
        "_ts": log.column("ts"),
        "_request_id": log.column("request_id"),
        "_row": log.column("row"),
        "_model": log.column("model"),
        "_version": log.column("version"),
    }
    if names and inputs:
        values = to_table({n: [row.get(n) for row in inputs] for n in names})
        columns.update({n: values.column(n) for n in names})
    columns[REASONS] = log.column("reasons")
    return pa.table(columns)


def reasons_of(table: pa.Table) -> list[list[dict[str, Any]]]:
    """Each row's reasons, parsed."""
    return [orjson.loads(text) if text else [] for text in table.column(REASONS).to_pylist()]


def top_reasons(table: pa.Table, limit: int = 5) -> list[tuple[str, str, int]]:
    """The most frequent (column, rule) among the rows' reasons, with their row counts."""
    counts = Counter(
        (reason["column"], reason["rule"])
        for reasons in reasons_of(table)
        for reason in {(r["column"], r["rule"]): r for r in reasons}.values()
    )
    return [(column, rule, n) for (column, rule), n in counts.most_common(limit)]
