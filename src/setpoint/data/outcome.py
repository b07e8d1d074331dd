"""What :meth:`Workspace.validate` made of a batch: the accepted rows, the rows' own
violations, the quarantine batch that kept the refused ones, the batch's problems.

It lives apart from the workspace so that the result a user holds carries its own
conversions (DataFrames) and its own look (a one-line repr, a table in Jupyter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from setpoint._display import count, html_summary, listing, short_repr
from setpoint.data.quarantine import QuarantineBatch
from setpoint.data.validation import ValidationReport

if TYPE_CHECKING:
    import pandas as pd

Mode = Literal["reject", "quarantine", "warn"]


@dataclass(frozen=True)
class ValidationOutcome:
    """What :meth:`Workspace.validate` made of a batch."""

    mode: Mode
    report: ValidationReport  # the rows' own violations
    accepted: pa.Table  # the rows that passed, with the columns the contract keeps
    quarantine: QuarantineBatch | None
    problems: list[dict[str, Any]] = field(default_factory=list)  # of the whole batch
    warnings: list[dict[str, Any]] = field(default_factory=list)  # columns dropped

    def to_pandas(self) -> pd.DataFrame:
        """The accepted rows as a DataFrame."""
        frame: pd.DataFrame = self.accepted.to_pandas()
        return frame

    def violations_to_pandas(self) -> pd.DataFrame:
        """The rows' violations as a DataFrame: row, column, rule, value."""
        return self.report.to_pandas()

    @property
    def n_rejected(self) -> int:
        """Rows not accepted (none in ``warn`` mode, which keeps every row)."""
        return int(self.report.n_rows - self.accepted.num_rows)

    def _top(self) -> str:
        """The batch's problems first (they refuse it whole), then the rows' most
        frequent violations."""
        whole = [f"{p['column']} {p['rule']}" for p in self.problems]
        rows = [f"{s['column']} {s['rule']} ({s['count']:,})" for s in self.report.summary()]
        return listing([*whole, *rows], 3)

    def __repr__(self) -> str:
        facts = [
            f"{count(self.accepted.num_rows)} of {count(self.report.n_rows)} rows accepted",
            f"{count(self.n_rejected)} rejected" if self.n_rejected else "",
            f"top: {top}" if (top := self._top()) else "",
        ]
        return short_repr("ValidationOutcome", self.mode, facts)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("rows", count(self.report.n_rows)),
            ("accepted", count(self.accepted.num_rows)),
            ("rejected", count(self.n_rejected)),
            ("violations", count(self.report.n_violations + len(self.problems))),
        ]
        rows += [(f"{p['column']} {p['rule']}", p.get("message", "")) for p in self.problems]
        rows += [
            (f"{s['column']} {s['rule']}", f"{s['count']:,} (e.g. {s['example']})")
            for s in self.report.summary()[:5]
        ]
        if self.quarantine is not None:
            rows.append(("quarantine batch", self.quarantine.id))
        rows += [(w["column"], w["message"]) for w in self.warnings]
        return html_summary("ValidationOutcome", self.mode, rows)

    def to_dict(self, *, limit: int = 100) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.report.ok and not self.problems,
            "n_rows": self.report.n_rows,
            "n_accepted": self.accepted.num_rows,
            "n_violations": self.report.n_violations + len(self.problems),
            "problems": self.problems,
            "warnings": self.warnings,
            "summary": self.report.summary(),
            "violations": self.report.to_details(limit=limit),
            "quarantine": self.quarantine.to_dict() if self.quarantine else None,
        }
