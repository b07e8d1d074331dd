"""The result of an offline comparison: chunks with their results documents.

A :class:`Comparison` prints as a table of chunks and verdicts (80 columns), renders
as a compact table in Jupyter, converts to a DataFrame (one row per chunk and
feature) and to a JSON-able dict (each chunk's results document, as a monitor stores
a window's), and writes the same HTML report monitors have.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from setpoint.monitoring.reference import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

WIDTH = 80
_WATCHED = ("accuracy", "rmse")  # the metric a verdict names, by task
_FEATURE_FIELDS = (
    "kind",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "effect_name",
    "effect",
    "threshold",
    "drifted",
    "psi",
    "null_fraction",
    "reference_null_fraction",
)


@dataclass(frozen=True)
class ChunkVerdict:
    """What a chunk's row of the table says."""

    label: str
    rows: int
    verdict: str  # "ok", "drift", "perf. drop", "drift & drop" or "not judged"
    drifted: list[str]  # input features, then the prediction column
    jointly: bool  # the domain classifier told the chunk from the reference
    auc: float | None
    metric: float | None


@dataclass(frozen=True)
class Comparison:
    """A current table compared with a reference, chunk by chunk (see ``compare``)."""

    reference: dict[str, Any]  # source, rows, features (kinds), outputs, task, performance
    current: dict[str, Any]  # source, rows
    time_column: str | None
    chunk: str | None
    by_period: bool
    target: str | None
    prediction: str | None
    settings: dict[str, Any]
    chunks: list[dict[str, Any]]  # label, start, end, n_rows, the results, alerts
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str | None:
        """The realized metric the table shows (accuracy or RMSE), when known."""
        performance = self.reference.get("performance") or {}
        return next((m for m in _WATCHED if performance.get(m) is not None), None)

    @property
    def drifted(self) -> bool:
        """Whether any chunk drifted (inputs, outputs or jointly)."""
        return any(a["key"].startswith("drift:") for c in self.chunks for a in c["alerts"])

    def verdicts(self) -> list[ChunkVerdict]:
        out = []
        for c in self.chunks:
            keys = [a["key"] for a in c["alerts"]]
            drift = any(k.startswith("drift:") for k in keys)
            drop = any(k.startswith("performance:") for k in keys)
            if drift or drop:
                verdict = "drift & drop" if drift and drop else "drift" if drift else "perf. drop"
            else:
                verdict = "ok" if c["judged"] else "not judged"
            names = list(c["drift"]["drifted_features"])
            outputs = c["drift"].get("prediction") or {}
            if any(f["drifted"] for f in outputs.values()):
                names.append(str(self.prediction))
            domain = c.get("multivariate") or {}
            realized = (c["performance"].get("realized") or {}) if self.metric else {}
            out.append(
                ChunkVerdict(
                    label=c["label"],
                    rows=c["n_rows"],
                    verdict=verdict,
                    drifted=names,
                    jointly=bool(domain.get("drifted")),
                    auc=domain.get("auc"),
                    metric=realized.get(str(self.metric)),
                )
            )
        return out

    # -- conversions ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able: the chunks with their results documents."""
        return {
            "reference": self.reference,
            "current": self.current,
            "time_column": self.time_column,
            "chunk": self.chunk,
            "target": self.target,
            "prediction": self.prediction,
            "settings": self.settings,
            "notes": list(self.notes),
            "chunks": self.chunks,
        }

    def to_pandas(self) -> pd.DataFrame:
        """One row per chunk and feature (the prediction column's rows have role
        ``prediction``): the test, the effect size, its threshold, the decision."""
        import pandas as pd

        rows = []
        for c in self.chunks:
            drift = c["drift"]
            judged = {name: ("input", f) for name, f in drift["features"].items()}
            for name, f in (drift.get("prediction") or {}).items():
                shown = self.prediction if name == PREDICTION else name
                judged[str(shown)] = ("prediction", f)
            for name, (role, f) in judged.items():
                rows.append(
                    {
                        "chunk": c["label"],
                        "start": _time(c["start"]),
                        "end": _time(c["end"]),
                        "rows": c["n_rows"],
                        "judged": c["judged"],
                        "feature": name,
                        "role": role,
                        **{k: f.get(k) for k in _FEATURE_FIELDS},
                    }
                )
        columns = ["chunk", "start", "end", "rows", "judged", "feature", "role", *_FEATURE_FIELDS]
        return pd.DataFrame(rows, columns=columns)

    # -- showing ----------------------------------------------------------------------

    def headline(self) -> str:
        ref, cur = self.reference, self.current
        cut = "one chunk"
        if self.chunk is not None:
            n = len(self.chunks)
            by = f" by {self.time_column!r}" if self.time_column else ""
            unit = f"of {self.chunk}" if self.by_period else f"of {self.chunk} rows"
            cut = f"{n} chunk{'s' if n != 1 else ''} {unit}{by}"
        return (
            f"{cur['source']} ({cur['rows']:,} rows) against {ref['source']} "
            f"({ref['rows']:,} rows): {len(ref['features'])} features, {cut}."
        )

    def table(self, width: int = WIDTH) -> str:
        """The chunks and their verdicts as plain text, at most ``width`` columns."""
        head, cells = self.cells()
        return "\n".join(_layout(head, cells, width))

    def __str__(self) -> str:
        lines = [*wrap(self.headline(), WIDTH), "", self.table()]
        for note in self.notes:
            lines += wrap(f"Note: {note}", WIDTH)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head, cells = self.cells()
        header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in cells
        )
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return (
            f"<p>{html.escape(self.headline())}</p>"
            f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
            f"{notes}<p><small>The full report: .write_report(path)</small></p>"
        )

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The table's head and rows, as text."""
        show_auc = bool(self.settings.get("multivariate"))
        head = ["chunk", "rows", "verdict", "drifted"]
        head += ["AUC"] if show_auc else []
        head += [str(self.metric)] if self.metric else []
        cells = []
        for v in self.verdicts():
            drifted = ", ".join(v.drifted) or ("(jointly)" if v.jointly else "-")
            row = [v.label, f"{v.rows:,}", v.verdict, drifted]
            row += [_fmt(v.auc, 2)] if show_auc else []
            row += [_fmt(v.metric, 3)] if self.metric else []
            cells.append(row)
        return head, cells

    # -- the report -------------------------------------------------------------------

    def report_data(self) -> dict[str, Any]:
        """What ``report.ReportData.from_dict`` reads, as a monitor's report has it."""
        windows = []
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        for i, c in enumerate(self.chunks):
            window = {k: v for k, v in c.items() if k not in ("label", "alerts")}
            if c["start"] is None:  # chunks of rows without times: named, in order
                window["start"] = (epoch + timedelta(days=i)).isoformat()
                window["end"] = (epoch + timedelta(days=i + 1)).isoformat()
            if c["start"] is None or self.by_period:
                window["label"] = c["label"]
            windows.append(window)
        ref = self.reference
        return {
            "endpoint": f"{self.current['source']} against {ref['source']}",
            "model": "" if self.prediction is None else f"its answers in {self.prediction!r}",
            "version": "",
            "reference": f"{ref['source']} ({ref['rows']:,} rows)",
            "generated_at": datetime.now(UTC).isoformat(),
            "windows": windows,
            "alerts": self._alerts(),
        }

    def write_report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (as ``setpoint report`` does)."""
        from setpoint.monitoring.report import ReportData, write_report

        return write_report(path, ReportData.from_dict(self.report_data()))

    def _alerts(self) -> list[dict[str, Any]]:
        """Each condition that held in some chunk, as one alert: open when it still
        held in the last chunk that judged it."""
        alerts: dict[str, dict[str, Any]] = {}
        for c in self.chunks:
            for a in c["alerts"]:
                entry = alerts.setdefault(
                    a["key"], {"key": a["key"], "count": 0, "first_seen": c["end"]}
                )
                entry.update(
                    message=a["message"], severity=a["severity"], last_seen=c["end"], state="open"
                )
                entry["count"] += 1
        last = self.chunks[-1]["alerts"] if self.chunks else []
        still = {a["key"] for a in last}
        for key, entry in alerts.items():
            if key not in still:
                entry["state"] = "resolved"
        return sorted(alerts.values(), key=lambda a: (a["state"], a["key"]))


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def wrap(text: str, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def _layout(head: list[str], cells: list[list[str]], width: int) -> list[str]:
    """Columns as wide as their content; the ``drifted`` column (the fourth) takes
    what is left of ``width`` and folds a longer list onto the next lines, each name
    whole."""
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(head)]
    others = sum(w for i, w in enumerate(widths) if i != 3) + 2 * (len(head) - 1)
    widths[3] = max(len(head[3]), min(widths[3], width - others))
    right = {1, 4, 5}  # rows and the figures

    def lines(values: list[str]) -> list[str]:
        folded = textwrap.wrap(values[3], widths[3], break_long_words=False) or [""]
        out = []
        for n, part in enumerate(folded):
            row = values if n == 0 else [""] * len(values)
            parts = []
            for i, (v, w) in enumerate(zip(row, widths, strict=True)):
                v = part if i == 3 else v
                parts.append(v.rjust(w) if i in right else v.ljust(w))
            out.append("  ".join(parts).rstrip())
        return out

    return [*lines(head), *(text for r in cells for text in lines(r))]
