"""The quarantine: rows a contract rejected, kept with their reasons.

Nothing a contract rejects is dropped. Each validation in ``quarantine`` mode stores
its invalid rows, with their original row numbers and a JSON list of reasons, as a
Parquet artifact in the workspace, and records the batch so that it can be listed,
inspected and exported for repair.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from setpoint._display import count, day, short_repr
from setpoint._names import check_number
from setpoint.data import io
from setpoint.data.pii import PiiPolicy
from setpoint.data.validation import ValidationReport
from setpoint.errors import NotFoundError
from setpoint.store import audit
from setpoint.store.artifacts import ArtifactStore
from setpoint.store.db import Database
from setpoint.store.schema import contracts, dataset_versions, datasets, quarantine_batches


@dataclass(frozen=True)
class QuarantineBatch:
    id: int
    dataset: str
    contract_revision: int
    source: str
    n_rows: int
    n_rejected: int
    summary: list[dict[str, Any]]
    created_by: str
    created_at: datetime
    artifact: str

    @property
    def top_reason(self) -> dict[str, Any] | None:
        """The (column, rule) that refused the most rows, with that count."""
        if not self.summary:
            return None
        top = min(self.summary, key=lambda s: (-s["count"], s["column"], s["rule"]))
        return {"column": top["column"], "rule": top["rule"], "count": top["count"]}

    def __repr__(self) -> str:
        top = self.top_reason
        facts = [
            f"{count(self.n_rejected)} of {count(self.n_rows)} rows kept",
            "" if top is None else f"mostly {top['column']} {top['rule']} ({count(top['count'])})",
            day(self.created_at),
        ]
        return short_repr("QuarantineBatch", f"{self.id} of {self.dataset}", facts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "contract_revision": self.contract_revision,
            "source": self.source,
            "n_rows": self.n_rows,
            "n_rejected": self.n_rejected,
            "summary": self.summary,
            "top_reason": self.top_reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


class Quarantine:
    def __init__(self, db: Database, store: ArtifactStore, *, actor: str) -> None:
        self._db = db
        self._store = store
        self._actor = actor

    def keep(
        self,
        conn: Connection,
        *,
        contract_id: int,
        dataset: str,
        report: ValidationReport,
        batch: pa.Table,
        source: str,
        pii: PiiPolicy | None = None,
    ) -> QuarantineBatch:
        """Store the rows ``report`` rejected from ``batch``, inside the caller's
        transaction; personal-data columns kept as ``pii`` says (hashed or left out):
        quarantined rows are outside the dataset store."""
        rejected = report.rejected(batch)
        if pii is not None:
            rejected = pii.table(rejected)
        return self.record(
            conn,
            contract_id=contract_id,
            dataset=dataset,
            n_rows=report.n_rows,
            n_rejected=rejected.num_rows,
            summary=report.summary(),
            artifact=self._store.put(io.to_parquet(rejected)),
            source=source,
        )

    def record(
        self,
        conn: Connection,
        *,
        contract_id: int,
        dataset: str,
        n_rows: int,
        n_rejected: int,
        summary: list[dict[str, Any]],
        artifact: str,
        source: str,
    ) -> QuarantineBatch:
        """Record a batch whose rejected rows are already stored as ``artifact`` (a file
        validated as it streamed writes them as it goes)."""
        batch_id = conn.execute(
            quarantine_batches.insert()
            .values(
                contract_id=contract_id,
                source=source,
                n_rows=n_rows,
                n_rejected=n_rejected,
                artifact=artifact,
                summary=summary,
                created_by=self._actor,
                created_at=audit.now(),
            )
            .returning(quarantine_batches.c.id)
        ).scalar_one()
        audit.record(
            conn,
            actor=self._actor,
            action="quarantine.add",
            entity_type="dataset",
            entity=dataset,
            after={
                "quarantine_id": batch_id,
                "source": source,
                "n_rows": n_rows,
                "n_rejected": n_rejected,
            },
        )
        return self._get(conn, int(batch_id))

    def list(self, dataset: str | None = None) -> list[QuarantineBatch]:
        """Newest first; only those of one dataset name when given."""
        with self._db.read() as conn:
            query = self._select().order_by(quarantine_batches.c.id.desc())
            if dataset is not None:
                query = query.where(datasets.c.name == dataset)
            return [_batch(r) for r in conn.execute(query)]

    def get(self, batch_id: int) -> QuarantineBatch:
        check_number("quarantine batch", batch_id)
        with self._db.read() as conn:
            return self._get(conn, batch_id)

    def rows(self, batch_id: int) -> pa.Table:
        """The rejected rows of a batch, with ``_row`` and ``_reasons`` columns."""
        return io.from_parquet(self._store.get(self.get(batch_id).artifact))

    def _get(self, conn: Connection, batch_id: int) -> QuarantineBatch:
        row = conn.execute(self._select().where(quarantine_batches.c.id == batch_id)).first()
        if row is None:
            raise NotFoundError(
                f"no quarantine batch {batch_id}; list them with: setpoint data quarantine list"
            )
        return _batch(row)

    @staticmethod
    def _select() -> sa.Select[Any]:
        return sa.select(
            quarantine_batches,
            contracts.c.revision,
            datasets.c.name,
            dataset_versions.c.version,
        ).select_from(quarantine_batches.join(contracts).join(dataset_versions).join(datasets))


def _batch(row: Any) -> QuarantineBatch:
    return QuarantineBatch(
        id=row.id,
        dataset=f"{row.name}@{row.version}",
        contract_revision=row.revision,
        source=row.source,
        n_rows=row.n_rows,
        n_rejected=row.n_rejected,
        summary=row.summary,
        created_by=row.created_by,
        created_at=audit.as_utc(row.created_at),
        artifact=row.artifact,
    )
