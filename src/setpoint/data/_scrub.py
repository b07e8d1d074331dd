"""Scrubbing an erased subject's values out of what setpoint derived from their rows.

A profile keeps a column's commonest values, its range and quantiles; a contract keeps
allowed categories and a range; a quarantined batch's summary keeps one example value
per rule. Each may be a value that only the subject's rows had (their city, their
income at the top of the range), and so points at them after their rows are gone.

What counts is the value, not the column: :func:`only_theirs` lists, per column, the
values of the subject's rows that no other row has (a value others share names nobody
and stays in the replacement's profile anyway). Values are compared by their canonical
text (``data/pii.py``), and a date or time also by its ISO text, as profiles keep them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from setpoint.data.pii import canonical

Spellings = Mapping[str, frozenset[str]]  # column -> the texts of the subject's own values

# Violations of the whole batch: every quarantined row lists them, the summary once.
_BATCH_RULES = frozenset({"missing_column", "unknown_column"})


def only_theirs(theirs: pa.Table, rest: pa.Table) -> dict[str, frozenset[str]]:
    """Per column of ``theirs`` (the subject's rows), the values no row of ``rest`` has."""
    found: dict[str, frozenset[str]] = {}
    for name in theirs.column_names:
        values = pc.unique(pc.drop_null(theirs.column(name)))
        if len(values) == 0:
            continue
        if name in rest.column_names and rest.num_rows:
            shared = pc.is_in(values, value_set=rest.column(name).combine_chunks().unique())
            values = values.filter(pc.invert(shared))
        spelled = {s for v in values.to_pylist() for s in _spellings(v)}
        if spelled:
            found[name] = frozenset(spelled)
    return found


def _spellings(value: Any) -> set[str]:
    out = {canonical(value)}
    if isinstance(value, dt.date | dt.datetime | dt.time):
        out.add(value.isoformat())
    return out


def _is_theirs(value: Any, spellings: frozenset[str]) -> bool:
    return value is not None and canonical(value) in spellings


def profile(body: dict[str, Any], theirs: Spellings) -> dict[str, Any]:
    """A stored profile (``Profile.to_dict``) without the subject's own values: they
    leave the commonest values, and a range or quantiles they are part of are dropped."""
    out = copy.deepcopy(body)
    for column in out.get("columns", []):
        spellings = theirs.get(column.get("name"), frozenset())
        if not spellings:
            continue
        if column.get("top"):
            column["top"] = [t for t in column["top"] if not _is_theirs(t[0], spellings)]
        if _is_theirs(column.get("min"), spellings) or _is_theirs(column.get("max"), spellings):
            column["min"] = column["max"] = None
        quantiles = column.get("quantiles") or {}
        if any(_is_theirs(q, spellings) for q in quantiles.values()):
            column["quantiles"] = None
    return out


def contract(
    body: dict[str, Any], theirs: Spellings, bounds: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A contract body (``Contract.to_dict``) without the subject's own values: they
    leave the categories, and a bound that is one of them becomes the bound of
    ``bounds`` (column -> rule: the replacement's inferred contract), or goes."""
    out = copy.deepcopy(body)
    for name, rule in (out.get("columns") or {}).items():
        spellings = theirs.get(name, frozenset())
        if not spellings or not isinstance(rule, dict):
            continue
        if rule.get("categories") is not None:
            rule["categories"] = [c for c in rule["categories"] if not _is_theirs(c, spellings)]
        for key in ("min", "max"):
            if _is_theirs(rule.get(key), spellings):
                instead = ((bounds or {}).get(name) or {}).get(key)
                if instead is None or _is_theirs(instead, spellings):
                    del rule[key]
                else:
                    rule[key] = instead
    return out


def masked_contract(body: dict[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """A contract body without any value (range, categories) of ``columns``."""
    out = copy.deepcopy(body)
    for name, rule in (out.get("columns") or {}).items():
        if name in columns and isinstance(rule, dict):
            for key in ("min", "max", "categories"):
                rule.pop(key, None)
    return out


def summary(
    entries: list[dict[str, Any]], removed: pa.Table, kept: pa.Table
) -> list[dict[str, Any]]:
    """A quarantined batch's summary once ``removed`` rows leave it (``kept`` stay): each
    rule counts the rows left, and an example taken from a removed row is replaced by
    one from a kept row (or none)."""
    gone, left = _reasons(removed), _reasons(kept)
    out = []
    for entry in entries:
        key = (entry.get("column"), entry.get("rule"))
        count = int(entry.get("count") or 0)
        if key[1] not in _BATCH_RULES:
            count -= sum(1 for r in gone if r[0] == key)
        if count <= 0:
            continue
        example = entry.get("example")
        theirs = {r[1] for r in gone if r[0] == key}
        others = [r[1] for r in left if r[0] == key]
        if example in theirs and example not in others:
            example = others[0] if others else None
        out.append({**entry, "count": count, "example": example})
    return out


def _reasons(rows: pa.Table) -> list[tuple[tuple[Any, Any], Any]]:
    """Each (column, rule) and value that the rows' ``_reasons`` list."""
    if "_reasons" not in rows.column_names:
        return []
    found = []
    for text in rows.column("_reasons").to_pylist():
        for reason in json.loads(text) if text else []:
            found.append(((reason.get("column"), reason.get("rule")), reason.get("value")))
    return found
