"""A workspace the dashboard bench renders: a year of hourly windows on five endpoints.

    python bench/ui_workspace.py PATH [--endpoints 5] [--hours 8760]

The dashboard must render every page in under 300 ms with a year of hourly monitor
windows for five endpoints (docs/architecture.md, "The dashboard"). Replaying a year
of traffic through the server and the monitor would take hours, so this builds the
workspace the way production would leave it, fast (about a minute on two cores):

- one generated dataset (``loans``, lending applications), four model versions
  trained on it or on recent traffic (logistic regression and a small gradient
  boosting, a few thousand rows), ``credit-risk@3`` the champion;
- ``endpoints`` endpoints serving the champion, each with an hourly monitor and the
  demo's retraining policy;
- per endpoint, ``hours`` hourly windows ending at the current hour, inserted in one
  transaction each with their digests and daily rollups. They are made from one
  window the monitor really computed (traffic backfilled into the hour before the
  first one) with figures that move as production's do (``_ui_windows.py``): daily
  and weekly
  seasonality, late labels, refused rows and bursts of them, and a drift episode of
  two weeks on two or three features (on the first endpoint it is going on now);
- alerts raised and resolved at the data's time over the year (open ones on the first
  endpoint, one acknowledged), and rollouts: one rejected, one failed, one promoted
  in the past, and one ``awaiting_approval`` now with a real gate report; the audit
  trail has the events that come with them.

``build`` is what ``bench/ui.py`` imports; its return value (``UIWorkspace``) says
what is where.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _ui_windows import HOUR, Hour, Profile
from _ui_windows import hours as hourly_windows
from setpoint.demo import lending
from setpoint.demo.walkthrough import POLICY, spec
from setpoint.loop.controller import Loop
from setpoint.loop.policy import Policy
from setpoint.monitoring import rollups
from setpoint.monitoring.conditions import conditions
from setpoint.monitoring.digest import digest
from setpoint.monitoring.monitor import Monitor
from setpoint.monitoring.settings import MonitorConfig
from setpoint.monitoring.window import Window
from setpoint.store.schema import monitor_windows
from setpoint.workspace import Workspace

NAMES = ("credit-web", "credit-branch", "credit-partner", "credit-mobile", "credit-broker")
MODEL = "credit-risk"
FEATURES = (  # the features each endpoint's drift episode moves
    ("income", "loan_amount", "channel"),
    ("age", "debt_to_income"),
    ("channel", "grade", "income"),
    ("employment_years", "credit_lines"),
    ("term", "purpose"),
)
EPISODE_DAYS_AGO = (9, 120, 200, 60, 290)  # the first is going on now
_LOGISTIC = "sklearn.linear_model.LogisticRegression"
_BOOSTED = "sklearn.ensemble.HistGradientBoostingClassifier"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class UIWorkspace:
    """What ``build`` made.

    ``path``: the workspace folder (open it with ``Workspace.open(path)``);
    ``endpoints``: their names, the first one drifting now; ``champion``: the model
    they serve; ``first`` and ``end``: the first window's start and the last one's end
    (the current hour); ``windows``: monitor windows stored, all endpoints; ``alerts``
    and ``rollouts``: how many in each state; ``awaiting``: the id of the rollout
    waiting for approval (the one to approve or reject); ``seconds``: build time."""

    path: Path
    endpoints: tuple[str, ...]
    champion: str
    first: datetime
    end: datetime
    windows: int
    alerts: dict[str, int]
    rollouts: dict[str, int]
    awaiting: int
    seconds: float


def build(
    path: Path,
    *,
    endpoints: int = 5,
    hours: int = 8760,
    progress: Callable[[str], None] = lambda _message: None,
    database_url: str | None = None,
) -> UIWorkspace:
    """Make the dashboard bench's workspace at ``path`` (a new folder)."""
    if not 1 <= endpoints <= len(NAMES):
        raise ValueError(f"endpoints must be 1 to {len(NAMES)}")
    began = time.perf_counter()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = end - hours * HOUR
    names = NAMES[:endpoints]
    with Workspace.init(path, actor="bench", database_url=database_url) as ws:
        progress("registering loans and training the first champion")
        # A month: an hourly monitor learns thresholds from the reference's own hours,
        # at most 1,000 of them (monitoring/chunks.py).
        history = lending.applications(
            6_000, start=first - 60 * DAY, days=30, seed=1, age_band=True
        )
        ws.add_dataset("loans", history, description="Loan applications with their outcome.")
        v1 = _train(ws, _LOGISTIC, "loans@latest", {"max_iter": 500})
        ws.promote(MODEL, v1)
        loop = Loop(ws)
        for name in names:
            ws.deploy(name, model=f"{MODEL}@champion", note="the dashboard bench's endpoint")
            loop.policies.set(name, Policy.from_yaml(POLICY))
        progress("training candidates; the rollouts of the past year")
        _past_rollouts(ws, loop, names, end, v1)
        progress(f"creating {len(names)} hourly monitors")
        for name in names:
            ws.monitors.create(name, MonitorConfig(window="1h"))
        progress("computing one real window to make the year from")
        template = _real_window(ws, names[0], first)
        stored = 0
        for i, name in enumerate(names):
            profile = _profile(i, end)
            made = list(
                hourly_windows(template, profile, first=first, count=hours, now=end, seed=100 + i)
            )
            stored += _store(ws, ws.monitors.get(name), made)
            _alerts(ws, name, profile, made, end)
            progress(f"{name}: {len(made):,} windows")
        progress("the candidate waiting for approval, with its gate report")
        awaiting = _awaiting(ws, loop, names[0], end)
        ws.monitors.alerts.acknowledge(
            _open(ws, names[0], "drift:multivariate"), "maria", "looking into the new channel"
        )
        alerts = Counter(a.state for a in ws.monitors.alerts.list(limit=None))
        rollouts = Counter(r.state for r in loop.rollouts.list(limit=1000))
        champion = ws.registry.get(f"{MODEL}@champion").ref
    return UIWorkspace(
        path=path,
        endpoints=names,
        champion=champion,
        first=first,
        end=end,
        windows=stored + 1,  # and the real one
        alerts=dict(alerts),
        rollouts=dict(rollouts),
        awaiting=awaiting,
        seconds=time.perf_counter() - began,
    )


def _train(ws: Workspace, estimator: str, dataset: str, params: dict[str, Any]) -> int:
    trained = spec(estimator)
    trained["dataset"] = dataset
    trained["estimator"] = {"class": estimator, "params": params}
    return ws.train(trained).version


def _profile(i: int, end: datetime) -> Profile:
    start = end - EPISODE_DAYS_AGO[i] * DAY
    return Profile(
        rows=(900, 500, 250, 120, 60)[i],
        latency_ms=(1.2, 1.5, 2.0, 1.1, 3.5)[i],
        drift_from=start,
        drift_until=start + 14 * DAY,
        drift_features=FEATURES[i],
    )


def _real_window(ws: Workspace, endpoint: str, first: datetime) -> dict[str, Any]:
    """The results the monitor computes for an hour of ``endpoint``'s traffic, with
    its outcomes and one row the contract refuses, in the hour before ``first``."""
    traffic = lending.applications(1_000, start=first - HOUR, days=1 / 24, seed=3, age_band=True)
    traffic["age"] = traffic["age"].astype(object)
    traffic.loc[traffic.index[7], "age"] = "forty"
    ws.monitors.backfill(
        endpoint, traffic, time_column=lending.TIME_COLUMN, label_column=lending.TARGET
    )
    [window] = ws.monitors.run(endpoint, until=first)
    return window.results


def _store(ws: Workspace, monitor: Monitor, made: list[Hour]) -> int:
    """Insert the windows in one transaction, each with its digest (conditions judged
    as the monitor would, for its alert count), and their days' rollups."""
    rows = []
    for hour in made:
        window = Window(hour.start, hour.start + HOUR, hour.n_rows, hour.results)
        held = sum(h is not None for h in conditions(monitor, window).values())
        rows.append(
            {
                "monitor_id": monitor.id,
                "start": window.start,
                "end": window.end,
                "n_rows": window.n_rows,
                "computed_at": window.end + timedelta(minutes=2),
                "results": window.results,
                "digest": digest(window.results, window.n_rows, alerts=held),
            }
        )
    with ws.db.write() as conn:
        conn.execute(sa.insert(monitor_windows), rows)
        # Inserted in bulk, past Monitors._store: their daily rollups are made here.
        rollups.rebuild(conn, monitor.id)
    return len(rows)


def _alerts(
    ws: Workspace, endpoint: str, profile: Profile, made: list[Hour], end: datetime
) -> None:
    """Alerts as the monitor would have raised and resolved them, at the data's time:
    the drift episode's (still open when it goes on now) and each refused burst's."""
    store = ws.monitors.alerts
    assert profile.drift_from is not None
    assert profile.drift_until is not None
    raised = profile.drift_from + HOUR
    if raised < end:
        keys = [(f"drift:feature:{f}", "warning", f"{f} drifted") for f in profile.drift_features]
        keys += [
            ("drift:multivariate", "warning", "a classifier tells the traffic from the reference"),
            ("performance:estimated:accuracy", "critical", "estimated accuracy fell by 0.03"),
        ]
        for key, severity, message in keys:
            for seen in (raised, raised + 2 * DAY, min(profile.drift_until, end) - HOUR):
                store.raise_alert(endpoint, key, severity, message, {}, now=seen, seen=seen)
            if profile.drift_until < end:
                store.resolve(endpoint, key, now=profile.drift_until + HOUR)
    for hour in made:
        if hour.refused_burst and hour.start + 2 * HOUR <= end:
            seen = hour.start + HOUR
            message = "6% of the rows were refused by the contract (income: max)"
            store.raise_alert(
                endpoint, "quality:refused", "warning", message, {}, now=seen, seen=seen
            )
            store.resolve(endpoint, "quality:refused", now=seen + HOUR)


def _open(ws: Workspace, endpoint: str, key: str) -> int:
    return next(a.id for a in ws.monitors.alerts.list(endpoint=endpoint) if a.key == key)


def _past_rollouts(
    ws: Workspace, loop: Loop, names: tuple[str, ...], end: datetime, champion: int
) -> None:
    """A candidate rejected by a person, a retraining that failed, and one promoted
    (which makes it the champion the monitors are built on)."""
    v2 = _train(ws, _BOOSTED, "loans@latest", {"max_iter": 60, "learning_rate": 0.1})
    v3 = _train(ws, _LOGISTIC, "loans@latest", {"max_iter": 500, "C": 0.3})
    first, second = champion, v3
    plan = [
        (names[0], 200, v2, "rejected", "maria", "worse on the partner channel in review"),
        (names[-1], 150, None, "failed", None, "retraining failed: 212 labelled rows, needs 2000"),
        (names[min(1, len(names) - 1)], 100, v3, "promoted", "maria", "passed its gates"),
    ]
    # Their reports leave out the latency budget: measuring it costs seconds a gate,
    # and the report waiting for approval has it.
    policy = Policy.from_yaml(POLICY.replace("  max_p99_latency_ms: 250\n", ""))
    for endpoint, days_ago, candidate, state, person, reason in plan:
        at = end - days_ago * DAY
        rollout, _ = loop.rollouts.open(
            endpoint,
            f"window:{at.isoformat()}",
            trigger=_trigger(at, 0.36),
            champion=f"{MODEL}@{first}",
            mode="shadow",
            data_since=at,
            now=at,
        )
        loop.rollouts.move(rollout.id, "retraining", now=at + HOUR)
        if candidate is not None:
            gates = loop.gate(
                ws.registry.get(f"{MODEL}@{first}"),
                ws.registry.get(f"{MODEL}@{candidate}"),
                "loans@1",
                policy,
            )
            loop.rollouts.move(
                rollout.id,
                "shadow",
                now=at + DAY,
                candidate=f"{MODEL}@{candidate}",
                dataset="loans@1",
                gates=gates,
                live_since=at + DAY,
            )
        loop.rollouts.move(rollout.id, state, now=at + 8 * DAY, decided_by=person, reason=reason)
    ws.promote(MODEL, second)


def _trigger(since: datetime, share: float) -> dict[str, Any]:
    return {
        "key": f"window:{since.isoformat()}",
        "trigger": {"drift_share": 0.3},
        "message": f"{share:.0%} of the features drifted (trigger at 30%) in the window "
        f"from {since:%Y-%m-%d %H:%M} UTC",
        "evidence": {"drift_share": share},
        "since": since.isoformat(),
    }


def _awaiting(ws: Workspace, loop: Loop, endpoint: str, end: datetime) -> int:
    """The first endpoint's drift fired a retraining on its recent labelled traffic;
    the candidate passed shadow and waits for a person."""
    since = end - EPISODE_DAYS_AGO[0] * DAY
    recent = lending.applications(
        4_000,
        start=since,
        days=EPISODE_DAYS_AGO[0] - 2,
        drift=lending.Drift(since, covariate=1.0, concept=1.0),
        seed=9,
        age_band=True,
    )
    ws.add_dataset(f"{endpoint}-traffic", recent, description="Labelled traffic since the drift.")
    dataset = f"{endpoint}-traffic@1"
    candidate = _train(ws, _LOGISTIC, dataset, {"max_iter": 500})
    champion = ws.registry.get(f"{MODEL}@champion")
    gates = loop.gate(
        champion, ws.registry.get(f"{MODEL}@{candidate}"), dataset, Policy.from_yaml(POLICY)
    )
    rollout, _ = loop.rollouts.open(
        endpoint,
        f"window:{since.isoformat()}",
        trigger=_trigger(since, 0.27 + 0.09),
        champion=champion.ref,
        mode="shadow",
        data_since=since,
        now=since + DAY,
    )
    loop.rollouts.move(rollout.id, "retraining", now=since + DAY + HOUR)
    live_since = end - 2 * DAY
    loop.rollouts.move(
        rollout.id,
        "shadow",
        now=live_since,
        candidate=f"{MODEL}@{candidate}",
        dataset=dataset,
        data_until=live_since,
        gates=gates,
        live_since=live_since,
    )
    live = {
        "mode": "shadow",
        "pairs": 41_230,
        "agreement": 0.81,
        "candidate": {"rows": 41_230, "labels": 9_870, "metrics": gates["candidate"]},
        "champion": {"rows": 41_230, "labels": 9_870, "metrics": gates["champion"]},
        "verdict": "pass",
        "reasons": [],
        "at": end.isoformat(),
    }
    moved = loop.rollouts.move(
        rollout.id,
        "awaiting_approval",
        now=end - HOUR,
        live=live,
        reason="passed its gates and the live comparison; waiting for "
        f"setpoint approve {rollout.id} (or reject)",
    )
    return moved.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a new folder for the workspace")
    parser.add_argument("--endpoints", type=int, default=5, help="1 to 5 (default 5)")
    parser.add_argument(
        "--hours", type=int, default=8760, help="hourly windows per endpoint (default a year)"
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    began = time.perf_counter()
    made = build(
        args.path,
        endpoints=args.endpoints,
        hours=args.hours,
        progress=lambda message: print(
            f"  {time.perf_counter() - began:5.1f} s  {message}", flush=True
        ),
        database_url=args.database_url,
    )
    print(f"\n{'workspace':<12} {made.path}")
    print(f"{'endpoints':<12} {', '.join(made.endpoints)} (serving {made.champion})")
    print(
        f"{'windows':<12} {made.windows:,} hourly, "
        f"{made.first:%Y-%m-%d %H:%M} to {made.end:%Y-%m-%d %H:%M} UTC"
    )
    print(f"{'alerts':<12} {', '.join(f'{n} {s}' for s, n in sorted(made.alerts.items()))}")
    print(f"{'rollouts':<12} {', '.join(f'{n} {s}' for s, n in sorted(made.rollouts.items()))}")
    print(f"{'awaiting':<12} rollout {made.awaiting} (setpoint approve {made.awaiting})")
    print(f"{'built in':<12} {made.seconds:.1f} s")


if __name__ == "__main__":
    main()
