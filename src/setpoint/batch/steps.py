"""The steps of a batch scoring run that do not depend on the engine.

Every engine (the local one in ``score.py``, the Ray one) prepares the model version
once (:func:`prepare_version`: its contract, its loaded predictor, how personal data is
kept, the dataset whose quarantine keeps refused rows), scores each accepted batch
with :func:`score_table`, keeps a file's refused rows with :func:`quarantine`, and,
through an endpoint, logs the scored rows with :func:`endpoint_log`; the run itself
is recorded by ``Workspace.scoring_runs.recording`` (``runs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from setpoint.batch.endpoint_log import EndpointLog, LogLines
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation
from setpoint.data.pii import PiiPolicy
from setpoint.data.quarantine import QuarantineBatch
from setpoint.errors import NotReadyError, UsageError
from setpoint.models.predictor import ARGMAX_FLAVORS, Predictor
from setpoint.models.registry import ModelVersion

if TYPE_CHECKING:
    from setpoint.workspace import Workspace


def predict_arrays(predictor: Predictor, rows: Any) -> tuple[npt.NDArray[Any], Any]:
    """Labels (or numbers) and class probabilities (None for a regressor) of ``rows``."""
    if predictor.task == "classification" and predictor.flavor in ARGMAX_FLAVORS:
        proba = predictor.predict_proba(rows)
        if proba is not None and predictor.classes is not None:
            return np.asarray(predictor.classes)[np.argmax(proba, axis=1)], proba
    proba = predictor.predict_proba(rows)
    return np.asarray(predictor.predict(rows)), proba


def output_names(predictor: Predictor) -> list[str]:
    """The columns scoring adds: ``prediction``, then ``proba_<class>`` per class."""
    classes = predictor.classes if predictor.task == "classification" else None
    return ["prediction", *(f"proba_{c}" for c in classes or [])]


def score_table(
    predictor: Predictor, rows: pa.Table, *, passthrough: Sequence[str] = ()
) -> pa.Table:
    """``rows`` with the predictor's answers as columns (the unit of work of both
    engines: the Ray engine's ``map_batches`` is to call this too). ``passthrough``
    columns (``--keep``: a row id) are not given to the model, only carried along."""
    if rows.num_rows == 0:
        return _with_outputs(predictor, rows, None, None)
    features = rows.drop_columns(list(passthrough)) if passthrough else rows
    # Values far out (1e308) overflow inside a model: a warning, not a failed batch.
    with np.errstate(over="ignore", invalid="ignore"):
        labels, proba = predict_arrays(predictor, features)
    return _with_outputs(predictor, rows, labels, proba)


def _with_outputs(predictor: Predictor, rows: pa.Table, labels: Any, proba: Any) -> pa.Table:
    names = output_names(predictor)
    if labels is None:  # no rows: the columns' types from the model's classes
        types = [_label_type(predictor), *([pa.float64()] * (len(names) - 1))]
        columns = [pa.array([], type=t) for t in types]
    else:
        columns = [pa.array(labels)]
        if len(names) > 1:
            matrix = np.asarray(proba, dtype=np.float64)
            columns += [pa.array(matrix[:, i]) for i in range(len(names) - 1)]
    for name, column in zip(names, columns, strict=True):
        rows = rows.append_column(name, column)
    return rows


def _label_type(predictor: Predictor) -> pa.DataType:
    if predictor.task != "classification" or not predictor.classes:
        return pa.float64()
    return pa.array(predictor.classes).type


@dataclass(frozen=True)
class Scoring:
    """What every engine scores a model version's batches with: its contract, the
    loaded predictor, how personal data is kept, and the dataset whose quarantine
    keeps the refused rows."""

    ref: str
    name: str
    version: int
    contract: Contract
    predictor: Predictor
    pii: PiiPolicy
    dataset: str | None
    keep: tuple[str, ...] = ()  # columns outside the contract, carried along
    # What a batch of accepted rows becomes, when not ``score_table``'s answers
    # (``models explain``: its contributions too).
    score: Callable[..., pa.Table] | None = None


def prepare_version(ws: Workspace, version: ModelVersion, *, keep: Sequence[str] = ()) -> Scoring:
    """``version`` ready to score: refused if it has no contract, or a contract column
    bears the name of one of its outputs; ``keep`` columns must be outside both."""
    if version.contract is None:
        raise NotReadyError(f"{version.ref} has no contract; register it with reference data")
    contract = Contract.from_dict(version.contract)
    predictor = ws.load_model(version.ref)
    clash = [n for n in output_names(predictor) if n in contract.columns]
    if clash:
        raise UsageError(
            f"{version.ref}'s contract has column(s) {', '.join(clash)}, the names of its "
            "outputs; rename them in the data and the contract"
        )
    _check_keep(version.ref, keep, contract, output_names(predictor))
    return Scoring(
        version.ref,
        version.name,
        version.version,
        contract,
        predictor,
        ws.pii_policy(contract),
        _dataset(version.lineage),
        tuple(keep),
    )


def _check_keep(ref: str, keep: Sequence[str], contract: Contract, outputs: list[str]) -> None:
    for name in keep:
        if name in contract.columns:
            raise UsageError(
                f"--keep {name}: {name!r} is a column of {ref}'s contract, checked and "
                "written already; --keep is for columns outside it (a row id)"
            )
        if name in outputs or name in ("_row", "_reasons"):
            raise UsageError(
                f"--keep {name}: scoring writes a column of that name itself; rename it "
                "in the input"
            )
    twice = sorted({n for n in keep if list(keep).count(n) > 1})
    if twice:
        raise UsageError(f"--keep {twice[0]} is given twice; give each column once")


def endpoint_log(ws: Workspace, endpoint: str, scoring: Scoring, run_id: int) -> EndpointLog:
    """The log a run scored through ``endpoint`` writes its rows to."""
    predictor = scoring.predictor
    classes = predictor.classes if predictor.task == "classification" else None
    encoder = LogLines(
        endpoint,
        model=scoring.name,
        version=scoring.version,
        run_id=run_id,
        features=list(scoring.contract.columns),
        classes=list(classes) if classes else None,
        pii=scoring.pii,
    )
    return EndpointLog(ws.logs, encoder)


def quarantine(
    ws: Workspace, scoring: Scoring, outcome: FileValidation, rejected: Path, source: str
) -> QuarantineBatch:
    """Keep the rows ``outcome`` refused (the staged file ``rejected``, as
    ``check_file`` wrote it) in the quarantine of the dataset the model was trained
    on, as one batch from ``source``."""
    assert scoring.dataset is not None
    return record_quarantine(
        ws,
        scoring.dataset,
        outcome.n_rows,
        outcome.n_refused,
        outcome.refused_summary(),
        rejected,
        source,
    )


def record_quarantine(
    ws: Workspace,
    dataset: str,
    n_rows: int,
    n_refused: int,
    summary: list[dict[str, Any]],
    rejected: Path,
    source: str | Path,
) -> QuarantineBatch:
    """The refused rows of the input ``source`` (staged at ``rejected``) kept in the
    quarantine of ``dataset`` as one batch, with their reasons."""
    artifact = ws.data_store.put_file(rejected)
    version = ws.datasets.get(dataset)
    with ws.db.write() as conn:
        return ws.quarantine.record(
            conn,
            contract_id=ws.datasets.contract_id(conn, version),
            dataset=version.ref,
            n_rows=n_rows,
            n_rejected=n_refused,
            summary=summary,
            artifact=artifact,
            source=str(source),
        )


def _dataset(lineage: dict[str, Any]) -> str | None:
    """The dataset version the model was trained on (or registered with), whose
    quarantine keeps the rows its contract refuses."""
    used = lineage.get("datasets") or []
    for role in ("train", "reference"):
        for entry in used:
            if entry.get("role") == role:
                return str(entry["ref"])
    return None
