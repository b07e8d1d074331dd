"""An endpoint's state in plain words: what a person at the overview reads first.

Each finding is a :class:`Finding` (a level and a sentence); the worst one heads the
endpoint's row. Levels, best to worst: ``ok``, ``info`` (something under way, nothing
wrong), ``warn`` (look soon), ``act`` (someone must decide or fix something).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LEVELS = ("ok", "info", "warn", "act")
_REFUSED_WARN = 0.02  # a share of rows refused by the contract worth a look
_ESTIMATE_DROP = 0.05  # the estimated primary metric this far below the reference


@dataclass(frozen=True)
class Finding:
    level: str
    text: str


def findings(
    *,
    monitored: bool,
    window: Mapping[str, Any] | None,
    rollout: Mapping[str, Any] | None,
    open_alerts: Sequence[Mapping[str, Any]],
    primary: str | None,
    cannot_serve: str | None = None,
) -> list[Finding]:
    """What is true of an endpoint now, worst first; "on target" when nothing is wrong."""
    out: list[Finding] = []
    if cannot_serve:
        out.append(Finding("act", f"cannot serve: {cannot_serve}"))
    if rollout is not None:
        out.append(_rollout(rollout))
    if not monitored:
        out.append(Finding("warn", "not monitored: create a monitor to see drift and performance"))
    elif window is None:
        out.append(Finding("info", "monitored; no window computed yet"))
    else:
        out += _window(window, primary)
    critical = [a for a in open_alerts if a.get("severity") == "critical"]
    if critical:
        out.append(Finding("act", f"{len(critical)} critical alert(s) open"))
    elif open_alerts:
        out.append(Finding("warn", f"{len(open_alerts)} alert(s) open"))
    if not out:
        out.append(Finding("ok", "on target"))
    return sorted(out, key=lambda f: -LEVELS.index(f.level))


def worst(found: Sequence[Finding]) -> str:
    return max((f.level for f in found), key=LEVELS.index, default="ok")


def _rollout(rollout: Mapping[str, Any]) -> Finding:
    state, candidate = rollout["state"], rollout.get("candidate") or "a candidate"
    if state == "awaiting_approval":
        return Finding("act", f"waiting for your approval: {candidate}")
    if state in ("shadow", "canary"):
        return Finding("info", f"trying {candidate} in {state}")
    if state == "retraining":
        return Finding("info", "retraining a candidate")
    return Finding("info", "a rollout is waiting for labels to retrain on")


def _window(window: Mapping[str, Any], primary: str | None) -> list[Finding]:
    out: list[Finding] = []
    drift = window.get("drift") or {}
    drifted = list(drift.get("drifted_features") or [])
    if drifted:
        shown = ", ".join(drifted[:3]) + (
            f" and {len(drifted) - 3} more" if len(drifted) > 3 else ""
        )
        out.append(Finding("warn", f"drifting: {shown}"))
    if drift.get("prediction_drifted"):
        out.append(Finding("warn", "the model's answers have shifted"))
    refused = refused_share(window)
    if refused is not None and refused >= _REFUSED_WARN:
        out.append(Finding("warn", f"refusing {100 * refused:.1f}% of rows (the contract)"))
    performance = window.get("performance") or {}
    estimate = (performance.get("estimated") or {}).get(primary or "") or {}
    reference = (performance.get("reference") or {}).get(primary or "")
    value = estimate.get("value")
    if value is not None and reference is not None and value < reference - _ESTIMATE_DROP:
        out.append(
            Finding("warn", f"estimated {primary} {value:.3f}, below {reference:.3f} at training")
        )
    return out


def refused_share(window: Mapping[str, Any]) -> float | None:
    """Rows the contract refused, as a share of the rows that came."""
    quality = window.get("quality") or {}
    contract = quality.get("contract") or {}
    refused = contract.get("refused")
    scored = quality.get("volume")
    if refused is None or scored is None or refused + scored == 0:
        return None
    return float(refused) / float(refused + scored)
