"""A card's content before it is Markdown or HTML: sections of paragraphs, label-value
facts and tables, all plain text. The sections are written once (``_sections.py``)
and each format renders these few shapes, escaping as it needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Facts:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    caption: str
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Para | Facts | Table


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    blocks: tuple[Block, ...]
