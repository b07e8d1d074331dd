"""Monitors: per endpoint, windows of traffic compared with a reference, as a time series.

``create`` builds and stores the reference (``reference.py``) with the monitor's
configuration. ``run`` computes every complete window not computed yet (windows are
fixed spans of time aligned to the epoch, e.g. each UTC hour or day, so that reruns
and several machines agree on them), stores each window's results, and raises or
resolves alerts. Old windows are never recomputed unless asked (``recompute``).

Per window: drift of each feature and of the model's outputs (``drift.py``, with
thresholds learned for the window's size when asked), the domain classifier, data
quality (missing values, values outside the reference's range, unseen categories,
volume against the previous windows), latency, freshness (how old the newest
prediction, label and training data are), realized performance where labels have
arrived, and, for classifiers, estimated performance with its band.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from setpoint._display import count, short_repr
from setpoint.cost import Prices
from setpoint.data.kinds import Kind
from setpoint.errors import ConflictError, NotFoundError
from setpoint.monitoring import digest as digests
from setpoint.monitoring import fairness, parallel, rollups
from setpoint.monitoring import reference as references
from setpoint.monitoring.alerts import AlertStore
from setpoint.monitoring.backfill import BackfillResult, backfill
from setpoint.monitoring.conditions import REALIZED, concept_drift, conditions
from setpoint.monitoring.series import WindowDigest, read_series
from setpoint.monitoring.settings import MonitorConfig
from setpoint.monitoring.traffic import read_traffic
from setpoint.monitoring.webhooks import Notifier
from setpoint.monitoring.window import (
    VOLUME_WINDOWS,
    Measurement,
    ReferenceParts,
    Window,
    aware,
)
from setpoint.store import audit
from setpoint.store.schema import monitor_rollups, monitor_windows, monitors

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from setpoint.monitoring._sources import Sources
    from setpoint.monitoring.parallel import Measured

_SHORTEST_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Monitor:
    id: int
    endpoint: str
    config: MonitorConfig
    reference: references.Reference
    created_at: datetime
    created_by: str

    def __repr__(self) -> str:
        ref = self.reference
        facts = [
            f"window {self.config.window}",
            f"{ref.model} against {ref.dataset} ({count(ref.n_rows)} rows)",
            f"{len(ref.features)} features",
        ]
        return short_repr("Monitor", self.endpoint, facts)

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "endpoint": self.endpoint,
            "config": self.config.to_dict(),
            "reference": {
                "model": ref.model,
                "dataset": ref.dataset,
                "rows": ref.n_rows,
                "features": ref.features,
                "performance": ref.performance,
                "time_column": ref.time_column,
                "learned_from_time": ref.learned.get(self.config.window),
            },
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


class Monitors:
    """The monitors of a workspace (``sources``: what they read and write, see
    ``_sources.py``; a ``Workspace`` is one)."""

    def __init__(
        self,
        sources: Sources,
        *,
        clock: Callable[[], datetime] = partial(datetime.now, UTC),
        prices: Prices | None = None,
    ) -> None:
        self._sources = sources
        # What a window's predictions cost is priced at these (None: not priced).
        self.prices = prices
        self._clock = clock  # the time now: windows end by it, freshness is measured from it
        self.alerts = AlertStore(sources.db, actor=sources.actor)

    # -- configuration --------------------------------------------------------------

    def create(
        self,
        endpoint: str,
        config: MonitorConfig | None = None,
        *,
        reference: str | None = None,
        replace: bool = False,
    ) -> Monitor:
        """A monitor for ``endpoint``, its reference built from the model the endpoint
        serves now (or the dataset ``reference``). ``replace`` rebuilds an existing one
        (its computed windows are dropped: they were measured against another reference)."""
        config = config or MonitorConfig()
        deployment = self._sources.deployments.get(endpoint)
        built = references.build_reference(
            self._sources, deployment.config.model, reference, config=config
        )
        now = datetime.now(UTC)
        row = {
            "endpoint": endpoint,
            "config": config.to_dict(),
            "reference": built.to_dict(),
            "created_at": now,
            "updated_at": now,
            "created_by": self._sources.actor,
        }
        with self._sources.db.write() as conn:
            existing = conn.execute(
                sa.select(monitors.c.id).where(monitors.c.endpoint == endpoint)
            ).scalar_one_or_none()
            if existing is not None and not replace:
                raise ConflictError(
                    f"endpoint {endpoint!r} already has a monitor; pass --replace to rebuild it"
                )
            if existing is not None:
                conn.execute(
                    sa.delete(monitor_windows).where(monitor_windows.c.monitor_id == existing)
                )
                conn.execute(
                    sa.delete(monitor_rollups).where(monitor_rollups.c.monitor_id == existing)
                )
                conn.execute(sa.update(monitors).where(monitors.c.id == existing).values(**row))
                action = "monitor.replace"
            else:
                conn.execute(sa.insert(monitors).values(**row))
                action = "monitor.create"
            audit.record(
                conn,
                actor=self._sources.actor,
                action=action,
                entity_type="monitor",
                entity=endpoint,
                after={"config": config.to_dict(), "model": built.model, "dataset": built.dataset},
            )
        return self.get(endpoint)

    def rebase(self, endpoint: str) -> Monitor:
        """Compare from now on with the model the endpoint serves now (after a promotion),
        keeping the windows computed so far: they are the history of the endpoint, and
        each names the reference it was measured against."""
        monitor = self.get(endpoint)
        deployment = self._sources.deployments.get(endpoint)
        built = references.build_reference(
            self._sources, deployment.config.model, config=monitor.config
        )
        with self._sources.db.write() as conn:
            self._replace_reference(conn, monitor, built, "monitor.rebase")
        return self.get(endpoint)

    def rebuild(self, endpoint: str, dataset: str) -> Monitor:
        """Build the reference again from ``dataset``, scored by the same model, keeping
        the windows: erasure replaces the reference's data with the same rows less one
        subject's, whose values must not stay in the stored sample and summary."""
        monitor = self.get(endpoint)
        old = monitor.reference
        built = references.build_reference(self._sources, old.model, dataset, config=monitor.config)
        with self._sources.db.write() as conn:
            self._replace_reference(conn, monitor, built, "monitor.rebuild")
            used = {
                digest
                for ref in conn.execute(sa.select(monitors.c.reference)).scalars()
                for digest in (ref.get("sample"), ref.get("calibration"))
            }
        for digest in (old.sample, old.calibration):
            if digest is not None and digest not in used:
                self._sources.artifacts.delete(digest)
        return self.get(endpoint)

    def _replace_reference(
        self, conn: Connection, monitor: Monitor, built: references.Reference, action: str
    ) -> None:
        """Store ``built`` as ``monitor``'s reference, audited as ``action``."""
        conn.execute(
            sa.update(monitors)
            .where(monitors.c.id == monitor.id)
            .values(reference=built.to_dict(), updated_at=datetime.now(UTC))
        )
        audit.record(
            conn,
            actor=self._sources.actor,
            action=action,
            entity_type="monitor",
            entity=monitor.endpoint,
            before={"model": monitor.reference.model, "dataset": monitor.reference.dataset},
            after={"model": built.model, "dataset": built.dataset},
        )

    def get(self, endpoint: str) -> Monitor:
        with self._sources.db.read() as conn:
            row = conn.execute(sa.select(monitors).where(monitors.c.endpoint == endpoint)).first()
        if row is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} has no monitor; "
                f"create one with: setpoint monitor create {endpoint}"
            )
        return Monitor(
            id=row.id,
            endpoint=row.endpoint,
            config=MonitorConfig.from_dict(row.config),
            reference=references.Reference.from_dict(row.reference),
            created_at=aware(row.created_at),
            created_by=row.created_by,
        )

    def all(self) -> list[Monitor]:
        with self._sources.db.read() as conn:
            names = conn.execute(
                sa.select(monitors.c.endpoint).order_by(monitors.c.endpoint)
            ).scalars()
            return [self.get(name) for name in list(names)]

    def windows(self, endpoint: str, *, limit: int | None = None) -> list[Window]:
        """The computed windows, oldest first (the newest ``limit`` of them)."""
        monitor = self.get(endpoint)
        query = (
            sa.select(monitor_windows)
            .where(monitor_windows.c.monitor_id == monitor.id)
            .order_by(monitor_windows.c.start.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self._sources.db.read() as conn:
            rows = list(conn.execute(query))
        return [
            Window(aware(r.start), aware(r.end), r.n_rows, dict(r.results), endpoint)
            for r in reversed(rows)
        ]

    def series(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        daily: bool = False,
    ) -> list[WindowDigest]:
        """The windows that start in [``since``, ``until``), oldest first, as digests
        (``digest.py``): what time series over many windows draw, without reading the
        windows' full results (``windows`` reads those).

        ``daily``: the days instead, each its windows merged (``rollups.py``; the first
        day whole even where ``since`` cuts it), spanning a day each. A long range of
        short windows reads 24 times fewer digests so; ask for it only when the
        monitor's window is shorter than a day (longer ones have no finer rollup to
        gain from)."""
        monitor = self.get(endpoint)
        with self._sources.db.read() as conn:
            if daily:
                return rollups.read_daily(conn, monitor.id, since=since, until=until)
            return read_series(conn, monitor.id, since=since, until=until)

    def rebuild_rollups(self, endpoint: str) -> int:
        """Make ``endpoint``'s daily rollups again from its windows (after windows were
        inserted in bulk, bypassing ``run``); the number of days."""
        monitor = self.get(endpoint)
        with self._sources.db.write() as conn:
            return rollups.rebuild(conn, monitor.id)

    def report_data(self, endpoint: str, *, last: int | None = None) -> dict[str, Any]:
        """What ``report.ReportData.from_dict`` reads: the monitor's latest windows
        (``last`` of them, default all) and the endpoint's alerts."""
        monitor = self.get(endpoint)
        ref = monitor.reference
        model, _, version = ref.model.partition("@")
        return {
            "endpoint": endpoint,
            "model": model,
            "version": version,
            "reference": f"{ref.dataset} ({ref.n_rows:,} rows), scored by {ref.model}",
            "generated_at": datetime.now(UTC).isoformat(),
            "windows": [w.to_dict() for w in self.windows(endpoint, limit=last)],
            "alerts": [a.to_dict() for a in self.alerts.list(endpoint=endpoint, limit=200)],
        }

    def backfill(
        self,
        endpoint: str,
        data: Any,
        *,
        time_column: str,
        label_column: str | None = None,
        prediction_column: str | None = None,
        model: str | None = None,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> BackfillResult:
        """Write past traffic into ``endpoint``'s logs at the data's own time (see
        ``monitoring/backfill.py``); ``run`` then computes its windows. Windows already
        computed are not computed again: backfill before the first run, or run with
        ``recompute``."""
        return backfill(
            self._sources,
            endpoint,
            data,
            time_column=time_column,
            label_column=label_column,
            prediction_column=prediction_column,
            model=model,
            force=force,
            progress=progress,
        )

    # -- computing ------------------------------------------------------------------

    def run(
        self,
        endpoint: str,
        *,
        until: datetime | None = None,
        recompute: bool = False,
        progress: Callable[[int, int], None] | None = None,
        notifier: Notifier | None = None,
        workers: int | None = None,
        engine: str = "local",
        address: str | None = None,
    ) -> list[Window]:
        """Compute every complete window up to ``until`` (default: now) not computed
        yet, store them, and raise or resolve alerts; the new windows, oldest first.

        ``workers`` > 1 measures the windows in that many shares in parallel, on local
        processes (``engine="local"``) or as Ray tasks (``"ray"``, where the default is
        one share per CPU of the cluster at ``address``): the same numbers as one
        (``parallel.py``)."""
        parallel.check(engine, workers, address)
        monitor = self.get(endpoint)
        until = aware(until or self._clock())
        span = monitor.config.window_seconds
        done = set() if recompute else {w.start for w in self.windows(endpoint)}
        # Windows go on from the last one computed; only a first run (or a recompute)
        # reads the log to find where traffic began.
        first = max(done) + timedelta(seconds=span) if done else self._first_prediction(endpoint)
        if first is None:
            return []
        starts = [s for s in _starts(first, until, span) if s not in done]
        late = monitor.config.late_label_windows
        recent = [] if recompute or not late else self.windows(endpoint, limit=late)
        if not starts and not recent:
            return []
        in_parallel = bool(starts) and (engine != "local" or (workers or 1) > 1)
        stop = parallel.start(engine, address) if in_parallel else None  # while reading
        try:
            return self._compute(
                monitor, starts, recent, recompute, progress, notifier, in_parallel, workers, engine
            )
        finally:
            if stop is not None:
                stop()

    def _compute(
        self,
        monitor: Monitor,
        starts: list[datetime],
        recent: list[Window],
        recompute: bool,
        progress: Callable[[int, int], None] | None,
        notifier: Notifier | None,
        in_parallel: bool,
        workers: int | None,
        engine: str,
    ) -> list[Window]:
        """``run``'s work once it knows the windows: read the traffic, measure, store."""
        monitor = fairness.with_settings(monitor, self._sources)
        endpoint = monitor.endpoint
        span = monitor.config.window_seconds
        # The sensitive columns are read beside the features (requests carry them).
        kinds = cast(
            dict[str, Kind], {**monitor.reference.features, **fairness.sensitive_kinds(monitor)}
        )
        traffic = read_traffic(
            self._sources.logs,
            endpoint,
            kinds,
            since=min([*starts, *(w.start for w in recent)]),
            until=max([*(s + timedelta(seconds=span) for s in starts), *(w.end for w in recent)]),
        )
        previous = [w.n_rows for w in self.windows(endpoint, limit=VOLUME_WINDOWS)]
        spans = [(start, start + timedelta(seconds=span)) for start in starts]
        parts = ReferenceParts.load(self._sources, monitor.reference)
        context = Measurement(
            parts, monitor, traffic, previous, clock=self._clock, prices=self.prices
        )
        measured: Generator[Measured, None, None] = (
            parallel.measure(context, spans, engine=engine, workers=workers)
            if in_parallel
            else (context.measure(start, end) for start, end in spans)
        )
        own = notifier is None
        notifier = notifier or Notifier(self.alerts, monitor.config.webhooks)
        computed = []
        try:
            self._late_labels(monitor, recent, context, notifier)
            for done_count, ((start, end), (n, results)) in enumerate(
                zip(spans, measured, strict=True), 1
            ):
                window = context.finish(start, end, n, results)
                if self._store(monitor, window, replace=recompute):
                    computed.append(window)
                    self._alert(monitor, window, notifier)
                if progress is not None:
                    progress(done_count, len(starts))
        finally:
            measured.close()  # stops the workers if the run failed
            if own:
                notifier.flush(timeout=10)
                notifier.close()
        return computed

    def _late_labels(
        self,
        monitor: Monitor,
        recent: list[Window],
        context: Measurement,
        notifier: Notifier,
    ) -> None:
        """Bring the latest windows' realized performance up to date with the labels
        that came since, and judge it again where they changed the newest window that
        has enough labels to judge: that window decides whether the condition holds
        now. An older window's late labels never clear (or raise again) what a newer
        window showed, and windows measured against an earlier model (before a
        promotion) say nothing about the one serving now."""
        updated = {}
        for window in recent:
            found = self._bring_up_to_date(monitor, window, context)
            if found is not None:
                updated[window.start] = found
        current = [updated.get(w.start, w) for w in recent]
        for prefix in (REALIZED, fairness.REALIZED):
            judged = [
                w
                for w in current
                if w.results.get("reference", monitor.reference.model) == monitor.reference.model
                and any(key.startswith(prefix) for key in conditions(monitor, w))
            ]
            if judged and judged[-1].start in updated:
                self._alert(monitor, judged[-1], notifier, only=prefix)

    def _bring_up_to_date(
        self, monitor: Monitor, window: Window, context: Measurement
    ) -> Window | None:
        """Store a computed window's realized performance (and fairness) on the labels
        known now; the window as updated, or None when no label came since."""
        performance = dict(window.results.get("performance") or {})
        realized = context.realized_in(window.start, window.end)
        if realized == performance.get("realized"):
            return None
        performance["realized"] = realized
        performance["concept_drift"] = concept_drift(
            performance, min_labels=monitor.config.min_labels
        )
        results = {**window.results, "performance": performance}
        if "fairness" in results:  # its rates on the labels known now
            results["fairness"] = context.fairness_in(window.start, window.end)
        updated = Window(window.start, window.end, window.n_rows, results, monitor.endpoint)
        with self._sources.db.write() as conn:
            conn.execute(
                sa.update(monitor_windows)
                .where(
                    (monitor_windows.c.monitor_id == monitor.id)
                    & (monitor_windows.c.start == window.start)
                )
                .values(results=results, digest=_digest(monitor, updated))
            )
            rollups.refresh(conn, monitor.id, [rollups.day_of(window.start)])
        return updated

    def _first_prediction(self, endpoint: str) -> datetime | None:
        """When traffic began: the first answer, or the first row refused."""
        from setpoint.serving._logtables import read_log

        logs = [
            read_log(self._sources.logs, kind=k, endpoint=endpoint)
            for k in ("predictions", "refused")
        ]
        firsts = [pc.min(log.column("ts")).as_py() for log in logs if log.num_rows]
        return aware(min(firsts)) if firsts else None

    def _store(self, monitor: Monitor, window: Window, *, replace: bool) -> bool:
        """Store a computed window; False when another process (a second loop) stored
        the same window first, which then counts as computed."""
        insert = sqlite_insert if self._sources.db.is_sqlite else postgresql_insert
        with self._sources.db.write() as conn:
            if replace:
                conn.execute(
                    sa.delete(monitor_windows).where(
                        (monitor_windows.c.monitor_id == monitor.id)
                        & (monitor_windows.c.start == window.start)
                    )
                )
            stored = conn.execute(
                insert(monitor_windows)
                .values(
                    monitor_id=monitor.id,
                    start=window.start,
                    end=window.end,
                    n_rows=window.n_rows,
                    computed_at=datetime.now(UTC),
                    results=window.results,
                    digest=_digest(monitor, window),
                )
                .on_conflict_do_nothing(index_elements=["monitor_id", "start"])
                .returning(monitor_windows.c.id)
            ).scalar()
            if stored is not None or replace:
                rollups.refresh(conn, monitor.id, [rollups.day_of(window.start)])
            return stored is not None

    def _alert(
        self, monitor: Monitor, window: Window, notifier: Notifier, *, only: str = ""
    ) -> None:
        """Raise what holds in this window, as seen at the window's end; resolve what it
        judged and found cleared. A condition the window could not judge (too few rows,
        too few labels) keeps its alert as it is. ``only``: the conditions whose key
        starts with it."""
        cooldown = timedelta(hours=monitor.config.cooldown_hours)
        unresolved = self.alerts.unresolved_keys(monitor.endpoint)
        for key, holding in conditions(monitor, window).items():
            if not key.startswith(only):
                continue
            if holding is not None:
                severity, message, evidence = holding
                notifier.raise_alert(
                    monitor.endpoint,
                    key,
                    severity,
                    message,
                    evidence,
                    seen=window.end,
                    cooldown=cooldown,
                )
            elif key in unresolved:
                self.alerts.resolve(monitor.endpoint, key)


def _digest(monitor: Monitor, window: Window) -> dict[str, Any]:
    """The window's digest, counting the conditions that hold in it (its alerts)."""
    held = sum(holding is not None for holding in conditions(monitor, window).values())
    return digests.digest(window.results, window.n_rows, alerts=held)


def _starts(first: datetime, until: datetime, span: int) -> list[datetime]:
    """The starts of complete windows of ``span`` seconds from the one holding ``first``
    to the last that ends by ``until``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    begin = int((first - epoch).total_seconds()) // span * span
    end = int((until - epoch).total_seconds()) // span * span
    return [epoch + timedelta(seconds=s) for s in range(begin, end, span)]
