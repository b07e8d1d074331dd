"""The dataset catalog: immutable, content-addressed dataset versions and their contracts.

Adding a table creates version N+1 of a dataset unless a version with the same
content already exists, in which case that version is returned. Each version keeps
its profile (computed once, reused as the monitoring reference) and its contract,
which starts inferred and can be edited; every edit is a new contract revision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from setpoint._display import count, day, html_summary, listing, minute, short_repr
from setpoint._names import LATEST, check_name, split_ref, version_number
from setpoint.data import _scrub, io
from setpoint.data._batch import to_table
from setpoint.data.contract import Contract
from setpoint.data.filecheck import FileValidation, breaks_contract, check_stored
from setpoint.data.ingest import Ingested, ingest
from setpoint.data.profile import Profile
from setpoint.data.reader import Consume, check_names, read_batches
from setpoint.errors import ConflictError, GoneError, NotFoundError, UsageError
from setpoint.store import audit
from setpoint.store.artifacts import ArtifactStore
from setpoint.store.db import Database, ensure_named
from setpoint.store.schema import audit_events, contracts, dataset_versions, datasets

# Profile statistics that would copy values of a PII column into the metadata store.
# Violations a refused contract lists (all are counted).
CHECK_LIMIT = 20
_PII_HIDDEN = ("min", "max", "mean", "std", "quantiles", "top")


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset."""

    id: int
    name: str
    version: int
    content_hash: str
    artifact: str
    row_count: int
    columns: list[dict[str, str]]
    profile: Profile
    owner: str
    description: str
    tags: dict[str, str]
    pii_columns: list[str]
    source: str
    created_at: datetime
    created: bool = field(default=False, compare=False)  # True when this call added it
    # Erased (``setpoint erase``): its bytes are gone, replaced by a version without the
    # erased rows.
    erased_at: datetime | None = None
    erased_rows: int | None = None
    replaced_by: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        facts = [
            f"{count(self.row_count)} rows x {len(self.columns)} columns",
            day(self.created_at),
        ]
        if self.erased_at is not None:
            facts.append(f"erased, replaced by {self.replaced_by}")
        return short_repr("DatasetVersion", self.ref, facts)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [
            ("rows", count(self.row_count)),
            ("columns", f"{len(self.columns)}: {listing((c['name'] for c in self.columns), 8)}"),
            ("created", f"{minute(self.created_at)} by {self.owner}"),
        ]
        rows += [("description", self.description)] if self.description else []
        rows += [("source", self.source)] if self.source else []
        rows += [("tags", ", ".join(f"{k}={v}" for k, v in self.tags.items()))] if self.tags else []
        rows += [("personal data", ", ".join(self.pii_columns))] if self.pii_columns else []
        rows.append(("content hash", self.content_hash[:16]))
        if self.erased_at is not None:
            rows.append(("erased", f"{minute(self.erased_at)}, replaced by {self.replaced_by}"))
        return html_summary("DatasetVersion", self.ref, rows)

    def to_dict(self, *, with_profile: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "row_count": self.row_count,
            "columns": self.columns,
            "owner": self.owner,
            "description": self.description,
            "tags": self.tags,
            "pii_columns": self.pii_columns,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "erased_at": None if self.erased_at is None else self.erased_at.isoformat(),
            "erased_rows": self.erased_rows,
            "replaced_by": self.replaced_by,
        }
        if with_profile:
            out["profile"] = self.profile.to_dict()
        return out


class DatasetCatalog:
    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        *,
        actor: str,
        range_tolerance: float = 0.0,
        max_categories: int = 50,
        unknown_columns: str = "reject",
    ) -> None:
        self._db = db
        self._store = store
        self._actor = actor
        self._infer_options: dict[str, Any] = {
            "range_tolerance": range_tolerance,
            "max_categories": max_categories,
            "unknown_columns": unknown_columns,
        }

    # -- adding --------------------------------------------------------------------

    def add(
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
        """Register ``data`` (DataFrame, Arrow table) as the next version of ``name``."""
        check_name("dataset", name)
        table = io.normalise(to_table(data))
        schema = io.normalise_schema(table.schema)

        def read(consume: Consume[Ingested]) -> Ingested:
            return consume(schema, iter(table.to_batches()))

        return self._add(name, read, description, owner, tags, pii_columns, source)

    def add_file(
        self,
        name: str,
        path: Path,
        *,
        description: str = "",
        owner: str | None = None,
        tags: dict[str, str] | None = None,
        pii_columns: list[str] | None = None,
        source: str = "",
        block_size: int | None = None,
    ) -> DatasetVersion:
        """Register a CSV or Parquet file, streamed in batches: memory stays bounded
        whatever its size, and the version is the one ``add`` makes of the same rows."""
        check_name("dataset", name)

        def read(consume: Consume[Ingested]) -> Ingested:
            return read_batches(path, consume, block_size=block_size)

        return self._add(name, read, description, owner, tags, pii_columns, source)

    def _add(
        self,
        name: str,
        read: Callable[[Consume[Ingested]], Ingested],
        description: str,
        owner: str | None,
        tags: dict[str, str] | None,
        pii_columns: list[str] | None,
        source: str,
    ) -> DatasetVersion:
        pii = list(dict.fromkeys(pii_columns or []))
        with self._store.staging() as staged:

            def consume(schema: pa.Schema, batches: Any) -> Ingested:
                if not schema.names:
                    raise UsageError(f"dataset {name!r}: the data has no columns")
                check_names(schema.names)
                unknown_pii = [c for c in pii if c not in schema.names]
                if unknown_pii:
                    raise UsageError(
                        f"PII column(s) {', '.join(unknown_pii)} are not in the data; "
                        f"its columns are {', '.join(schema.names)}",
                    )
                return ingest(schema, batches, staged)

            found = read(consume)
            digest = found.content_hash
            with self._db.read() as conn:
                existing = self._find_by_hash(conn, name, digest)
            if existing is not None:
                return _not_erased(existing)
            profile = found.profile
            contract = Contract.infer(profile, **self._infer_options).without_values(pii)
            artifact = self._store.put_file(staged)
        columns = [{"name": f.name, "type": str(f.type)} for f in found.schema]

        with self._db.write() as conn:
            dataset_id = ensure_named(self._db, conn, datasets, name, created_at=audit.now())
            # Another writer may have added the same content while we profiled.
            existing = self._find_by_hash(conn, name, digest)
            if existing is not None:
                return _not_erased(existing)
            number = 1 + (
                conn.execute(
                    sa.select(sa.func.max(dataset_versions.c.version)).where(
                        dataset_versions.c.dataset_id == dataset_id
                    )
                ).scalar()
                or 0
            )
            values: dict[str, Any] = {
                "dataset_id": dataset_id,
                "version": number,
                "content_hash": digest,
                "artifact": artifact,
                "row_count": found.n_rows,
                "columns": columns,
                "profile": _mask_pii(profile.to_dict(), pii),
                "owner": owner or self._actor,
                "description": description,
                "tags": dict(tags or {}),
                "pii_columns": pii,
                "source": source,
                "created_at": audit.now(),
            }
            version_id = conn.execute(
                dataset_versions.insert().values(**values).returning(dataset_versions.c.id)
            ).scalar_one()
            conn.execute(
                contracts.insert().values(
                    dataset_version_id=version_id,
                    revision=1,
                    body=contract.to_dict(),
                    note="inferred",
                    created_by=self._actor,
                    created_at=audit.now(),
                )
            )
            ref = f"{name}@{number}"
            audit.record(
                conn,
                actor=self._actor,
                action="dataset.add",
                entity_type="dataset",
                entity=ref,
                after={k: v for k, v in values.items() if k not in {"profile", "dataset_id"}}
                | {"created_at": values["created_at"].isoformat()},
            )
            row = self._select(conn).where(dataset_versions.c.id == version_id)
            added = _version(conn.execute(row).one())
        return DatasetVersion(**{**added.__dict__, "created": True})

    # -- reading -------------------------------------------------------------------

    def get(self, ref: str) -> DatasetVersion:
        """``NAME``, ``NAME@latest`` or ``NAME@VERSION``."""
        name, selector = split_ref("dataset", ref)
        with self._db.read() as conn:
            query = self._select(conn).where(datasets.c.name == name)
            if selector is None or selector == LATEST:
                query = query.order_by(dataset_versions.c.version.desc()).limit(1)
            else:
                number = version_number(ref, selector)
                if number is None:
                    raise UsageError(
                        f"{ref!r}: a dataset version is a number or '{LATEST}', not {selector!r}"
                    )
                query = query.where(dataset_versions.c.version == number)
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(self._missing(conn, name, ref))
            return _version(row)

    def by_id(self, conn: Connection, version_id: int) -> DatasetVersion:
        return _version(
            conn.execute(self._select(conn).where(dataset_versions.c.id == version_id)).one()
        )

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        """Every version of ``name``, or the latest version of every dataset."""
        with self._db.read() as conn:
            query = self._select(conn)
            if name is not None:
                check_name("dataset", name)
                query = query.where(datasets.c.name == name).order_by(dataset_versions.c.version)
                rows = conn.execute(query).all()
                if not rows:
                    raise NotFoundError(self._missing(conn, name, name))
                return [_version(r) for r in rows]
            latest = (
                sa.select(sa.func.max(dataset_versions.c.id))
                .group_by(dataset_versions.c.dataset_id)
                .scalar_subquery()
            )
            query = query.where(dataset_versions.c.id.in_(latest)).order_by(datasets.c.name)
            return [_version(r) for r in conn.execute(query)]

    def load(self, version: DatasetVersion) -> pa.Table:
        if version.erased_at is not None:
            raise GoneError(
                f"dataset {version.ref} was erased on {version.erased_at:%Y-%m-%d %H:%M} UTC "
                f"({version.erased_rows} row(s) of a subject); use {version.replaced_by}, the "
                "same data without them"
            )
        return io.from_parquet(self._store.get(version.artifact))

    def artifact_in_use(self, artifact: str) -> bool:
        """Whether a version not erased keeps its rows in ``artifact``."""
        with self._db.read() as conn:
            found = conn.execute(
                sa.select(dataset_versions.c.id).where(
                    dataset_versions.c.artifact == artifact, dataset_versions.c.erased_at.is_(None)
                )
            ).first()
        return found is not None

    def mark_erased(
        self,
        conn: Connection,
        version: DatasetVersion,
        *,
        rows: int,
        replaced_by: str | None,
        theirs: _scrub.Spellings,
    ) -> None:
        """Record, in the caller's transaction, that ``version`` lost ``rows`` rows to an
        erasure and that ``replaced_by`` holds the rest; its bytes are deleted after.
        The values only the erased rows had (``theirs``, column -> spellings) leave its
        profile, its contract revisions and their audit events."""
        conn.execute(
            dataset_versions.update()
            .where(dataset_versions.c.id == version.id)
            .values(
                erased_at=audit.now(),
                erased_rows=rows,
                replaced_by=replaced_by,
                profile=_scrub.profile(version.profile.to_dict(), theirs),
            )
        )
        _rewrite_contracts(conn, version, lambda body: _scrub.contract(body, theirs))

    # -- contracts -----------------------------------------------------------------

    def contract(self, version: DatasetVersion) -> tuple[Contract, int]:
        """The current contract of a version and its revision number."""
        with self._db.read() as conn:
            row = _current_contract(conn, version)
        return Contract.from_dict(row.body), int(row.revision)

    def revisions(self, versions: Iterable[DatasetVersion]) -> dict[int, int]:
        """The current contract revision of each version, by version id, in one query
        (a page listing many versions)."""
        ids = [v.id for v in versions]
        if not ids:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(contracts.c.dataset_version_id, sa.func.max(contracts.c.revision))
                .where(contracts.c.dataset_version_id.in_(ids))
                .group_by(contracts.c.dataset_version_id)
            )
            return {int(version_id): int(revision) for version_id, revision in rows}

    def contract_id(self, conn: Connection, version: DatasetVersion) -> int:
        return int(_current_contract(conn, version).id)

    def attach_contract(
        self, version: DatasetVersion, contract: Contract, *, note: str = "", force: bool = False
    ) -> int:
        """Make ``contract`` the current one of ``version``; returns the new revision.
        A contract the version's own data breaks is refused (``check_contract``) unless
        ``force``; a forced one says so, with the counts, in its note and audit event."""
        # A column marked personal data keeps no value in the metadata store: not in
        # this contract, the older revisions, their audit events, nor the profile.
        pii = sorted(n for n, rule in contract.columns.items() if rule.pii)
        contract = contract.without_values(pii)
        body = contract.to_dict()
        with self._db.read() as conn:
            unchanged = _current_contract(conn, version).body == body
        broken = None if unchanged else self.check_contract(version, contract)
        forced = None
        if broken is not None and not broken.ok:
            if not force:
                raise breaks_contract(version.ref, broken)
            forced = {"violations": broken.n_violations, "rows": broken.n_invalid}
            note = (
                f"{note or 'edited'} (forced: the data breaks it, {broken.n_violations} "
                f"violation(s) in {broken.n_invalid} row(s))"
            )
        with self._db.write() as conn:
            if not self._db.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serializes writers
                conn.execute(
                    sa.select(dataset_versions.c.id)
                    .where(dataset_versions.c.id == version.id)
                    .with_for_update()
                )
            if set(pii) - set(version.pii_columns):
                self._mask(conn, version, pii)
            current = _current_contract(conn, version)
            if body == current.body:
                return int(current.revision)
            revision = int(current.revision) + 1
            conn.execute(
                contracts.insert().values(
                    dataset_version_id=version.id,
                    revision=revision,
                    body=body,
                    note=note or "edited",
                    created_by=self._actor,
                    created_at=audit.now(),
                )
            )
            audit.record(
                conn,
                actor=self._actor,
                action="contract.edit",
                entity_type="dataset",
                entity=version.ref,
                before={"revision": current.revision, "contract": current.body},
                after={"revision": revision, "contract": body, "note": note}
                | ({"forced": forced} if forced else {}),
            )
        return revision

    def check_contract(self, version: DatasetVersion, contract: Contract) -> FileValidation | None:
        """What ``contract`` says of ``version``'s data, read in batches; None for an
        erased version, whose rows are gone."""
        if version.erased_at is not None:
            return None
        with self._store.open(version.artifact) as parquet:
            return check_stored(contract, parquet, limit=CHECK_LIMIT)

    def _mask(self, conn: Connection, version: DatasetVersion, pii: Iterable[str]) -> None:
        """Mask ``pii`` columns in ``version``'s stored profile and contract history."""
        stored = conn.execute(
            sa.select(dataset_versions.c.profile, dataset_versions.c.pii_columns).where(
                dataset_versions.c.id == version.id
            )
        ).one()
        marked = list(dict.fromkeys([*stored.pii_columns, *pii]))
        conn.execute(
            dataset_versions.update()
            .where(dataset_versions.c.id == version.id)
            .values(profile=_mask_pii(dict(stored.profile), marked), pii_columns=marked)
        )
        columns = frozenset(marked)
        _rewrite_contracts(conn, version, lambda body: _scrub.masked_contract(body, columns))

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _select(_conn: Connection) -> sa.Select[Any]:
        return sa.select(dataset_versions, datasets.c.name).join(datasets)

    def _find_by_hash(self, conn: Connection, name: str, digest: str) -> DatasetVersion | None:
        row = conn.execute(
            self._select(conn).where(
                datasets.c.name == name, dataset_versions.c.content_hash == digest
            )
        ).first()
        return None if row is None else _version(row)

    @staticmethod
    def _missing(conn: Connection, name: str, ref: str) -> str:
        known = conn.execute(sa.select(datasets.c.name).order_by(datasets.c.name)).scalars().all()
        if name not in known:
            hint = f"known datasets: {', '.join(known)}" if known else "the workspace has none yet"
            return f"no dataset {name!r} ({hint}); add one with: setpoint data add {name} FILE"
        versions = (
            conn.execute(
                sa.select(dataset_versions.c.version)
                .join(datasets)
                .where(datasets.c.name == name)
                .order_by(dataset_versions.c.version)
            )
            .scalars()
            .all()
        )
        return f"no version {ref!r}; {name} has versions {', '.join(map(str, versions))}"


def _not_erased(version: DatasetVersion) -> DatasetVersion:
    """An existing version with the same content, unless that content was erased."""
    if version.erased_at is not None:
        raise ConflictError(
            f"this content is {version.ref}, erased on {version.erased_at:%Y-%m-%d %H:%M} UTC: "
            "it holds rows of a subject whose data was erased; remove them and add it again"
        )
    return version


def _current_contract(conn: Connection, version: DatasetVersion) -> Row[Any, Any, Any]:
    """The newest revision of a version's contract (id, body, revision)."""
    return conn.execute(
        sa.select(contracts.c.id, contracts.c.body, contracts.c.revision)
        .where(contracts.c.dataset_version_id == version.id)
        .order_by(contracts.c.revision.desc())
        .limit(1)
    ).one()


def _rewrite_contracts(
    conn: Connection, version: DatasetVersion, edit: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Apply ``edit`` to every stored contract body of ``version``: its revisions, and
    the bodies its ``contract.edit`` audit events copied (the only rewrite of the audit
    log: what must not be kept cannot be kept there either)."""
    rows = conn.execute(
        sa.select(contracts.c.id, contracts.c.body).where(
            contracts.c.dataset_version_id == version.id
        )
    ).all()
    for row in rows:
        body = edit(row.body)
        if body != row.body:
            conn.execute(contracts.update().where(contracts.c.id == row.id).values(body=body))
    events = conn.execute(
        sa.select(audit_events.c.id, audit_events.c.before, audit_events.c.after).where(
            audit_events.c.action == "contract.edit", audit_events.c.entity == version.ref
        )
    ).all()
    for event in events:
        changed = {}
        for side in ("before", "after"):
            held = getattr(event, side)
            if isinstance(held, dict) and isinstance(held.get("contract"), dict):
                body = edit(held["contract"])
                if body != held["contract"]:
                    changed[side] = {**held, "contract": body}
        if changed:
            conn.execute(
                audit_events.update().where(audit_events.c.id == event.id).values(**changed)
            )


def _version(row: Row[Any]) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        content_hash=row.content_hash,
        artifact=row.artifact,
        row_count=row.row_count,
        columns=row.columns,
        profile=Profile.from_dict(row.profile),
        owner=row.owner,
        description=row.description,
        tags=row.tags,
        pii_columns=row.pii_columns,
        source=row.source,
        created_at=audit.as_utc(row.created_at),
        erased_at=None if row.erased_at is None else audit.as_utc(row.erased_at),
        erased_rows=row.erased_rows,
        replaced_by=row.replaced_by,
    )


def _mask_pii(profile: dict[str, Any], pii: list[str]) -> dict[str, Any]:
    for column in profile.get("columns", []):
        if column.get("name") in pii:
            for key in _PII_HIDDEN:
                if key in column:
                    column[key] = None
    return profile
