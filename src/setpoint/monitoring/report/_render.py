"""The page around the sections, and writing it to a file."""

from __future__ import annotations

import functools
import string
from importlib import resources
from pathlib import Path

from setpoint.monitoring.report._data import ReportData
from setpoint.monitoring.report._fairness_section import fairness_section
from setpoint.monitoring.report._format import _DASH, _E, _span, _stamp, _window_labels
from setpoint.monitoring.report._plots import _traffic_plot
from setpoint.monitoring.report._sections import (
    _alerts_section,
    _attribution_section,
    _distribution_section,
    _drift_section,
    _figure_html,
    _performance_section,
    _quality_section,
    _section,
    _summary,
    _verdict,
)

# Nothing may load from elsewhere or run: a safety net under the escaping.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@functools.cache
def _page() -> string.Template:
    """The page around the sections, with its stylesheet (a file of its own so the
    layout and the CSS read as HTML and CSS)."""
    text = resources.files("setpoint.monitoring.report").joinpath("report.html.tmpl")
    return string.Template(text.read_text(encoding="utf-8"))


@functools.cache
def base_css() -> str:
    """The rules this report shares with the model card's page (``base.css``)."""
    text = resources.files("setpoint.monitoring.report").joinpath("base.css")
    return text.read_text(encoding="utf-8")


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document (no external references, no scripts)."""
    ws = data.windows
    labels = _window_labels(ws)
    if not ws:
        period = "no windows yet"
    elif ws[0].label is not None:
        period = _span(ws)
    else:
        period = f"{_stamp(ws[0].start)} to {_stamp(ws[-1].end)}"
    model = f"{data.model}, version {data.version}" if data.version else data.model
    meta = [
        ("Model", model or _DASH),
        ("Reference data", data.reference or _DASH),
        ("Period", period),
        ("Generated", _stamp(data.generated_at)),
    ]
    meta_html = "".join(f"<dt>{_E(k)}</dt><dd>{_E(v)}</dd>" for k, v in meta)
    if ws:
        sections = [
            _section("summary", "Summary", _summary(data)),
            _section("drift", "Input drift over time", _drift_section(ws, labels)),
            _section(
                "distributions", "What changed in the drifted features", _distribution_section(ws)
            ),
            _section("attribution", "What the model's answers rest on", _attribution_section(ws)),
            _section("performance", "Model performance", _performance_section(ws, labels)),
            _section("quality", "Data quality", _quality_section(ws, labels)),
            *(
                [_section("fairness", "Fairness between groups", fair)]
                if (fair := fairness_section(ws))
                else []
            ),
            _section(
                "traffic",
                "Traffic and response time",
                _figure_html(_traffic_plot(ws, labels), "Traffic per window."),
            ),
        ]
    else:
        sections = [
            _section("summary", "Summary", "<p>Nothing to show until the monitor has run.</p>")
        ]
    sections.append(_section("alerts", "Alerts", _alerts_section(data.alerts)))
    return _page().substitute(
        csp=_CSP,
        base_css=base_css(),
        endpoint=_E(data.endpoint),
        verdict=_E(_verdict(data)),
        meta=meta_html,
        sections="".join(sections),
    )


def write_report(path: str | Path, data: ReportData) -> Path:
    """Render and write the report; written to a temporary file and renamed, so a
    reader never sees half a report."""
    return write_page(path, render_report(data))


def write_page(path: str | Path, text: str) -> Path:
    """Write a document through a temporary file renamed into place (its folder made
    when missing), so a reader never sees half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
