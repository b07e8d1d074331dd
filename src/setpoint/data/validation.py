"""What a contract found in a batch: every violation, and which rows survive.

A report is an Arrow table of violations (``row``, ``column``, ``rule``, ``value``)
plus the batch size. Batch-level violations, the *problems* of the batch (a required
column missing, a column the contract rejects, and in batch validation a column whose
type cannot hold its kind at all) have no row: at serving they refuse every row. The
report can split a batch into the accepted rows and the rejected rows, the latter
with their original row numbers and reasons, which is what the quarantine keeps.
Batch validation (``data validate``, the quarantine) reports a problem once and
refuses the batch with it, rather than copying it into every row's reasons:
``rows_only`` is the report without them.

Rules are *hard* (``HARD_RULES``: the row cannot be scored) or *soft*
(``SOFT_RULES``: the row can be scored, but lies outside what the model saw). Batch
validation counts both as violations. At serving, a violation *refuses* its row when
its rule is hard or its column is enforced (``enforce: reject`` in the contract);
``ValidationReport.refuses`` tells which, and ``split`` parts the report in two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint._display import count, listing, short_repr
from setpoint.errors import InvalidDataError

if TYPE_CHECKING:
    import pandas as pd

RULES = (
    "missing_column",
    "unknown_column",
    "type",
    "not_null",
    "not_finite",
    "min",
    "max",
    "category",
)

# The row cannot be scored: a value of the wrong type, a missing or non-finite value
# where the contract wants one, a column missing or not declared.
HARD_RULES = frozenset({"type", "not_null", "not_finite", "missing_column", "unknown_column"})
# The row can be scored but is out of what the model saw: past a bound, a new category.
SOFT_RULES = frozenset({"min", "max", "category"})
_HARD = pa.array(sorted(HARD_RULES), pa.string())

VIOLATION_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),  # null: the whole batch
        pa.field("column", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("value", pa.string()),  # the offending value as text, if any
    ]
)


@dataclass(frozen=True)
class ValidationReport:
    n_rows: int
    violations: pa.Table  # VIOLATION_SCHEMA, sorted by row
    keep_columns: tuple[str, ...] = field(default=())  # columns of accepted rows
    enforced: frozenset[str] = frozenset()  # columns whose soft rules refuse at serving
    dropped: tuple[str, ...] = ()  # columns not declared, left out (unknown_columns: drop)

    @property
    def ok(self) -> bool:
        return bool(self.violations.num_rows == 0)

    @property
    def n_violations(self) -> int:
        return int(self.violations.num_rows)

    @cached_property
    def problems(self) -> list[dict[str, Any]]:
        """The violations of the whole batch (no row): column, rule, value."""
        whole = self.violations.filter(pc.is_null(self.violations.column("row")))
        return [_reason(v) for v in whole.to_pylist()]

    def rows_only(self) -> ValidationReport:
        """This report without the problems of the whole batch: each row's own reasons."""
        if not self.problems:
            return self
        return replace(
            self, violations=self.violations.filter(pc.is_valid(self.violations.column("row")))
        )

    @cached_property
    def invalid_rows(self) -> np.ndarray:
        """Sorted row numbers that broke at least one rule."""
        rows = self.violations.column("row")
        if rows.null_count:
            return np.arange(self.n_rows, dtype=np.int64)
        return np.unique(rows.to_numpy())

    @cached_property
    def refuses(self) -> np.ndarray:
        """Per violation (in table order): does it refuse its row at serving? True for
        a hard rule, or any rule of an enforced column."""
        if self.ok:
            return np.zeros(0, dtype=bool)
        hard = pc.is_in(self.violations.column("rule"), value_set=_HARD)
        if self.enforced:
            columns = pa.array(sorted(self.enforced), pa.string())
            hard = pc.or_(hard, pc.is_in(self.violations.column("column"), value_set=columns))
        return np.asarray(hard.to_numpy(zero_copy_only=False), dtype=bool)

    def split(self) -> tuple[ValidationReport, ValidationReport]:
        """(refusing, scored): the violations that refuse their row at serving, and the
        others (soft rules of columns not enforced), each as a report of the same batch."""
        if self.ok:
            return self, self
        refuses = pa.array(self.refuses)
        return (
            replace(self, violations=self.violations.filter(refuses)),
            replace(self, violations=self.violations.filter(pc.invert(refuses))),
        )

    def __repr__(self) -> str:
        facts = [
            f"{count(self.n_violations)} violations in {count(int(self.invalid_rows.size))} rows",
            top_problems(self.summary()),
        ]
        return short_repr("ValidationReport", f"{count(self.n_rows)} rows", facts)

    def to_pandas(self) -> pd.DataFrame:
        """The violations as a DataFrame: row, column, rule, value."""
        frame: pd.DataFrame = self.violations.to_pandas()
        return frame

    def _invalid_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[self.invalid_rows] = True
        return mask

    def accepted(self, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` that broke no rule, with the columns the contract keeps."""
        table = batch.select(list(self.keep_columns))
        if self.ok:
            return table
        return table.filter(pa.array(~self._invalid_mask()))

    def rejected(self, batch: pa.Table) -> pa.Table:
        """The invalid rows of ``batch`` with ``_row`` (their position in the batch) and
        ``_reasons`` (a JSON list of {column, rule, value})."""
        clash = [n for n in ("_row", "_reasons") if n in batch.column_names]
        if clash:
            raise InvalidDataError(
                f"the batch has column(s) {', '.join(clash)}, names the quarantine uses for "
                "each row's position and reasons; rename them and validate again",
                details=[{"column": n, "problem": "reserved name"} for n in clash],
            )
        rows = self.invalid_rows
        reasons = self._reasons(rows)
        return (
            batch.take(pa.array(rows))
            .append_column("_row", pa.array(rows, pa.int64()))
            .append_column("_reasons", pa.array(reasons, pa.string()))
        )

    def _reasons(self, rows: np.ndarray) -> list[str]:
        per_row = self.violations.filter(pc.is_valid(self.violations.column("row")))
        whole = self.violations.filter(pc.is_null(self.violations.column("row")))
        shared = [_reason(v) for v in whole.to_pylist()]
        grouped: dict[int, list[dict[str, Any]]] = {}
        for v in per_row.to_pylist():
            grouped.setdefault(v["row"], []).append(_reason(v))
        return [json.dumps(shared + grouped.get(int(r), [])) for r in rows]

    def summary(self) -> list[dict[str, Any]]:
        """Counts per (column, rule) with one example value, most frequent first."""
        if self.ok:
            return []
        grouped = (
            self.violations.group_by(["column", "rule"], use_threads=False)
            .aggregate([([], "count_all"), ("value", "first")])
            .sort_by([("count_all", "descending"), ("column", "ascending")])
        )
        return [
            {
                "column": g["column"],
                "rule": g["rule"],
                "count": g["count_all"],
                "example": g["value_first"],
            }
            for g in grouped.to_pylist()
        ]

    def to_details(self, *, limit: int | None = 100) -> list[dict[str, Any]]:
        """The first ``limit`` violations (all when None), as dicts."""
        table = self.violations if limit is None else self.violations.slice(0, limit)
        details: list[dict[str, Any]] = table.to_pylist()
        return details


def _reason(violation: dict[str, Any]) -> dict[str, Any]:
    return {"column": violation["column"], "rule": violation["rule"], "value": violation["value"]}


class ViolationBuilder:
    """Collects violations column by column, then assembles one sorted table."""

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []

    def batch(self, column: str, rule: str, value: str | None = None) -> None:
        self._parts.append(
            pa.table(
                {
                    "row": pa.nulls(1, pa.int64()),
                    "column": [column],
                    "rule": [rule],
                    "value": pa.array([value], pa.string()),
                },
                schema=VIOLATION_SCHEMA,
            )
        )

    def rows(
        self, column: str, rule: str, mask: pa.ChunkedArray | pa.Array, values: pa.ChunkedArray
    ) -> None:
        """Record ``rule`` broken by ``column`` wherever ``mask`` is true."""
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        if not pc.any(mask).as_py():
            return
        rows = pc.indices_nonzero(mask.fill_null(False))
        n = len(rows)
        self._parts.append(
            pa.table(
                {
                    "row": rows.cast(pa.int64()),
                    "column": pa.repeat(pa.scalar(column), n) if n else pa.array([], pa.string()),
                    "rule": pa.repeat(pa.scalar(rule), n) if n else pa.array([], pa.string()),
                    "value": _as_text(values.take(rows)),
                },
                schema=VIOLATION_SCHEMA,
            )
        )

    def report(
        self,
        n_rows: int,
        keep_columns: list[str],
        enforced: frozenset[str] = frozenset(),
        dropped: tuple[str, ...] = (),
    ) -> ValidationReport:
        if not self._parts:
            violations = VIOLATION_SCHEMA.empty_table()
        else:
            violations = pa.concat_tables(self._parts)
            order = pc.array_sort_indices(violations.column("row"), null_placement="at_start")
            violations = violations.take(order)
        return ValidationReport(
            n_rows, violations.combine_chunks(), tuple(keep_columns), enforced, dropped
        )


def _as_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else repr(v) for v in values.to_pylist()], pa.string())


def top_problems(summary: list[dict[str, Any]], limit: int = 3) -> str:
    """``column rule (count)`` of the most frequent violations, for a one-line summary."""
    return listing((f"{s['column']} {s['rule']} ({s['count']:,})" for s in summary), limit)
