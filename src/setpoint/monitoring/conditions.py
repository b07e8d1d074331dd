"""What in a window's results raises an alert, and under which key.

Keys name the condition, so that the alert store keeps one alert per condition and
endpoint: ``drift:feature:NAME``, ``drift:prediction``, ``drift:dataset``,
``drift:multivariate``, ``performance:estimated:METRIC``, ``performance:realized:METRIC``,
``quality:refused`` (a share of the rows refused for their values) and
``quality:out_of_contract`` (a share of the answered rows outside the contract's
ranges and categories).
A condition that held and no longer does in a judged window is resolved by the monitor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setpoint.monitoring.monitor import Monitor
    from setpoint.monitoring.window import Window

OWN_PREFIXES = ("drift:", "performance:", "quality:")  # the keys monitors raise and resolve
# The metric whose drop raises a performance alert, by what the model has.
_WATCHED = ("accuracy", "rmse")
_LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier", "calibration_error"})


def conditions(monitor: Monitor, window: Window) -> Iterator[tuple[str, tuple[str, str, Any]]]:
    """(key, (severity, message, evidence)) of each condition that holds in ``window``."""
    results = window.results
    when = f"{window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
    drift = results["drift"]
    for name in drift["drifted_features"]:
        feature = drift["features"][name]
        output = name in monitor.reference.output_kinds
        what = "the model's outputs" if output else f"feature {name!r}"
        yield (
            "drift:prediction" if output else f"drift:feature:{name}",
            ("warning", f"{what} drifted in {when}: {'; '.join(feature['reasons'])}", feature),
        )
    if drift["drifted"]:
        yield (
            "drift:dataset",
            (
                "critical",
                f"{drift['drift_share']:.0%} of the features drifted in {when}",
                {"drifted_features": drift["drifted_features"]},
            ),
        )
    domain = results.get("multivariate")
    if domain and domain["drifted"]:
        yield (
            "drift:multivariate",
            (
                "warning",
                f"a classifier tells {when} from the reference (AUC {domain['auc']:.2f})",
                domain,
            ),
        )
    performance = results["performance"]
    reference = performance["reference"] or {}
    drop = monitor.config.performance_drop
    for metric in _WATCHED:
        base = reference.get(metric)
        if base is None:
            continue
        estimated = (performance.get("estimated") or {}).get(metric)
        if estimated is not None and _worse(metric, estimated["high"], base, drop):
            yield (
                f"performance:estimated:{metric}",
                (
                    "critical",
                    f"estimated {metric} {estimated['value']:.3f} ({estimated['low']:.3f}-"
                    f"{estimated['high']:.3f}) in {when}, against {base:.3f} on the hold-out",
                    estimated,
                ),
            )
        labelled = performance.get("realized") or {}
        value = labelled.get(metric)
        if (
            value is not None
            and labelled.get("labels", 0) >= monitor.config.min_labels
            and _worse(metric, value, base, drop)
        ):
            yield (
                f"performance:realized:{metric}",
                (
                    "critical",
                    f"{metric} {value:.3f} on {labelled['labels']} labels in {when}, "
                    f"against {base:.3f} on the hold-out",
                    labelled,
                ),
            )
    yield from contract_conditions(monitor, window, when)


def contract_conditions(
    monitor: Monitor, window: Window, when: str
) -> Iterator[tuple[str, tuple[str, str, Any]]]:
    """The window's rows refused by the data contract, and those answered outside it."""
    counts = (window.results.get("quality") or {}).get("contract")
    if not counts:
        return
    config = monitor.config
    answered, refused, scored = window.n_rows, counts["refused"], counts["scored"]
    if refused and refused / (answered + refused) >= config.max_refused_share:
        share = refused / (answered + refused)
        yield (
            "quality:refused",
            (
                "warning",
                f"{share:.1%} of the rows in {when} were refused by the data contract "
                f"({refused:,} of {answered + refused:,}; threshold "
                f"{config.max_refused_share:.1%}): {_top(counts['rules'], 'refused')}",
                counts,
            ),
        )
    if answered and scored and scored / answered >= config.max_out_of_contract_share:
        yield (
            "quality:out_of_contract",
            (
                "warning",
                f"{scored / answered:.1%} of the rows answered in {when} were outside the "
                f"data contract's ranges or categories ({scored:,} of {answered:,}; threshold "
                f"{config.max_out_of_contract_share:.1%}): {_top(counts['rules'], 'scored')}",
                counts,
            ),
        )


def _top(rules: list[dict[str, Any]], which: str, n: int = 3) -> str:
    """The ``n`` (column, rule) pairs with the most rows of ``which``, as words."""
    ranked = sorted((r for r in rules if r[which]), key=lambda r: -int(r[which]))[:n]
    return ", ".join(f"{r['column']} {r['rule']} ({r[which]:,} rows)" for r in ranked)


def _worse(metric: str, value: float, base: float, drop: float) -> bool:
    if metric in _LOWER_IS_BETTER:
        return value > base * (1 + drop) if base > 0 else value > drop
    return value < base - drop
