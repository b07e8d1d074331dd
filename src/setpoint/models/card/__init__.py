"""Model cards: one document per model version for a reviewer, generated from the
registry and never edited by hand.

:func:`gather` collects what the registry, the deployments and the monitors know of a
version (``_facts.py``); ``_sections.py`` turns it into the sections of Mitchell et
al.'s "Model Cards for Model Reporting" (2019) as plain-text blocks, each always
present and saying so when it has nothing to show; :func:`render_markdown` writes
them under Hugging Face model card front matter, and :func:`render_html` as one
self-contained page that opens offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from setpoint.errors import UsageError
from setpoint.models.card._facts import CardSources, ModelCard, Watched, gather
from setpoint.models.card._html import render_html
from setpoint.models.card._markdown import front_matter, render_markdown
from setpoint.monitoring.report._render import write_page

Format = Literal["markdown", "html"]
FORMATS: dict[str, Format] = {".md": "markdown", ".markdown": "markdown", ".html": "html"}


def format_of(path: Path | None, given: str | None = None) -> Format:
    """The format ``given``, else the one the file's suffix names (Markdown for no
    file: stdout)."""
    if given is not None:
        if given not in ("markdown", "html"):
            raise UsageError(f"--format {given!r}: use markdown or html")
        return "markdown" if given == "markdown" else "html"
    if path is None:
        return "markdown"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise UsageError(
            f"{path}: the card is written as .md or .html; name the file so, "
            "or pass --format markdown|html"
        )
    return found


def render(card: ModelCard, form: Format) -> str:
    return render_markdown(card) if form == "markdown" else render_html(card)


def write_card(path: str | Path, card: ModelCard, form: Format | None = None) -> Path:
    """Render and write the card (its format from the suffix unless given), through a
    temporary file renamed into place."""
    target = Path(path)
    return write_page(target, render(card, form or format_of(target)))


__all__ = [
    "CardSources",
    "Format",
    "ModelCard",
    "Watched",
    "format_of",
    "front_matter",
    "gather",
    "render",
    "render_html",
    "render_markdown",
    "write_card",
]
