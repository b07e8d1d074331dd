"""The datasets: every version, its profile, its contract in words, and the rows its
contract put in quarantine, with those rows as a CSV file.

Profiles and contracts come from the metadata store: no dataset file is read. Only
the CSV export reads a quarantine batch's stored rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from setpoint.data.catalog import DatasetVersion
from setpoint.data.contract import ColumnRule
from setpoint.data.profile import ColumnProfile
from setpoint.data.quarantine import QuarantineBatch
from setpoint.ui.pages._page import Download, Page, View
from setpoint.ui.render import figure, percent

KIND_WORDS = {
    "numeric": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "categorical": "a category",
    "string": "text",
    "datetime": "a date and time",
}
# What each contract rule means when a row breaks it.
RULE_WORDS = {
    "type": "not the right kind of value",
    "not_null": "missing",
    "not_finite": "not a finite number",
    "min": "below the smallest value allowed",
    "max": "above the largest value allowed",
    "category": "not one of the allowed values",
    "missing_column": "the column is missing",
    "unknown_column": "a column the contract does not list",
}
_CATEGORIES_SAID = 8  # categories a contract sentence names before "and N more"
_TOP_SHOWN = 5  # commonest values the profile table lists
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula


# -- every dataset ----------------------------------------------------------------------


def gather_index(view: View) -> dict[str, Any]:
    ws = view.workspace
    batches = ws.quarantine.list()
    groups = []
    for latest in ws.datasets.list():
        versions = ws.datasets.list(latest.name)
        groups.append(_dataset(view, latest.name, versions, batches))
    return {"datasets": groups}


def gather_dataset(view: View) -> dict[str, Any]:
    ws = view.workspace
    name = view.params["name"]
    versions = ws.datasets.list(name)  # NotFoundError names the known datasets
    batches = ws.quarantine.list(dataset=name)
    return {
        "page_title": f"Dataset {name}",
        "dataset": _dataset(view, name, versions, batches),
        "batches": [_batch(view, b) for b in batches],
    }


def _dataset(
    view: View, name: str, versions: Sequence[DatasetVersion], batches: Sequence[QuarantineBatch]
) -> dict[str, Any]:
    revisions = view.workspace.datasets.revisions(versions)
    held: dict[str, list[QuarantineBatch]] = {}
    for b in batches:
        held.setdefault(b.dataset, []).append(b)
    rows = [_version_row(view, v, revisions.get(v.id), held.get(v.ref, [])) for v in versions]
    return {
        "name": name,
        "href": view.url("datasets", name),
        "versions": list(reversed(rows)),
        "quarantined": sum(len(held.get(v.ref, [])) for v in versions),
    }


def _version_row(
    view: View, v: DatasetVersion, revision: int | None, batches: Sequence[QuarantineBatch]
) -> dict[str, Any]:
    return {
        "ref": v.ref,
        "version": v.version,
        "href": view.url("datasets", v.name, v.version),
        "rows": v.row_count,
        "columns": len(v.columns),
        "created": v.created_at,
        "owner": v.owner,
        "hash": v.content_hash[:12],
        "revision": revision,
        "erased": None
        if v.erased_at is None
        else {
            "at": v.erased_at,
            "rows": v.erased_rows,
            "by": v.replaced_by,
            "href": None
            if not v.replaced_by
            else view.url("datasets", *v.replaced_by.split("@", 1)),
        },
        "quarantine_batches": len(batches),
        "quarantined_rows": sum(b.n_rejected for b in batches),
    }


# -- one version ------------------------------------------------------------------------


def gather_version(view: View) -> dict[str, Any]:
    ws = view.workspace
    name, number = view.params["name"], view.params["version"]
    version = ws.datasets.get(f"{name}@{number}")
    contract, revision = ws.datasets.contract(version)
    batches = [b for b in ws.quarantine.list(dataset=name) if b.dataset == version.ref]
    trained = ws.registry.trained_on(version)
    return {
        "page_title": f"Dataset {version.ref}",
        "name": name,
        "dataset_href": view.url("datasets", name),
        "version": _version_row(view, version, revision, batches),
        "description": version.description,
        "source": version.source,
        "pii": list(version.pii_columns),
        "profile": [_column(c, version.row_count) for c in version.profile.columns],
        "contract": [
            {"name": column, "text": contract_words(rule)}
            for column, rule in contract.columns.items()
        ],
        "unknown_columns": _unknown_words(contract.unknown_columns),
        "contract_yaml": contract.to_yaml(),
        "batches": [_batch(view, b) for b in batches],
        "models": [
            {"ref": m.ref, "href": view.url("models", m.name, version=m.version)} for m in trained
        ],
    }


def contract_words(rule: ColumnRule) -> str:
    """``a whole number from 18 to 100; never missing``: a column's rule in words."""
    what = KIND_WORDS.get(rule.kind, rule.kind)
    if rule.kind == "categorical" and rule.categories:
        shown = list(rule.categories[:_CATEGORIES_SAID])
        more = len(rule.categories) - len(shown)
        what = (
            "one of " + ", ".join(_quoted(c) for c in shown) + (f" and {more} more" if more else "")
        )
    if rule.min is not None and rule.max is not None:
        what += f" from {_bound(rule.min)} to {_bound(rule.max)}"
    elif rule.min is not None:
        what += f" of at least {_bound(rule.min)}"
    elif rule.max is not None:
        what += f" of at most {_bound(rule.max)}"
    parts = [what, "may be missing" if rule.nullable else "never missing"]
    if not rule.required:
        parts.append("the column may be left out")
    if rule.pii:
        parts.append(
            "personal data: "
            + (
                "left out of the logs"
                if rule.privacy == "drop"
                else "the logs keep only a keyed hash"
            )
        )
    if rule.enforce == "reject":
        parts.append("a server refuses a row outside this")
    return "; ".join(parts)


def _bound(value: float) -> str:
    """A contract's bound as written (they are rounded to a few digits already), with
    thousands separated: 387,200 and 46.42."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,}"


def _quoted(category: str) -> str:
    """A category as a sentence can hold it: quoted when it has a space or a comma."""
    return f"“{category}”" if (" " in category or "," in category or not category) else category


def _unknown_words(policy: str) -> str:
    return {
        "reject": "A batch with a column not listed here is refused.",
        "drop": "A column not listed here is dropped, with a warning.",
        "allow": "A column not listed here is let through.",
    }.get(policy, f"Columns not listed here: {policy}.")


def _column(c: ColumnProfile, n_rows: int) -> dict[str, Any]:
    summary = ""
    if c.kind in ("numeric", "integer") and c.min is not None:
        summary = f"from {figure(c.min)} to {figure(c.max)}, on average {figure(c.mean)}"
    elif c.kind == "datetime" and c.min is not None:
        summary = f"from {str(c.min)[:16].replace('T', ' ')} to {str(c.max)[:16].replace('T', ' ')}"
    elif c.top:
        counted = max(c.count, 1)
        shown = [f"{value} ({percent(n / counted, 0)})" for value, n in c.top[:_TOP_SHOWN]]
        more = c.distinct - len(shown)
        summary = "commonest: " + ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")
    elif c.min is None and c.count:
        summary = "not shown (personal data)"
    return {
        "name": c.name,
        "kind": KIND_WORDS.get(c.kind, c.kind),
        "missing": c.null_fraction,
        "nulls": c.nulls,
        "summary": summary or "—",
        "distinct": c.distinct,
    }


def _batch(view: View, b: QuarantineBatch) -> dict[str, Any]:
    top = b.top_reason
    return {
        "id": b.id,
        "dataset": b.dataset,
        "dataset_href": view.url("datasets", *b.dataset.split("@", 1)),
        "when": b.created_at,
        "by": b.created_by,
        "source": b.source,
        "rows": b.n_rows,
        "rejected": b.n_rejected,
        "share": b.n_rejected / b.n_rows if b.n_rows else None,
        "revision": b.contract_revision,
        "top": None
        if top is None
        else f"{top['column']}: {RULE_WORDS.get(top['rule'], top['rule'])} "
        f"({top['count']:,} time{'s' if top['count'] != 1 else ''})",
        "export": view.url("datasets", "quarantine", f"{b.id}.csv"),
    }


# -- the quarantine as CSV ----------------------------------------------------------------


def quarantine_csv(view: View) -> tuple[str, str, bytes]:
    """A quarantine batch's rejected rows, the row number and the reasons in words
    first. Text that a spreadsheet would run as a formula gets a leading quote."""
    ws = view.workspace
    batch_id = view.integer("batch_id")
    batch = ws.quarantine.get(batch_id)  # NotFoundError says how to list them
    frame = ws.quarantined_rows(batch_id)
    reasons = frame.pop("_reasons") if "_reasons" in frame else pd.Series([""] * len(frame))
    rows = frame.pop("_row") if "_row" in frame else pd.Series(range(len(frame)))
    out = pd.concat(
        [
            pd.DataFrame(
                {"row": rows.to_numpy(), "reasons": [_reasons_words(r) for r in reasons]},
                index=frame.index,
            ),
            frame,
        ],
        axis=1,
    )
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_no_formula)
    text = io.StringIO()
    out.to_csv(text, index=False)
    name = batch.dataset.replace("@", "-")
    return f"quarantine-{batch_id}-{name}.csv", "text/csv; charset=utf-8", text.getvalue().encode()


def _reasons_words(stored: Any) -> str:
    """``grade: not one of the allowed values (Z); term: missing``."""
    try:
        found = json.loads(stored) if isinstance(stored, str) else list(stored or ())
    except (ValueError, TypeError):
        return str(stored)
    said = []
    for r in found:
        if not isinstance(r, Mapping):
            said.append(str(r))
            continue
        text = f"{r.get('column')}: {RULE_WORDS.get(str(r.get('rule')), r.get('rule'))}"
        if r.get("value") is not None:
            text += f" ({r['value']})"
        said.append(text)
    return "; ".join(said)


def _no_formula(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


PAGES = [
    Page("/datasets", "datasets.html", gather_index, "Datasets"),
    Page("/datasets/{name}", "dataset.html", gather_dataset, "Datasets"),
    Page("/datasets/{name}/{version}", "dataset_version.html", gather_version, "Datasets"),
]
DOWNLOADS = [Download("/datasets/quarantine/{batch_id}.csv", quarantine_csv)]
