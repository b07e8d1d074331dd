"""Erasure: every stored row about one subject, found and removed (GDPR Art. 17).

A subject is named by one column and its value (``customer_id=123``). Their rows are
wherever setpoint keeps rows:

- the logs of every endpoint (predictions, refused rows; in segments and compacted
  Parquet), where a personal-data column holds the value's keyed hash (``data/pii.py``)
  and any other column the value itself; the feedback given for those predictions goes
  with them (it is joined to them by request id and row);
- quarantined batches (rows a contract rejected, kept with their reasons);
- dataset versions.

Logs are rewritten without the rows (``serving/_logrewrite.py``: each file written
anew and renamed over the old one). A quarantined batch gets a new artifact without the
rows. A dataset version is immutable, so one that holds the subject's rows is replaced:
a new version of the same dataset without them (and the same contract) is added, the
old version's bytes are deleted, and its metadata stays, marked erased with the number
of rows and the version that replaces it; loading it says so. Models trained on an
erased version are listed (their lineage names it), so a person can decide to retrain;
their background samples (``models/background.py``, values drawn from the rows) are
drawn again from the rows that remain.

A dry run finds and counts, and changes nothing. Each erasure is an audit event with
the column and what was removed where, and nothing that points at the subject: not
the value, nor its keyed hash (that would still link the event to them). To show a
subject is gone, a dry run for them finds nothing.
Values match as a person means them: ``123``, ``123.0`` and ``"123"`` are one value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from setpoint.data import _scrub, io
from setpoint.data._subject import Subject
from setpoint.data.contract import Contract
from setpoint.errors import UsageError
from setpoint.serving._logrewrite import rewrite_log
from setpoint.store import audit
from setpoint.store.schema import model_versions, monitors, quarantine_batches

if TYPE_CHECKING:
    from setpoint.data.catalog import DatasetVersion
    from setpoint.data.contract import ColumnRule
    from setpoint.workspace import Workspace

LOG_KINDS = ("predictions", "refused")  # the logs that keep a request's inputs
Progress = Callable[[str], None]


@dataclass
class ErasureReport:
    column: str
    subject: str  # the value's keyed hash, for the caller (never stored)
    dry_run: bool
    logs: dict[str, int] = field(default_factory=dict)  # kind -> records (to be) removed
    logs_skipped: int = 0  # records in live segments whose writer did not seal in time
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # batch, rows
    datasets: list[dict[str, Any]] = field(default_factory=list)  # version, rows, replaced_by
    models: list[str] = field(default_factory=list)  # trained on an erased version
    monitors: list[str] = field(default_factory=list)  # endpoints whose reference was rebuilt
    notes: list[str] = field(default_factory=list)  # how the column was matched, for a person

    @property
    def rows(self) -> int:
        found = [*self.logs.values(), *(int(x["rows"]) for x in self.quarantine + self.datasets)]
        return sum(found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "subject": self.subject,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "logs": dict(self.logs),
            "logs_skipped": self.logs_skipped,
            "quarantine": list(self.quarantine),
            "datasets": list(self.datasets),
            "models_trained_on_erased_data": list(self.models),
            "monitors_rebuilt": list(self.monitors),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Scope:
    """Where to look, every argument checked before anything changes."""

    logs: bool  # the logs (of every endpoint, or of ``endpoint``)
    datasets: bool  # the dataset versions and the quarantine (of every dataset, or one)
    versions: list[DatasetVersion]  # the versions not erased of the datasets in scope
    notes: list[str]

    @classmethod
    def check(
        cls, workspace: Workspace, column: str, endpoint: str | None, dataset: str | None
    ) -> _Scope:
        if endpoint is not None:
            workspace.deployments.get(endpoint)  # an unknown endpoint is a mistake
        catalog = workspace.datasets
        names = [dataset] if dataset else [v.name for v in catalog.list()]
        everything = [v for name in names for v in catalog.list(name)]  # NotFoundError
        with workspace.db.read() as conn:
            models = [
                body["columns"]
                for body in conn.execute(sa.select(model_versions.c.contract)).scalars()
                if body
            ]
        known = {c["name"] for v in everything for c in v.columns}
        known.update(name for columns in models for name in columns)
        if column not in known:
            for batch in workspace.quarantine.list(dataset):
                known.update(workspace.quarantine.rows(batch.id).column_names)
        known -= {"_row", "_reasons"}
        if column not in known:
            shown = ", ".join(sorted(known)[:40]) or "none"
            raise UsageError(
                f"no dataset, model or quarantined batch has a column {column!r}; "
                f"known columns: {shown}"
            )
        logs = endpoint is not None or dataset is None
        datasets = dataset is not None or endpoint is None
        versions = [v for v in everything if v.erased_at is None] if datasets else []
        modes = {_mode(catalog.contract(v)[0].columns.get(column)) for v in versions}
        if logs:
            modes.update(_mode_of_body(columns.get(column)) for columns in models)
        return cls(logs, datasets, versions, _notes(column, modes - {None}))


def _mode(rule: ColumnRule | None) -> str | None:
    if rule is None:
        return None
    return rule.pii_mode if rule.pii else "clear"


def _mode_of_body(rule: dict[str, Any] | None) -> str | None:
    if rule is None:
        return None
    pii = rule.get("pii")
    return "drop" if pii == "drop" else "hash" if pii else "clear"


def _notes(column: str, modes: set[str | None]) -> list[str]:
    """What a person should know about how rows were matched by ``column``."""
    notes = []
    if "drop" in modes:
        notes.append(
            f"{column} is dropped from logs (pii: drop), so logs and quarantined rows hold "
            "no value of it to match; erase by another identifying column of the subject"
        )
    if "hash" in modes:
        notes.append(
            f"{column} is personal data (pii: hash): logs and quarantined rows were "
            "matched by the keyed hash of the value"
        )
    if "clear" in modes:
        notes.append(
            f"{column} is not marked PII in the contract: logs keep its values in clear, "
            "and profiles and contracts may hold them (the subject's are scrubbed); mark "
            "it pii: true with setpoint data attach-contract"
        )
    return notes


def erase(
    workspace: Workspace,
    column: str,
    value: Any,
    *,
    endpoint: str | None = None,
    dataset: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ErasureReport:
    """Remove every row whose ``column`` is ``value`` from the logs, the quarantine and
    the dataset versions; with ``dry_run``, only find and count them.

    ``endpoint`` limits the search to that endpoint's logs and ``dataset`` to that
    dataset's versions and quarantined rows; with both, both are searched. Every
    argument is checked before anything changes, and a failure part way is still an
    audit event (``complete: false``) for what was done."""
    subject = Subject.of(column, value, workspace.pii_secret)
    scope = _Scope.check(workspace, subject.column, endpoint, dataset)
    report = ErasureReport(column, subject.hashed, dry_run, notes=scope.notes)
    say = progress or (lambda _step: None)
    try:
        if scope.logs:
            say("the logs")
            _logs(workspace, subject, endpoint, report, say)
        if scope.datasets:
            say("the quarantine")
            _quarantine(workspace, subject, dataset, report)
            say("the datasets")
            _datasets(workspace, subject, scope.versions, report)
    except Exception:
        if not dry_run:
            _record(workspace, report, complete=False)
        raise
    if not dry_run:
        _record(workspace, report, complete=True)
    return report


def _record(workspace: Workspace, report: ErasureReport, *, complete: bool) -> None:
    after = {k: v for k, v in report.to_dict().items() if k != "subject"}
    with workspace.db.write() as conn:
        audit.record(
            conn,
            actor=workspace.actor,
            action="erase",
            entity_type="subject",
            entity=report.column,
            after=after | {"complete": complete},
        )


def _logs(
    workspace: Workspace,
    subject: Subject,
    endpoint: str | None,
    report: ErasureReport,
    say: Progress,
) -> None:
    keys: set[tuple[str, str, int]] = set()  # the erased predictions: endpoint, id, row

    def drop_inputs(table: pa.Table) -> pa.Array:
        found = subject.in_inputs(table.column("inputs"))
        if found.any():
            chosen = table.filter(pa.array(found))
            rows = pc.fill_null(chosen.column("row"), 0).to_pylist()
            keys.update(
                zip(
                    chosen.column("endpoint").to_pylist(),
                    chosen.column("request_id").to_pylist(),
                    rows,
                    strict=True,
                )
            )
        return pa.array(found)

    def drop_feedback(table: pa.Table) -> pa.Array:
        rows = pc.fill_null(table.column("row"), 0).to_pylist()
        given = zip(
            table.column("endpoint").to_pylist(),
            table.column("request_id").to_pylist(),
            rows,
            strict=True,
        )
        return pa.array([key in keys for key in given], pa.bool_())

    for kind in LOG_KINDS:
        done = rewrite_log(
            workspace.logs,
            kind,
            endpoint=endpoint,
            drop=drop_inputs,
            dry_run=report.dry_run,
            # with a store, the first waits for other machines' segments: for all kinds
            settle=kind == LOG_KINDS[0],
            progress=say,
        )
        report.logs[kind] = done.rows_removed
        report.logs_skipped += done.rows_skipped
    done = rewrite_log(
        workspace.logs,
        "feedback",
        endpoint=endpoint,
        drop=drop_feedback,
        dry_run=report.dry_run,
        settle=False,
    )
    report.logs["feedback"] = done.rows_removed
    report.logs_skipped += done.rows_skipped


def _quarantine(
    workspace: Workspace, subject: Subject, dataset: str | None, report: ErasureReport
) -> None:
    store = workspace.data_store
    for batch in workspace.quarantine.list(dataset):
        rows = workspace.quarantine.rows(batch.id)
        if subject.column not in rows.column_names:
            continue
        found = subject.mask(rows.column(subject.column))
        if not found.any():
            continue
        report.quarantine.append({"batch": batch.id, "rows": int(found.sum())})
        if report.dry_run:
            continue
        kept = rows.filter(pa.array(~found))
        artifact = store.put(io.to_parquet(kept))
        with workspace.db.write() as conn:
            conn.execute(
                sa.update(quarantine_batches)
                .where(quarantine_batches.c.id == batch.id)
                .values(
                    artifact=artifact,
                    n_rejected=kept.num_rows,
                    summary=_scrub.summary(batch.summary, rows.filter(pa.array(found)), kept),
                )
            )
            shared = conn.execute(
                sa.select(sa.func.count())
                .select_from(quarantine_batches)
                .where(quarantine_batches.c.artifact == batch.artifact)
            ).scalar_one()
        if not shared:
            store.delete(batch.artifact)


def _datasets(
    workspace: Workspace, subject: Subject, versions: list[DatasetVersion], report: ErasureReport
) -> None:
    for version in versions:
        if subject.column not in {c["name"] for c in version.columns}:
            continue
        table = workspace.datasets.load(version)
        found = subject.mask(table.column(subject.column))
        if not found.any():
            continue
        entry: dict[str, Any] = {"version": version.ref, "rows": int(found.sum())}
        report.datasets.append(entry)
        report.models += [m.ref for m in workspace.registry.trained_on(version)]
        if not report.dry_run:
            entry["replaced_by"] = _replace(workspace, version, table, found, report)


def _replace(
    workspace: Workspace,
    version: DatasetVersion,
    table: pa.Table,
    found: np.ndarray,
    report: ErasureReport,
) -> str | None:
    """Add the rows of ``table`` that are not ``found`` as the version that replaces
    ``version``, with its contract less the values only the subject had; mark the old
    one erased, scrub those values from what was derived from it (its profile and
    contracts, its models' contracts, monitor references) and delete its bytes. None
    when nothing is left to replace it with."""
    catalog = workspace.datasets
    rest = table.filter(pa.array(~found))
    theirs = _scrub.only_theirs(table.filter(pa.array(found)), rest)
    replaced_by = None
    if rest.num_rows:
        added = catalog.add(
            version.name,
            rest,
            description=version.description,
            owner=version.owner,
            tags=version.tags,
            pii_columns=version.pii_columns,
            source=f"{version.ref} without an erased subject's rows",
        )
        inferred = catalog.contract(added)[0].to_dict()
        kept = _scrub.contract(
            catalog.contract(version)[0].to_dict(), theirs, bounds=inferred["columns"]
        )
        if kept != inferred:
            catalog.attach_contract(
                added, Contract.from_dict(kept), note=f"the contract of {version.ref}"
            )
        replaced_by = added.ref
    models = workspace.registry.trained_on(version)
    with workspace.db.write() as conn:
        catalog.mark_erased(
            conn,
            version,
            rows=version.row_count - rest.num_rows,
            replaced_by=replaced_by,
            theirs=theirs,
        )
        for model in models:  # a model's contract is a copy of its dataset's
            if model.contract is not None:
                conn.execute(
                    sa.update(model_versions)
                    .where(model_versions.c.id == model.id)
                    .values(contract=_scrub.contract(model.contract, theirs))
                )
    for model in models:  # its background sample is drawn from the rows (may hold theirs)
        workspace.registry.redraw_background(model, rest, personal=version.pii_columns)
    if not catalog.artifact_in_use(version.artifact):
        workspace.data_store.delete(version.artifact)
    _monitors(workspace, version, replaced_by, report)
    return replaced_by


def _monitors(
    workspace: Workspace, version: DatasetVersion, replaced_by: str | None, report: ErasureReport
) -> None:
    """Rebuild from ``replaced_by`` each monitor reference made from ``version``: its
    stored sample and summary hold the subject's rows."""
    with workspace.db.read() as conn:
        found = conn.execute(sa.select(monitors.c.endpoint, monitors.c.reference)).all()
    for endpoint, reference in found:
        if reference.get("dataset") != version.ref:
            continue
        if replaced_by is None:
            report.notes.append(
                f"monitor {endpoint}'s reference was built from {version.ref}, which has no "
                "row left: rebuild it from other data (setpoint monitor create "
                f"{endpoint} --replace --reference NAME@VERSION)"
            )
            continue
        workspace.monitors.rebuild(endpoint, replaced_by)
        report.monitors.append(endpoint)
