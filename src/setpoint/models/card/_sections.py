"""The sections of a model card, after Mitchell et al., "Model Cards for Model
Reporting" (2019): details, intended use, training data, evaluation, fairness and
top features from what training recorded here; known limitations, serving history
and monitoring from production (``_production.py``).

Every section is always there: one with nothing to show says so in a sentence,
and says how to fill it when a person can (a spec key, a monitor)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from setpoint._display import count, listing, number
from setpoint.models.card._blocks import Block, Facts, Para, Section, Table
from setpoint.models.card._facts import ModelCard
from setpoint.models.card._production import limitations, monitoring, serving
from setpoint.models.registry import SEGMENT_METRICS
from setpoint.monitoring.report._format import _capital, _pct, _stamp

TOP_FEATURES = 10
_RULES_WIDTH = 60  # characters of a feature's range or categories in the contract table


def sections(card: ModelCard) -> list[Section]:
    return [
        Section("details", "Model details", _details(card)),
        Section("intended-use", "Intended use", _intended_use(card)),
        Section("training-data", "Training data", _training_data(card)),
        Section("evaluation", "Evaluation", _evaluation(card)),
        Section("fairness", "Fairness", _fairness(card)),
        Section("features", "Top features", _features(card)),
        Section("limitations", "Known limitations", limitations(card)),
        Section("serving", "Serving history", serving(card)),
        Section("monitoring", "Monitoring", monitoring(card)),
    ]


def _spec(card: ModelCard) -> Mapping[str, Any]:
    return card.version.spec or {}


def _details(card: ModelCard) -> tuple[Block, ...]:
    v, lineage = card.version, card.version.lineage
    git = lineage.get("git") or {}
    packages = lineage.get("packages") or {}
    estimator = (_spec(card).get("estimator") or {}).get("class")
    rows = [
        ("Model", v.name),
        ("Version", str(v.version)),
        ("Aliases", ", ".join(v.aliases) or "none"),
        ("Flavor", v.flavor),
        ("Task", v.task),
        ("Estimator", estimator or lineage.get("registered_object") or "the task's default"),
        *(
            (
                (
                    "Optimised from",
                    f"{lineage['optimized_from']} ({lineage.get('optimization')} candidate "
                    "of `setpoint optimize`)",
                ),
            )
            if lineage.get("optimized_from")
            else ()
        ),
        ("Created by", v.created_by),
        ("Created", _stamp(v.created_at)),
        ("Packages", ", ".join(f"{k} {x}" for k, x in packages.items()) or "not recorded"),
        (
            "Git revision",
            f"{git['revision']}{' (with uncommitted changes)' if git.get('dirty') else ''}"
            if git.get("revision")
            else "not recorded (trained outside a git checkout)",
        ),
        ("setpoint", str(lineage.get("setpoint") or "not recorded")),
    ]
    rows += [("Description", v.description)] if v.description else []
    rows += [("Notes", v.notes)] if v.notes else []
    return (Facts(tuple(rows)),)


def _intended_use(card: ModelCard) -> tuple[Block, ...]:
    text = str(_spec(card).get("intended_use") or "")
    if not text:
        return (Para("Not stated; add intended_use: to the training spec."),)
    return (Para(text),)


def _training_data(card: ModelCard) -> tuple[Block, ...]:
    v, ev = card.version, card.version.evaluation
    blocks: list[Block] = []
    time_column = (_spec(card).get("split") or {}).get("time_column")
    roles = {str(d.get("ref")): str(d.get("role")) for d in v.lineage.get("datasets", [])}
    for data in card.datasets:
        rows = [
            ("Dataset version", f"{data.ref} ({roles.get(data.ref, 'train')})"),
            ("Rows", count(data.row_count)),
            ("Registered", f"{_stamp(data.created_at)} by {data.owner}"),
            ("Source", data.source or "not recorded"),
        ]
        rows += [("Description", data.description)] if data.description else []
        period = _period(data.profile.columns, time_column)
        rows.append(("Period", period or "no time column to tell"))
        if data.erased_at is not None:
            rows.append(("Erased", f"{_stamp(data.erased_at)}; replaced by {data.replaced_by}"))
        blocks.append(Facts(tuple(rows)))
    missing = [r for r in roles if r not in {d.ref for d in card.datasets}]
    if missing:
        blocks.append(Para(f"No longer in the catalog: {', '.join(missing)}."))
    if not roles:
        blocks.append(Para("The registry records no dataset for this version."))
    if "n_train" in ev:
        split = _spec(card).get("split") or {}
        how = f"by time on {time_column}" if time_column else split.get("method") or "random"
        blocks.append(
            Para(
                f"Split {how}: {count(ev.get('n_train'))} training rows, "
                f"{count(ev.get('n_validation'))} hold-out rows; "
                f"{count(ev.get('dropped_rows') or 0)} rows in neither."
            )
        )
    columns = (v.contract or {}).get("columns") or {}
    if columns:
        blocks.append(
            Table(
                f"The {len(columns)} features the model reads (its data contract)",
                ("Feature", "Kind", "Values seen in training"),
                tuple((name, str(rule.get("kind")), _rule(rule)) for name, rule in columns.items()),
            )
        )
    else:
        blocks.append(Para("No data contract is recorded for this version."))
    return tuple(blocks)


def _period(columns: Sequence[Any], time_column: str | None) -> str | None:
    """The first to the last time of the split's time column, else of the only
    datetime column."""
    times = [c for c in columns if c.kind == "datetime" and c.min is not None]
    chosen = [c for c in times if c.name == time_column] or (times if len(times) == 1 else [])
    if not chosen:
        return None
    c = chosen[0]
    return f"{str(c.min)[:10]} to {str(c.max)[:10]} ({c.name})"


def _rule(rule: Mapping[str, Any]) -> str:
    if rule.get("categories") is not None:
        cats = list(rule["categories"])
        text = listing(cats, 8)
    elif rule.get("min") is not None or rule.get("max") is not None:
        text = f"{number(rule.get('min'), 6)} to {number(rule.get('max'), 6)}"
    else:
        text = "any"
    text += "" if rule.get("nullable", True) else "; never missing"
    return text if len(text) <= _RULES_WIDTH else text[: _RULES_WIDTH - 1] + "…"


def _evaluation(card: ModelCard) -> tuple[Block, ...]:
    v, ev = card.version, card.version.evaluation
    metrics: Mapping[str, Mapping[str, Any]] = ev.get("metrics") or {}
    if not metrics:
        return (Para("Not evaluated: the version was registered without labelled data."),)
    splits = list(metrics)
    names = list(dict.fromkeys(n for split in metrics.values() for n in split))
    blocks: list[Block] = [
        Table(
            "Overall",
            ("Metric", *splits),
            tuple((n, *(number(metrics[s].get(n)) for s in splits)) for n in names),
        )
    ]
    gap = ev.get("gap") or {}
    if gap.get("metric"):
        verdict = "likely overfitting" if gap.get("likely_overfit") else "no sign of overfitting"
        relative = gap.get("relative_gap")
        blocks.append(
            Para(
                f"Overfit gap: {gap['metric']} is {number(gap.get('train'))} on the training "
                f"rows and {number(gap.get('validation'))} on the hold-out, "
                + ("" if relative is None else f"{_pct(relative)} worse, ")
                + f"against a threshold of {_pct(gap.get('threshold'))}: {verdict}."
            )
        )
    shown = SEGMENT_METRICS.get(v.task, ())
    for column, values in (ev.get("segments") or {}).items():
        cols = [n for n in shown if any(n in m for m in values.values())]
        blocks.append(
            Table(
                f"Hold-out by {column}",
                (column, "Rows", *cols),
                tuple(
                    (str(value), count(m.get("n")), *(number(m.get(n)) for n in cols))
                    for value, m in values.items()
                ),
            )
        )
    if not ev.get("segments"):
        blocks.append(Para("No per-segment figures; add segments: to the training spec."))
    notes = [*([ev["note"]] if ev.get("note") else []), *(ev.get("notes") or [])]
    if notes:
        blocks.append(Para("Notes from training: " + " ".join(_sentence(n) for n in notes)))
    return tuple(blocks)


def _sentence(text: str) -> str:
    text = _capital(str(text).strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def _fairness(card: ModelCard) -> tuple[Block, ...]:
    table = card.version.evaluation.get("fairness")
    if not table:
        return (Para("Not measured; add fairness: to the training spec."),)
    metrics: list[str] = list(table.get("metrics") or [])
    groups: list[Mapping[str, Any]] = list(table.get("groups") or [])
    limit = table.get("max_disparity")
    small = [g for g in groups if g.get("too_small")]
    intro = (
        f"Measured at training per group of {', '.join(table.get('sensitive') or [])}. "
        f"Groups under {count(table.get('min_group'))} rows are marked too small and left "
        "out of the gaps."
    )
    if small:
        intro += f" {len(small)} of {len(groups)} groups are too small to judge."
    if table.get("positive") is not None:
        intro += f" Rates count {table['positive']} as the positive class."
    blocks: list[Block] = [Para(intro)]
    blocks.append(
        Table(
            "Per group",
            ("Group", "Rows", *metrics),
            tuple(
                (
                    _group_name(g) + (" (too small)" if g.get("too_small") else ""),
                    count(g.get("rows")),
                    *(number(g.get(m)) for m in metrics),
                )
                for g in groups
            ),
        )
    )
    difference, ratio = table.get("difference") or {}, table.get("ratio") or {}
    # As training judged it when it says so, else from the differences.
    over = table.get("over")
    if over is None:
        over = [m for m in metrics if limit is not None and (difference.get(m) or 0) > limit]
    within = ("Within the limit",) if limit is not None else ()
    blocks.append(
        Table(
            "Largest gap between judged groups",
            ("Metric", "Difference", "Ratio", *within),
            tuple(
                (
                    m,
                    number(difference.get(m)),
                    number(ratio.get(m)),
                    *(("no" if m in over else "yes",) if within else ()),
                )
                for m in metrics
            ),
        )
    )
    if limit is not None:
        blocks.append(
            Para(
                f"The spec allows a difference of at most {number(limit)}; "
                + (f"exceeded by {', '.join(over)}." if over else "no metric exceeds it.")
            )
        )
    return tuple(blocks)


def _group_name(group: Mapping[str, Any]) -> str:
    values = group.get("values") or {}
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _features(card: ModelCard) -> tuple[Block, ...]:
    importance = card.version.evaluation.get("importance") or {}
    features: Mapping[str, float] = importance.get("features") or {}
    if not features:
        return (
            Para(
                "Not measured at training (models registered from a fitted object, and "
                "flavors the explain extra cannot explain, have no global importance)."
            ),
        )
    total = sum(abs(x) for x in features.values()) or 1.0
    top = list(features.items())[:TOP_FEATURES]
    more = len(features) - len(top)
    rest = f"; {more} more {'features contribute' if more > 1 else 'feature contributes'} less"
    return (
        Para(
            f"Mean |contribution| of each feature to the model's output "
            f"({importance.get('space')}) on {count(importance.get('rows'))} hold-out rows"
            f"{rest if more > 0 else ''}."
        ),
        Table(
            f"The {len(top)} most important features",
            ("Feature", "Mean |contribution|", "Share"),
            tuple((n, number(x), _pct(abs(x) / total)) for n, x in top),
        ),
    )
