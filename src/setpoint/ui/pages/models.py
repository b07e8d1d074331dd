"""The models: every registered version, one model's versions, evaluation and lineage,
and two versions side by side, in words.

Everything comes from the registry's metadata (evaluation, lineage, spec): no artifact
is read. The lineage graph runs from the dataset versions a model was trained on,
through its versions, to the endpoints that served them and their latest traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from setpoint._names import LATEST, split_ref
from setpoint.errors import NotFoundError, UsageError
from setpoint.models.evaluation import METRICS
from setpoint.models.registry import CHAMPION, SEGMENT_METRICS, ModelVersion
from setpoint.serving.deployments import Deployment
from setpoint.ui import charts
from setpoint.ui.pages._page import Page, View
from setpoint.ui.render import figure

# What each metric says, for a reader who is not a data scientist.
MEANING = {
    "roc_auc": "how well it ranks the cases that turn out positive above the others "
    "(0.5 is chance, 1 is perfect)",
    "accuracy": "the share of answers that were right",
    "balanced_accuracy": "accuracy with every class counted equally, however rare",
    "f1": "the balance of precision and recall (1 is perfect)",
    "precision": "of the cases it flagged, the share that were truly positive",
    "recall": "of the truly positive cases, the share it flagged",
    "log_loss": "how far its probabilities were from what happened",
    "brier": "the mean squared error of its probabilities",
    "rmse": "the typical size of an error, large errors weighing more",
    "mae": "the average size of an error",
    "r2": "the share of the variation it explains (1 is perfect)",
    "mape": "the average error as a share of the true value",
}
_SPLITS = ("validation", "test", "reference", "train")
_SPLIT_WORDS = {
    "validation": "hold-out rows (not used to train)",
    "test": "test rows",
    "reference": "the reference data",
    "train": "the training rows",
}


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
                "versions": [_version_row(view, v) for v in reversed(versions)],
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
        "name": name,
        "versions": [_version_row(view, v) for v in reversed(versions)],
        "chosen": _details(view, chosen),
        "history": [_move_words(h) for h in reversed(history)],
        "lineage": _lineage(view, name, versions, by_number, history),
    }


def _chosen(view: View, versions: Sequence[ModelVersion]) -> ModelVersion:
    """The version ``?version=N`` asks for, else the champion, else the latest."""
    if view.query.get("version"):
        number = view.integer("version", source="query")
        for v in versions:
            if v.version == number:
                return v
        raise NotFoundError(_no_version(versions[0].name, number, versions))
    for v in versions:
        if CHAMPION in v.aliases:
            return v
    return versions[-1]


def _no_version(name: str, number: int, versions: Sequence[ModelVersion]) -> str:
    known = ", ".join(str(v.version) for v in versions)
    return f"model {name!r} has no version {number}; its versions are {known}"


def _version_row(view: View, v: ModelVersion) -> dict[str, Any]:
    headline = v.headline_metric
    dataset = v.training_dataset or _first_dataset(v)
    return {
        "version": v.version,
        "ref": v.ref,
        "href": view.url("models", v.name, version=v.version),
        "anchor": f"version-{v.version}",
        "created": v.created_at,
        "created_by": v.created_by,
        "task": v.task,
        "flavor": v.flavor,
        "aliases": list(v.aliases),
        "headline": None
        if headline is None
        else {
            "split": headline[0],
            "metric": headline[1],
            "value": headline[2],
            "meaning": MEANING.get(headline[1], ""),
            "better": _direction(headline[1]),
        },
        "dataset": dataset,
        "dataset_href": _dataset_href(view, dataset),
        "notes": v.notes,
        "description": v.description,
        "compare_href": None
        if v.version == 1
        else view.url("models", v.name, "compare", a=v.version - 1, b=v.version),
    }


def _first_dataset(v: ModelVersion) -> str | None:
    for entry in v.lineage.get("datasets") or ():
        return str(entry["ref"])
    return None


def _dataset_href(view: View, ref: str | None) -> str | None:
    if not ref or "@" not in ref:
        return None
    name, version = ref.split("@", 1)
    return view.url("datasets", name, version)


def _direction(metric: str) -> str:
    found = METRICS.get(metric)
    if found is None:
        return ""
    return "higher is better" if found.higher_is_better else "lower is better"


def _details(view: View, v: ModelVersion) -> dict[str, Any]:
    """One version's evaluation as tables: metrics per split, per segment, fairness."""
    evaluation = v.evaluation
    metrics: Mapping[str, Mapping[str, Any]] = evaluation.get("metrics") or {}
    splits = [s for s in _SPLITS if s in metrics] + [s for s in metrics if s not in _SPLITS]
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
        "row": _version_row(view, v),
        "splits": [{"name": s, "words": _SPLIT_WORDS.get(s, s)} for s in splits],
        "metrics": [
            {
                "name": n,
                "meaning": MEANING.get(n, ""),
                "better": _direction(n),
                "values": [metrics[s].get(n) for s in splits],
            }
            for n in names
        ],
        "segments": segments,
        "overfit": _overfit_words(gap),
        "n_train": evaluation.get("n_train"),
        "n_validation": evaluation.get("n_validation"),
        "fairness": _fairness(evaluation.get("fairness")),
        "estimator": _estimator(v),
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


def _estimator(v: ModelVersion) -> str:
    spec = v.spec or {}
    return str(
        (spec.get("estimator") or {}).get("class")
        or v.lineage.get("registered_object")
        or "the task's default"
    )


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


# -- lineage ----------------------------------------------------------------------------


def _lineage(
    view: View,
    name: str,
    versions: Sequence[ModelVersion],
    by_number: Mapping[int, ModelVersion],
    history: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Dataset versions -> model versions -> endpoints -> their latest traffic: the
    graph, and the same as a list of links for whoever cannot see it."""
    ws = view.workspace
    nodes: dict[str, charts.Node] = {}
    edges: list[tuple[str, str]] = []
    for v in versions:
        model_id = f"model:{v.version}"
        note = ", ".join(v.aliases) or v.created_at.strftime("%Y-%m-%d")
        nodes[model_id] = charts.Node(
            model_id, v.ref, "model", view.url("models", name, version=v.version), note
        )
        for entry in v.lineage.get("datasets") or ():
            ref = str(entry["ref"])
            data_id = f"dataset:{ref}"
            nodes.setdefault(
                data_id,
                charts.Node(
                    data_id, ref, "dataset", _dataset_href(view, ref), str(entry.get("role", ""))
                ),
            )
            edges.append((data_id, model_id))
    for deployment in ws.deployments.current():
        served = _served(ws, deployment, name, by_number, history, view.now)
        if not served:
            continue
        endpoint = deployment.endpoint
        deploy_id = f"deployment:{endpoint}"
        now = [f"v{n}" for n in served if served[n]]
        nodes[deploy_id] = charts.Node(
            deploy_id,
            endpoint,
            "deployment",
            view.url("endpoints", endpoint),
            f"serves {', '.join(now)} now" if now else "serves another model now",
        )
        edges += [(f"model:{n}", deploy_id) for n in served]
        traffic = _traffic(ws, endpoint)
        if traffic is not None:
            traffic_id = f"traffic:{endpoint}"
            nodes[traffic_id] = charts.Node(
                traffic_id,
                f"{endpoint} traffic",
                "traffic",
                view.url("endpoints", endpoint),
                traffic,
            )
            edges.append((deploy_id, traffic_id))
    graph = charts.lineage_graph(
        list(nodes.values()), edges, title=f"Lineage of {name}: data, versions, endpoints"
    )
    said = [
        {
            "from": nodes[a].label,
            "from_href": nodes[a].href,
            "to": nodes[b].label,
            "to_href": nodes[b].href,
            "note": nodes[b].note,
        }
        for a, b in dict.fromkeys(edges)
    ]
    return {"graph": graph, "links": said}


def _served(
    ws: Any,
    deployment: Deployment,
    name: str,
    by_number: Mapping[int, ModelVersion],
    champion_moves: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[int, bool]:
    """The versions of model ``name`` an endpoint ever served, each with whether it
    serves it now: its current revision's model and challenger, the versions its
    earlier revisions pinned, and where a revision followed the champion, every
    version the champion pointed at meanwhile."""
    config = deployment.config
    past = ws.deployments.history(deployment.endpoint)
    if not any(_mentions(r.config, name) for r in past):
        return {}
    served: dict[int, bool] = {}
    for ref in (config.model, config.challenger):
        number = _resolve(ref, name, by_number, champion_moves, now)
        if number is not None:
            served[number] = True
    for i, revision in enumerate(past):
        until = past[i + 1].created_at if i + 1 < len(past) else now
        for ref in (revision.config.model, revision.config.challenger):
            for number in _during(ref, name, by_number, champion_moves, revision.created_at, until):
                served.setdefault(number, False)
    return dict(sorted(served.items()))


def _mentions(config: Any, name: str) -> bool:
    return any(r and split_ref("model", r)[0] == name for r in (config.model, config.challenger))


def _resolve(
    ref: str | None,
    name: str,
    by_number: Mapping[int, ModelVersion],
    champion_moves: Sequence[Mapping[str, Any]],
    now: datetime,
) -> int | None:
    found = _during(ref, name, by_number, champion_moves, now, now)
    return found[-1] if found else None


def _during(
    ref: str | None,
    name: str,
    by_number: Mapping[int, ModelVersion],
    champion_moves: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
) -> list[int]:
    """The versions ``ref`` (a reference to model ``name``) named from ``start`` to
    ``end``; an alias other than the champion counts as where it points now."""
    if not ref:
        return []
    try:
        model, selector = split_ref("model", ref)
    except UsageError:
        return []
    if model != name:
        return []
    if selector is None:
        selector = CHAMPION if _champion(by_number) is not None else LATEST
    if selector.isdigit():
        return [int(selector)] if int(selector) in by_number else []
    if selector == LATEST:
        return [max(by_number)]
    if selector != CHAMPION:
        return [n for n, v in by_number.items() if selector in v.aliases]
    out: list[int] = []
    for move in champion_moves:
        at = datetime.fromisoformat(move["at"])
        if at <= start:
            out = [move["to_version"]]
        elif at <= end:
            out.append(move["to_version"])
    return [n for n in dict.fromkeys(out) if n in by_number]


def _champion(by_number: Mapping[int, ModelVersion]) -> int | None:
    for n, v in by_number.items():
        if CHAMPION in v.aliases:
            return n
    return None


def _traffic(ws: Any, endpoint: str) -> str | None:
    """The endpoint's latest monitor window, in words; None without one."""
    try:
        windows = ws.monitors.windows(endpoint, limit=1)
    except NotFoundError:
        return None
    if not windows:
        return None
    window = windows[-1]
    return f"{window.n_rows:,} rows, window to {window.end:%b %d}"


# -- two versions side by side ------------------------------------------------------------


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
            raise NotFoundError(_no_version(name, number, versions))
    a, b = by_number[a_number], by_number[b_number]
    return {
        "name": name,
        "model_href": view.url("models", name),
        "a": _version_row(view, a),
        "b": _version_row(view, b),
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
    for split in _SPLITS:
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
        "split_words": _SPLIT_WORDS.get(split_b or split_a, split_b or split_a),
        "mixed": split_a != split_b,
        "rows": [
            {
                "name": n,
                "meaning": MEANING.get(n, ""),
                "better": _direction(n),
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
        "trained on": a.training_dataset or _first_dataset(a),
        "estimator": _estimator(a),
    }
    right = _flat({"spec": b.spec or {}}) | {
        "flavor": b.flavor,
        "trained on": b.training_dataset or _first_dataset(b),
        "estimator": _estimator(b),
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


PAGES = [
    Page("/models", "models.html", gather_index, "Models"),
    Page("/models/{name}", "model.html", gather_model, "Models"),
    Page("/models/{name}/compare", "model_compare.html", gather_compare, "Models"),
]
