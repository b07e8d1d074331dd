"""The tables of the metadata store (SQLAlchemy Core).

This module is the target the Alembic migrations must reach; a test compares the two.
Timestamps are UTC. Bulk content (datasets, models, quarantined rows) lives in the
artifact stores; these tables hold what points at it.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _when() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("entity_type", sa.String(50), nullable=False),
    sa.Column("entity", sa.String(300), nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Index(None, "entity_type", "entity"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    _when(),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_id", sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("artifact", sa.String(64), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("pii_columns", sa.JSON, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    _when(),
    # An erased version's bytes are deleted; its metadata stays with these (0009).
    sa.Column("erased_at", sa.DateTime(timezone=True)),
    sa.Column("erased_rows", sa.Integer),
    sa.Column("replaced_by", sa.String(300)),  # NAME@VERSION without the erased rows
    sa.UniqueConstraint("dataset_id", "version"),
    sa.UniqueConstraint("dataset_id", "content_hash"),
)

contracts = sa.Table(
    "contracts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_version_id", sa.ForeignKey("dataset_versions.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    sa.UniqueConstraint("dataset_version_id", "revision"),
)

quarantine_batches = sa.Table(
    "quarantine_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("contract_id", sa.ForeignKey("contracts.id"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_rejected", sa.Integer, nullable=False),
    sa.Column("artifact", sa.String(64), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    _when(),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("flavor", sa.String(50), nullable=False),
    sa.Column("task", sa.String(50), nullable=False),
    sa.Column("artifacts", sa.JSON, nullable=False),
    sa.Column("flavor_metadata", sa.JSON, nullable=False),
    sa.Column("contract", sa.JSON),
    sa.Column("spec", sa.JSON),
    sa.Column("evaluation", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    # A person's notes on the version, set after training (the rest never changes).
    sa.Column("notes", sa.Text),
    sa.UniqueConstraint("model_id", "version"),
)

model_version_datasets = sa.Table(
    "model_version_datasets",
    metadata,
    sa.Column("model_version_id", sa.ForeignKey("model_versions.id"), primary_key=True),
    sa.Column("dataset_version_id", sa.ForeignKey("dataset_versions.id"), primary_key=True),
    sa.Column("role", sa.String(50), primary_key=True),
    sa.Index(None, "dataset_version_id"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("model_version_id", sa.ForeignKey("model_versions.id"), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.ForeignKey("models.id"), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("from_version_id", sa.ForeignKey("model_versions.id")),
    sa.Column("to_version_id", sa.ForeignKey("model_versions.id")),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Index(None, "model_id", "alias"),
)

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    _when(),
)

deployment_revisions = sa.Table(
    "deployment_revisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.ForeignKey("endpoints.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    sa.UniqueConstraint("endpoint_id", "revision"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(32), nullable=False, unique=True),  # the public part
    sa.Column("secret_hash", sa.String(64), nullable=False),  # sha256 of the secret part
    sa.Column("scope", sa.String(20), nullable=False),
    sa.Column("endpoint", sa.String(100)),  # None: every endpoint
    sa.Column("rate_per_second", sa.Float),  # None: no limit
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# -- monitoring ---------------------------------------------------------------------

monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(100), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("reference", sa.JSON, nullable=False),  # the reference summary, built once
    _when(),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor_id", sa.ForeignKey("monitors.id"), nullable=False),
    sa.Column("start", sa.DateTime(timezone=True), nullable=False),  # inclusive
    sa.Column("end", sa.DateTime(timezone=True), nullable=False),  # exclusive
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # What the dashboard's series draw of the results (monitoring/digest.py), a few
    # hundred bytes; NULL only where a writer before 0012 left it (read falls back).
    # Before the results: SQLite reaches a column after them through their overflow pages.
    sa.Column("digest", sa.JSON, nullable=True),
    sa.Column("results", sa.JSON, nullable=False),
    # A window is computed once: `monitor run` skips the starts it finds here.
    sa.UniqueConstraint("monitor_id", "start"),
)

# A day of a monitor's windows merged into one digest (monitoring/rollups.py), kept
# with them in the same transaction: a year of hourly windows draws from 365 of these
# instead of 8,760 window digests.
monitor_rollups = sa.Table(
    "monitor_rollups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor_id", sa.ForeignKey("monitors.id"), nullable=False),
    sa.Column("day", sa.DateTime(timezone=True), nullable=False),  # UTC midnight
    sa.Column("n_windows", sa.Integer, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("digest", sa.JSON, nullable=False),
    # Also the index a range of days is read through.
    sa.UniqueConstraint("monitor_id", "day"),
)

# While an alert is not resolved, raising its key again updates it instead of adding
# one; a partial unique index makes that hold under concurrent writers too.
_UNRESOLVED = "state != 'resolved'"

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(100), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),  # the condition, e.g. drift:feature:age
    sa.Column("severity", sa.String(20), nullable=False),  # warning | critical
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # open | acknowledged | resolved
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # times raised
    # first_seen and last_seen are the data's time; this is the clock's when it opened.
    sa.Column("noticed_at", sa.DateTime(timezone=True)),
    sa.Column("notified_at", sa.DateTime(timezone=True)),  # the cooldown runs from here
    sa.Column("acked_by", sa.String(200)),
    sa.Column("acked_at", sa.DateTime(timezone=True)),
    sa.Column("note", sa.Text),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Index(
        "uq_alerts_endpoint_key_unresolved",
        "endpoint",
        "key",
        unique=True,
        sqlite_where=sa.text(_UNRESOLVED),
        postgresql_where=sa.text(_UNRESOLVED),
    ),
    sa.Index(None, "state", "last_seen"),
)

# The outbox of webhook notifications: one row per alert notification and webhook.
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),  # attempts started
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),  # None: delivered or given up
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    _when(),
    sa.Index(None, "alert_id"),
    sa.Index(None, "next_attempt_at"),
)

# Persistent jobs (retraining, monitoring, reports): taken by exactly one worker at a
# time under a lease; a job whose worker died is taken again when the lease runs out.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),  # enqueueing a key twice is one job
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # queued|running|succeeded|failed|cancelled
    sa.Column("attempts", sa.Integer, nullable=False),  # attempts started
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True)),  # while running
    sa.Column("worker", sa.String(200)),  # who holds (or last held) it
    sa.Column("log", sa.JSON, nullable=False),  # [{"at", "attempt", "message"}]
    sa.Column("result", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("kind", "key"),
    sa.Index(None, "state", "run_after"),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(200), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),
    # The end of the newest monitor window the policy has looked at (a window fires once),
    # and when its schedule was last looked at.
    sa.Column("cursor", sa.DateTime(timezone=True)),
    sa.Column("checked_at", sa.DateTime(timezone=True)),
    sa.Column("created_by", sa.String(200), nullable=False),
    _when(),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),  # a trigger that fires twice is one rollout
    # waiting|retraining|shadow|canary|awaiting_approval|promoted|rejected|rolled_back|failed
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("trigger", sa.JSON, nullable=False),  # what fired, with its evidence
    sa.Column("data_since", sa.DateTime(timezone=True)),  # the training window's start
    sa.Column("data_until", sa.DateTime(timezone=True)),
    sa.Column("job_id", sa.Integer),
    sa.Column("champion", sa.String(300)),  # NAME@VERSION when the rollout started
    sa.Column("candidate", sa.String(300)),  # NAME@VERSION once trained
    sa.Column("dataset", sa.String(300)),  # the training set's NAME@VERSION
    sa.Column("mode", sa.String(20)),  # shadow|canary|None
    sa.Column("gates", sa.JSON),  # the gate report
    sa.Column("live", sa.JSON),  # the latest live comparison
    sa.Column("contract_proposal", sa.JSON),
    sa.Column("reason", sa.Text),  # why it ended as it did, for a person
    sa.Column("live_since", sa.DateTime(timezone=True)),
    _when(),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_by", sa.String(200)),
    sa.UniqueConstraint("endpoint", "key"),
    sa.Index(None, "state"),
)

# -- batch scoring ------------------------------------------------------------------

# One row per `setpoint predict` run: which model version scored which inputs, written
# when the run starts and again when it ends, so a run that died says `running`.
scoring_runs = sa.Table(
    "scoring_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("endpoint", sa.String(100)),  # the endpoint scored through, if any
    sa.Column("engine", sa.String(20), nullable=False),  # local | ray
    sa.Column("inputs", sa.JSON, nullable=False),  # [{uri, size, sha256 | etag}]
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_scored", sa.Integer, nullable=False),
    sa.Column("n_quarantined", sa.Integer, nullable=False),
    sa.Column("quarantine", sa.JSON, nullable=False),  # quarantine batch ids
    sa.Column("state", sa.String(20), nullable=False),  # running | succeeded | failed
    sa.Column("error", sa.Text),
    sa.Column("runner", sa.String(300), nullable=False),  # host:pid that ran it
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Index(None, "model", "version"),
    sa.Index(None, "endpoint"),
)

# `setpoint loadtest` runs: what a server sustained with one model version, so capacity
# can be followed from version to version (serving/loadtest/runs.py).
load_tests = sa.Table(
    "load_tests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(100), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),  # objective, rates, connections, ...
    sa.Column("steps", sa.JSON, nullable=False),  # [{rate, achieved, p50_ms, p99_ms, ...}]
    sa.Column("sustainable_rps", sa.Float),  # None: not even the first step met it
    sa.Column("plan", sa.JSON, nullable=False),  # the capacity plan as printed
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(None, "endpoint", "started_at"),
    sa.Index(None, "model", "version"),
)
