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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import yaml

from setpoint._durations import parse_duration
from setpoint._names import check_name
from setpoint._yaml import load_user_yaml
from setpoint.errors import NotFoundError, UsageError
from setpoint.loop.gates import GateConfig
from setpoint.models.evaluation import METRICS
from setpoint.monitoring.drift import check_settings
from setpoint.store import audit
from setpoint.store.db import Database
from setpoint.store.schema import policies

ACTIONS = ("alert", "retrain", "shadow", "canary", "promote", "rollback")
Window = Literal["since_trigger", "sliding", "expanding"]


@dataclass(frozen=True)
class Trigger:
    """One condition that starts a rollout; ``kind`` says which field matters."""

    kind: Literal["drift", "drift_share", "performance", "schedule", "labels"]
    features: tuple[str, ...] = ()  # drift: () is any feature
    share: float = 0.0  # drift_share
    metric: str = ""  # performance
    source: Literal["realized", "estimated"] = "realized"
    below: float | None = None  # performance: the metric is worse than this value
    drop: float | None = None  # performance: worse than the reference by this fraction
    cron: str = ""  # schedule
    labels: int = 0  # labels

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "drift":
            return {"drift": list(self.features) or "any"}
        if self.kind == "drift_share":
            return {"drift_share": self.share}
        if self.kind == "performance":
            body: dict[str, Any] = {"metric": self.metric, "source": self.source}
            if self.below is not None:
                body["below"] = self.below
            if self.drop is not None:
                body["drop"] = self.drop
            return {"performance": body}
        if self.kind == "schedule":
            return {"schedule": self.cron}
        return {"labels": self.labels}

    @classmethod
    def from_dict(cls, data: Any) -> Trigger:
        if not isinstance(data, Mapping) or len(data) != 1:
            raise UsageError(
                f"a trigger is one of drift, drift_share, performance, schedule or labels "
                f"with its setting (e.g. '- drift_share: 0.3'), not {data!r}"
            )
        ((kind, value),) = data.items()
        if kind == "drift":
            if value in ("any", None, True):
                return cls("drift")
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UsageError("drift: give 'any' or a list of feature names")
            return cls("drift", features=tuple(names))
        if kind == "drift_share":
            share = _number("drift_share", value)
            if not 0 < share <= 1:
                raise UsageError(f"drift_share {share}: give a share between 0 and 1, e.g. 0.3")
            return cls("drift_share", share=share)
        if kind == "performance":
            return cls._performance(value)
        if kind == "schedule":
            return cls("schedule", cron=_cron(value))
        if kind == "labels":
            count = _number("labels", value)
            if count < 1 or count != int(count):
                raise UsageError(f"labels {value}: give the number of new labels, e.g. 5000")
            return cls("labels", labels=int(count))
        raise UsageError(
            f"unknown trigger {kind!r}; known: drift, drift_share, performance, schedule, labels"
        )

    @classmethod
    def _performance(cls, value: Any) -> Trigger:
        if not isinstance(value, Mapping):
            raise UsageError(
                "performance: give {metric: NAME, below: VALUE} or {metric: NAME, drop: FRACTION}"
            )
        check_settings("performance trigger", value, ("metric", "source", "below", "drop"))
        metric = str(value.get("metric", ""))
        if metric not in METRICS:
            raise UsageError(f"performance metric {metric!r}; known: {', '.join(METRICS)}")
        source = value.get("source", "realized")
        if source not in ("realized", "estimated"):
            raise UsageError(f"performance source {source!r}: use realized or estimated")
        below = value.get("below")
        drop = value.get("drop")
        if (below is None) == (drop is None):
            raise UsageError(
                f"performance trigger on {metric}: give either below (a value) or drop "
                "(a fraction of the reference figure), not both or neither"
            )
        if drop is not None and not _number("drop", drop) > 0:
            raise UsageError(
                f"performance trigger on {metric}: drop {drop} is the fraction of the reference "
                "figure the metric may lose before it fires; give more than 0, e.g. 0.05"
            )
        return cls(
            "performance",
            metric=metric,
            source=source,
            below=None if below is None else _number("below", below),
            drop=None if drop is None else _number("drop", drop),
        )


@dataclass(frozen=True)
class RetrainSettings:
    # since_trigger: the labelled traffic from the start of the window that fired (what
    # the world looks like after the change); sliding: the last ``days``; expanding: all.
    window: Window = "since_trigger"
    days: float = 28.0
    include_original: bool = False  # add the champion's own training data
    min_rows: int = 1000  # labelled rows to wait for before training
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.window not in ("since_trigger", "sliding", "expanding"):
            raise UsageError(
                f"retrain window {self.window!r}: use since_trigger, sliding or expanding"
            )
        _number("retrain days", self.days)
        _whole("retrain min_rows", self.min_rows)
        _whole("retrain max_attempts", self.max_attempts)
        if not isinstance(self.include_original, bool):
            raise UsageError(
                f"retrain include_original {self.include_original!r}: use true (add the "
                "champion's own training data) or false"
            )
        if not self.days > 0 or self.min_rows < 1 or self.max_attempts < 1:
            raise UsageError("retrain days, min_rows and max_attempts must be positive")


@dataclass(frozen=True)
class RolloutSettings:
    duration: str = "7d"  # on live traffic before the decision
    share: float = 0.1  # of requests a canary answers
    min_samples: int = 200  # answered requests the candidate must see
    min_labels: int = 100  # labelled answers before realized performance is judged; 0: none
    max_metric_drop: float = 0.02  # candidate may be at most this worse than the champion live
    max_error_rate: float = 0.02  # a canary failing more often than this is rolled back
    max_latency_ratio: float = 3.0  # canary p99 latency against the champion's

    def __post_init__(self) -> None:
        parse_duration(self.duration, what="rollout duration", zero=True)
        for name in ("share", "max_metric_drop", "max_error_rate", "max_latency_ratio"):
            _number(f"rollout {name}", getattr(self, name))
        _whole("rollout min_samples", self.min_samples)
        _whole("rollout min_labels", self.min_labels)
        if not 0 < self.share < 1:
            raise UsageError(f"rollout share {self.share}: between 0 and 1")
        if self.min_samples < 0 or self.min_labels < 0:
            raise UsageError("rollout min_samples and min_labels must be 0 or more")
        if not (self.max_metric_drop >= 0 and self.max_error_rate >= 0):
            raise UsageError("rollout max_metric_drop and max_error_rate must be 0 or more")
        if not self.max_latency_ratio > 0:
            raise UsageError("rollout max_latency_ratio must be positive")

    @property
    def span(self) -> timedelta:
        return parse_duration(self.duration, what="rollout duration", zero=True)


@dataclass(frozen=True)
class Policy:
    triggers: tuple[Trigger, ...]
    actions: tuple[str, ...] = ("alert", "retrain", "shadow", "promote", "rollback")
    retrain: RetrainSettings = field(default_factory=RetrainSettings)
    gates: GateConfig = field(default_factory=GateConfig)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    approval: Literal["auto", "required"] = "auto"
    cooldown: str = "1d"  # no new rollout within this of the last one's start

    def __post_init__(self) -> None:
        if not self.triggers:
            raise UsageError("a policy needs at least one trigger, e.g. '- drift_share: 0.3'")
        actions: Any = self.actions  # from YAML or Python, anything may come
        if isinstance(actions, str):
            actions = (actions,)
        if not isinstance(actions, Sequence) or not all(isinstance(a, str) for a in actions):
            raise UsageError(
                f"actions {actions!r}: give a list of actions, e.g. [alert, retrain, shadow]; "
                f"known: {', '.join(ACTIONS)}"
            )
        object.__setattr__(self, "actions", tuple(actions))
        unknown = [a for a in self.actions if a not in ACTIONS]
        if unknown:
            raise UsageError(f"unknown action(s) {', '.join(unknown)}; known: {', '.join(ACTIONS)}")
        if "shadow" in self.actions and "canary" in self.actions:
            raise UsageError("actions: choose shadow or canary, not both")
        beyond = [a for a in self.actions if a not in ("alert", "retrain")]
        if beyond and "retrain" not in self.actions:
            raise UsageError(f"actions {', '.join(beyond)} need retrain among the actions")
        if self.approval not in ("auto", "required"):
            raise UsageError(f"approval {self.approval!r}: use auto or required")
        parse_duration(self.cooldown, what="cooldown", zero=True)

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
        return {
            "triggers": [t.to_dict() for t in self.triggers],
            "actions": list(self.actions),
            "retrain": {
                "window": self.retrain.window,
                "days": self.retrain.days,
                "include_original": self.retrain.include_original,
                "min_rows": self.retrain.min_rows,
                "max_attempts": self.retrain.max_attempts,
            },
            "gates": self.gates.to_dict(),
            "rollout": {
                "duration": self.rollout.duration,
                "share": self.rollout.share,
                "min_samples": self.rollout.min_samples,
                "min_labels": self.rollout.min_labels,
                "max_metric_drop": self.rollout.max_metric_drop,
                "max_error_rate": self.rollout.max_error_rate,
                "max_latency_ratio": self.rollout.max_latency_ratio,
            },
            "approval": self.approval,
            "cooldown": self.cooldown,
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        if not isinstance(data, Mapping):
            raise UsageError("a policy is a mapping with triggers, actions, retrain, gates...")
        check_settings("policy", data, cls.__dataclass_fields__)
        triggers = data.get("triggers") or []
        if not isinstance(triggers, Sequence) or isinstance(triggers, str):
            raise UsageError("triggers: give a list, e.g. [{drift_share: 0.3}]")
        actions = data.get("actions", cls.__dataclass_fields__["actions"].default)
        return cls(
            triggers=tuple(Trigger.from_dict(t) for t in triggers),
            actions=actions,
            retrain=_settings(RetrainSettings, "retrain", data.get("retrain")),
            gates=GateConfig.from_dict(data.get("gates") or {}),
            rollout=_settings(RolloutSettings, "rollout", data.get("rollout")),
            approval=data.get("approval", "auto"),
            cooldown=str(data.get("cooldown", "1d")),
        )

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Policy:
        """A policy from YAML; ``source`` is the file it came from, named in syntax
        errors."""
        return cls.from_dict(load_user_yaml(text, what="the policy", source=source) or {})


def _settings(kind: Any, what: str, data: Any) -> Any:
    if data is None:
        return kind()
    if not isinstance(data, Mapping):
        raise UsageError(f"{what}: give a mapping of settings")
    check_settings(what, data, kind.__dataclass_fields__)
    try:
        return kind(**data)
    except TypeError as error:
        raise UsageError(f"{what}: {error}") from None


def _number(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{what} {value!r}: give a number")
    return float(value)


def _whole(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what} {value!r}: give a whole number")
    return value


def _cron(expression: Any) -> str:
    from croniter import croniter

    text = str(expression)
    if not croniter.is_valid(text):
        raise UsageError(
            f"schedule {text!r} is not a cron expression; write e.g. '0 3 * * 1' "
            "(minute hour day-of-month month day-of-week, UTC)"
        )
    return text


def next_run(cron: str, after: datetime) -> datetime:
    """The first time ``cron`` fires after ``after`` (UTC)."""
    from croniter import croniter

    found: datetime = croniter(cron, after).get_next(datetime)
    return found


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
