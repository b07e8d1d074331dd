"""How a candidate does on live traffic, read from the prediction log.

In shadow mode every request the champion answered was also given to the candidate;
both answers are logged under the same request id and row, so they pair exactly:
agreement, and realized performance of both on the same rows once labels come. In
canary mode the two answered different requests of the same period: each route's
error rate (a canary request the candidate failed was answered by the champion and
logged as ``route=canary, fallback=true``), p99 latency, and realized performance on
its own labelled rows.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.loop.policy import RolloutSettings
from setpoint.models.evaluation import METRICS, evaluate
from setpoint.monitoring.traffic import labels_for, parse_outputs
from setpoint.serving._logremote import LogLocation
from setpoint.serving._logtables import read_log


def compare(
    root: Path | LogLocation,
    endpoint: str,
    *,
    mode: str,
    champion: tuple[str, int],
    candidate: tuple[str, int],
    task: str,
    classes: list[Any] | None,
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    """The live comparison of ``candidate`` with ``champion`` (NAME, VERSION) in [since, until)."""
    log = read_log(root, kind="predictions", endpoint=endpoint, since=since, until=until)
    route = log.column("route")
    version = log.column("version")
    if mode == "shadow":
        mine = pc.and_(pc.equal(route, "shadow"), pc.equal(version, candidate[1]))
        theirs = pc.and_(pc.not_equal(route, "shadow"), pc.equal(version, champion[1]))
        return _shadow(root, endpoint, log.filter(theirs), log.filter(mine), task, classes)
    on_canary = pc.equal(route, "canary")
    failed = pc.and_(on_canary, log.column("fallback"))
    answered = pc.and_(
        pc.and_(on_canary, pc.invert(log.column("fallback"))), pc.equal(version, candidate[1])
    )
    champion_rows = pc.equal(route, "champion")
    # Requests, not log rows: a request of many rows is one answer that failed or not
    # (all its rows share the route and the fallback), so a single failed batch of 50
    # rows is 1 of 1 requests, not 50 of 50.
    canary_requests = _requests(log.filter(on_canary))
    errors = _requests(log.filter(failed))
    return {
        "mode": "canary",
        "requests": canary_requests,
        "errors": errors,
        "error_rate": errors / canary_requests if canary_requests else None,
        "candidate": _side(root, endpoint, log.filter(answered), task, classes),
        "champion": _side(root, endpoint, log.filter(champion_rows), task, classes),
    }


def judge(live: dict[str, Any], settings: RolloutSettings, metric: str) -> tuple[str, list[str]]:
    """("pass" | "fail" | "wait", reasons): wait while there is too little evidence."""
    candidate, champion = live["candidate"], live["champion"]
    reasons: list[str] = []
    if live["mode"] == "canary":
        rate = live.get("error_rate")
        if rate is not None and live["requests"] >= 20 and rate > settings.max_error_rate:
            reasons.append(
                f"the canary failed {live['errors']} of {live['requests']} requests "
                f"({rate:.1%}; at most {settings.max_error_rate:.1%} allowed)"
            )
        mine, theirs = candidate.get("p99_latency_ms"), champion.get("p99_latency_ms")
        if (
            mine is not None
            and theirs
            and candidate["rows"] >= 20
            and mine > theirs * settings.max_latency_ratio
        ):
            reasons.append(
                f"the canary's p99 latency {mine:.1f} ms is over {settings.max_latency_ratio:g}x "
                f"the champion's {theirs:.1f} ms"
            )
    labels = min(candidate.get("labels", 0), champion.get("labels", 0))
    mine_value = (candidate.get("metrics") or {}).get(metric)
    theirs_value = (champion.get("metrics") or {}).get(metric)
    if (
        settings.min_labels
        and labels >= settings.min_labels
        and mine_value is not None
        and theirs_value is not None
    ):
        higher = METRICS[metric].higher_is_better
        loss = (theirs_value - mine_value) if higher else (mine_value - theirs_value)
        if loss > settings.max_metric_drop:
            reasons.append(
                f"live {metric} {mine_value:.3f} against the champion's {theirs_value:.3f} on "
                f"{labels} labelled rows: worse by {loss:.3f} (at most "
                f"{settings.max_metric_drop:g} allowed)"
            )
    if reasons:
        return "fail", reasons
    waiting = []
    if candidate["rows"] < settings.min_samples:
        waiting.append(f"{candidate['rows']} of {settings.min_samples} answers")
    if settings.min_labels and labels < settings.min_labels:
        waiting.append(f"{labels} of {settings.min_labels} labelled answers")
    if waiting:
        return "wait", waiting
    return "pass", []


def _requests(rows: pa.Table) -> int:
    """How many requests ``rows`` (log records) are the answers of."""
    return int(pc.count_distinct(rows.column("request_id")).as_py() or 0)


def _shadow(
    root: Path | LogLocation,
    endpoint: str,
    champion: pa.Table,
    candidate: pa.Table,
    task: str,
    classes: list[Any] | None,
) -> dict[str, Any]:
    """Pair the two answers of each (request, row) both gave."""
    left = champion.select(["request_id", "row"]).append_column(
        "i", pa.array(np.arange(champion.num_rows))
    )
    right = candidate.select(["request_id", "row"]).append_column(
        "j", pa.array(np.arange(candidate.num_rows))
    )
    pairs = left.join(right, ["request_id", "row"], join_type="inner").sort_by("i")
    mine = candidate.take(pairs.column("j"))
    theirs = champion.take(pairs.column("i"))
    mine_side = _side(root, endpoint, mine, task, classes)
    theirs_side = _side(root, endpoint, theirs, task, classes)
    agreement = None
    if pairs.num_rows:
        a, _ = parse_outputs(mine.column("outputs").to_pylist())
        b, _ = parse_outputs(theirs.column("outputs").to_pylist())
        agreement = float(
            np.mean(
                np.asarray(a.to_pylist(), dtype=object) == np.asarray(b.to_pylist(), dtype=object)
            )
        )
    return {
        "mode": "shadow",
        "pairs": pairs.num_rows,
        "agreement": agreement,
        "candidate": mine_side,
        "champion": theirs_side,
    }


def _side(
    root: Path | LogLocation, endpoint: str, rows: pa.Table, task: str, classes: list[Any] | None
) -> dict[str, Any]:
    """One model's answers: how many, p99 latency, and metrics on those with labels."""
    n = rows.num_rows
    side: dict[str, Any] = {"rows": n, "labels": 0, "metrics": None, "p99_latency_ms": None}
    if n == 0:
        return side
    latency = rows.column("latency_ms").to_numpy(zero_copy_only=False)
    side["p99_latency_ms"] = float(np.nanpercentile(latency, 99))
    predictions, proba = parse_outputs(rows.column("outputs").to_pylist())
    labels, _ = labels_for(root, endpoint, rows)
    have = np.asarray(pc.is_valid(labels).to_numpy(zero_copy_only=False), dtype=bool)
    side["labels"] = int(have.sum())
    if not have.any():
        return side
    y = np.asarray(labels.to_pylist(), dtype=object)[have]
    predicted = np.asarray(predictions.to_pylist(), dtype=object)[have]
    if task == "classification" and classes is not None:
        y, predicted = _typed(y, classes), _typed(predicted, classes)
    side["metrics"] = evaluate(
        y,
        predicted,
        None if proba is None else proba[have],
        task=task,
        classes=classes,
    )
    return side


def _typed(values: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Labels as the classes' own type (feedback may carry 1 for a class 1.0, or '1')."""
    kind = type(classes[0])
    try:
        return np.asarray([kind(v) for v in values])
    except (TypeError, ValueError):
        return values
