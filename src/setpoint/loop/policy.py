"""A policy: when an endpoint's model is retrained, and how far a candidate goes alone.

Written as YAML (or built in Python) and stored per endpoint::

    triggers:                  # any one of them starts a rollout
      - drift: any             # a feature drifted (or a list of feature names)
      - drift_share: 0.3       # at least this share of the features drifted
      - performance: {metric: roc_auc, source: realized, drop: 0.05}  # or below: 0.7
      - schedule: "0 3 * * 1"  # cron, UTC
      - labels: 5000           # this many new labels since the last retraining
    actions: [alert, retrain, shadow, promote, rollback]
    retrain: {window: since_trigger, min_rows: 1000}
    gates: {metrics: {roc_auc: {min_delta: 0.0}}, confidence: 0.9, segments: [channel]}
    rollout: {duration: 7d, min_labels: 200, max_metric_drop: 0.02}
    approval: required         # or auto (the default)
    cooldown: 7d

``retrain`` is needed for anything past ``alert``; ``shadow`` or ``canary`` (at most
one) puts the candidate on live traffic after its gates; ``promote`` lets the loop move
the champion alias itself when everything passed (without it, or with ``approval:
required``, a passing candidate waits for ``setpoint approve``); ``rollback`` takes a
regressing canary off at once.

Each part is a declarative model (``_documents.Document``): the triggers are in
:mod:`~setpoint.loop.trigger_config`, the gates in :mod:`~setpoint.loop.gate_config`;
the reader, its errors by path and the JSON Schema (``setpoint schema policy``) all
come from them. The stored form is :meth:`Policy.to_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, get_args

import sqlalchemy as sa
import yaml
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from setpoint._documents import Document, DurationOrZero, Flag, Number, Problems, Whole
from setpoint._durations import parse_duration
from setpoint._names import check_name
from setpoint.errors import NotFoundError
from setpoint.loop._forms import AlsoAccepts
from setpoint.loop.gate_config import GateConfig
from setpoint.loop.trigger_config import KINDS, Performance, Trigger, next_run
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import policies

__all__ = [
    "ACTIONS",
    "KINDS",
    "Performance",
    "Policy",
    "PolicyStore",
    "RetrainSettings",
    "RolloutSettings",
    "StoredPolicy",
    "Trigger",
    "next_run",
]

Action = Literal["alert", "retrain", "shadow", "canary", "promote", "rollback"]
ACTIONS: tuple[Action, ...] = get_args(Action)
Window = Literal["since_trigger", "sliding", "expanding"]


# --- settings -------------------------------------------------------------------------


class RetrainSettings(Document):
    """What the candidate is trained on, and how hard the job tries."""

    what: ClassVar[str] = "the retrain settings"

    window: Window = "since_trigger"
    """``since_trigger``: the labelled traffic from the start of the window that fired
    (what the world looks like after the change); ``sliding``: the last ``days``;
    ``expanding``: all of it."""
    days: Number = Field(28.0, gt=0)
    """The length of a ``sliding`` window, in days."""
    include_original: Flag = False
    """Add the champion's own training data."""
    min_rows: Whole = Field(1000, ge=1)
    """Labelled rows to wait for before training."""
    max_attempts: Whole = Field(3, ge=1)
    """Attempts of the retraining job before the rollout fails."""


class RolloutSettings(Document):
    """How long a candidate is on live traffic, and what it must show there."""

    what: ClassVar[str] = "the rollout settings"

    duration: DurationOrZero = "7d"
    """On live traffic before the decision (0s: decide at once)."""
    share: Number = Field(0.1, gt=0, lt=1)
    """The share of requests a canary answers."""
    min_samples: Whole = Field(200, ge=0)
    """Answered requests the candidate must see."""
    min_labels: Whole = Field(100, ge=0)
    """Labelled answers before realized performance is judged (0: not judged)."""
    max_metric_drop: Number = Field(0.02, ge=0)
    """Live, the candidate may be at most this much worse than the champion."""
    max_error_rate: Number = Field(0.02, ge=0)
    """A canary failing more often than this is rolled back."""
    max_latency_ratio: Number = Field(3.0, gt=0)
    """The canary's p99 latency against the champion's, at most."""

    @property
    def span(self) -> timedelta:
        return parse_duration(self.duration, what="rollout duration", zero=True)


# --- the policy -----------------------------------------------------------------------


def _trigger_list(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value
    raise ValueError(f"give a list of triggers, e.g. [{{drift_share: 0.3}}], not {value!r}")


def _some(triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
    if not triggers:
        raise ValueError("a policy needs at least one trigger, e.g. '- drift_share: 0.3'")
    return triggers


def _action_list(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return value
    raise ValueError(
        f"give a list of actions, e.g. [alert, retrain, shadow], not {value!r}; "
        f"known: {', '.join(ACTIONS)}"
    )


def _settings(value: Any) -> Any:
    if isinstance(value, Mapping | Document):
        return value
    if value is None:
        raise ValueError(
            "is empty: give its settings (key: value), or leave the key out for the defaults"
        )
    raise ValueError(f"give a mapping of settings (key: value), not {value!r}")


Settings = BeforeValidator(_settings)


class Policy(Document):
    """When an endpoint's model is retrained, and how far a candidate goes alone."""

    what: ClassVar[str] = "the policy"

    triggers: Annotated[
        tuple[Trigger, ...],
        BeforeValidator(_trigger_list),
        AfterValidator(_some),
        Field(json_schema_extra={"minItems": 1}),
    ]
    """Any one of them starts a rollout."""
    actions: Annotated[
        tuple[Action, ...],
        BeforeValidator(_action_list),
        AlsoAccepts({"enum": list(ACTIONS)}),
    ] = ("alert", "retrain", "shadow", "promote", "rollback")
    """What the loop does when a trigger fires: ``alert``; ``retrain`` (needed for the
    rest); ``shadow`` or ``canary`` (at most one) after the gates; ``promote`` without a
    person; ``rollback`` a regressing canary at once. One action may be written bare."""
    retrain: Annotated[RetrainSettings, Settings] = Field(default_factory=RetrainSettings)
    """What the candidate is trained on."""
    gates: Annotated[GateConfig, Settings] = Field(default_factory=GateConfig)
    """What the candidate must show on the hold-out to replace the champion."""
    rollout: Annotated[RolloutSettings, Settings] = Field(default_factory=RolloutSettings)
    """The candidate on live traffic."""
    approval: Literal["auto", "required"] = "auto"
    """``required``: a candidate that passed everything waits for ``setpoint
    approve``."""
    cooldown: DurationOrZero = "1d"
    """No new rollout within this of the last one's start (0s: none)."""

    @model_validator(mode="after")
    def _actions_fit(self) -> Policy:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if "shadow" in self.actions and "canary" in self.actions:
            problems.append((("actions",), "choose shadow or canary, not both"))
        beyond = [a for a in self.actions if a not in ("alert", "retrain")]
        if beyond and "retrain" not in self.actions:
            problems.append((("actions",), f"{', '.join(beyond)} need retrain among the actions"))
        if problems:
            raise Problems(problems)
        return self

    @property
    def mode(self) -> Literal["shadow", "canary"] | None:
        if "shadow" in self.actions:
            return "shadow"
        if "canary" in self.actions:
            return "canary"
        return None

    @property
    def promotes_alone(self) -> bool:
        """Whether a candidate that passed everything is promoted without a person."""
        return "promote" in self.actions and self.approval == "auto"

    @property
    def cooldown_span(self) -> timedelta:
        return parse_duration(self.cooldown, what="cooldown", zero=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        return cls.read(data)

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Policy:
        """A policy from YAML; ``source`` is the file it came from, named in syntax
        errors."""
        return cls.read_yaml(text, source=source)


@dataclass(frozen=True)
class StoredPolicy:
    endpoint: str
    policy: Policy
    cursor: datetime | None  # the end of the newest monitor window looked at
    checked_at: datetime | None  # when triggers were last evaluated
    updated_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "policy": self.policy.to_dict(),
            "cursor": None if self.cursor is None else self.cursor.isoformat(),
            "checked_at": None if self.checked_at is None else self.checked_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": self.created_by,
        }


class PolicyStore:
    """The policy of each endpoint, in the metadata store; every change is audited."""

    def __init__(self, db: Database, *, actor: str) -> None:
        self._db = db
        self._actor = actor

    def set(self, endpoint: str, policy: Policy) -> StoredPolicy:
        check_name("endpoint", endpoint)
        at = audit.now()
        with self._db.write() as conn:
            before = conn.execute(
                sa.select(policies.c.config).where(policies.c.endpoint == endpoint)
            ).scalar_one_or_none()
            if before is None:
                conn.execute(
                    policies.insert().values(
                        endpoint=endpoint,
                        config=policy.to_dict(),
                        created_by=self._actor,
                        created_at=at,
                        updated_at=at,
                    )
                )
            else:
                conn.execute(
                    policies.update()
                    .where(policies.c.endpoint == endpoint)
                    .values(config=policy.to_dict(), updated_at=at)
                )
            audit.record(
                conn,
                actor=self._actor,
                action="policy.set",
                entity_type="endpoint",
                entity=endpoint,
                before=before,
                after=policy.to_dict(),
            )
        return self.get(endpoint)

    def get(self, endpoint: str) -> StoredPolicy:
        with self._db.read() as conn:
            row = conn.execute(sa.select(policies).where(policies.c.endpoint == endpoint)).first()
        if row is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} has no policy; set one with: "
                f"setpoint policy set {endpoint} POLICY.yaml"
            )
        return _stored(row)

    def all(self) -> list[StoredPolicy]:
        with self._db.read() as conn:
            rows = conn.execute(sa.select(policies).order_by(policies.c.endpoint)).all()
        return [_stored(r) for r in rows]

    def remove(self, endpoint: str) -> None:
        with self._db.write() as conn:
            gone = conn.execute(sa.delete(policies).where(policies.c.endpoint == endpoint))
            if gone.rowcount == 0:
                raise NotFoundError(f"endpoint {endpoint!r} has no policy to remove")
            audit.record(
                conn,
                actor=self._actor,
                action="policy.remove",
                entity_type="endpoint",
                entity=endpoint,
            )

    def advance(self, endpoint: str, *, cursor: datetime | None, checked_at: datetime) -> None:
        """Remember what the policy has looked at (a window fires once)."""
        values: dict[str, Any] = {"checked_at": checked_at}
        if cursor is not None:
            values["cursor"] = cursor
        with self._db.write() as conn:
            conn.execute(policies.update().where(policies.c.endpoint == endpoint).values(**values))


def _stored(row: Any) -> StoredPolicy:
    return StoredPolicy(
        endpoint=row.endpoint,
        policy=Policy.from_dict(row.config),
        cursor=None if row.cursor is None else audit.as_utc(row.cursor),
        checked_at=None if row.checked_at is None else audit.as_utc(row.checked_at),
        updated_at=audit.as_utc(row.updated_at),
        created_by=row.created_by,
    )
