"""What an endpoint serves and how: the deployment configuration.

A deployment names the model (``NAME@champion`` follows the alias, ``NAME@3`` pins
a version), an optional challenger in shadow or canary mode, a fallback answer for
when the model cannot answer, and the knobs of the hot path: micro-batching, cache,
latency budget, how a batch with bad rows is answered, whether the prediction log is
durable, how long its records are kept (``log_retention``), and whether the API docs
show the ranges and categories of the training data (``docs_values``). Every change
is a new revision, so what served when is never lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from setpoint._durations import parse_duration
from setpoint._names import canonical_ref, split_ref
from setpoint.errors import SetpointError, UsageError

Mode = Literal["shadow", "canary"]
OnError = Literal["reject", "per_row"]
LogMode = Literal["durable", "async"]

# Shorter would drop records the hourly-or-slower retention job has barely seen.
_SHORTEST_RETENTION = timedelta(hours=1)


def retention_span(text: str) -> timedelta:
    """A log retention (``90d``, ``36h``) as a timedelta; UsageError naming the fix."""
    return parse_duration(text, what="--log-retention", at_least=_SHORTEST_RETENTION)


@dataclass(frozen=True)
class Batching:
    max_batch_size: int = 64
    # 0: never wait on a timer; requests that arrive while a batch is predicted form the
    # next batch. Above 0: an idle model waits this long for more requests first.
    max_wait_ms: float = 0.0


@dataclass(frozen=True)
class Cache:
    enabled: bool = False
    size: int = 10_000
    ttl_s: float = 60.0


@dataclass(frozen=True)
class Fallback:
    """Answer with another model, or with a constant, while the model cannot answer."""

    model: str | None = None
    value: Any = None


@dataclass(frozen=True)
class DeploymentConfig:
    model: str
    challenger: str | None = None
    mode: Mode | None = None
    share: float = 0.1  # of requests the canary answers
    sticky_key: str | None = None  # a request field that keeps a caller on one route
    fallback: Fallback | None = None
    batching: Batching = field(default_factory=Batching)
    cache: Cache = field(default_factory=Cache)
    latency_budget_ms: float = 1000.0
    max_queue_rows: int = 4096  # rows waiting for a batch before new work is shed (503)
    on_error: OnError = "reject"  # a batch with bad rows: fail whole, or answer per row
    log: LogMode = "durable"
    # Records of the endpoint's logs older than this are deleted by a daily job
    # (serving/retention.py); None keeps them.
    log_retention: str | None = None
    # /openapi.json and /docs show the contract's ranges and categories (and examples
    # made from them): they describe the training data, so only when asked for.
    docs_values: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentConfig:
        fallback = data.get("fallback")
        return cls(
            model=data["model"],
            challenger=data.get("challenger"),
            mode=data.get("mode"),
            share=float(data.get("share", 0.1)),
            sticky_key=data.get("sticky_key"),
            fallback=None if fallback is None else Fallback(**fallback),
            batching=Batching(**data.get("batching", {})),
            cache=Cache(**data.get("cache", {})),
            latency_budget_ms=float(data.get("latency_budget_ms", 1000.0)),
            max_queue_rows=int(data.get("max_queue_rows", 4096)),
            on_error=data.get("on_error", "reject"),
            log=data.get("log", "durable"),
            log_retention=data.get("log_retention"),
            docs_values=data.get("docs_values", False),
        )

    def updated(self, **changes: Any) -> DeploymentConfig:
        """This config with ``changes`` (None values leave a field as it is); nested
        settings are given flat: ``max_batch_size``, ``cache_enabled``, ``cache_ttl_s``…"""
        nested = {
            "batching": {"max_batch_size", "max_wait_ms"},
            "cache": {"cache_enabled", "cache_size", "cache_ttl_s"},
        }
        given = {k: v for k, v in changes.items() if v is not None}
        batching = replace(
            self.batching, **{k: given.pop(k) for k in list(given) if k in nested["batching"]}
        )
        cache = replace(
            self.cache,
            **{k.removeprefix("cache_"): given.pop(k) for k in list(given) if k in nested["cache"]},
        )
        if given.pop("no_challenger", False):
            given |= {"challenger": None, "mode": None}
        if given.pop("no_fallback", False):
            given["fallback"] = None
        if given.pop("no_log_retention", False):
            given["log_retention"] = None
        return replace(self, batching=batching, cache=cache, **given)

    def canonical(self) -> DeploymentConfig:
        """This config with its model references in setpoint's spelling (MLflow's
        ``models:/NAME/3`` becomes ``NAME@3``, and the model ``NAME`` is
        ``NAME@champion``), so whatever reads the stored config reads one form; a
        reference that does not read is left as given for :meth:`check` to report."""

        def spelled(ref: str | None) -> str | None:
            try:
                return None if ref is None else canonical_ref("model", ref)
            except SetpointError:
                return ref

        fallback = self.fallback
        if fallback is not None and fallback.model is not None:
            fallback = replace(fallback, model=spelled(fallback.model))
        return replace(
            self,
            model=_follow_champion(spelled(self.model) or self.model),
            challenger=spelled(self.challenger),
            fallback=fallback,
        )

    def check(self) -> None:
        """Every problem with this config at once, as a UsageError naming the fix."""
        problems: list[str] = []
        for label, ref in (("--model", self.model), ("--challenger", self.challenger)):
            if ref is not None:
                try:
                    split_ref("model", ref)
                except SetpointError as error:
                    problems.append(f"{label}: {error.message}")
        if self.fallback is not None and self.fallback.model is not None:
            try:
                split_ref("model", self.fallback.model)
            except SetpointError as error:
                problems.append(f"--fallback-model: {error.message}")
        if (self.challenger is None) != (self.mode is None):
            problems.append("a challenger needs a mode, and a mode a challenger: give both")
        if self.mode not in (None, "shadow", "canary"):
            problems.append(f"--mode {self.mode!r}: use shadow or canary")
        if not 0.0 < self.share < 1.0:
            problems.append(f"--share {self.share}: give a share of traffic between 0 and 1")
        if not 1 <= self.batching.max_batch_size <= 10_000:
            problems.append("--max-batch-size: between 1 and 10000")
        if not 0.0 <= self.batching.max_wait_ms <= 1000.0:
            problems.append("--max-wait-ms: between 0 and 1000")
        if self.cache.size < 1 or not self.cache.ttl_s > 0:
            problems.append("--cache-size and --cache-ttl must be positive")
        if not (self.latency_budget_ms > 0 and math.isfinite(self.latency_budget_ms)):
            problems.append("--latency-budget-ms must be a positive number")
        if not 1 <= self.max_queue_rows <= 10_000_000:
            problems.append("--max-queue-rows: between 1 and 10000000")
        if self.on_error not in ("reject", "per_row"):
            problems.append(f"--on-error {self.on_error!r}: use reject or per_row")
        if self.log not in ("durable", "async"):
            problems.append(f"--log {self.log!r}: use durable or async")
        if self.log_retention is not None:
            try:
                retention_span(self.log_retention)
            except SetpointError as error:
                problems.append(error.message)
        if self.docs_values not in (True, False):
            problems.append(f"docs_values {self.docs_values!r}: true or false")
        if problems:
            raise UsageError("; ".join(problems), details=problems)


def _follow_champion(ref: str) -> str:
    """A served model given by name alone follows its champion."""
    try:
        name, selector = split_ref("model", ref)
    except SetpointError:
        return ref
    return ref if selector else f"{name}@champion"
