"""The model registry: models, immutable versions, aliases and lineage.

A version is a flavor's files (content-addressed artifacts) plus what made it: the
dataset versions, the spec, the code revision and package versions. Aliases
(``champion``, ``challenger``, any name) point at versions. Moving an alias is one
transaction that also appends to the alias history and the audit log; rollback moves
it back to the target it had before, so promote-then-rollback is an undo, and a
second rollback goes one step further back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from setpoint._display import html_summary, listing, minute, number, short_repr
from setpoint._names import LATEST, check_name, check_number, split_ref, version_number
from setpoint.data.catalog import DatasetVersion
from setpoint.errors import NotFoundError, UsageError
from setpoint.models import background as explaining
from setpoint.models.predictor import Predictor
from setpoint.store import audit
from setpoint.store.artifacts import ArtifactStore
from setpoint.store.db import Database, ensure_named
from setpoint.store.schema import (
    alias_history,
    aliases,
    dataset_versions,
    datasets,
    model_version_datasets,
    model_versions,
    models,
)

CHAMPION = "champion"
# The few metrics a per-segment table shows (models show, the model card), most
# telling first; every metric is in the evaluation.
SEGMENT_METRICS = {
    "classification": ("roc_auc", "accuracy", "f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}


def check_alias(alias: str) -> str:
    """An alias name that cannot be mistaken for a version selector."""
    check_name("alias", alias)
    if alias == LATEST or alias.isdigit():
        raise UsageError(f"{alias!r} cannot be an alias: it reads as a version selector")
    return alias


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    version: int
    flavor: str
    task: str
    artifacts: dict[str, str]
    flavor_metadata: dict[str, Any]
    contract: dict[str, Any] | None
    spec: dict[str, Any] | None
    evaluation: dict[str, Any]
    lineage: dict[str, Any]
    description: str
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    notes: str = ""  # a person's, set after training (``annotate``)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def headline_metric(self) -> tuple[str, str, float] | None:
        """(split, metric, value) a person looks at first: the validation figure (else
        the first split's) of the task's primary metric, else its fallback, else the
        first one known."""
        metrics = self.evaluation.get("metrics") or {}
        splits = [s for s in ("validation", "test", "reference") if s in metrics] or list(metrics)
        if not splits:
            return None
        split = splits[0]
        figures = metrics[split] or {}
        # The preference of models/evaluation.py (PRIMARY, FALLBACK), named here so that a
        # repr does not load scikit-learn.
        preferred = {"classification": ("roc_auc", "accuracy"), "regression": ("rmse", "mae")}
        for name in (*preferred.get(self.task, ()), *figures):
            value = figures.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return split, name, float(value)
        return None

    def __repr__(self) -> str:
        headline = self.headline_metric
        facts = [
            f"{self.flavor} {self.task}",
            f"aliases {' '.join(self.aliases)}" if self.aliases else "",
            "" if headline is None else f"{headline[1]} {number(headline[2])}",
        ]
        return short_repr("ModelVersion", self.ref, facts)

    def _repr_html_(self) -> str:
        headline = self.headline_metric
        rows: list[tuple[str, object]] = [
            ("flavor", self.flavor),
            ("task", self.task),
            ("aliases", ", ".join(self.aliases) or "-"),
        ]
        if headline is not None:
            rows.append((f"{headline[1]} ({headline[0]})", number(headline[2])))
        rows += [("trained on", self.training_dataset)] if self.training_dataset else []
        if self.contract is not None:
            features = list(self.contract.get("columns") or {})
            rows.append(("features", f"{len(features)}: {listing(features, 8)}"))
        rows.append(("created", f"{minute(self.created_at)} by {self.created_by}"))
        rows += [("description", self.description)] if self.description else []
        rows += [("notes", self.notes)] if self.notes else []
        return html_summary("ModelVersion", self.ref, rows)

    @property
    def training_dataset(self) -> str | None:
        """NAME@VERSION of the dataset its lineage says it was trained on, if any."""
        for entry in self.lineage.get("datasets", []):
            if entry.get("role") == "train":
                return str(entry["ref"])
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "flavor": self.flavor,
            "task": self.task,
            "artifacts": self.artifacts,
            "evaluation": self.evaluation,
            "lineage": self.lineage,
            "spec": self.spec,
            "contract": self.contract,
            "description": self.description,
            "notes": self.notes,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    action: str  # "promote" or "rollback"
    from_version: int | None
    to_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
        }


class ModelRegistry:
    def __init__(self, db: Database, store: ArtifactStore, *, actor: str) -> None:
        self._db = db
        self._store = store
        self._actor = actor

    # -- registering -----------------------------------------------------------------

    def register(
        self,
        name: str,
        predictor: Predictor,
        *,
        contract: dict[str, Any] | None,
        evaluation: dict[str, Any],
        lineage: dict[str, Any],
        datasets_used: list[tuple[DatasetVersion, str]],
        spec: dict[str, Any] | None = None,
        description: str = "",
        guard: Callable[[Connection], None] | None = None,
        background: pa.Table | None = None,
    ) -> ModelVersion:
        """Store ``predictor`` as the next version of model ``name``, with the
        ``background`` sample it is explained against when it has one
        (``models/background.py``). ``guard`` runs first in the registering transaction
        and may raise to stop it (a job checks that its attempt still holds its lease,
        so a stale attempt registers nothing)."""
        check_name("model", name)
        artifacts = {role: self._store.put(data) for role, data in predictor.save().items()}
        if background is not None:
            artifacts[explaining.ROLE] = self._store.put(explaining.to_bytes(background))
        with self._db.write() as conn:
            if guard is not None:
                guard(conn)
            model_id = ensure_named(
                self._db, conn, models, name, description="", created_at=audit.now()
            )
            number = 1 + (
                conn.execute(
                    sa.select(sa.func.max(model_versions.c.version)).where(
                        model_versions.c.model_id == model_id
                    )
                ).scalar()
                or 0
            )
            values = {
                "model_id": model_id,
                "version": number,
                "flavor": predictor.flavor,
                "task": predictor.task,
                "artifacts": artifacts,
                "flavor_metadata": predictor.metadata(),
                "contract": contract,
                "spec": spec,
                "evaluation": evaluation,
                "lineage": lineage,
                "description": description,
                "created_by": self._actor,
                "created_at": audit.now(),
            }
            version_id = conn.execute(
                model_versions.insert().values(**values).returning(model_versions.c.id)
            ).scalar_one()
            for dataset_version, role in datasets_used:
                conn.execute(
                    model_version_datasets.insert().values(
                        model_version_id=version_id,
                        dataset_version_id=dataset_version.id,
                        role=role,
                    )
                )
            audit.record(
                conn,
                actor=self._actor,
                action="model.register",
                entity_type="model",
                entity=f"{name}@{number}",
                after={
                    "flavor": predictor.flavor,
                    "task": predictor.task,
                    "artifacts": artifacts,
                    "datasets": {d.ref: role for d, role in datasets_used},
                    "metrics": evaluation.get("metrics"),
                },
            )
            return self._one(conn, model_versions.c.id == version_id)

    # -- reading ---------------------------------------------------------------------

    def get(self, ref: str) -> ModelVersion:
        """``NAME@VERSION``, ``NAME@ALIAS``, ``NAME@latest``; a bare ``NAME`` is its champion
        when it has one, else its latest version."""
        name, selector = split_ref("model", ref)
        with self._db.read() as conn:
            model_id = self._model_id(conn, name)
            if selector is None:
                has_champion = conn.execute(
                    sa.select(aliases.c.model_version_id).where(
                        aliases.c.model_id == model_id, aliases.c.name == CHAMPION
                    )
                ).first()
                selector = CHAMPION if has_champion else LATEST
            if selector == LATEST:
                latest = sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
                return self._one(
                    conn,
                    model_versions.c.model_id == model_id,
                    model_versions.c.version == latest.scalar_subquery(),
                )
            number = version_number(ref, selector)
            if number is not None:
                found = self._first(
                    conn, model_versions.c.model_id == model_id, model_versions.c.version == number
                )
                if found is None:
                    raise NotFoundError(
                        f"model {name!r} has no version {number}; {self._known(conn, model_id)}"
                    )
                return found
            target = conn.execute(
                sa.select(aliases.c.model_version_id).where(
                    aliases.c.model_id == model_id, aliases.c.name == selector
                )
            ).scalar()
            if target is None:
                raise NotFoundError(
                    f"model {name!r} has no alias {selector!r}; {self._known(conn, model_id)}; "
                    f"set one with: setpoint models promote {name} VERSION --alias {selector}"
                )
            return self._one(conn, model_versions.c.id == target)

    def versions(self, name: str) -> list[ModelVersion]:
        with self._db.read() as conn:
            model_id = self._model_id(conn, check_name("model", name))
            return self._many(conn, model_versions.c.model_id == model_id)

    def latest(self) -> list[ModelVersion]:
        """The latest version of every model."""
        with self._db.read() as conn:
            latest = (
                sa.select(sa.func.max(model_versions.c.id))
                .group_by(model_versions.c.model_id)
                .scalar_subquery()
            )
            return self._many(conn, model_versions.c.id.in_(latest))

    def load(self, version: ModelVersion) -> Predictor:
        """The predictor of ``version``, its files verified against their hashes."""
        files = {
            role: self._store.get(digest)
            for role, digest in version.artifacts.items()
            if role != explaining.ROLE  # not the model's: see explainer()
        }
        from setpoint.models import flavors  # here: the model libraries load with a model

        return flavors.load(version.flavor, files, version.flavor_metadata)

    def explainer(
        self,
        version: ModelVersion,
        predictor: Predictor,
        *,
        permutations: int | None = explaining.PERMUTATIONS,
    ) -> explaining.Explainer:
        """What explains ``version``'s predictions (``predictor``, as :meth:`load` gave
        it), with the background sample registered with it, if any."""
        digest = version.artifacts.get(explaining.ROLE)
        background = None if digest is None else explaining.from_bytes(self._store.get(digest))
        return explaining.Explainer(
            predictor, background, ref=version.ref, permutations=permutations
        )

    def redraw_background(
        self, version: ModelVersion, rows: pa.Table, *, personal: Collection[str] = ()
    ) -> None:
        """Draw ``version``'s background sample again from ``rows`` (erasure: the data it
        was drawn from lost a subject's rows, whose values it may hold), or drop it when
        ``rows`` cannot give one; the old sample's bytes go when no version uses them."""
        digest = version.artifacts.get(explaining.ROLE)
        if digest is None:
            return
        features = explaining.from_bytes(self._store.get(digest)).column_names
        artifacts = dict(version.artifacts)
        if rows.num_rows and set(features) <= set(rows.column_names):
            seed = int((version.spec or {}).get("seed", 0))
            drawn = explaining.sample(rows, features, seed=seed, personal=personal)
            artifacts[explaining.ROLE] = self._store.put(explaining.to_bytes(drawn))
        else:
            del artifacts[explaining.ROLE]
        with self._db.write() as conn:
            conn.execute(
                sa.update(model_versions)
                .where(model_versions.c.id == version.id)
                .values(artifacts=artifacts)
            )
            stored = conn.execute(sa.select(model_versions.c.artifacts)).scalars()
            in_use = any(digest in (found or {}).values() for found in stored)
        if not in_use:
            self._store.delete(digest)

    def annotate(self, ref: str, notes: str) -> ModelVersion:
        """Set the notes of the version ``ref`` names (empty text clears them): what a
        person knows of it after training, kept with it and on its model card. The only
        thing about a version that changes; audited with its before and after."""
        version = self.get(ref)
        with self._db.write() as conn:
            conn.execute(
                model_versions.update()
                .where(model_versions.c.id == version.id)
                .values(notes=notes or None)
            )
            audit.record(
                conn,
                actor=self._actor,
                action="model.annotate",
                entity_type="model",
                entity=version.ref,
                before={"notes": version.notes},
                after={"notes": notes},
            )
            return self._one(conn, model_versions.c.id == version.id)

    # -- lineage -----------------------------------------------------------------------

    def datasets_of(self, version: ModelVersion) -> list[tuple[str, str]]:
        """The dataset versions a model version was made from, as (ref, role)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    datasets.c.name, dataset_versions.c.version, model_version_datasets.c.role
                )
                .select_from(model_version_datasets.join(dataset_versions).join(datasets))
                .where(model_version_datasets.c.model_version_id == version.id)
                .order_by(datasets.c.name, dataset_versions.c.version)
            )
            return [(f"{r.name}@{r.version}", r.role) for r in rows]

    def trained_on(self, dataset_version: DatasetVersion) -> list[ModelVersion]:
        """Every model version made from ``dataset_version``."""
        with self._db.read() as conn:
            used = sa.select(model_version_datasets.c.model_version_id).where(
                model_version_datasets.c.dataset_version_id == dataset_version.id
            )
            return self._many(conn, model_versions.c.id.in_(used))

    # -- aliases -----------------------------------------------------------------------

    def promote(self, name: str, version: int, alias: str = CHAMPION) -> AliasMove:
        """Point ``alias`` of model ``name`` at ``version``, in one transaction."""
        check_alias(alias)
        check_number("version", version)
        with self._db.write() as conn:
            model_id = self._lock_model(conn, name)
            target = self._first(
                conn, model_versions.c.model_id == model_id, model_versions.c.version == version
            )
            if target is None:
                raise NotFoundError(
                    f"model {name!r} has no version {version}; {self._known(conn, model_id)}"
                )
            current = self._alias_version(conn, model_id, alias)
            if current is not None and current[0] == target.id:
                return AliasMove(name, alias, "promote", current[1], version)
            return self._move(conn, model_id, name, alias, "promote", current, (target.id, version))

    def rollback(self, name: str, alias: str = CHAMPION) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its last move."""
        with self._db.write() as conn:
            model_id = self._lock_model(conn, name)
            current = self._alias_version(conn, model_id, alias)
            if current is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r} to roll back")
            stack = self._alias_stack(conn, model_id, alias)
            if len(stack) < 2:
                raise UsageError(
                    f"{name}@{alias} has no earlier version to roll back to "
                    f"(it has only ever pointed at version {current[1]})"
                )
            previous_id = stack[-2]
            previous = self._one(conn, model_versions.c.id == previous_id)
            return self._move(
                conn, model_id, name, alias, "rollback", current, (previous_id, previous.version)
            )

    def history(self, name: str, alias: str = CHAMPION) -> list[dict[str, Any]]:
        """Every move of ``alias``, oldest first."""
        with self._db.read() as conn:
            model_id = self._model_id(conn, name)
            from_v = model_versions.alias("from_v")
            to_v = model_versions.alias("to_v")
            rows = conn.execute(
                sa.select(
                    alias_history.c.action,
                    alias_history.c.at,
                    alias_history.c.actor,
                    from_v.c.version.label("from_version"),
                    to_v.c.version.label("to_version"),
                )
                .select_from(
                    alias_history.outerjoin(
                        from_v, alias_history.c.from_version_id == from_v.c.id
                    ).outerjoin(to_v, alias_history.c.to_version_id == to_v.c.id)
                )
                .where(alias_history.c.model_id == model_id, alias_history.c.alias == alias)
                .order_by(alias_history.c.id)
            )
            return [
                {
                    "action": r.action,
                    "at": audit.as_utc(r.at).isoformat(),
                    "actor": r.actor,
                    "from_version": r.from_version,
                    "to_version": r.to_version,
                }
                for r in rows
            ]

    def _move(
        self,
        conn: Connection,
        model_id: int,
        name: str,
        alias: str,
        action: str,
        current: tuple[int, int] | None,
        target: tuple[int, int],
    ) -> AliasMove:
        at = audit.now()
        if current is None:
            conn.execute(
                aliases.insert().values(
                    model_id=model_id,
                    name=alias,
                    model_version_id=target[0],
                    updated_at=at,
                    updated_by=self._actor,
                )
            )
        else:
            conn.execute(
                aliases.update()
                .where(aliases.c.model_id == model_id, aliases.c.name == alias)
                .values(model_version_id=target[0], updated_at=at, updated_by=self._actor)
            )
        conn.execute(
            alias_history.insert().values(
                model_id=model_id,
                alias=alias,
                action=action,
                from_version_id=current[0] if current else None,
                to_version_id=target[0],
                at=at,
                actor=self._actor,
            )
        )
        move = AliasMove(name, alias, action, current[1] if current else None, target[1])
        audit.record(
            conn,
            actor=self._actor,
            action=f"alias.{action}",
            entity_type="model",
            entity=f"{name}@{alias}",
            before={"version": move.from_version},
            after={"version": move.to_version},
        )
        return move

    @staticmethod
    def _alias_stack(conn: Connection, model_id: int, alias: str) -> list[int]:
        """Replays the alias history: a promote pushes its target, a rollback pops."""
        stack: list[int] = []
        rows = conn.execute(
            sa.select(alias_history.c.action, alias_history.c.to_version_id)
            .where(alias_history.c.model_id == model_id, alias_history.c.alias == alias)
            .order_by(alias_history.c.id)
        )
        for action, to_version_id in rows:
            if action == "rollback":
                stack.pop()
            else:
                stack.append(to_version_id)
        return stack

    @staticmethod
    def _alias_version(conn: Connection, model_id: int, alias: str) -> tuple[int, int] | None:
        row = conn.execute(
            sa.select(model_versions.c.id, model_versions.c.version)
            .select_from(aliases.join(model_versions))
            .where(aliases.c.model_id == model_id, aliases.c.name == alias)
        ).first()
        return None if row is None else (int(row.id), int(row.version))

    # -- helpers -----------------------------------------------------------------------

    def _lock_model(self, conn: Connection, name: str) -> int:
        query = sa.select(models.c.id).where(models.c.name == check_name("model", name))
        if not self._db.is_sqlite:
            query = query.with_for_update()
        model_id = conn.execute(query).scalar()
        if model_id is None:
            raise NotFoundError(self._missing_model(conn, name))
        return int(model_id)

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if model_id is None:
            raise NotFoundError(self._missing_model(conn, name))
        return int(model_id)

    @staticmethod
    def _missing_model(conn: Connection, name: str) -> str:
        known = conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars().all()
        hint = f"known models: {', '.join(known)}" if known else "the registry has none yet"
        return f"no model {name!r} ({hint}); train one with: setpoint train SPEC.yaml"

    @staticmethod
    def _known(conn: Connection, model_id: int) -> str:
        numbers = (
            conn.execute(
                sa.select(model_versions.c.version)
                .where(model_versions.c.model_id == model_id)
                .order_by(model_versions.c.version)
            )
            .scalars()
            .all()
        )
        names = (
            conn.execute(
                sa.select(aliases.c.name)
                .where(aliases.c.model_id == model_id)
                .order_by(aliases.c.name)
            )
            .scalars()
            .all()
        )
        text = f"versions: {', '.join(map(str, numbers))}"
        return text + (f"; aliases: {', '.join(names)}" if names else "")

    def _select(self) -> sa.Select[Any]:
        return sa.select(model_versions, models.c.name).join(models)

    def _first(self, conn: Connection, *where: Any) -> ModelVersion | None:
        found = self._many(conn, *where)
        return found[0] if found else None

    def _one(self, conn: Connection, *where: Any) -> ModelVersion:
        found = self._first(conn, *where)
        assert found is not None
        return found

    def _many(self, conn: Connection, *where: Any) -> list[ModelVersion]:
        rows = conn.execute(
            self._select().where(*where).order_by(models.c.name, model_versions.c.version)
        ).all()
        if not rows:
            return []
        alias_rows = conn.execute(
            sa.select(aliases.c.model_version_id, aliases.c.name)
            .where(aliases.c.model_version_id.in_([r.id for r in rows]))
            .order_by(aliases.c.name)
        )
        names: dict[int, list[str]] = {}
        for version_id, alias in alias_rows:
            names.setdefault(version_id, []).append(alias)
        return [_version(r, tuple(names.get(r.id, ()))) for r in rows]


def _version(row: Row[Any], alias_names: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        flavor=row.flavor,
        task=row.task,
        artifacts=row.artifacts,
        flavor_metadata=row.flavor_metadata,
        contract=row.contract,
        spec=row.spec,
        evaluation=row.evaluation,
        lineage=row.lineage,
        description=row.description,
        created_by=row.created_by,
        created_at=audit.as_utc(row.created_at),
        aliases=alias_names,
        notes=row.notes or "",
    )
