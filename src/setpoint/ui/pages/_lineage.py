"""A model's lineage as a graph: the dataset versions it was trained on, its versions,
the endpoints that served them (now or before) and their latest traffic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from setpoint._names import LATEST, split_ref
from setpoint.errors import NotFoundError, UsageError
from setpoint.models.registry import CHAMPION, ModelVersion
from setpoint.serving.deployments import Deployment
from setpoint.ui import charts
from setpoint.ui.pages._page import View
from setpoint.ui.pages._versions import dataset_href


def lineage(
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
                    data_id, ref, "dataset", dataset_href(view, ref), str(entry.get("role", ""))
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
    return f"{window.n_rows:,} rows last window"
