"""The steps `setpoint demo` takes, as a function that returns what it found.

The whole loop on generated lending data, in a throwaway workspace: three months of
loan applications registered (a broken batch quarantined, not lost), a champion
trained and promoted, the real server started on a loopback port, then ten weeks of
applications replayed over HTTP with their outcomes sent back a week later. In week
four the world changes (younger applicants, bigger loans, a new channel, and a new
relation between them and default). The monitor sees the drift in that week, the
policy waits for a week of post-change labels, retrains on them, gates the candidate
against the champion, runs it in shadow, and promotes it; the summary compares what
was served with what the old champion would have done on the same weeks.

Time is compressed: the server's clock is the demo's, so a week takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import roc_auc_score

from setpoint.demo import lending
from setpoint.demo.replay import Answered, Client
from setpoint.demo.server import Clock, serve
from setpoint.loop.controller import Loop, TickReport
from setpoint.loop.policy import Policy
from setpoint.models.card import write_card
from setpoint.models.fairness import FairnessTable
from setpoint.models.registry import ModelVersion
from setpoint.monitoring.report import ReportData, write_report
from setpoint.monitoring.settings import AttributionSettings, MonitorConfig
from setpoint.monitoring.traffic import read_traffic
from setpoint.workspace import Workspace

Step = Callable[[str], None]

START = datetime(2026, 1, 1, tzinfo=UTC)
_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm.LGBMClassifier": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 80,
        "reg_lambda": 5.0,
    },
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 300, "learning_rate": 0.05},
}


@dataclass
class DemoResult:
    workspace: Path
    facts: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    weeks: list[Week] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    audit: Path | None = None
    card: Path | None = None
    loop: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, value: object) -> None:
        self.facts.append((label, str(value)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "facts": dict(self.facts),
            "metrics": self.metrics,
            "weeks": [w.to_dict() for w in self.weeks],
            "rollouts": self.rollouts,
            "loop": self.loop,
            "report": None if self.report is None else str(self.report),
            "audit": None if self.audit is None else str(self.audit),
            "card": None if self.card is None else str(self.card),
        }


def spec(estimator: str) -> dict[str, Any]:
    return {
        "model": "credit-risk",
        "dataset": "loans@latest",
        "target": lending.TARGET,
        "exclude": [lending.TIME_COLUMN],
        "estimator": {"class": estimator, "params": _PARAMS.get(estimator, {})},
        "split": {"method": "time", "time_column": lending.TIME_COLUMN, "test_size": 0.2},
        "segments": ["channel", "grade"],
        # Measured, not learnt from: requests carry the band beside the inputs.
        "fairness": {
            "sensitive": [lending.AGE_BAND],
            "metrics": ["true_positive_rate", "false_positive_rate"],
        },
        "seed": 7,
        "description": "Probability that a loan application defaults.",
        "intended_use": "Ranking loan applications for a credit officer's review; "
        "never a decision on its own.",
        "limitations": "Trained on generated applications from three channels; "
        "not for business loans.",
    }


POLICY = """\
triggers:
  - drift_share: 0.3
  - performance: {metric: roc_auc, source: realized, drop: 0.05}
actions: [alert, retrain, shadow, promote, rollback]
retrain: {window: since_trigger, min_rows: 2000}
gates:
  metrics: {roc_auc: {min_delta: 0.01}}
  confidence: 0.9
  min_samples: 300
  segments: [channel]
  # The risk team's line: a candidate may not flag good applicants of one age band
  # far more often than another's, nor widen that gap much past the champion's.
  fairness:
    sensitive: [age_band]
    metrics: [false_positive_rate]
    max_disparity: 0.35
    margin: 0.3
  max_p99_latency_ms: 250
rollout: {duration: 7d, min_samples: 500, min_labels: 300, max_metric_drop: 0.0}
cooldown: 7d
"""
ENDPOINT = "credit"
WEEK = timedelta(days=7)
WEEKS = 10
DRIFT_WEEK = 4  # the change starts with this week (1-based)


@dataclass
class Week:
    start: datetime
    rows: int
    drift_share: float | None
    drifted: bool
    served_by: str
    served_auc: float | None
    old_auc: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.date().isoformat(),
            "rows": self.rows,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "served_by": self.served_by,
            "served_auc": self.served_auc,
            "old_champion_auc": self.old_auc,
        }


def run(
    root: Path, *, rows: int = 30_000, per_week: int = 2_500, step: Step = lambda _message: None
) -> DemoResult:
    result = DemoResult(root)
    with Workspace.init(root, actor="demo") as ws:
        step("generating three months of loan applications")
        history = lending.applications(rows, start=START, days=90, seed=1, age_band=True)
        step("registering them as dataset 'loans' (profile and contract inferred)")
        data = ws.add_dataset(
            "loans",
            history,
            description="Loan applications, January to March, with their outcome.",
            tags={"source": "generated", "domain": "lending"},
        )
        result.add("dataset", f"{data.ref} ({data.row_count:,} rows)")
        _check_a_broken_batch(ws, data.ref, rows, result)

        step("training the champion from a spec (time split, per-segment metrics)")
        estimator = _estimator()
        model = ws.train(spec(estimator))
        validation = model.evaluation["metrics"]["validation"]
        result.metrics = {k: v for k, v in validation.items() if v is not None}
        ws.promote(model.name, model.version)
        result.add("champion", f"{model.ref} ({estimator.rsplit('.', 1)[-1]})")

        step("deploying it, with a weekly monitor and a retraining policy")
        ws.deploy(ENDPOINT, model=f"{model.name}@champion", note="the demo's endpoint")
        # Weekly windows hold thousands of rows: 500 of them explained a week measure
        # each feature's share of the explanation to within about 0.02, so a move of
        # 0.04 is the change in what the model's answers rest on, not noise.
        attribution = AttributionSettings(share_change=0.04, rows=500)
        ws.monitors.create(ENDPOINT, MonitorConfig(window="7d", attribution=attribution))
        loop = Loop(ws)
        loop.policies.set(ENDPOINT, Policy.from_yaml(POLICY))

        weeks = _weeks(START + timedelta(days=90), WEEKS)
        change = weeks[DRIFT_WEEK - 1]
        stream = lending.applications(
            per_week * WEEKS,
            start=weeks[0],
            days=7 * WEEKS,
            drift=lending.Drift(change, covariate=1.0, concept=1.0),
            seed=5,
            age_band=True,
        )
        clock = Clock(weeks[0])
        frames = [_within(stream, start, start + WEEK) for start in weeks]
        answered: list[Answered] = []
        with serve(ws, clock) as server:
            step(f"serving on {server.url}; replaying {WEEKS} weeks of applications over HTTP")
            client = Client(server.url, ENDPOINT)
            try:
                for k, start in enumerate(weeks):
                    answered.append(client.predict(frames[k], clock))
                    end = start + WEEK
                    if k >= 1:  # last week's outcomes are known now
                        client.feedback(answered[k - 1], clock, end - timedelta(hours=1))
                    tick = loop.tick(end)
                    server.follow()
                    step(_week_line(k + 1, start, len(frames[k]), tick))
                client.feedback(answered[-1], clock, weeks[-1] + WEEK)
            finally:
                client.close()

        step("summarizing: what was served against what the old champion would have done")
        old = ws.load_model(model.ref)
        result.weeks = _summary(ws, weeks, frames, old)
        _loop_facts(ws, loop, result, change)
        _trust_facts(ws, model, result)
        report = write_report(
            root / "report.html", ReportData.from_dict(ws.monitors.report_data(ENDPOINT))
        )
        trail = root / "audit.jsonl"
        events = ws.audit(limit=None)
        trail.write_text(
            "".join(orjson.dumps(e.to_dict()).decode() + "\n" for e in reversed(events)),
            encoding="utf-8",
        )
        result.report, result.audit = report, trail
        # The champion at the end (the loop's, after the change) described for a reviewer.
        result.card = write_card(root / "card.html", ws.model_card(f"{model.name}@champion"))
        result.add("audit events", f"{len(events)} (in {trail.name})")
    return result


def _check_a_broken_batch(ws: Workspace, ref: str, rows: int, result: DemoResult) -> None:
    april = lending.applications(
        rows // 10, start=datetime(2026, 4, 1, tzinfo=UTC), days=30, seed=2, age_band=True
    )
    outcome = ws.validate(ref, _break_some_rows(april), mode="quarantine", source="april.csv")
    quarantined = outcome.quarantine.n_rejected if outcome.quarantine else 0
    result.add(
        "a broken batch",
        f"{outcome.accepted.num_rows:,} rows accepted, {quarantined} quarantined with reasons",
    )


def _weeks(after: datetime, n: int) -> list[datetime]:
    """``n`` week starts from the first monitor window boundary after ``after`` (windows
    are aligned to the epoch, so the replayed weeks are the monitor's windows)."""
    span = int(WEEK.total_seconds())
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = (int((after - epoch).total_seconds()) // span + 1) * span
    return [epoch + timedelta(seconds=first + i * span) for i in range(n)]


def _within(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    times = frame[lending.TIME_COLUMN]
    return frame[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))].reset_index(
        drop=True
    )


def _week_line(number: int, start: datetime, rows: int, tick: TickReport) -> str:
    parts = [f"week {number} ({start:%b %d}): {rows:,} applications"]
    parts += [f["message"] for f in tick.fired[:1]]
    parts += tick.moves
    return "; ".join(parts)


def _summary(
    ws: Workspace, weeks: list[datetime], frames: list[pd.DataFrame], old: Any
) -> list[Week]:
    windows = {w.start: w for w in ws.monitors.windows(ENDPOINT)}
    kinds = {
        name: rule["kind"]
        for name, rule in (ws.model("credit-risk@1").contract or {})["columns"].items()
    }
    # The logs are read once for every week (each read parses them whole).
    traffic = read_traffic(ws.logs, ENDPOINT, kinds, since=weeks[0], until=weeks[-1] + WEEK)
    times = traffic.log.column("ts")
    out = []
    for start, frame in zip(weeks, frames, strict=True):
        inside = pc.and_(
            pc.greater_equal(times, pa.scalar(start)), pc.less(times, pa.scalar(start + WEEK))
        )
        rows = pc.indices_nonzero(inside)
        versions = sorted(set(traffic.log.column("version").take(rows).to_pylist()))
        served = _auc(
            None if traffic.labels is None else traffic.labels.take(rows),
            None if traffic.probabilities is None else traffic.probabilities[rows.to_numpy()],
        )
        y = frame[lending.TARGET].to_numpy()
        old_auc = _auc(pa.array(y), old.predict_proba(frame))
        window = windows.get(start)
        drift = (window.results.get("drift") or {}) if window else {}
        out.append(
            Week(
                start=start,
                rows=len(rows),
                drift_share=drift.get("drift_share"),  # the monitor's own; None: not judged
                drifted=bool(drift.get("drifted")),
                served_by=", ".join(f"v{v}" for v in versions),
                served_auc=served,
                old_auc=old_auc,
            )
        )
    return out


def _auc(labels: Any, proba: Any) -> float | None:
    if labels is None or proba is None:
        return None
    y = np.asarray(labels.to_pylist(), dtype=float)
    have = ~np.isnan(y)
    if have.sum() < 10 or len(set(y[have])) < 2:
        return None
    return float(roc_auc_score(y[have], np.asarray(proba)[have, -1]))


def _loop_facts(ws: Workspace, loop: Loop, result: DemoResult, change: datetime) -> None:
    """What the loop did, as facts for the table and as figures for a script (``loop``)."""
    rollouts = loop.rollouts.list(endpoint=ENDPOINT)
    result.rollouts = [r.to_dict() for r in reversed(rollouts)]
    result.loop = {"change": change.isoformat()}
    if not rollouts:
        result.add("closed loop", "no rollout started (nothing fired)")
        return
    first = rollouts[-1]
    trigger_since = datetime.fromisoformat(first.trigger["since"])
    result.add("drift detected", f"week of {trigger_since:%b %d}: {first.trigger['message']}")
    result.loop |= {
        "drift_detected_in": trigger_since.isoformat(),
        "trained_since": None if first.data_since is None else first.data_since.isoformat(),
        "dataset": first.dataset,
        "candidate": first.candidate,
        "state": first.state,
        "gates_passed": bool((first.gates or {}).get("passed")),
    }
    if first.data_since is not None:
        after = "after" if first.data_since >= change else "NOT after"
        result.add(
            "challenger trained on",
            f"{first.dataset}: labelled traffic from {first.data_since:%b %d} ({after} the "
            f"change on {change:%b %d}) to {first.data_until:%b %d}",
        )
    gates = first.gates or {}
    if gates:
        verdict = "passed" if gates.get("passed") else "failed"
        passed = [c["detail"] for c in gates.get("checks", []) if c["name"] == "roc_auc"]
        result.add(f"gates {verdict}", passed[0] if passed else "; ".join(gates.get("reasons", [])))
        fair = [c["detail"] for c in gates.get("checks", []) if c["name"].startswith("fairness")]
        if fair:
            result.add("fairness gate", fair[0])
    live = first.live or {}
    if live.get("agreement") is not None:
        result.add(
            "shadow",
            f"agreed with the champion on {live['agreement']:.0%} of {live['pairs']:,} requests",
        )
    result.add("rollout", f"{first.state}: {first.reason}")
    after_promotion = [
        w
        for w in result.weeks
        if first.candidate and w.served_by == "v" + first.candidate.rsplit("@", 1)[-1]
    ]
    served = [w.served_auc for w in after_promotion if w.served_auc is not None]
    old = [w.old_auc for w in after_promotion if w.old_auc is not None]
    if served and old:
        result.loop["after_promotion"] = {
            "weeks": len(after_promotion),
            "served_auc": float(np.mean(served)),
            "old_champion_auc": float(np.mean(old)),
        }
        result.add(
            "after promotion",
            f"ROC AUC {np.mean(served):.3f} served by {first.candidate} against "
            f"{np.mean(old):.3f} for the old champion on the same {len(after_promotion)} weeks",
        )


def _trust_facts(ws: Workspace, model: ModelVersion, result: DemoResult) -> None:
    """How the first champion treated the age bands on its hold-out, and on the
    labelled traffic once the world changed; and whether its explanation moved."""
    gap = _widest(model.evaluation.get("fairness"))
    if gap:
        result.add("fairness at training", f"{gap} (hold-out)")
    windows = ws.monitors.windows(ENDPOINT)
    widest = max(
        (
            (table["difference"].get(metric) or 0.0, w)
            for w in windows
            if w.results.get("reference") == model.ref
            and (table := (w.results.get("fairness") or {}).get("realized"))
            for metric in table["metrics"]
        ),
        default=None,
        key=lambda found: found[0],
    )
    if widest is not None:
        window = widest[1]
        result.add(
            "fairness in production",
            f"week of {window.start:%b %d}: {_widest(window.results['fairness']['realized'])}",
        )
    moved = [w for w in windows if (w.results.get("attribution") or {}).get("drifted")]
    if moved:
        first = moved[0].results["attribution"]
        shares = "; ".join(
            f"{name} {first['features'][name]['reference']:.0%} -> "
            f"{first['features'][name]['window']:.0%}"
            for name in first["drifted"][:3]
        )
        result.add(
            "attribution drift",
            f"week of {moved[0].start:%b %d}: the share of {moved[0].results['reference']}'s "
            f"explanation moved ({shares})",
        )


def _widest(table: dict[str, Any] | None) -> str | None:
    """The metric with the largest gap between groups, in words."""
    if not table or not table.get("difference"):
        return None
    found = FairnessTable.from_dict(table)
    metric = max(found.difference, key=lambda m: found.difference[m] or 0.0)
    ends = found.extremes(metric)
    if ends is None:
        return None
    low, high = ends
    return (
        f"{metric.replace('_', ' ')} {low.metrics[metric]:.2f} for {low.name} against "
        f"{high.metrics[metric]:.2f} for {high.name}"
    )


def _estimator() -> str:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return "sklearn.ensemble.HistGradientBoostingClassifier"
    return "lightgbm.LGBMClassifier"


def _break_some_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """What real batches carry: a typo'd category, a negative income, a missing term."""
    frame = frame.copy()
    rng = np.random.default_rng(3)
    rows = rng.choice(len(frame), size=12, replace=False)
    frame.loc[rows[:4], "grade"] = "Z"
    frame.loc[rows[4:8], "income"] = -1.0
    frame["term"] = frame["term"].astype("Int64")
    frame.loc[rows[8:], "term"] = pd.NA
    return frame
