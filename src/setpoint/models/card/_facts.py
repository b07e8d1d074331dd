"""What a model card says, gathered from the registry, the deployments and the monitors.

The card is regenerated from these every time, so it can never say something the
registry does not: the version (its spec, lineage and evaluation, the fairness table
and global importance registered at training, a person's notes), the dataset versions
it was trained on, the moves of its model's aliases that involved it, the
deployments that named its model, and the monitor windows measured against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from setpoint._display import listing, short_repr
from setpoint._names import split_ref
from setpoint.errors import NotFoundError
from setpoint.monitoring.report import ReportData

if TYPE_CHECKING:
    from setpoint.data.catalog import DatasetCatalog, DatasetVersion
    from setpoint.models.registry import ModelRegistry, ModelVersion
    from setpoint.monitoring.monitor import Monitors
    from setpoint.serving.deployments import Deployment, DeploymentStore


class CardSources(Protocol):
    """What a card is gathered from (a ``Workspace`` is one)."""

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def datasets(self) -> DatasetCatalog: ...

    @property
    def deployments(self) -> DeploymentStore: ...

    @property
    def monitors(self) -> Monitors: ...


@dataclass(frozen=True)
class Watched:
    """One endpoint's monitoring of the version: the windows measured against it and,
    while the endpoint still serves it, the endpoint's unresolved alerts."""

    endpoint: str
    serves_now: bool
    report: ReportData


@dataclass(frozen=True)
class ModelCard:
    version: ModelVersion
    datasets: tuple[DatasetVersion, ...]  # the version's training (or reference) data
    alias_moves: tuple[dict[str, Any], ...]  # {alias, action, at, actor, from/to_version}
    deployments: tuple[Deployment, ...]  # revisions naming the model, oldest first
    watched: tuple[Watched, ...]
    generated_at: datetime

    def __repr__(self) -> str:
        v = self.version
        served = [w.endpoint for w in self.watched if w.serves_now]
        facts = [
            f"{v.flavor} {v.task}",
            f"trained on {listing(d.ref for d in self.datasets)}" if self.datasets else "",
            "fairness measured" if v.evaluation.get("fairness") else "",
            f"served on {listing(served)}" if served else "",
        ]
        return short_repr("ModelCard", v.ref, facts)


def gather(sources: CardSources, ref: str) -> ModelCard:
    """The facts of the card of model version ``ref`` (``NAME@VERSION``, an alias...)."""
    version = sources.registry.get(ref)
    datasets = []
    for entry in version.lineage.get("datasets", []):
        try:
            datasets.append(sources.datasets.get(str(entry["ref"])))
        except NotFoundError:  # erased since: the lineage still names it
            continue
    return ModelCard(
        version=version,
        datasets=tuple(datasets),
        alias_moves=tuple(_alias_moves(sources.registry, version)),
        deployments=tuple(_deployments(sources.deployments, version.name)),
        watched=tuple(_watched(sources, version)),
        generated_at=datetime.now(UTC),
    )


def _alias_moves(registry: ModelRegistry, version: ModelVersion) -> list[dict[str, Any]]:
    """Every move of an alias of the model to or from ``version``, oldest first."""
    names = {a for v in registry.versions(version.name) for a in v.aliases}
    moves = [
        {"alias": alias, **move}
        for alias in sorted(names)
        for move in registry.history(version.name, alias)
        if version.version in (move["from_version"], move["to_version"])
    ]
    return sorted(moves, key=lambda m: str(m["at"]))


def _names_model(ref: str | None, name: str) -> bool:
    return ref is not None and split_ref("model", ref)[0] == name


def _deployments(store: DeploymentStore, name: str) -> list[Deployment]:
    """The revisions of every endpoint whose model or challenger is of model ``name``."""
    revisions = [
        d
        for current in store.current()
        for d in store.history(current.endpoint)
        if _names_model(d.config.model, name) or _names_model(d.config.challenger, name)
    ]
    return sorted(revisions, key=lambda d: d.created_at)


def _serves(sources: CardSources, deployment: Deployment, version: ModelVersion) -> bool:
    """Whether ``deployment`` answers with ``version`` now (its alias resolved now)."""
    try:
        return sources.registry.get(deployment.config.model).id == version.id
    except NotFoundError:
        return False


def _watched(sources: CardSources, version: ModelVersion) -> list[Watched]:
    serving = {d.endpoint for d in sources.deployments.current() if _serves(sources, d, version)}
    found = []
    for monitor in sources.monitors.all():
        data = ReportData.from_dict(sources.monitors.report_data(monitor.endpoint))
        measured_against = monitor.reference.model
        windows = tuple(w for w in data.windows if (w.reference or measured_against) == version.ref)
        serves_now = monitor.endpoint in serving
        if not windows and not serves_now:
            continue
        alerts = tuple(a for a in data.alerts if a.unresolved) if serves_now else ()
        found.append(
            Watched(
                monitor.endpoint,
                serves_now,
                replace(
                    data,
                    model=version.name,
                    version=str(version.version),
                    windows=windows,
                    alerts=alerts,
                ),
            )
        )
    return found
