"""Two versions of a model side by side: their facts, their metrics with each
difference said in words, per segment, and what was done differently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from setpoint.errors import NotFoundError
from setpoint.models.evaluation import METRICS
from setpoint.models.registry import SEGMENT_METRICS, ModelVersion
from setpoint.ui.pages._page import Page, View
from setpoint.ui.pages._versions import (
    MEANING,
    SPLIT_WORDS,
    SPLITS,
    direction,
    estimator,
    first_dataset,
    no_version,
    version_row,
)
from setpoint.ui.render import figure


def gather_compare(view: View) -> dict[str, Any]:
    ws = view.workspace
    name = view.params["name"]
    versions = ws.registry.versions(name)
    by_number = {v.version: v for v in versions}
    latest = versions[-1].version
    b_number = view.integer("b", source="query") if view.query.get("b") else latest
    a_number = view.integer("a", source="query") if view.query.get("a") else max(1, b_number - 1)
    for number in (a_number, b_number):
        if number not in by_number:
            raise NotFoundError(no_version(name, number, versions))
    a, b = by_number[a_number], by_number[b_number]
    return {
        "page_title": f"{name}: version {a.version} and version {b.version}",
        "name": name,
        "model_href": view.url("models", name),
        "a": version_row(view, a),
        "b": version_row(view, b),
        "choices": [v.version for v in reversed(versions)],
        "metrics": _metric_deltas(a, b),
        "segments": _segment_sides(a, b),
        "differences": _spec_differences(a, b),
        "same": a.version == b.version,
    }


def better_words(metric: str, a: int, va: Any, b: int, vb: Any) -> str:
    """``version 3 is 0.021 better on roc_auc`` (or worse, or the same)."""
    if not _is_number(va) or not _is_number(vb):
        return "not known for both versions"
    known = METRICS.get(metric)
    difference = float(vb) - float(va)
    if difference == 0 or known is None:
        return (
            f"the same on {metric}"
            if difference == 0
            else f"version {b} is {figure(abs(difference))} "
            f"{'higher' if difference > 0 else 'lower'} on {metric}"
        )
    b_better = (difference > 0) == known.higher_is_better
    winner, loser = (b, a) if b_better else (a, b)
    return f"version {winner} is {figure(abs(difference))} better on {metric} than version {loser}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_of(v: ModelVersion) -> tuple[str, Mapping[str, Any]]:
    metrics = v.evaluation.get("metrics") or {}
    for split in SPLITS:
        if split in metrics:
            return split, metrics[split]
    for split, figures in metrics.items():
        return split, figures
    return "", {}


def _metric_deltas(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    split_a, ma = _split_of(a)
    split_b, mb = _split_of(b)
    names = [n for n in METRICS if n in ma or n in mb]
    names += sorted((set(ma) | set(mb)) - set(names))
    return {
        "split": split_b or split_a,
        "split_words": SPLIT_WORDS.get(split_b or split_a, split_b or split_a),
        "mixed": split_a != split_b,
        "rows": [
            {
                "name": n,
                "meaning": MEANING.get(n, ""),
                "better": direction(n),
                "a": ma.get(n),
                "b": mb.get(n),
                "difference": float(mb[n]) - float(ma[n])
                if _is_number(ma.get(n)) and _is_number(mb.get(n))
                else None,
                "words": better_words(n, a.version, ma.get(n), b.version, mb.get(n)),
            }
            for n in names
        ],
    }


def _segment_sides(a: ModelVersion, b: ModelVersion) -> list[dict[str, Any]]:
    """Per segment column both versions have, its values with the row counts and the
    task's first segment metric on each side."""
    sa_ = a.evaluation.get("segments") or {}
    sb = b.evaluation.get("segments") or {}
    out = []
    for column in [c for c in sb if c in sa_]:
        values = list(dict.fromkeys([*sb[column], *sa_[column]]))
        metric = next(
            (
                n
                for n in SEGMENT_METRICS.get(b.task, ())
                if any(n in m for m in (*sa_[column].values(), *sb[column].values()))
            ),
            None,
        )
        rows = []
        for value in values:
            left, right = sa_[column].get(value) or {}, sb[column].get(value) or {}
            va = None if metric is None else left.get(metric)
            vb = None if metric is None else right.get(metric)
            rows.append(
                {
                    "value": value,
                    "n_a": left.get("n"),
                    "n_b": right.get("n"),
                    "a": va,
                    "b": vb,
                    "words": ""
                    if metric is None
                    else better_words(metric, a.version, va, b.version, vb),
                }
            )
        out.append({"column": column, "metric": metric, "rows": rows})
    return out


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: data}


def _spec_differences(a: ModelVersion, b: ModelVersion) -> list[dict[str, str]]:
    """What differs between the two versions' specs and facts, setting by setting."""
    left = _flat({"spec": a.spec or {}}) | {
        "flavor": a.flavor,
        "trained on": a.training_dataset or first_dataset(a),
        "estimator": estimator(a),
    }
    right = _flat({"spec": b.spec or {}}) | {
        "flavor": b.flavor,
        "trained on": b.training_dataset or first_dataset(b),
        "estimator": estimator(b),
    }
    return [
        {
            "setting": key.removeprefix("spec."),
            "a": _shown(left.get(key)),
            "b": _shown(right.get(key)),
        }
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key) and key not in ("spec.model", "spec.description")
    ]


def _shown(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value)


PAGES = [Page("/models/{name}/compare", "model_compare.html", gather_compare, "Models")]
