"""What in a window's results raises an alert, and under which key.

Keys name the condition, so that the alert store keeps one alert per condition and
endpoint: ``drift:feature:NAME``, ``drift:prediction``, ``drift:dataset``,
``drift:multivariate``, ``drift:attribution`` (the model's explanation moved),
``performance:estimated:METRIC``, ``performance:realized:METRIC``,
``quality:refused`` (a share of the rows refused for their values) and
``quality:out_of_contract`` (a share of the answered rows outside the contract's
ranges and categories).

A condition is *judged* in a window when the window holds the evidence to decide it:
enough rows for drift, enough labels for realized performance, an estimate for
estimated performance, any row for the data contract's. Judged, it either holds (an
alert is raised) or does not (its alert, if open, is resolved). Not judged, it says
nothing: a window without labels never resolves a realized-performance alert, and an
empty window never resolves drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.monitoring.monitor import Monitor
    from setpoint.monitoring.window import Window

# What holds: severity, message, evidence.
Holding = tuple[str, str, Any]
REALIZED = "performance:realized:"
# The metric whose drop raises a performance alert, by what the model has.
_WATCHED = ("accuracy", "rmse")
_LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier", "calibration_error"})


def conditions(monitor: Monitor, window: Window) -> dict[str, Holding | None]:
    """Each condition judged in ``window``: its key, and what holds (None: it does not)."""
    config = monitor.config
    when = span(window)
    # The outputs' names only tell apart a window stored with the model's outputs among
    # its features (before they were judged apart): a window without features needs none.
    features = (window.results.get("drift") or {}).get("features")
    judged = judge(
        window.results,
        when,
        outputs=monitor.reference.output_kinds if features else (),
        performance_drop=config.performance_drop,
        min_labels=config.min_labels,
    )
    judged.update(_contract(monitor, window, when))  # what the server refused and marked
    return judged


def judge(
    results: Mapping[str, Any],
    when: str,
    *,
    outputs: Iterable[str],
    performance_drop: float,
    min_labels: int,
) -> dict[str, Holding | None]:
    """Each condition judged in a window's ``results`` (a monitor's, or a chunk of an
    offline comparison): its key, and what holds (None: it does not). ``outputs``: the
    model's output columns; ``when``: the window as messages name it."""
    judged: dict[str, Holding | None] = {}
    attribution = results.get("attribution")
    if results.get("judged", True):
        judged.update(_drift(set(outputs), results["drift"], when, attribution))
    if attribution:
        judged["drift:attribution"] = _attribution(attribution, when)
    domain = results.get("multivariate")
    if domain:
        judged["drift:multivariate"] = (
            (
                "warning",
                f"a classifier tells {when} from the reference (AUC {domain['auc']:.2f}"
                + (f" ± {domain['auc_se']:.2f})" if domain.get("auc_se") is not None else ")"),
                domain,
            )
            if domain["drifted"]
            else None
        )
    judged.update(_performance(results["performance"], when, performance_drop, min_labels))
    return judged


def span(window: Window) -> str:
    """The window's full span, as alert messages name it."""
    return f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"


def _drift(
    output_names: set[str],
    drift: Mapping[str, Any],
    when: str,
    attribution: Mapping[str, Any] | None = None,
) -> dict[str, Holding | None]:
    judged: dict[str, Holding | None] = {}
    outputs = dict(drift.get("prediction") or {})
    # Where the model's explanation is measured, a drifted feature's alert says how
    # much of it the feature carries: a shift the model ignores reads as such.
    weight = {
        name: f["reference"] for name, f in ((attribution or {}).get("features") or {}).items()
    }
    for name, feature in drift["features"].items():
        if name in output_names:  # a window stored before outputs stood apart
            outputs[name] = feature
            continue
        carries = (
            f" (it carries {weight[name]:.0%} of the model's explanation)" if name in weight else ""
        )
        judged[f"drift:feature:{name}"] = (
            (
                "warning",
                f"feature {name!r} drifted in {when}: {'; '.join(feature['reasons'])}" + carries,
                feature,
            )
            if feature["drifted"]
            else None
        )
    if outputs:
        moved = {name: f for name, f in outputs.items() if f["drifted"]}
        reasons = "; ".join(r for f in moved.values() for r in f["reasons"])
        judged["drift:prediction"] = (
            ("warning", f"the model's outputs drifted in {when}: {reasons}", moved)
            if moved
            else None
        )
    share = drift.get("drift_share")
    if share is not None:
        judged["drift:dataset"] = (
            (
                "critical",
                f"{share:.0%} of the input features drifted in {when}",
                {"drift_share": share, "drifted_features": drift["drifted_features"]},
            )
            if drift["drifted"]
            else None
        )
    return judged


def _attribution(attribution: Mapping[str, Any], when: str) -> Holding | None:
    """Attribution drift: the features whose share of the model's explanation moved,
    the most important (on the reference) first."""
    if not attribution["drifted"]:
        return None
    features = attribution["features"]
    moves = "; ".join(
        f"{name!r} {features[name]['reference']:.0%} -> {features[name]['window']:.0%}"
        for name in attribution["drifted"][:3]
    )
    more = len(attribution["drifted"]) - 3
    if more > 0:
        moves += f" and {more} more"
    return (
        "warning",
        f"the model's explanation moved in {when}: share of {moves}",
        attribution,
    )


def _performance(
    performance: Mapping[str, Any], when: str, drop: float, min_labels: int
) -> dict[str, Holding | None]:
    judged: dict[str, Holding | None] = {}
    reference = performance.get("reference") or {}
    learned = performance.get("learned_drop") or {}
    floor = drop
    for metric in _WATCHED:
        base = reference.get(metric)
        if base is None:
            continue
        # The drop the reference's own chunks of time showed, when larger (thresholds
        # learned from time); the configured drop is the floor.
        drop = max(floor, learned.get(metric, 0.0))
        estimated = (performance.get("estimated") or {}).get(metric)
        if estimated is not None:
            judged[f"performance:estimated:{metric}"] = (
                (
                    "critical",
                    f"estimated {metric} {estimated['value']:.3f} ({estimated['low']:.3f}-"
                    f"{estimated['high']:.3f}) in {when}, against {base:.3f} on the hold-out",
                    estimated,
                )
                if worse(metric, estimated["high"], base, drop)
                else None
            )
        labelled = performance.get("realized") or {}
        value = labelled.get(metric)
        if value is not None and labelled.get("labels", 0) >= min_labels:
            judged[f"{REALIZED}{metric}"] = (
                (
                    "critical",
                    f"{metric} {value:.3f} on {labelled['labels']} labels in {when}, "
                    f"against {base:.3f} on the hold-out",
                    labelled,
                )
                if worse(metric, value, base, drop)
                else None
            )
    return judged


def _contract(monitor: Monitor, window: Window, when: str) -> dict[str, Holding | None]:
    """The window's rows refused by the data contract and those answered outside it,
    each judged from ``min_rows`` rows on (the rows sent, and the rows answered): at a
    handful of rows one odd request is a share of 100% and would flap the alert."""
    counts = (window.results.get("quality") or {}).get("contract")
    if not counts:  # a window stored before the contract was counted
        return {}
    judged: dict[str, Holding | None] = {}
    config = monitor.config
    answered, refused, scored = window.n_rows, counts["refused"], counts["scored"]
    enough = config.drift.min_rows
    if answered + refused >= enough:
        share = refused / (answered + refused)
        judged["quality:refused"] = (
            (
                "warning",
                f"{share:.1%} of the rows in {when} were refused by the data contract "
                f"({refused:,} of {answered + refused:,}; threshold "
                f"{config.max_refused_share:.1%}): {_top(counts['rules'], 'refused')}",
                counts,
            )
            if refused and share >= config.max_refused_share
            else None
        )
    if answered >= enough:
        share = scored / answered
        judged["quality:out_of_contract"] = (
            (
                "warning",
                f"{share:.1%} of the rows answered in {when} were outside the data "
                f"contract's ranges or categories ({scored:,} of {answered:,}; threshold "
                f"{config.max_out_of_contract_share:.1%}): {_top(counts['rules'], 'scored')}",
                counts,
            )
            if scored and share >= config.max_out_of_contract_share
            else None
        )
    return judged


def _top(rules: list[dict[str, Any]], which: str, n: int = 3) -> str:
    """The ``n`` (column, rule) pairs with the most rows of ``which``, as words."""
    ranked = sorted((r for r in rules if r[which]), key=lambda r: -int(r[which]))[:n]
    return ", ".join(f"{r['column']} {r['rule']} ({r[which]:,} rows)" for r in ranked)


def worse(metric: str, value: float, base: float, drop: float) -> bool:
    """Whether ``value`` is more than ``drop`` worse than ``base`` (relative for a
    metric where lower is better, absolute otherwise)."""
    if metric in _LOWER_IS_BETTER:
        return value > base * (1 + drop) if base > 0 else value > drop
    return value < base - drop


def concept_drift(performance: dict[str, Any], *, min_labels: int) -> dict[str, Any] | None:
    """Evidence that the relation between inputs and outcome changed: with at least
    ``min_labels`` labels, a realized metric outside the band of its estimate.

    The estimate assumes that relation holds (it sees only the inputs), and its band is
    the scatter of the metric over the whole window's labels; realized figures on a
    labelled share of the rows scatter more, so the band is widened by the square root
    of the coverage's inverse before they are compared."""
    estimated = performance.get("estimated") or {}
    realized = performance.get("realized") or {}
    labels = realized.get("labels") or 0
    coverage = realized.get("coverage") or 0.0
    if labels < min_labels or coverage <= 0:
        return None
    widen = (1.0 / min(coverage, 1.0)) ** 0.5
    outside = {}
    for metric, band in estimated.items():
        value = realized.get(metric)
        if value is None:
            continue
        low = band["value"] - (band["value"] - band["low"]) * widen
        high = band["value"] + (band["high"] - band["value"]) * widen
        if not low <= value <= high:
            outside[metric] = {
                "realized": value,
                "estimated": band["value"],
                "low": low,
                "high": high,
            }
    return {"labels": labels, "metrics": outside} if outside else None
