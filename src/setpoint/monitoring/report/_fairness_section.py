"""The fairness section: per window, how far apart the groups of the sensitive
columns are on each measured metric, and the latest window's gaps over the limit in
words; left out when no window measured fairness."""

from __future__ import annotations

from collections.abc import Sequence

from setpoint.monitoring.report._data import WindowResult
from setpoint.monitoring.report._format import _DASH, _E, _capital, _num, _when
from setpoint.monitoring.report._sections import _table

__all__ = ["fairness_section"]


def _words(metric: str, labelled: bool) -> str:
    said = metric.replace("_", " ")
    return said if labelled else f"{said} (answers)"


def fairness_section(ws: Sequence[WindowResult]) -> str:
    """The table of each window's gaps, and the latest window's in words."""
    measured = [(w, w.fairness) for w in ws if w.fairness is not None]
    if not measured:
        return ""
    columns = list(dict.fromkeys((g.metric, g.labelled) for _, f in measured for g in f.gaps))
    limit = measured[-1][1].max_disparity
    rows = []
    for w, f in measured:
        by = {(g.metric, g.labelled): g for g in f.gaps}
        cells = []
        for key in columns:
            gap = by.get(key)
            if gap is None or gap.difference is None:
                cells.append(_DASH)
            else:
                cells.append(_num(gap.difference) + (" (over)" if gap in f.over else ""))
        rows.append([_E(_when(w)), *cells])
    head = ["Window", *(_E(_capital(_words(m, labelled))) for m, labelled in columns)]
    words = (
        "<p>How far apart the groups of the sensitive columns are: for each metric, the "
        "largest difference between two groups large enough to judge. The selection rate "
        "(the share answered with the positive class) needs only the answers; the other "
        "rates come from labels as they arrive."
        + ("" if limit is None else f" More than {_num(limit)} apart is over the limit.")
        + "</p>"
    )
    latest = measured[-1][1]
    told = [
        f"<li>{_E(_capital(_words(g.metric, g.labelled)))} differs by {_num(g.difference)} "
        f"between {_E(g.high)} and {_E(g.low)}.</li>"
        for g in latest.over
    ]
    said = (
        f"<p>In the latest window, over the limit:</p><ul>{''.join(told)}</ul>"
        if told
        else "<p>In the latest window no measured difference is over the limit.</p>"
    )
    return words + _table(head, rows, "Largest difference between groups, per window") + said
