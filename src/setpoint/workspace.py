"""A workspace: one folder (or URI) plus one metadata database, and the verbs on them.

Everything setpoint knows lives in those two places, so any number of processes can
share a workspace. :class:`Workspace` is the Python API's front door; the CLI is a thin
layer over it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from sqlalchemy.engine import Connection

from setpoint import __version__
from setpoint._names import check_name
from setpoint.batch.runs import ScoringRuns
from setpoint.data import io
from setpoint.data._batch import to_table
from setpoint.data._sink import RowSink, check_output
from setpoint.data.catalog import DatasetCatalog, DatasetVersion
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, check_file, dropped, explained, refusal
from setpoint.data.outcome import Mode, ValidationOutcome
from setpoint.data.pii import PiiPolicy, workspace_secret
from setpoint.data.quarantine import Quarantine
from setpoint.data.reader import read_batches
from setpoint.errors import NotFoundError, UsageError
from setpoint.models.predictor import Predictor
from setpoint.models.registry import CHAMPION, AliasMove, ModelRegistry, ModelVersion
from setpoint.serving._logremote import LogLocation
from setpoint.serving.deployments import Deployment, DeploymentStore
from setpoint.serving.keys import KeyStore
from setpoint.settings import SETTINGS_FILE, Settings
from setpoint.store import audit
from setpoint.store.artifacts import ArtifactStore
from setpoint.store.db import Database, sqlite_url

if TYPE_CHECKING:
    import pandas as pd

    from setpoint.batch.score import ScoringRun
    from setpoint.erasure import ErasureReport
    from setpoint.models.card import ModelCard
    from setpoint.models.spec import TrainSpec
    from setpoint.monitoring.monitor import Monitors
    from setpoint.serving.loadtest.runner import Options as LoadTestOptions
    from setpoint.serving.loadtest.runner import Report as LoadTestReport
    from setpoint.serving.loadtest.runs import LoadTests
    from setpoint.serving.log import CompactionResult
    from setpoint.serving.retention import PruneResult

Progress = Callable[[str, float], None]

_SETTINGS_HEADER = """\
# setpoint workspace settings. Every setting is listed in docs/settings.md;
# `setpoint settings` shows the value in force and where it came from.
# Environment variables SETPOINT_<NAME> and command-line flags take precedence.
[setpoint]
"""


class Workspace:
    """Datasets, contracts, models and their history, in one folder and one database."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.db = Database(
            settings.database_url or sqlite_url(root / "setpoint.db"),
            busy_timeout=settings.sqlite_busy_timeout,
        )
        self.db.migrate()
        self.actor: str = settings.actor
        staging = root / "staging"  # large objects on their way to a remote store
        self.artifacts = ArtifactStore(
            settings.artifacts_uri or str(root / "artifacts"),
            setting="artifacts_uri",
            staging=staging,
        )
        self.data_store = ArtifactStore(
            settings.data_uri or str(root / "data"), setting="data_uri", staging=staging
        )
        self.datasets = DatasetCatalog(
            self.db,
            self.data_store,
            actor=self.actor,
            range_tolerance=settings.range_tolerance,
            max_categories=settings.max_categories,
            unknown_columns=settings.unknown_columns,
        )
        self.quarantine = Quarantine(self.db, self.data_store, actor=self.actor)
        self.registry = ModelRegistry(self.db, self.artifacts, actor=self.actor)
        self.deployments = DeploymentStore(self.db, self.registry, actor=self.actor)
        self.keys = KeyStore(self.db, actor=self.actor)
        self.scoring_runs = ScoringRuns(self.db, actor=self.actor)
        # Where the prediction log lives: ``logs/`` here, and the store at ``log_uri``
        # when one is set (``serving/_logremote.py``); a bad log_seal_seconds fails now.
        self.logs = LogLocation(
            root,
            settings.log_uri,
            settings.log_seal_seconds,
            lock=None if self.db.is_sqlite else self.db.lock,
        )

    @cached_property
    def pii_secret(self) -> bytes:
        """The key that personal data is hashed with outside the dataset store
        (``data/pii.py``), made on first use in ``secrets/`` of the workspace."""
        return workspace_secret(self.root)

    def pii_policy(self, contract: Contract) -> PiiPolicy:
        """How ``contract``'s personal-data columns are kept outside the dataset store."""
        secret = self.pii_secret if any(r.pii for r in contract.columns.values()) else b""
        return PiiPolicy.of(contract, secret)

    def erase(
        self,
        column: str,
        value: Any,
        *,
        endpoint: str | None = None,
        dataset: str | None = None,
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> ErasureReport:
        """Remove every stored row whose ``column`` is ``value`` (``erasure.py``)."""
        from setpoint.erasure import erase

        return erase(
            self,
            column,
            value,
            endpoint=endpoint,
            dataset=dataset,
            dry_run=dry_run,
            progress=progress,
        )

    @cached_property
    def load_tests(self) -> LoadTests:
        """`setpoint loadtest` runs, recorded (``serving/loadtest/runs.py``)."""
        from setpoint.serving.loadtest.runs import LoadTests  # HdrHistogram loads on use

        return LoadTests(self.db, actor=self.actor)

    @cached_property
    def monitors(self) -> Monitors:
        """Drift, quality and performance monitors of the endpoints (``monitoring/``)."""
        from setpoint.cost import Prices
        from setpoint.monitoring.monitor import Monitors  # scipy and friends load on use

        return Monitors(self, prices=Prices.of(self.settings))

    # -- opening -------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path = ".", **settings: Any) -> Workspace:
        """Create a workspace at ``path`` (or open the one already there).

        ``settings`` given here (e.g. ``database_url``) are written to its
        ``setpoint.toml`` so that every later open uses them.
        """
        root = Path(path).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        settings_file = root / SETTINGS_FILE
        created = not settings_file.exists()
        # Open (and migrate) the database first: a settings file is written only for a
        # workspace that works, so a wrong URL can simply be given again.
        workspace = cls(root, Settings.resolve(root, settings))
        try:
            for store in (workspace.artifacts, workspace.data_store):
                store.check()  # a bucket that does not exist is named now, not later
            if workspace.logs.remote is not None:
                workspace.logs.remote.check()
        except BaseException:
            workspace.close()
            raise
        if created:
            lines = [_SETTINGS_HEADER]
            lines += [f"{k} = {_toml_value(v)}\n" for k, v in settings.items() if v is not None]
            settings_file.write_text("".join(lines), encoding="utf-8")
        if created:
            with workspace.db.write() as conn:
                audit.record(
                    conn,
                    actor=workspace.actor,
                    action="workspace.init",
                    entity_type="workspace",
                    entity=str(root),
                    after={"database": workspace.db.safe_url, "setpoint": __version__},
                )
        return workspace

    @classmethod
    def open(cls, path: str | Path | None = None, **settings: Any) -> Workspace:
        """Open the workspace at ``path``, ``$SETPOINT_WORKSPACE`` or the nearest folder
        at or above the current one holding a ``setpoint.toml``."""
        root = find_root(path)
        return cls(root, Settings.resolve(root, settings))

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- data ----------------------------------------------------------------------

    def add_dataset(
        self,
        name: str,
        data: Any,
        *,
        description: str = "",
        owner: str | None = None,
        tags: dict[str, str] | None = None,
        pii_columns: list[str] | None = None,
        source: str = "",
    ) -> DatasetVersion:
        """Register ``data`` (a DataFrame, an Arrow table, or a path to CSV/Parquet)."""
        check_name("dataset", name)  # before reading a possibly large file
        if isinstance(data, str | Path):
            path = Path(data)
            return self.datasets.add_file(
                name,
                path,
                description=description,
                owner=owner,
                tags=tags,
                pii_columns=pii_columns,
                source=source or str(path.resolve()),
            )
        return self.datasets.add(
            name,
            data,
            description=description,
            owner=owner,
            tags=tags,
            pii_columns=pii_columns,
            source=source,
        )

    def dataset(self, ref: str) -> DatasetVersion:
        return self.datasets.get(ref)

    def load_dataset(self, ref: str) -> pa.Table:
        return self.datasets.load(self.datasets.get(ref))

    def contract(self, ref: str) -> Contract:
        return self.datasets.contract(self.datasets.get(ref))[0]

    def attach_contract(
        self, ref: str, contract: Contract | str, *, note: str = "", force: bool = False
    ) -> int:
        """Make ``contract`` (a Contract or its YAML text) current for a dataset version.

        The version's own data is checked against it first: a contract the data breaks
        is refused with :class:`ContractViolationError` listing the violations, unless
        ``force``, which attaches it and records that it was forced, with the counts."""
        if isinstance(contract, str):
            contract = Contract.from_yaml(contract)
        return self.datasets.attach_contract(
            self.datasets.get(ref), contract, note=note, force=force
        )

    def validate(
        self,
        ref: str,
        batch: Any,
        *,
        mode: Mode | None = None,
        source: str = "",
        keep_soft: bool = False,
    ) -> ValidationOutcome:
        """Check ``batch`` against the contract of dataset ``ref``.

        ``reject`` raises :class:`ContractViolationError` listing the violations when
        there is any; ``quarantine`` keeps the invalid rows with their reasons and
        returns the valid ones; ``warn`` returns every row with the report.
        ``keep_soft`` lets rows that break only soft rules of columns not enforced
        (past a bound, an unseen category) pass, as a server answers them: only the
        violations that would refuse a row at serving reject or quarantine it. The
        outcome's report still lists every violation.
        """
        mode = mode or self.settings.validation_mode
        if mode not in ("reject", "quarantine", "warn"):
            raise UsageError(f"validation mode {mode!r}: use reject, quarantine or warn")
        if isinstance(batch, str | Path):
            path = Path(batch)
            batch = io.read_file(path)
            source = source or str(path.resolve())
        table = to_table(batch)
        version = self.datasets.get(ref)
        contract, revision = self.datasets.contract(version)
        whole = contract.validate(table, whole_column_types=True)
        problems, warnings = explained(contract, whole), dropped(whole)
        report = whole.rows_only()
        refusing = report.split()[0] if keep_soft else report
        if (problems and mode != "warn") or (mode == "reject" and not refusing.ok):
            raise refusal(
                f"{version.ref} (contract revision {revision})",
                problems=problems,
                n_violations=report.n_violations + len(problems),
                n_invalid=int(report.invalid_rows.size),
                n_rows=report.n_rows,
                summary=report.summary(),
                violations=report.to_details(limit=100),
            )
        if mode == "warn":
            accepted = table.select(list(report.keep_columns))
            return ValidationOutcome(mode, report, accepted, None, problems, warnings)
        kept = None
        if not refusing.ok:
            with self.db.write() as conn:
                kept = self.quarantine.keep(
                    conn,
                    contract_id=self.datasets.contract_id(conn, version),
                    dataset=version.ref,
                    report=refusing,
                    batch=table,
                    source=source,
                    pii=self.pii_policy(contract),
                )
        return ValidationOutcome(mode, report, refusing.accepted(table), kept, problems, warnings)

    def quarantined_rows(self, batch_id: int) -> pd.DataFrame:
        """The rows a quarantine batch kept, with ``_row`` and ``_reasons`` columns, as a
        DataFrame (``workspace.quarantine.rows`` gives the Arrow table)."""
        frame: pd.DataFrame = self.quarantine.rows(batch_id).to_pandas()
        return frame

    def validate_file(
        self,
        ref: str,
        path: str | Path,
        *,
        mode: Mode | None = None,
        source: str = "",
        keep_soft: bool = False,
        limit: int = 100,
        block_size: int | None = None,
        output: str | Path | None = None,
    ) -> FileValidation:
        """:meth:`validate` for a CSV or Parquet file of any size, streamed in batches:
        what it keeps is bounded (counts, the summary, the first ``limit``
        violations), and the rows it quarantines are written as they are found. The
        accepted rows are counted; with ``output`` (a .csv or .parquet path) they are
        written there as they are found, the file appearing only when the validation
        passes (``data/filecheck.py``)."""
        mode = mode or self.settings.validation_mode
        if mode not in ("reject", "quarantine", "warn"):
            raise UsageError(f"validation mode {mode!r}: use reject, quarantine or warn")
        path = Path(path)
        target = None if output is None else Path(output)
        if target is not None:
            check_output(target)
        source = source or str(path.resolve())
        version = self.datasets.get(ref)
        contract, revision = self.datasets.contract(version)
        pii = self.pii_policy(contract)
        sinks: list[RowSink] = []
        with self.data_store.staging() as staged:
            rejected = staged if mode == "quarantine" else None

            def consume(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> FileValidation:
                for sink in sinks:  # a CSV read again from the start (widened types)
                    sink.discard()
                sinks[:] = [] if target is None else [RowSink(target)]
                return check_file(
                    contract,
                    schema,
                    batches,
                    mode=mode,
                    keep_soft=keep_soft,
                    limit=limit,
                    pii=pii,
                    rejected=rejected,
                    accepted=sinks[0] if sinks else None,
                )

            try:
                outcome = read_batches(path, consume, block_size=block_size)
                if outcome.refused or (mode == "reject" and outcome.n_refused):
                    raise outcome.error(f"{version.ref} (contract revision {revision})")
                for sink in sinks:
                    sink.commit()
                    outcome.output = sink.path
            finally:
                for sink in sinks:
                    sink.discard()  # a no-op once committed
            if mode == "quarantine" and outcome.n_refused:
                artifact = self.data_store.put_file(staged)
                with self.db.write() as conn:
                    outcome.quarantine = self.quarantine.record(
                        conn,
                        contract_id=self.datasets.contract_id(conn, version),
                        dataset=version.ref,
                        n_rows=outcome.n_rows,
                        n_rejected=outcome.n_refused,
                        summary=outcome.refused_summary(),
                        artifact=artifact,
                        source=source,
                    )
        return outcome

    # -- models ----------------------------------------------------------------------

    def train(
        self,
        spec: TrainSpec | str | Path | dict[str, Any],
        *,
        progress: Progress | None = None,
        lineage: dict[str, Any] | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> ModelVersion:
        """Fit a model from a spec (a TrainSpec, a dict, YAML text or a YAML file) and
        register it with its evaluation and lineage (``lineage`` adds to what is recorded;
        ``guard`` see :meth:`ModelRegistry.register`)."""
        from setpoint.models.training import fit  # the model libraries load when used

        spec = _load_spec(spec)
        version = self.datasets.get(spec.dataset)
        table = self.datasets.load(version)
        contract = self.datasets.contract(version)[0]
        kinds = {name: rule.kind for name, rule in contract.columns.items()}
        personal = {name for name, rule in contract.columns.items() if rule.pii}
        result = fit(spec, table, kinds=kinds, progress=progress, personal=personal)
        contract = contract.restrict(result.features)
        lineage = {
            "datasets": [{"ref": version.ref, "id": version.id, "role": "train"}],
            "spec": result.spec,
            "git": result.git,
            "packages": result.packages,
            "setpoint": __version__,
            "host": platform.node(),
            "train_seconds": result.train_seconds,
            "cpu_seconds": result.cpu_seconds,
            **(lineage or {}),
        }
        evaluation = {
            "metrics": result.metrics,
            "segments": result.segments,
            "gap": result.gap,
            "n_train": result.n_train,
            "n_validation": result.n_validation,
            "dropped_rows": result.dropped_rows,
            "notes": result.notes,
            "importance": result.importance,
            "fairness": result.fairness,
        }
        return self.registry.register(
            spec.model,
            result.predictor,
            contract=contract.to_dict(),
            evaluation=evaluation,
            lineage=lineage,
            datasets_used=[(version, "train")],
            spec=result.spec,
            description=spec.description or "",
            guard=guard,
            background=result.background,
        )

    def register_model(
        self,
        name: str,
        model: Any,
        *,
        reference: Any,
        target: str | None = None,
        features: list[str] | None = None,
        task: Literal["classification", "regression"] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register a model fitted elsewhere, with its reference data.

        ``reference`` is a dataset ref (``loans@3``) or data (DataFrame, Arrow table,
        path) registered as dataset ``<name>-reference``. Features default to every
        reference column but ``target``. When ``target`` is given the model is
        evaluated on the reference data (in-sample: say so when reading the figures).
        """
        if isinstance(reference, str) and "@" in reference and not Path(reference).exists():
            version = self.datasets.get(reference)
        else:
            version = self.add_dataset(f"{name}-reference", reference, source="register_model")
        table = self.datasets.load(version)
        features = features or [c for c in table.column_names if c != target]
        missing = [
            c for c in [*features, *([target] if target else [])] if c not in table.column_names
        ]
        if missing:
            raise UsageError(
                f"column(s) {', '.join(missing)} are not in the reference data {version.ref}; "
                f"its columns are {', '.join(table.column_names)}"
            )
        contract = self.datasets.contract(version)[0].restrict(features)
        kinds = {name: rule.kind for name, rule in contract.columns.items()}
        from setpoint.models import flavors
        from setpoint.models.evaluation import evaluate

        predictor = flavors.from_object(model, features=features, task=task, kinds=kinds)
        evaluation: dict[str, Any] = {"metrics": {}}
        if target is not None:
            frame = table.select(features).to_pandas()
            y = table.column(target).to_numpy(zero_copy_only=False)
            evaluation = {
                "metrics": {
                    "reference": evaluate(
                        y,
                        predictor.predict(frame),
                        predictor.predict_proba(frame),
                        task=predictor.task,
                        classes=predictor.classes,
                    )
                },
                "note": "in-sample: measured on the reference data the model was given with",
            }
        return self.registry.register(
            name,
            predictor,
            contract=contract.to_dict(),
            evaluation=evaluation,
            lineage={
                "datasets": [{"ref": version.ref, "id": version.id, "role": "reference"}],
                "registered_object": f"{type(model).__module__}.{type(model).__qualname__}",
                "setpoint": __version__,
            },
            datasets_used=[(version, "reference")],
            description=description,
        )

    def model(self, ref: str) -> ModelVersion:
        return self.registry.get(ref)

    def load_model(self, ref: str) -> Predictor:
        """The predictor of ``NAME[@VERSION|@ALIAS]``, verified against its hashes."""
        return self.registry.load(self.registry.get(ref))

    def promote(self, name: str, version: int, alias: str = CHAMPION) -> AliasMove:
        return self.registry.promote(name, version, alias)

    def rollback(self, name: str, alias: str = CHAMPION) -> AliasMove:
        return self.registry.rollback(name, alias)

    def model_card(self, ref: str) -> ModelCard:
        """What the model card of version ``ref`` says (``models/card``): render it with
        ``setpoint.models.card.render_markdown`` or ``render_html``, or ``write_card``."""
        from setpoint.models.card import gather  # the monitoring report's helpers load

        return gather(self, ref)

    def annotate(self, ref: str, notes: str) -> ModelVersion:
        """Set a model version's notes (empty text clears them), without retraining."""
        return self.registry.annotate(ref, notes)

    def predict_files(
        self,
        model: str,
        inputs: str | Path | Sequence[str | Path],
        output: str | Path,
        *,
        endpoint: bool | None = None,
        keep: Sequence[str] = (),
        workers: int | None = None,
        block_size: int | None = None,
        progress: Callable[[str, float], None] | None = None,
        engine: str = "local",
        address: str | None = None,
        compression: str | None = None,
    ) -> ScoringRun:
        """Score CSV or Parquet files (a path, a glob, or a list) with ``model`` into
        ``output`` (.csv or .parquet), streamed in batches on ``workers`` threads (one
        per core by default): rows the model's contract refuses are quarantined with
        their reasons, the others written with ``prediction`` (and ``proba_<class>``
        for a classifier), in the input's order (``batch/score.py``). ``model`` may
        name an endpoint (``endpoint=True`` says it does): its serving version scores
        and the rows go to its logs, monitored as online traffic. ``keep`` columns (a
        row id) are left out of the contract check and copied to the output. The run
        is recorded in ``scoring_runs``. ``engine="ray"`` scores them on the Ray
        cluster at ``address`` instead, on ``workers`` actors (``batch/ray_engine.py``),
        with the same output. A Parquet output is written with ``compression``
        (snappy, zstd, lz4 or none; default snappy)."""
        from setpoint.batch.score import predict_files

        return predict_files(
            self,
            model,
            inputs,
            output,
            endpoint=endpoint,
            keep=keep,
            workers=workers,
            block_size=block_size,
            progress=progress,
            engine=engine,
            address=address,
            compression=compression,
        )

    # -- serving ---------------------------------------------------------------------

    def deploy(self, endpoint: str, *, note: str = "", **changes: Any) -> Deployment:
        """Create or change an endpoint: ``deploy("credit", model="credit-risk@champion")``.

        Settings not given keep their current values; see
        :class:`~setpoint.serving.config.DeploymentConfig` for them all.
        """
        return self.deployments.deploy(endpoint, note=note, **changes)

    def loadtest(
        self,
        endpoint: str,
        options: LoadTestOptions | None = None,
        *,
        progress: Callable[..., None] | None = None,
        on_batch: Callable[[], None] | None = None,
        **fields: Any,
    ) -> LoadTestReport:
        """Load ``endpoint`` on a running server (``url=``, default where `setpoint
        serve` listens) step by step until its p99 passes ``p99_ms`` or a request
        fails: the sustainable rate, the capacity plan beside batch scoring, and the
        run recorded in ``load_tests`` (``serving/loadtest/``). Give ``options``, or
        their fields as keywords (``rate=200, p99_ms=20``)."""
        from setpoint.serving.loadtest.runner import Options, loadtest

        if options is None:
            unknown = sorted(set(fields) - set(Options.__dataclass_fields__))
            if unknown:
                raise UsageError(
                    f"loadtest takes no option {unknown[0]!r}; it takes "
                    + ", ".join(Options.__dataclass_fields__)
                )
            options = Options(**fields)
        return loadtest(self, endpoint, options, progress=progress, on_batch=on_batch)

    def prune_logs(
        self, endpoint: str | None = None, *, now: datetime | None = None, dry_run: bool = False
    ) -> list[PruneResult]:
        """Delete log records older than the endpoint's ``log_retention`` (every endpoint
        with one when ``endpoint`` is None); the daily retention job does the same."""
        from setpoint.serving.retention import prune_all

        return prune_all(self, endpoint, now=now, dry_run=dry_run)

    def compact_logs(self) -> dict[str, CompactionResult]:
        """Turn the closed segments of every log into Parquet (in the store, with
        ``log_uri``); the hourly compaction job does the same."""
        from setpoint.serving.compaction import compact_all

        return compact_all(self)

    def audit(
        self,
        *,
        entity_type: str | None = None,
        entity: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        before_id: int | None = None,
        limit: int | None = 100,
    ) -> list[audit.AuditEvent]:
        """Audit events, newest first, filtered as ``store.audit.events`` says."""
        with self.db.read() as conn:
            return audit.events(
                conn,
                entity_type=entity_type,
                entity=entity,
                action=action,
                actor=actor,
                before_id=before_id,
                limit=limit,
            )


def find_root(path: str | Path | None) -> Path:
    if path is not None:
        root = Path(path).expanduser().resolve()
        if not (root / SETTINGS_FILE).is_file():
            raise NotFoundError(
                f"{root} is not a setpoint workspace (no {SETTINGS_FILE}); "
                f"create one with: setpoint init {path}"
            )
        return root
    env = os.environ.get("SETPOINT_WORKSPACE")
    if env:
        return find_root(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    raise NotFoundError(
        f"no setpoint workspace at {here} or above it; create one with: setpoint init, "
        "or point at one with --workspace PATH or SETPOINT_WORKSPACE"
    )


def _load_spec(spec: TrainSpec | str | Path | dict[str, Any]) -> TrainSpec:
    # Imported here: its pydantic models cost some 0.06 CPU-s to build, which every
    # command opening a workspace (setpoint predict) paid for training's sake.
    from setpoint.models.spec import TrainSpec

    if isinstance(spec, TrainSpec):
        return spec
    if isinstance(spec, dict):
        return TrainSpec.from_dict(spec)
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"{path}: no such spec file")
        try:
            return TrainSpec.from_yaml(path.read_text(encoding="utf-8"), source=str(path))
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    return TrainSpec.from_yaml(spec)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
