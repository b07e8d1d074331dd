"""The sections of the page, as HTML.

Written for someone who is not an engineer: a one-sentence verdict first, plain words
with units, and never colour alone (drifted rows also say "drifted"). The latest
window's figures are also in tables, for screen readers and for copying. User text
is escaped where it enters a cell or caption; the cells and captions passed between
these functions are HTML already.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

from setpoint.monitoring.cost import describe
from setpoint.monitoring.report._data import (
    AlertEntry,
    FeatureDrift,
    Quality,
    ReportData,
    WindowResult,
)
from setpoint.monitoring.report._format import (
    _DASH,
    _E,
    _capital,
    _num,
    _p_value,
    _pct,
    _span,
    _stamp,
    _when,
)
from setpoint.monitoring.report._metrics import (
    _estimate,
    _has_trained,
    _metric_list,
    _metric_words,
    _realized,
    _trained,
)
from setpoint.monitoring.report._plots import (
    _distribution_plot,
    _drift_plot,
    _performance_plot,
    _quality_plot,
)

_MAX_HEATMAP_FEATURES = 40
_MAX_DISTRIBUTIONS = 12


def _drifted(w: WindowResult) -> list[FeatureDrift]:
    return sorted((f for f in w.features.values() if f.drifted), key=lambda f: -(f.ratio or 0))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    """Cells are HTML already (escaped by the caller); the first column is a row header."""
    th = "".join(f'<th scope="col">{h}</th>' for h in head)
    body = "".join(
        f'<tr><th scope="row">{r[0]}</th>{"".join(f"<td>{c}</td>" for c in r[1:])}</tr>'
        for r in rows
    )
    return (
        f"<table><caption>{caption}</caption>"
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


def _figure_html(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _not_judged(w: WindowResult) -> str:
    rows = f"{w.n_rows:,} row{'s' if w.n_rows != 1 else ''}"
    return f"the latest window ({_when(w)}) was not judged: {rows}, too few to tell"


def _drift_words(ws: Sequence[WindowResult], at: int) -> str:
    """What window ``at`` says about input drift (it was judged), with since when."""
    w = ws[at]
    drifted = _drifted(w)
    if drifted:
        since = at
        while since > 0 and ws[since - 1].judged and _drifted(ws[since - 1]):
            since -= 1
        return (
            f"input drift in {len(drifted)} of {len(w.features)} features since {_when(ws[since])}"
        )
    if w.multivariate is not None and w.multivariate.drifted:
        return "the inputs shifted jointly (no single feature drifted)"
    if w.features:
        return f"no input drift in {len(w.features)} features"
    return "no input drift figures"


def _verdict(data: ReportData) -> str:
    """One sentence a person can act on: drift (since when the run of windows with
    drift began), the main metric now against the first window, open alerts. A window
    too small to judge is said to be so, never read as "no drift"."""
    if not data.windows:
        return "No monitoring windows have been computed yet for this endpoint."
    ws, last = data.windows, data.windows[-1]
    parts: list[str] = []
    if last.judged:
        words = _capital(_drift_words(ws, len(ws) - 1))
        parts.append(words if _drifted(last) else words + " in the latest window")
    else:
        judged = [i for i, w in enumerate(ws) if w.judged]
        text = _capital(_not_judged(last))
        if judged:
            text += f"; in the last judged window ({_when(ws[judged[-1]])}), "
            text += _drift_words(ws, judged[-1])
        parts.append(text)
    m = next(iter(_metric_list(ws)), "")
    est = [(w, e) for w in ws if (e := _estimate(w, m)) is not None]
    real = [(w, r) for w in ws if (r := _realized(w, m)) is not None]
    if est:
        (w0, first), (_, now) = est[0], est[-1]
        text = f"estimated {_metric_words(m)} {now.value:.2f}"
        text += f" (likely {now.low:.2f} to {now.high:.2f})"
        # Against the model's own figure at training when known, else the first window.
        trained = _trained(ws, m)
        before, when = (trained, "at training") if trained is not None else (first.value, "")
        when = when or f"on {_when(w0)}"
        if trained is not None or len(est) > 1:
            gap = now.value - before
            text += (
                f", about the same as {when}"
                if abs(gap) < 0.005
                else f", {'down' if gap < 0 else 'up'} from {before:.2f} {when}"
            )
        parts.append(text)
    elif real:
        w, value = real[-1]
        cover = w.performance.coverage if w.performance else None
        labelled = f" (labels for {_pct(cover)} of predictions)" if cover is not None else ""
        parts.append(f"realized {_metric_words(m)} {value:.2f}{labelled}")
    else:
        parts.append("no performance figures yet")
    n_open = sum(a.unresolved for a in data.alerts)
    if n_open:
        parts.append(f"{n_open} open alert{'s' if n_open != 1 else ''}")
    return "; ".join(parts) + "."


def _summary(data: ReportData) -> str:
    ws, last = data.windows, data.windows[-1]
    rows = [
        ["Windows", f"{len(ws)} ({_span(ws)})"],
        ["Rows", f"{sum(w.n_rows for w in ws):,} in total; {last.n_rows:,} in the latest window"],
    ]
    judged = [w for w in ws if w.judged]
    if not last.judged:
        rows.append(["Drifted features now", _E(_capital(_not_judged(last)))])
    if judged and judged[-1].features:
        w = judged[-1]
        drifted = _drifted(w)
        names = ", ".join(_E(f.name) for f in drifted[:8]) + (", …" if len(drifted) > 8 else "")
        count = f"{len(drifted)} of {len(w.features)}"
        if w.drift_share is not None:
            count += f" ({w.drift_share:.0%} of the input features)"
        label = "Drifted features now" if w is last else f"Drifted on {_when(w)}"
        rows.append([label, count + (f": {names}" if drifted else "")])
    if last.multivariate is not None:
        mv = last.multivariate
        se = "" if mv.auc_se is None else f" ± {mv.auc_se:.2f}"
        rows.append(
            [
                "Features together",
                f"{'shifted' if mv.drifted else 'no joint shift'} (a classifier tells the "
                f"window from the reference with AUC {mv.auc:.2f}{se}, where 0.5 is chance; "
                f"the threshold is {mv.threshold:.2f})",
            ]
        )
    if last.prediction is not None and last.judged:
        p = last.prediction
        rows.append(
            [
                "Predictions (apart from the features)",
                f"{'drifted' if p.drifted else 'stable'} "
                f"(effect {_num(p.effect)}, threshold {_num(p.threshold)})",
            ]
        )
    n_open = sum(a.unresolved for a in data.alerts)
    acked = sum(a.state == "acknowledged" for a in data.alerts)
    rows.append(["Open alerts", f"{n_open}" + (f" ({acked} acknowledged)" if acked else "")])
    for m in _metric_list(ws):
        e = next((e for w in reversed(ws) if (e := _estimate(w, m)) is not None), None)
        r = next(((w, r) for w in reversed(ws) if (r := _realized(w, m)) is not None), None)
        est = (
            "no estimate"
            if e is None
            else f"estimated {e.value:.2f} (likely {e.low:.2f} to {e.high:.2f})"
        )
        rea = "no labels yet"
        if r is not None:
            cover = r[0].performance.coverage if r[0].performance else None
            rea = f"realized {r[1]:.2f}" + (
                f" from labels on {_pct(cover)} of predictions" if cover is not None else ""
            )
            rea += "" if r[0] is last else f" (window of {_when(r[0])})"
        rows.append([_E(_capital(_metric_words(m))), f"{est}; {rea}"])
    if last.quality is not None:
        q = last.quality
        vol = (
            f"; volume {q.volume / q.expected_volume:.0%} of expected" if q.expected_volume else ""
        )
        if q.contract is not None:
            rejected = (
                f"{q.contract.refused:,} rows refused by the data contract, "
                f"{q.contract.scored:,} answered outside it"
            )
        elif q.rejected is not None:
            rejected = f"{q.rejected:,} rows rejected"
        else:
            rejected = "rejected rows not recorded"
        rows.append(["Data quality now", rejected + vol])
    if last.latency is not None:
        rows.append(
            [
                "Response time now",
                f"median {_num(last.latency.p50_ms, 0)} ms; "
                f"slowest 1% {_num(last.latency.p99_ms, 0)} ms",
            ]
        )
    cost = describe(dict(last.cost)) if last.cost is not None else None
    if cost is not None:
        rows.append(["Cost now", cost])
    return _table(["Measure", "Latest window"], rows, "Where things stand")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{title}</h2>{body}</section>'


def _drift_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    last = ws[-1]
    names = list(dict.fromkeys(n for w in ws for n in w.features))
    if not names:
        return "<p>No feature drift figures were recorded for these windows.</p>"
    worst = {
        n: max((f.ratio or 0 for w in ws if (f := w.features.get(n))), default=0) for n in names
    }
    names.sort(key=lambda n: (not (n in last.features and last.features[n].drifted), -worst[n]))
    shown = names[:_MAX_HEATMAP_FEATURES]
    note = (
        f" Showing the {len(shown)} features that moved most; the other {len(names) - len(shown)} "
        "stayed further below their thresholds."
        if len(names) > len(shown)
        else ""
    )
    intro = (
        "<p>Each cell compares one feature in one window with the reference data. The number is "
        "the size of the change divided by the size that counts as material, so 1.0 or more "
        "(orange, red) is a material change. A feature <strong>drifted</strong> (outlined) when "
        f"the change is both material and statistically significant.{_E(note)}</p>"
    )
    fig = _figure_html(_drift_plot(ws, shown, labels), "Drift effect per feature and window.")
    rows = [
        [
            _E(f.name),
            _E(f.kind),
            _E(f.test or _DASH),
            _num(f.effect, 3),
            _num(f.threshold, 3),
            _p_value(f.p_value),
            "<strong>drifted</strong>" if f.drifted else "stable",
        ]
        for f in sorted(last.features.values(), key=lambda f: (not f.drifted, -(f.ratio or 0)))
    ]
    if not last.judged:
        for row in rows:
            row[-1] = "not judged"
    head = ["Feature", "Kind", "Test", "Effect size", "Threshold", "p-value", "Verdict"]
    caption = f"Every feature in the latest window ({_E(_when(last))})"
    if not last.judged:
        caption += f": not judged, {last.n_rows:,} rows are too few to tell"
    table = _table(head, rows, caption)
    changes = _reference_changes(ws)
    if changes:
        table += "<p>" + " ".join(_E(c) for c in changes) + "</p>"
    return intro + fig + table


def _attribution_section(ws: Sequence[WindowResult]) -> str:
    """Each feature's share of the model's explanation in the latest window that has
    one, against the reference's: the features the model relies on, and whether that
    moved (attribution drift)."""
    last = next((w for w in reversed(ws) if w.attribution), None)
    if last is None:
        return (
            "<p>The model's explanations were not measured in these windows (a model "
            "explained by shap needs the explain extra; personal data among its inputs, "
            "or too few rows in a window, leave them out).</p>"
        )
    intro = (
        "<p>How much of the model's answers each feature explains: its share of the mean "
        "absolute contribution, on the reference data and in the window. A feature the "
        "model does not use has no share whatever its values do; a feature whose share "
        "<strong>moved</strong> changed what the model's answers rest on.</p>"
    )
    ordered = sorted(last.attribution.values(), key=lambda a: -a.reference)
    rows = [
        [
            _E(a.name),
            _pct(a.reference),
            _pct(a.window),
            f"{a.change * 100:+.1f} points",
            "<strong>moved</strong>" if a.drifted else "steady",
        ]
        for a in ordered
    ]
    head = ["Feature", "Reference share", "Window share", "Change", "Verdict"]
    return intro + _table(head, rows, f"Share of the explanation in {_E(_when(last))}")


def _reference_changes(ws: Sequence[WindowResult]) -> list[str]:
    """Sentences for each window measured against another model than the one before
    (after a promotion), as the charts mark them."""
    return [
        f"From {_when(w)} the windows are measured against {w.reference} "
        f"(before: {prev.reference}); the charts mark the change with a dotted line."
        for prev, w in itertools.pairwise(ws)
        if w.reference and prev.reference and w.reference != prev.reference
    ]


def _distribution_section(ws: Sequence[WindowResult]) -> str:
    if not ws[-1].judged:
        return f"<p>{_E(_capital(_not_judged(ws[-1])))}.</p>"
    drifted = _drifted(ws[-1])
    if not drifted:
        return "<p>No feature drifted in the latest window.</p>"
    figures = [
        _figure_html(
            _distribution_plot(f, f.histogram, f"dist{i}"),
            f"Effect {_num(f.effect)} (threshold {_num(f.threshold)}); "
            f"{_E(f.test or 'test')} p-value {_p_value(f.p_value)}.",
        )
        for i, f in enumerate(drifted[:_MAX_DISTRIBUTIONS])
        if f.histogram is not None
    ]
    missing = [f.name for f in drifted if f.histogram is None]
    notes = []
    if len(drifted) > _MAX_DISTRIBUTIONS:
        notes.append(
            f"Showing the {_MAX_DISTRIBUTIONS} features that moved most of {len(drifted)}."
        )
    if missing:
        notes.append(f"No distribution was stored for: {', '.join(missing)}.")
    intro = (
        "<p>The features that drifted in the latest window: the reference (blue, filled) against "
        "the latest window (red line or bars), as the share of rows per range of values or per "
        f"category.</p>{''.join(f'<p>{_E(n)}</p>' for n in notes)}"
    )
    return intro + f'<div class="grid">{"".join(figures)}</div>'


def _performance_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    metrics = _metric_list(ws)
    if not any(w.performance for w in ws):
        return "<p>No performance figures were recorded for these windows.</p>"
    if any(w.performance and w.performance.estimated for w in ws):
        words = (
            "<p>The estimate (blue) is computed from the model's own confidence and needs no "
            "labels; the shaded band is where the true figure most likely lies. Realized "
            "figures (red) come from labels as they arrive, over the labelled share shown "
            "below them."
            + (" The dashed line is the model's figure at training." if _has_trained(ws) else "")
            + "</p>"
        )
    else:
        words = (
            "<p>There is no estimate of performance without labels for this model: estimates "
            "are made for classifiers only, from how confident their predictions are. Until "
            "labels arrive, the drift above is the early warning. Realized figures (red) come "
            "from labels, over the labelled share shown below them.</p>"
        )
    if not metrics:
        return words + "<p>No labels have arrived yet, so there are no realized figures.</p>"
    return (
        words
        + _concept_drift(ws)
        + _figure_html(_performance_plot(ws, metrics, labels), "Performance per window.")
    )


def _concept_drift(ws: Sequence[WindowResult]) -> str:
    """A caveat where labels disagree with the estimate beyond its band."""
    found = [(w, w.performance.concept_drift) for w in ws if w.performance]
    found = [(w, names) for w, names in found if names]
    if not found:
        return ""
    metrics = list(dict.fromkeys(m for _, names in found for m in names))
    days = ", ".join(_when(w) for w, _ in found[:6]) + (", …" if len(found) > 6 else "")
    words = ", ".join(_metric_words(m) for m in metrics)
    return (
        '<p class="caveat"><strong>The estimate and the labels disagree.</strong> In '
        f"{len(found)} window{'s' if len(found) != 1 else ''} ({_E(days)}) the realized "
        f"{_E(words)} fell outside the estimate's likely range. The estimate assumes that the "
        "relation between the inputs and the outcome has not changed; labels that disagree "
        "beyond its range are evidence that it has (concept drift). Trust the realized "
        "figures, and retrain on recent labelled data.</p>"
    )


def _quality_section(ws: Sequence[WindowResult], labels: Sequence[str]) -> str:
    if not any(w.quality for w in ws):
        return "<p>No data quality figures were recorded for these windows.</p>"
    fig = _figure_html(_quality_plot(ws, labels), "Data quality per window.")
    last = ws[-1]
    q = last.quality
    if q is None:
        return fig + "<p>The latest window has no data quality figures.</p>"
    names = sorted(set(q.null_rates) | set(q.out_of_range) | set(q.unseen))
    rows = [
        [
            _E(n),
            _pct(q.null_rates.get(n, f.null_fraction if (f := last.features.get(n)) else None)),
            _pct(last.features[n].reference_null_fraction if n in last.features else None),
            f"{q.out_of_range.get(n, 0):,}",
            f"{q.unseen.get(n, 0):,}",
        ]
        for n in names
        if q.null_rates.get(n) or q.out_of_range.get(n) or q.unseen.get(n)
    ]
    contract = _contract_table(q)
    if not rows:
        return (
            fig
            + "<p>In the latest window no feature has missing or unexpected values.</p>"
            + contract
        )
    head = [
        "Feature",
        "Missing now",
        "Missing in reference",
        "Out of range (rows)",
        "Unseen category (rows)",
    ]
    table = _table(head, rows, "Features with missing or unexpected values in the latest window")
    return fig + table + contract


def _contract_table(q: Quality) -> str:
    """The latest window's rows outside the data contract, by column and rule."""
    if q.contract is None or not q.contract.rules:
        return ""
    rows = [[_E(r.column), _E(r.rule), f"{r.scored:,}", f"{r.refused:,}"] for r in q.contract.rules]
    head = ["Column", "Rule", "Answered, marked (rows)", "Refused (rows)"]
    return (
        "<p>Rows outside the data contract are answered and marked when they break a range "
        "or category (the model can score them, but saw nothing like them in training), "
        "and refused when a value cannot be scored or the column enforces its rules.</p>"
        + _table(head, rows, "Rows outside the data contract in the latest window")
    )


def _alerts_section(alerts: Sequence[AlertEntry]) -> str:
    if not alerts:
        return "<p>No alerts.</p>"
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    ordered = sorted(
        alerts,
        key=lambda a: (
            not a.unresolved,
            rank.get(a.severity, 2),
            -(a.last_seen or a.first_seen or datetime.min.replace(tzinfo=UTC)).timestamp(),
        ),
    )
    rows = [
        [
            _E(a.state + (f" by {a.acked_by}" if a.state == "acknowledged" and a.acked_by else "")),
            f'<span class="sev sev-{a.severity if a.severity in rank else "other"}">'
            f"{_E(a.severity)}</span>",
            _E(a.message),
            _stamp(a.first_seen),
            _stamp(a.last_seen),
            _stamp(a.noticed_at),
            f"{a.count:,}",
        ]
        for a in ordered
    ]
    head = [
        "Status",
        "Severity",
        "What happened",
        "First seen (data)",
        "Last seen (data)",
        "Noticed at",
        "Times",
    ]
    return _table(head, rows, "Alerts, open first")
