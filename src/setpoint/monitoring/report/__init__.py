"""One self-contained HTML report of an endpoint's monitoring results.

The report is mailed, attached to tickets and opened on machines without internet
access, so it is a single file that fetches nothing: no scripts, no web fonts, no
stylesheets from elsewhere (a Content-Security-Policy in the page enforces it), and
every plot is inline SVG drawn by matplotlib, which stays sharp when zoomed or
printed and keeps its text as text. Plots are drawn on ``matplotlib.figure.Figure``
objects directly, never through pyplot, so rendering a report neither needs a display
nor changes the backend of the process it runs in.

It is written for someone who is not an engineer: a one-sentence verdict first,
plain words with units, colours from the Okabe-Ito palette (told apart with the
common colour-vision deficiencies) and never colour alone (drifted cells are also
outlined, drifted rows also say "drifted"). The latest window's figures are also in
tables, for screen readers and for copying.

The input, :class:`ReportData`, is built with :meth:`ReportData.from_dict` from the
stored monitor results (plain JSON documents): their shape is checked once, with
messages that name the offending field, so the rendering code can trust every value.
Any section may be absent; the report then says so in words.
"""

from setpoint.monitoring.report._data import (
    AlertEntry,
    Estimate,
    FeatureDrift,
    Histogram,
    Latency,
    Multivariate,
    Performance,
    Quality,
    ReportData,
    WindowResult,
)
from setpoint.monitoring.report._render import render_report, write_report

__all__ = [
    "AlertEntry",
    "Estimate",
    "FeatureDrift",
    "Histogram",
    "Latency",
    "Multivariate",
    "Performance",
    "Quality",
    "ReportData",
    "WindowResult",
    "render_report",
    "write_report",
]
