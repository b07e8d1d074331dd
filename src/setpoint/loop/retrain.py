"""Retraining: a training set from what the endpoint served and what really happened.

The prediction log holds every answered request's inputs; feedback holds the labels
that came later. Joined (the latest label per prediction), the labelled rows of the
training window are the new training set: the champion's features, its target, and the
time of each prediction as the spec's time column (so a time split keeps its meaning:
the newest rows are the hold-out), and the columns fairness is measured by, which
requests carry beside the features (kept in the log, never model inputs unless they
are features). The set is registered as a dataset version whose
source and tags name the log window it came from, checked against the contract of the
champion's training data, and the champion's spec is trained on it. Rows that break
only soft rules (past a bound, a new category) are the new world the candidate must
learn: they stay in the set, and what they broke becomes a contract proposal for a
person. Rows a server would refuse (a hard rule, or a column with ``enforce: reject``)
are quarantined with their reasons.

A retraining runs as a job and must leave one model version however often it is
retried: the version records the job key in its lineage, an attempt first looks for a
version its predecessor registered, and registration happens under the job's lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from setpoint.data.contract import Contract
from setpoint.data.kinds import Kind
from setpoint.data.validation import ValidationReport
from setpoint.errors import InvalidDataError, UsageError
from setpoint.models.registry import ModelVersion
from setpoint.models.spec import TrainSpec
from setpoint.monitoring.traffic import read_traffic

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

CHALLENGER = "challenger"


@dataclass(frozen=True)
class TrainingSet:
    table: pa.Table
    spec: TrainSpec  # the champion's, not yet pointed at the new dataset
    since: datetime | None
    until: datetime
    from_log: int  # labelled rows taken from the log
    from_original: int  # rows of the champion's own training data


def champion_spec(version: ModelVersion) -> TrainSpec:
    if version.spec is None:
        raise UsageError(
            f"{version.ref} was registered, not trained by setpoint, so there is no spec to "
            "retrain it with; train a version from a spec (setpoint train SPEC.yaml) first"
        )
    return TrainSpec.from_dict(version.spec)


def labelled_rows(
    workspace: Workspace,
    endpoint: str,
    version: ModelVersion,
    since: datetime | None,
    until: datetime,
) -> int:
    """How many answered predictions in [since, until) have a label by now."""
    traffic = read_traffic(
        workspace.logs, endpoint, _kinds(version), since=since, until=until, with_labels=True
    )
    return 0 if traffic.labels is None else len(traffic.labels) - traffic.labels.null_count


def training_set(
    workspace: Workspace,
    endpoint: str,
    champion: ModelVersion,
    *,
    since: datetime | None,
    until: datetime,
    include_original: bool = False,
    measured: Sequence[str] = (),
) -> TrainingSet:
    """The labelled traffic of [since, until) as a table the champion's spec trains on,
    with the sensitive columns of its fairness settings and ``measured`` (those of the
    policy's gates) where the requests sent them."""
    spec = champion_spec(champion)
    kinds = _kinds(champion) | _sensitive_kinds(workspace, champion, spec, measured)
    masked = [
        name
        for name, rule in (champion.contract or {}).get("columns", {}).items()
        if rule.get("pii")
    ]
    if masked:
        raise UsageError(
            f"feature(s) {', '.join(masked)} are PII and masked in the prediction log, so "
            f"{champion.ref} cannot be retrained from it; retrain by hand on data that has them"
        )
    traffic = read_traffic(
        workspace.logs, endpoint, kinds, since=since, until=until, with_labels=True
    )
    if traffic.labels is None or traffic.num_rows == 0:
        labelled = pa.array(np.zeros(traffic.num_rows, dtype=bool))
    else:
        labelled = pc.is_valid(traffic.labels)
    inputs = traffic.inputs.filter(labelled)
    columns = {name: _as_kind(inputs.column(name), kinds[name]) for name in kinds}
    columns[spec.target] = (
        pa.array([]) if traffic.labels is None else _labels(traffic.labels.filter(labelled))
    )
    time_column = spec.split.time_column if spec.split else None
    if time_column:
        columns[time_column] = traffic.log.column("ts").filter(labelled)
    table = pa.table(columns)
    from_log = table.num_rows
    from_original = 0
    if include_original:
        original = workspace.load_dataset(_train_dataset(champion))
        wanted = [c for c in table.column_names if c in original.column_names]
        original = original.select(wanted).cast(table.select(wanted).schema, safe=False)
        from_original = original.num_rows
        table = pa.concat_tables([original, table.select(wanted)])
    return TrainingSet(table, spec, since, until, from_log, from_original)


def register_training_set(
    workspace: Workspace, endpoint: str, champion: ModelVersion, data: TrainingSet, job_key: str
) -> tuple[str, dict[str, Any] | None]:
    """Check the set against the champion's training-data contract, quarantine the rows
    a server would refuse, register the rest (rows outside only its ranges and
    categories included); its ref and the contract proposal (None if clean)."""
    reference = _train_dataset(champion)
    outcome = workspace.validate(
        reference,
        data.table,
        mode="quarantine",
        source=f"retraining {job_key}",
        keep_soft=True,
    )
    proposal = None
    if not outcome.report.ok:
        contract, changes = propose_contract(workspace.contract(reference), outcome.report)
        proposal = {
            "against": reference,
            "violations": outcome.report.summary(),
            "quarantine": outcome.quarantine.to_dict() if outcome.quarantine else None,
            "changes": changes,
            "contract": contract.to_dict(),
            "note": "rows outside the contract's ranges or categories were trained on (they "
            "are the new data); rows that cannot be scored were quarantined. If the data "
            "legitimately changed, accept the proposed contract with: setpoint rollouts "
            "accept-contract ROLLOUT (servers and monitors then take those values as known)",
        }
    when = "start" if data.since is None else data.since.isoformat()
    version = workspace.add_dataset(
        f"{endpoint}-traffic",
        outcome.accepted,
        description=f"Labelled traffic of endpoint {endpoint!r}, for retraining {champion.name}.",
        source=f"prediction log + feedback of {endpoint}, {when} to {data.until.isoformat()}",
        tags={
            "from": "prediction-log",
            "endpoint": endpoint,
            "since": when,
            "until": data.until.isoformat(),
            "rows_from_log": str(data.from_log),
            "rows_from_original": str(data.from_original),
            "job": job_key,
        },
    )
    return version.ref, proposal


def propose_contract(contract: Contract, report: ValidationReport) -> tuple[Contract, list[str]]:
    """``contract`` widened to admit what the violations show where that is a change of
    the world, not of the data's quality: new categories, values past a bound, missing
    values. Other violations (a value of the wrong type) are left for the data to fix."""
    columns = dict(contract.columns)
    changes: list[str] = []
    violations = report.violations.to_pylist()
    for name in sorted({v["column"] for v in violations if v["column"] in columns}):
        rule = columns[name]
        mine = [v for v in violations if v["column"] == name]
        seen = {v["rule"] for v in mine}
        new_categories = sorted(
            {str(v["value"]) for v in mine if v["rule"] == "category" and v["value"] is not None}
        )
        if new_categories and rule.categories is not None:
            rule = rule.model_copy(update={"categories": (*rule.categories, *new_categories)})
            changes.append(
                f"{name}: new categor{'y' if len(new_categories) == 1 else 'ies'} "
                f"{', '.join(new_categories)}"
            )
        for bound, pick in (("min", min), ("max", max)):
            values = [_number(v["value"]) for v in mine if v["rule"] == bound]
            found = [x for x in values if x is not None]
            if found:
                edge: float | int = pick(found)
                if rule.kind == "integer" and float(edge).is_integer():
                    edge = int(edge)
                rule = rule.model_copy(update={bound: edge})
                changes.append(f"{name}: {bound} {getattr(columns[name], bound)} -> {edge}")
        if "not_null" in seen and not rule.nullable:
            rule = rule.model_copy(update={"nullable": True})
            changes.append(f"{name}: may be missing")
        columns[name] = rule
    return contract.model_copy(update={"columns": columns}), changes


def train_candidate(
    workspace: Workspace,
    champion: ModelVersion,
    dataset: str,
    job_key: str,
    *,
    guard: Callable[[Connection], None] | None = None,
) -> ModelVersion:
    """The champion's spec trained on ``dataset``: the version a previous attempt of
    the same job registered, or a new one; alias ``challenger`` points at it."""
    existing = registered_by(workspace, champion.name, job_key)
    if existing is None:
        spec = TrainSpec.read(champion_spec(champion).to_dict() | {"dataset": dataset})
        try:
            existing = workspace.train(
                spec,
                lineage={"job": job_key, "retrained_from": champion.ref},
                guard=guard,
            )
        except InvalidDataError as error:
            raise UsageError(f"retraining on {dataset} failed: {error.message}") from None
    workspace.promote(existing.name, existing.version, CHALLENGER)
    return existing


def registered_by(workspace: Workspace, model: str, job_key: str) -> ModelVersion | None:
    for version in reversed(workspace.registry.versions(model)):
        if version.lineage.get("job") == job_key:
            return version
    return None


def _kinds(version: ModelVersion) -> dict[str, Kind]:
    if version.contract is None:
        raise UsageError(f"{version.ref} has no input contract; retraining needs its features")
    return {name: cast(Kind, rule["kind"]) for name, rule in version.contract["columns"].items()}


def _sensitive_kinds(
    workspace: Workspace, champion: ModelVersion, spec: TrainSpec, measured: Sequence[str]
) -> dict[str, Kind]:
    """The kinds (from the training data's contract) of the sensitive columns that are
    not features: read from the log's records as the features are."""
    wanted = [*(spec.fairness.sensitive if spec.fairness else ()), *measured]
    features = (champion.contract or {}).get("columns", {})
    wanted = [name for name in dict.fromkeys(wanted) if name not in features]
    if not wanted:
        return {}
    columns = workspace.contract(_train_dataset(champion)).columns
    return {name: columns[name].kind if name in columns else "categorical" for name in wanted}


def _train_dataset(version: ModelVersion) -> str:
    if version.training_dataset is not None:
        return version.training_dataset
    raise UsageError(f"{version.ref} records no training dataset to check new data against")


def _as_kind(column: pa.ChunkedArray, kind: str) -> pa.Array | pa.ChunkedArray:
    """Integers come back from the log's JSON as floats: whole ones become integers."""
    if kind != "integer" or column.null_count or len(column) == 0:
        return column
    values = column.to_numpy()
    if np.all(np.mod(values, 1) == 0):
        return pa.array(values.astype(np.int64))
    return column


def _number(text: Any) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _labels(labels: pa.Array) -> pa.Array:
    if pa.types.is_floating(labels.type) and len(labels) and not labels.null_count:
        values = labels.to_numpy()
        if np.all(np.mod(values, 1) == 0):
            return pa.array(values.astype(np.int64))
    return labels
