"""The models: every registered version, and one model's versions, evaluation, lineage
and champion history, in words.

Everything comes from the registry's metadata (evaluation, lineage, spec): no artifact
is read. Two versions side by side are ``compare.py``'s; the lineage graph
``_lineage.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from setpoint.errors import NotFoundError
from setpoint.models.evaluation import METRICS
from setpoint.models.registry import CHAMPION, SEGMENT_METRICS, ModelVersion
from setpoint.ui.pages._lineage import lineage
from setpoint.ui.pages._page import Page, View
from setpoint.ui.pages._versions import (
    MEANING,
    SPLIT_WORDS,
    SPLITS,
    direction,
    estimator,
    no_version,
    version_row,
)
from setpoint.ui.render import figure

# -- every model ----------------------------------------------------------------------


def gather_index(view: View) -> dict[str, Any]:
    ws = view.workspace
    rows = []
    for latest in sorted(ws.registry.latest(), key=lambda v: v.name):
        versions = ws.registry.versions(latest.name)
        rows.append(
            {
                "name": latest.name,
                "href": view.url("models", latest.name),
                "versions": [version_row(view, v) for v in reversed(versions)],
            }
        )
    return {"models": rows}


# -- one model ------------------------------------------------------------------------


def gather_model(view: View) -> dict[str, Any]:
    ws = view.workspace
    name = view.params["name"]
    versions = ws.registry.versions(name)  # NotFoundError names the known models
    by_number = {v.version: v for v in versions}
    chosen = _chosen(view, versions)
    history = ws.registry.history(name, CHAMPION)
    return {
        "page_title": f"Model {name}",
        "name": name,
        "versions": [version_row(view, v) for v in reversed(versions)],
        "chosen": _details(view, chosen),
        "history": [_move_words(h) for h in reversed(history)],
        "lineage": lineage(view, name, versions, by_number, history),
    }


def _chosen(view: View, versions: Sequence[ModelVersion]) -> ModelVersion:
    """The version ``?version=N`` asks for, else the champion, else the latest."""
    if view.query.get("version"):
        number = view.integer("version", source="query")
        for v in versions:
            if v.version == number:
                return v
        raise NotFoundError(no_version(versions[0].name, number, versions))
    for v in versions:
        if CHAMPION in v.aliases:
            return v
    return versions[-1]


def _details(view: View, v: ModelVersion) -> dict[str, Any]:
    """One version's evaluation as tables: metrics per split, per segment, fairness."""
    evaluation = v.evaluation
    metrics: Mapping[str, Mapping[str, Any]] = evaluation.get("metrics") or {}
    splits = [s for s in SPLITS if s in metrics] + [s for s in metrics if s not in SPLITS]
    names = [n for n in METRICS if any(n in metrics[s] for s in splits)]
    names += sorted({n for s in splits for n in metrics[s]} - set(names))
    shown = SEGMENT_METRICS.get(v.task, ())
    segments = []
    for column, values in (evaluation.get("segments") or {}).items():
        columns = [n for n in shown if any(n in m for m in values.values())]
        segments.append(
            {
                "column": column,
                "metrics": columns,
                "rows": [
                    {"value": str(value), "n": m.get("n"), "figures": [m.get(n) for n in columns]}
                    for value, m in values.items()
                ],
            }
        )
    gap = evaluation.get("gap") or {}
    return {
        "ref": v.ref,
        "version": v.version,
        "row": version_row(view, v),
        "splits": [{"name": s, "words": SPLIT_WORDS.get(s, s)} for s in splits],
        "metrics": [
            {
                "name": n,
                "meaning": MEANING.get(n, ""),
                "better": direction(n),
                "values": [metrics[s].get(n) for s in splits],
            }
            for n in names
        ],
        "segments": segments,
        "overfit": _overfit_words(gap),
        "n_train": evaluation.get("n_train"),
        "n_validation": evaluation.get("n_validation"),
        "fairness": _fairness(evaluation.get("fairness")),
        "estimator": estimator(v),
        "card_hint": f"setpoint models card {v.ref} -o card.html",
    }


def _overfit_words(gap: Mapping[str, Any]) -> str:
    if not gap.get("likely_overfit"):
        return ""
    return (
        f"Likely overfitting: {gap.get('metric')} is {figure(gap.get('train'))} on the rows it "
        f"learnt from but {figure(gap.get('validation'))} on rows it had not seen "
        f"(a drop of {figure(100 * float(gap.get('relative_gap') or 0), 2)}%)."
    )


def _fairness(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not stored:
        return None
    from setpoint.models.fairness import FairnessTable

    table = FairnessTable.from_dict(stored)
    limit = stored.get("max_disparity")
    over = set(stored.get("over") or ())
    return {
        "metrics": [m.replace("_", " ") for m in table.metrics],
        "groups": [
            {
                "name": g.name,
                "rows": g.rows,
                "too_small": g.too_small,
                "figures": [g.metrics.get(m) for m in table.metrics],
            }
            for g in table.groups
        ],
        "min_group": table.min_group,
        "positive": str(stored.get("positive")),
        "gaps": [
            {
                "text": table.gap(m),
                "over": m in over,
                "limit": limit,
            }
            for m in table.metrics
        ],
    }


def _move_words(move: Mapping[str, Any]) -> dict[str, Any]:
    before = move.get("from_version")
    to = move["to_version"]
    if move["action"] == "rollback":
        text = f"rolled back from version {before} to version {to}"
    elif before is None:
        text = f"version {to} became the champion"
    else:
        text = f"version {to} replaced version {before} as the champion"
    return {"at": move["at"], "actor": move["actor"], "text": text}


PAGES = [
    Page("/models", "models.html", gather_index, "Models"),
    Page("/models/{name}", "model.html", gather_model, "Models"),
]
