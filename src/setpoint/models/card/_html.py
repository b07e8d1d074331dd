"""The card as one self-contained HTML page: inline CSS, no script, nothing fetched
(the monitoring report's Content-Security-Policy enforces it), readable printed.
Escaping, tables, sections and the base stylesheet are the monitoring report's own."""

from __future__ import annotations

import functools
import string
from importlib import resources

from setpoint.models.card._blocks import Block, Facts, Para, Section
from setpoint.models.card._facts import ModelCard
from setpoint.models.card._sections import sections
from setpoint.monitoring.report._format import _E, _stamp
from setpoint.monitoring.report._render import _CSP, base_css
from setpoint.monitoring.report._sections import _section, _table


@functools.cache
def _page() -> string.Template:
    text = resources.files("setpoint.models.card").joinpath("card.html.tmpl")
    return string.Template(text.read_text(encoding="utf-8"))


def _block(block: Block) -> str:
    if isinstance(block, Para):
        return f"<p>{_E(block.text)}</p>"
    if isinstance(block, Facts):
        rows = "".join(f"<dt>{_E(k)}</dt><dd>{_E(x)}</dd>" for k, x in block.rows)
        return f'<dl class="meta">{rows}</dl>'
    return _table(
        [_E(h) for h in block.head],
        [[_E(c) for c in row] for row in block.rows],
        _E(block.caption),
    )


def _html_section(section: Section) -> str:
    return _section(section.anchor, _E(section.title), "".join(_block(b) for b in section.blocks))


def render_html(card: ModelCard) -> str:
    v = card.version
    return _page().substitute(
        csp=_CSP,
        base_css=base_css(),
        ref=_E(v.ref),
        summary=_E(v.description or f"A {v.flavor} {v.task} model."),
        generated=_E(_stamp(card.generated_at)),
        sections="".join(_html_section(s) for s in sections(card)),
    )
