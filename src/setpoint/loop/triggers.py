"""Which of a policy's triggers hold: in the monitor windows it has not looked at yet,
on its schedule, or in the labels that came since the last retraining.

Each firing names what fired, its evidence, the window it fired in (the training
window of a ``since_trigger`` retraining starts there) and a key: a rollout is keyed
by it, so the same window or schedule tick seen twice starts one rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from setpoint.loop.policy import Policy, Trigger, next_run
from setpoint.models.evaluation import METRICS
from setpoint.monitoring.window import Window


@dataclass(frozen=True)
class Firing:
    key: str
    trigger: dict[str, Any]  # the trigger as written
    message: str  # for a person: what held, where
    evidence: dict[str, Any]
    since: datetime  # the start of the window (or the time) it fired at

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "trigger": self.trigger,
            "message": self.message,
            "evidence": self.evidence,
            "since": self.since.isoformat(),
        }


def in_windows(
    policy: Policy,
    windows: Sequence[Window],
    outputs: Sequence[str],
    *,
    min_labels: int = 1,
    only: Sequence[Trigger] | None = None,
) -> list[Firing]:
    """The firings of the window-based triggers in ``windows`` (oldest first), or of
    ``only`` those triggers; ``outputs`` are the monitor's output columns, which are not
    features; realized performance counts from ``min_labels`` labels in a window."""
    fired = []
    for window in windows:
        for trigger in policy.triggers if only is None else only:
            found = _in_window(trigger, window, outputs, min_labels)
            if found is not None:
                message, evidence = found
                fired.append(
                    Firing(
                        key=f"window:{window.start.isoformat()}",
                        trigger=trigger.to_dict(),
                        message=f"{message} in the window from {window.start:%Y-%m-%d %H:%M} UTC",
                        evidence=evidence,
                        since=window.start,
                    )
                )
    return fired


def on_schedule(policy: Policy, last_checked: datetime | None, now: datetime) -> list[Firing]:
    """A firing for each schedule with a tick in (last_checked, now]; the first look
    only starts the clock."""
    if last_checked is None:
        return []
    fired = []
    for trigger in policy.triggers:
        if trigger.kind != "schedule":
            continue
        tick = next_run(trigger.cron, last_checked)
        if tick <= now:
            fired.append(
                Firing(
                    key=f"schedule:{tick.isoformat()}",
                    trigger=trigger.to_dict(),
                    message=f"the schedule {trigger.cron!r} came due at {tick:%Y-%m-%d %H:%M} UTC",
                    evidence={"due": tick.isoformat()},
                    since=tick,
                )
            )
    return fired


def on_labels(policy: Policy, new_labels: int, since: datetime, now: datetime) -> list[Firing]:
    """A firing when at least the trigger's count of labels came since ``since``; keyed by
    ``since`` (the last retraining), so the count seen again (a later tick, another loop)
    is the same firing until a retraining moves ``since`` on."""
    fired = []
    for trigger in policy.triggers:
        if trigger.labels is not None and new_labels >= trigger.labels:
            fired.append(
                Firing(
                    key=f"labels:{since.isoformat()}",
                    trigger=trigger.to_dict(),
                    message=f"{new_labels:,} new labels since {since:%Y-%m-%d %H:%M} UTC",
                    evidence={"labels": new_labels, "since": since.isoformat()},
                    since=since,
                )
            )
    return fired


def _in_window(
    trigger: Trigger, window: Window, outputs: Sequence[str], min_labels: int
) -> tuple[str, dict[str, Any]] | None:
    results = window.results
    drift = results.get("drift") or {}
    drifted = [f for f in drift.get("drifted_features", []) if f not in outputs]
    if trigger.kind == "drift":
        hits = [f for f in drifted if not trigger.features or f in trigger.features]
        if hits:
            return f"feature(s) {', '.join(hits)} drifted", {"drifted_features": hits}
        return None
    if trigger.kind == "drift_share":
        # The monitor's one share of the input features; None when the window was too
        # small to judge (it then fires nothing).
        share = drift.get("drift_share")
        if share is not None and share >= trigger.share:
            return (
                f"{share:.0%} of the features drifted (trigger at {trigger.share:.0%})",
                {"drift_share": share, "drifted_features": drifted},
            )
        return None
    if trigger.kind == "performance":
        return _performance(trigger, results.get("performance") or {}, min_labels)
    return None


def _performance(
    trigger: Trigger, performance: dict[str, Any], min_labels: int
) -> tuple[str, dict[str, Any]] | None:
    metric = trigger.metric
    if trigger.source == "estimated":
        estimate = (performance.get("estimated") or {}).get(metric)
        value = None if estimate is None else estimate.get("value")
    else:
        realized = performance.get("realized") or {}
        if realized.get("labels", 0) < min_labels:
            return None
        value = realized.get(metric)
    if value is None:
        return None
    higher = METRICS[metric].higher_is_better
    if trigger.below is not None:
        worse = value < trigger.below if higher else value > trigger.below
        limit = trigger.below
    else:
        base = (performance.get("reference") or {}).get(metric)
        if base is None:
            return None
        assert trigger.drop is not None
        # A fraction of the reference's size, away from its better side (also when the
        # reference is negative, as an r2 can be).
        margin = trigger.drop * abs(base)
        limit = base - margin if higher else base + margin
        worse = value < limit if higher else value > limit
    if not worse:
        return None
    return (
        f"{trigger.source} {metric} {value:.3f} is worse than {limit:.3f}",
        {"metric": metric, "source": trigger.source, "value": value, "limit": limit},
    )
