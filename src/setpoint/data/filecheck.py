"""Checking a file against a contract batch by batch, in bounded memory.

``data validate`` streams the file (``data/reader.py``) and checks each batch with
``Contract.validate``; what it keeps is bounded whatever the file's size: the
counts, the summary per (column, rule) with its first example, the first
``limit`` violations with their row numbers in the file, and, in ``quarantine``
mode, the rejected rows with their reasons, appended to a Parquet file in the
artifact store's staging area as they are found.

A batch-level violation (a required column missing, a column the contract does not
declare) is reported once, as a whole-file validation reports it, though every
batch finds it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from setpoint.data.contract import Contract
from setpoint.data.pii import PiiPolicy
from setpoint.data.quarantine import QuarantineBatch
from setpoint.data.validation import ValidationReport


@dataclass
class FileValidation:
    """What a file made of a contract: counts, summary, the first violations."""

    mode: str
    n_rows: int = 0
    n_violations: int = 0
    n_invalid: int = 0  # rows with at least one violation
    n_refused: int = 0  # of those, rows a hard (or enforced) rule refuses
    violations: list[dict[str, Any]] = field(default_factory=list)  # the first `limit`
    quarantine: QuarantineBatch | None = None
    _summary: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_violations == 0

    @property
    def n_accepted(self) -> int:
        """Rows kept: all of them in ``warn`` mode, else those with no refusing violation."""
        return self.n_rows if self.mode == "warn" else self.n_rows - self.n_refused

    def summary(self) -> list[dict[str, Any]]:
        """Counts per (column, rule) with one example value, most frequent first."""
        rows = [
            {"column": c, "rule": r, "count": n, "example": e}
            for (c, r), (n, e) in self._summary.items()
        ]
        return sorted(rows, key=lambda s: (-s["count"], s["column"]))

    def to_dict(self, *, limit: int = 100) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "n_rows": self.n_rows,
            "n_accepted": self.n_accepted,
            "n_violations": self.n_violations,
            "summary": self.summary(),
            "violations": self.violations[:limit],
            "quarantine": self.quarantine.to_dict() if self.quarantine else None,
        }

    def add(self, report: ValidationReport, refusing: ValidationReport, limit: int) -> None:
        """Merge the reports of the next batch (``refusing``: its violations that refuse
        a row); row numbers are shifted by the rows seen before."""
        offset = self.n_rows
        violations = report.violations
        if offset:  # batch-level violations were counted with the first batch
            violations = violations.filter(pc.is_valid(violations.column("row")))
        self.n_rows += report.n_rows
        self.n_invalid += int(report.invalid_rows.size)
        self.n_refused += int(refusing.invalid_rows.size)
        if not violations.num_rows:
            return
        self.n_violations += violations.num_rows
        for s in replace(report, violations=violations).summary():
            kept = self._summary.setdefault((s["column"], s["rule"]), [0, s["example"]])
            kept[0] += s["count"]
        if len(self.violations) < limit:
            first = violations.slice(0, limit - len(self.violations)).to_pylist()
            for v in first:
                if v["row"] is not None:
                    v["row"] += offset
            self.violations.extend(first)


def check_file(
    contract: Contract,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    mode: str,
    keep_soft: bool,
    limit: int,
    pii: PiiPolicy,
    rejected: Path | None,
) -> FileValidation:
    """Validate ``batches``; with ``rejected``, write the refused rows there (their
    ``_row`` in the file, their ``_reasons``, personal data as ``pii`` says)."""
    outcome = FileValidation(mode)
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch], schema)
            report = contract.validate(table)
            refusing = report.split()[0] if keep_soft else report
            offset = outcome.n_rows
            outcome.add(report, refusing, limit)
            if rejected is None or refusing.ok:
                continue
            rows = pii.table(refusing.rejected(table))
            index = rows.column_names.index("_row")
            rows = rows.set_column(index, "_row", pc.add(rows.column("_row"), offset))
            if writer is None:
                writer = pq.ParquetWriter(rejected, rows.schema, compression="zstd")
            writer.write_table(rows.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return outcome
