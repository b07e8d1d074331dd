"""Checking a file against a contract batch by batch, in bounded memory.

``data validate`` streams the file (``data/reader.py``) and checks each batch with
``Contract.validate``; what it keeps is bounded whatever the file's size: the
counts, the summary per (column, rule) with its first example, the first
``limit`` violations with their row numbers in the file, and, in ``quarantine``
mode, the rejected rows with their reasons, appended to a Parquet file in the
artifact store's staging area as they are found; with an output, the accepted rows
are appended to it the same way (``data/_sink.py``).

A problem of the whole file (a required column missing, a column the contract does
not declare, a column whose type cannot hold its kind) is reported once, not as a
reason of every row: every batch finds it again, and quarantining every row for it
helps nobody. Outside ``warn`` mode it refuses the file: nothing is quarantined or
written, and the error names the column and the fix. A column the contract drops
(``unknown_columns: drop``) is a warning, said once.

``check_stored`` applies the same check to a stored dataset version, read in
batches, before a contract is attached to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint._display import count, listing, short_repr
from setpoint.data._sink import Rows
from setpoint.data.contract import Contract
from setpoint.data.pii import PiiPolicy
from setpoint.data.quarantine import QuarantineBatch
from setpoint.data.validation import ValidationReport
from setpoint.errors import ContractViolationError

STORED_BATCH_ROWS = 1 << 16  # rows of a stored version checked at a time


@dataclass
class FileValidation:
    """What a file made of a contract: counts, problems, summary, the first violations."""

    mode: str
    n_rows: int = 0
    n_violations: int = 0  # row violations, and each problem of the file once
    n_invalid: int = 0  # rows with at least one violation of their own
    n_refused: int = 0  # of those, rows a hard (or enforced) rule refuses
    violations: list[dict[str, Any]] = field(default_factory=list)  # the first `limit`
    problems: list[dict[str, Any]] = field(default_factory=list)  # of the whole file
    warnings: list[dict[str, Any]] = field(default_factory=list)  # columns dropped
    quarantine: QuarantineBatch | None = None
    output: Path | None = None  # where the accepted rows were written
    _summary: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    _refused: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_violations == 0

    def __repr__(self) -> str:
        whole = [f"{p['column']} {p['rule']}" for p in self.problems]
        rows = [f"{s['column']} {s['rule']} ({s['count']:,})" for s in self.summary()]
        facts = [
            f"{count(self.n_accepted)} of {count(self.n_rows)} rows accepted",
            f"{count(self.n_violations)} violations" if self.n_violations else "",
            f"top: {listing([*whole, *rows])}" if whole or rows else "",
        ]
        return short_repr("FileValidation", self.mode, facts)

    @property
    def refused(self) -> bool:
        """Whether a problem of the whole file refuses it (any mode but ``warn``)."""
        return bool(self.problems) and self.mode != "warn"

    @property
    def n_accepted(self) -> int:
        """Rows kept: all of them in ``warn`` mode, none of a refused file, else those
        with no refusing violation."""
        if self.mode == "warn":
            return self.n_rows
        return 0 if self.refused else self.n_rows - self.n_refused

    def summary(self) -> list[dict[str, Any]]:
        """Row violations per (column, rule) with one example value, most frequent first."""
        return _ranked(self._summary)

    def refused_summary(self) -> list[dict[str, Any]]:
        """:meth:`summary` of the violations that refused a row: the quarantine's reasons."""
        return _ranked(self._refused)

    def to_dict(self, *, limit: int = 100) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_accepted": self.n_accepted,
            "n_violations": self.n_violations,
            "problems": self.problems,
            "warnings": self.warnings,
            "summary": self.summary(),
            "violations": self.violations[:limit],
            "quarantine": self.quarantine.to_dict() if self.quarantine else None,
            "output": None if self.output is None else str(self.output),
        }

    def add(self, report: ValidationReport, refusing: ValidationReport, limit: int) -> None:
        """Merge the row reports of the next batch (``refusing``: its violations that
        refuse a row); row numbers are shifted by the rows seen before."""
        offset = self.n_rows
        self.n_rows += report.n_rows
        self.n_invalid += int(report.invalid_rows.size)
        self.n_refused += int(refusing.invalid_rows.size)
        self.n_violations += report.n_violations
        _merge(self._summary, report)
        _merge(self._refused, refusing)
        if report.n_violations and len(self.violations) < limit:
            first = report.violations.slice(0, limit - len(self.violations)).to_pylist()
            for v in first:
                v["row"] += offset
            self.violations.extend(first)

    def note_problems(self, contract: Contract, report: ValidationReport) -> None:
        """Keep the problems of the whole file and its dropped columns, once."""
        if self.n_rows:
            return  # every batch has the same columns: the first one said it all
        self.problems = explained(contract, report)
        self.n_violations += len(self.problems)
        self.warnings = dropped(report)

    def error(self, against: str) -> ContractViolationError:
        """The error that refuses the file: its problems first, then its rows'."""
        return refusal(
            against,
            problems=self.problems,
            n_violations=self.n_violations,
            n_invalid=self.n_invalid,
            n_rows=self.n_rows,
            summary=self.summary(),
            violations=self.violations,
        )


def refusal(
    against: str,
    *,
    problems: list[dict[str, Any]],
    n_violations: int,
    n_invalid: int,
    n_rows: int,
    summary: list[dict[str, Any]],
    violations: list[dict[str, Any]],
) -> ContractViolationError:
    """The error that refuses a batch: the problems of the whole batch, each with its
    fix, or else the count of the rows' violations; ``details`` lists them all."""
    if problems:
        message = f"the batch is refused against {against}: " + "; ".join(
            p["message"] for p in problems
        )
        if n_invalid:
            message += (
                f" (besides, {n_violations - len(problems)} violation(s) in {n_invalid} of "
                f"{n_rows} row(s))"
            )
    else:
        message = (
            f"{n_violations} contract violation(s) in {n_invalid} of {n_rows} row(s) against "
            f"{against}; fix the data, edit the contract, or validate with mode "
            "'quarantine' to keep the valid rows"
        )
    return ContractViolationError(
        message,
        details={"problems": problems, "summary": summary, "violations": violations},
    )


def breaks_contract(ref: str, found: FileValidation) -> ContractViolationError:
    """The error that refuses a contract its own version's data breaks."""
    rules = ", ".join(f"{s['column']} {s['rule']}: {s['count']}" for s in found.summary()[:5])
    said = [p["message"] for p in found.problems] + ([rules] if rules else [])
    return ContractViolationError(
        f"the data of {ref} breaks this contract: {found.n_violations} violation(s) in "
        f"{found.n_invalid} of {found.n_rows} row(s) ({'; '.join(said)}); widen the contract "
        "to admit its own data, or attach it anyway with --force (Python: force=True)",
        details={
            "problems": found.problems,
            "summary": found.summary(),
            "violations": found.violations,
        },
    )


def explained(contract: Contract, report: ValidationReport) -> list[dict[str, Any]]:
    """The problems of the whole batch, each with what it means and the fix."""
    return [p | {"message": contract.explain(p)} for p in report.problems]


def dropped(report: ValidationReport) -> list[dict[str, Any]]:
    """A warning per column left out because the contract drops undeclared columns."""
    return [
        {
            "column": name,
            "rule": "unknown_column",
            "message": f"column {name!r} is not in the contract: dropped (unknown_columns: drop)",
        }
        for name in report.dropped
    ]


def _merge(kept: dict[tuple[str, str], list[Any]], report: ValidationReport) -> None:
    for s in report.summary():
        entry = kept.setdefault((s["column"], s["rule"]), [0, s["example"]])
        entry[0] += s["count"]


def _ranked(kept: dict[tuple[str, str], list[Any]]) -> list[dict[str, Any]]:
    rows = [{"column": c, "rule": r, "count": n, "example": e} for (c, r), (n, e) in kept.items()]
    return sorted(rows, key=lambda s: (-s["count"], s["column"], s["rule"]))


def check_file(
    contract: Contract,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    mode: str,
    keep_soft: bool,
    limit: int,
    pii: PiiPolicy | None = None,
    rejected: Path | None = None,
    accepted: Rows | None = None,
    passthrough: Sequence[str] = (),
    mark_soft: bool = False,
) -> FileValidation:
    """Validate ``batches``; with ``rejected``, write the refused rows there (their
    ``_row`` in the file, their ``_reasons``, personal data as ``pii`` says); with
    ``accepted``, write the accepted rows to it. A file a problem refuses gets
    neither: the problem shows in its first batch, before anything is written.
    ``passthrough`` columns (a row id) are left out of the check and kept with their
    rows, accepted or refused, after the contract's columns. ``mark_soft``: each
    accepted row comes with ``_violations``, the soft rules it broke as JSON text
    ``[{column, rule}]`` (null where none), as the server marks its records."""
    outcome = FileValidation(mode)
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch], schema)
            checked = table.drop_columns(list(passthrough)) if passthrough else table
            whole = contract.validate(checked, whole_column_types=True)
            outcome.note_problems(contract, whole)
            report = whole.rows_only()
            if passthrough:
                columns = (*report.keep_columns, *passthrough)
                report = replace(report, keep_columns=columns)
            refusing = report.split()[0] if keep_soft else report
            offset = outcome.n_rows
            outcome.add(report, refusing, limit)
            if outcome.refused:
                continue  # counted, for the error; nothing kept
            if accepted is not None:
                kept = table.select(list(report.keep_columns)) if mode == "warn" else None
                rows = kept if kept is not None else refusing.accepted(table)
                if mark_soft:
                    rows = rows.append_column("_violations", soft_marks(report, refusing))
                accepted.write(rows)
            if rejected is None or refusing.ok:
                continue
            rows = refusing.rejected(table)
            rows = pii.table(rows) if pii is not None else rows
            index = rows.column_names.index("_row")
            rows = rows.set_column(index, "_row", pc.add(rows.column("_row"), offset))
            if writer is None:
                writer = pq.ParquetWriter(rejected, rows.schema, compression="zstd")
            writer.write_table(rows.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return outcome


def soft_marks(report: ValidationReport, refusing: ValidationReport) -> pa.Array:
    """Per row ``refusing`` accepts, the rules of ``report`` it broke as JSON text
    ``[{column, rule}]``, null where none (Python work for the marked rows only)."""
    marks: list[str | None] = [None] * report.n_rows
    if not report.ok:
        grouped: dict[int, list[dict[str, str]]] = {}
        for v in report.violations.select(["row", "column", "rule"]).to_pylist():
            if v["row"] is not None:
                grouped.setdefault(v["row"], []).append({"column": v["column"], "rule": v["rule"]})
        for row, found in grouped.items():
            marks[row] = json.dumps(found)
    column = pa.array(marks, pa.string())
    if refusing.ok:
        return column
    keep = np.isin(np.arange(report.n_rows), refusing.invalid_rows, invert=True)
    return column.filter(pa.array(keep))


def check_stored(contract: Contract, parquet: Any, *, limit: int) -> FileValidation:
    """``contract`` checked against a stored version (an open Parquet file), read
    ``STORED_BATCH_ROWS`` rows at a time: what a new contract would say of the data
    it is attached to."""
    file = pq.ParquetFile(parquet)
    schema = file.schema_arrow
    batches = file.iter_batches(batch_size=STORED_BATCH_ROWS)
    return check_file(contract, schema, batches, mode="reject", keep_soft=False, limit=limit)
