"""The loop: monitors, policies, rollouts and jobs, one tick at a time.

``Loop.tick(now)`` runs every monitor up to ``now``, lets each policy look at what
came since it last looked (starting a rollout when a trigger fires), moves every
active rollout on (enough labels to retrain? the live comparison done?), and runs the
jobs that are due. ``setpoint loop`` ticks on a schedule; ``setpoint serve --loop``
ticks in a thread; the demo ticks at the end of each simulated week.

Every decision goes through :class:`Decisions` so that the loop and a person (``setpoint
approve``, ``reject``) take the same path and leave the same audit trail.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from setpoint.errors import ConflictError, NotFoundError, SetpointError
from setpoint.jobs import JobStore
from setpoint.loop import live, retrain, triggers
from setpoint.loop.gates import evaluate_gates, measure_cost
from setpoint.loop.policy import Policy, PolicyStore, StoredPolicy
from setpoint.loop.rollouts import Rollout, RolloutStore
from setpoint.models import _training_data as training_data
from setpoint.models.evaluation import PRIMARY, primary_metric
from setpoint.models.registry import CHAMPION, ModelVersion

if TYPE_CHECKING:
    from setpoint.worker import JobContext
    from setpoint.workspace import Workspace

logger = logging.getLogger(__name__)

RETRAIN = "retrain"
TRIGGER_ALERT = "loop:trigger"  # the alert a policy with the alert action raises
_COST_SAMPLE_ROWS = 200


@dataclass
class TickReport:
    """What one tick did, for a person or a test."""

    at: datetime
    windows: dict[str, int] = field(default_factory=dict)  # endpoint -> new windows
    fired: list[dict[str, Any]] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)  # "rollout 3: shadow -> promoted"
    jobs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be done, and why

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "problems": self.problems,
            "windows": self.windows,
            "fired": self.fired,
            "moves": self.moves,
            "jobs": self.jobs,
        }


class Loop:
    def __init__(self, workspace: Workspace, *, worker_name: str | None = None) -> None:
        self.ws = workspace
        self.policies = PolicyStore(workspace.db, actor=workspace.actor)
        self.rollouts = RolloutStore(workspace.db, actor=workspace.actor)
        self.jobs = JobStore(workspace.db, actor=workspace.actor)
        self.decisions = Decisions(workspace, self.rollouts)
        self._worker_name = worker_name

    def tick(
        self,
        now: datetime | None = None,
        *,
        run_jobs: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> TickReport:
        now = _utc(now)
        report = TickReport(now)
        say = progress or (lambda _message: None)
        # One endpoint's trouble (a deployment removed, a model that will not load) is
        # reported and the others go on.
        for monitor in self.ws.monitors.all():
            say(f"monitor {monitor.endpoint}")
            try:
                report.windows[monitor.endpoint] = len(
                    self.ws.monitors.run(monitor.endpoint, until=now)
                )
            except SetpointError as error:
                report.problems.append(f"monitor {monitor.endpoint}: {error.message}")
        for stored in self.policies.all():
            try:
                report.fired += self._look(stored, now)
            except SetpointError as error:
                report.problems.append(f"policy of {stored.endpoint}: {error.message}")
        for problem in report.problems:
            logger.error("%s", problem)
        self._advance_all(now, report)
        if run_jobs:
            from setpoint.loop.handlers import SCHEDULES
            from setpoint.worker import Worker

            worker = Worker(self.ws, handlers(self), name=self._worker_name, schedules=SCHEDULES)
            before = {r.id: r.state for r in self.rollouts.list(limit=1000) if r.active}
            for job in worker.drain(now=now):
                say(f"job {job.id} ({job.kind}) {job.state}")
                report.jobs.append({"id": job.id, "kind": job.kind, "state": job.state})
            if report.jobs:
                for after in self.rollouts.list(limit=1000):
                    if after.id in before and after.state != before[after.id]:
                        report.moves.append(
                            f"rollout {after.id}: {before[after.id]} -> {after.state}"
                        )
                self._advance_all(now, report)
        return report

    # -- policies ------------------------------------------------------------------------

    def _look(self, stored: StoredPolicy, now: datetime) -> list[dict[str, Any]]:
        """Evaluate one policy on what is new; start a rollout when a trigger fires."""
        policy, endpoint = stored.policy, stored.endpoint
        firings: list[triggers.Firing] = []
        cursor = stored.cursor
        try:
            monitor = self.ws.monitors.get(endpoint)
        except NotFoundError:
            monitor = None
        if monitor is not None:
            # Windows measured against another model (before a promotion) say nothing
            # about the model serving now.
            current = monitor.reference.model
            computed = [
                w
                for w in self.ws.monitors.windows(endpoint)
                if w.results.get("reference", current) == current
            ]
            fresh = [w for w in computed if cursor is None or w.end > cursor]
            outputs = list(monitor.reference.output_kinds)
            labels = monitor.config.min_labels
            firings += triggers.in_windows(policy, fresh, outputs, min_labels=labels)
            # Labels come late: realized performance of windows already looked at may
            # have come in since (the monitor brings its latest windows up to date).
            realized = [
                t for t in policy.triggers if t.kind == "performance" and t.source == "realized"
            ]
            late = monitor.config.late_label_windows
            looked = [w for w in computed if cursor is not None and w.end <= cursor]
            looked = looked[-late:] if late else []
            if realized and looked:
                again = triggers.in_windows(
                    policy, looked, outputs, min_labels=labels, only=realized
                )
                # What already started a rollout is old news.
                firings += [f for f in again if self.rollouts.find(endpoint, f.key) is None]
            if fresh:
                cursor = fresh[-1].end
        firings += triggers.on_schedule(policy, stored.checked_at, now)
        if any(t.kind == "labels" for t in policy.triggers):
            since = self._last_retraining(endpoint) or stored.updated_at
            firings += triggers.on_labels(
                policy, self._labels_since(endpoint, since, now), since, now
            )
        self.policies.advance(endpoint, cursor=cursor, checked_at=now)
        if not firings:
            return []
        if "alert" in policy.actions:
            first = firings[0]
            self.ws.monitors.alerts.raise_alert(
                endpoint,
                TRIGGER_ALERT,
                "warning",
                f"the policy of {endpoint} fired: {first.message}",
                {"firings": [f.to_dict() for f in firings]},
                now=now,
            )
        new = [f for f in firings if self.rollouts.find(endpoint, f.key) is None]
        if "retrain" in policy.actions and new:
            self._start(endpoint, policy, new[0], now)
        return [f.to_dict() for f in firings]

    def _start(
        self, endpoint: str, policy: Policy, firing: triggers.Firing, now: datetime
    ) -> Rollout | None:
        if self.rollouts.active(endpoint) is not None:
            return None  # one candidate at a time; the running one answers the trigger
        latest = self.rollouts.latest(endpoint)
        if latest is not None and latest.created_at + policy.cooldown_span > now:
            return None
        champion = self.ws.model(self.ws.deployments.get(endpoint).config.model)
        since = {
            "since_trigger": firing.since,
            "sliding": now - timedelta(days=policy.retrain.days),
            "expanding": None,
        }[policy.retrain.window]
        rollout, _ = self.rollouts.open(
            endpoint,
            firing.key,
            trigger=firing.to_dict(),
            champion=champion.ref,
            mode=policy.mode,
            data_since=since,
            now=now,
        )
        return rollout

    def _last_retraining(self, endpoint: str) -> datetime | None:
        latest = self.rollouts.latest(endpoint)
        return None if latest is None else (latest.data_until or latest.created_at)

    def _labels_since(self, endpoint: str, since: datetime, now: datetime) -> int:
        from setpoint.serving._logtables import read_log

        return int(
            read_log(
                self.ws.logs, kind="feedback", endpoint=endpoint, since=since, until=now
            ).num_rows
        )

    # -- rollouts ------------------------------------------------------------------------

    def _advance_all(self, now: datetime, report: TickReport) -> None:
        for rollout in self.rollouts.list(limit=1000):
            if not rollout.active:
                continue
            try:
                after = self.advance(rollout, now)
            except SetpointError as error:
                logger.error("rollout %d: %s", rollout.id, error.message)
                after = self.decisions.fail(
                    rollout, f"the loop could not go on: {error.message}", now=now
                )
            if after.state != rollout.state:
                report.moves.append(f"rollout {rollout.id}: {rollout.state} -> {after.state}")

    def advance(self, rollout: Rollout, now: datetime) -> Rollout:
        """Move ``rollout`` on as far as the evidence allows now."""
        policy = self.policies.get(rollout.endpoint).policy
        if rollout.state == "waiting":
            return self._maybe_retrain(rollout, policy, now)
        if rollout.state == "retraining":
            return self._check_job(rollout, now)
        if rollout.state in ("shadow", "canary"):
            return self._judge_live(rollout, policy, now)
        return rollout

    def _maybe_retrain(self, rollout: Rollout, policy: Policy, now: datetime) -> Rollout:
        champion = self.ws.model(rollout.champion or "")
        have = retrain.labelled_rows(self.ws, rollout.endpoint, champion, rollout.data_since, now)
        if have < policy.retrain.min_rows:
            return self.rollouts.update(
                rollout.id,
                reason=f"waiting for labels: {have:,} of {policy.retrain.min_rows:,} labelled rows",
            )
        job = self.jobs.enqueue(
            RETRAIN,
            {"rollout": rollout.id},
            key=f"{rollout.endpoint}:{rollout.id}",
            max_attempts=policy.retrain.max_attempts,
            now=now,
        )
        return self.rollouts.move(
            rollout.id,
            "retraining",
            expect=("waiting",),
            now=now,
            job_id=job.id,
            data_until=now,
            reason=f"retraining on {have:,} labelled rows (job {job.id})",
        )

    def _check_job(self, rollout: Rollout, now: datetime) -> Rollout:
        if rollout.job_id is None:
            return rollout
        job = self.jobs.get(rollout.job_id)
        if job.state in ("failed", "cancelled"):
            return self.decisions.fail(
                rollout,
                f"the retraining job {job.id} {job.state}: {job.error or 'cancelled'}",
                now=now,
            )
        return rollout

    def _judge_live(self, rollout: Rollout, policy: Policy, now: datetime) -> Rollout:
        assert rollout.candidate is not None
        assert rollout.champion is not None
        assert rollout.live_since is not None
        candidate = self.ws.model(rollout.candidate)
        champion = self.ws.model(rollout.champion)
        metric = gated_metric(candidate)
        evidence = live.compare(
            self.ws.logs,
            rollout.endpoint,
            mode=rollout.mode or "shadow",
            champion=(champion.name, champion.version),
            candidate=(candidate.name, candidate.version),
            task=candidate.task,
            classes=candidate.flavor_metadata.get("classes"),
            since=rollout.live_since,
            until=now,
        )
        verdict, reasons = live.judge(evidence, policy.rollout, metric)
        evidence = {**evidence, "verdict": verdict, "reasons": reasons, "at": now.isoformat()}
        if verdict == "fail":
            if rollout.mode == "canary" and "rollback" in policy.actions:
                return self.decisions.roll_back(rollout, evidence, now=now)
            return self.decisions.reject(
                rollout, "; ".join(reasons), live=evidence, now=now, actor=None
            )
        elapsed = now - rollout.live_since >= policy.rollout.span
        if verdict == "pass" and elapsed:
            if policy.promotes_alone:
                return self.decisions.promote(rollout, live=evidence, now=now, actor=None)
            return self.rollouts.move(
                rollout.id,
                "awaiting_approval",
                now=now,
                live=evidence,
                reason="passed its gates and the live comparison; waiting for "
                f"setpoint approve {rollout.id} (or reject)",
            )
        waiting = reasons or [
            f"on live traffic until {(rollout.live_since + policy.rollout.span):%Y-%m-%d %H:%M} UTC"
        ]
        return self.rollouts.update(rollout.id, live=evidence, reason="; ".join(waiting))

    # -- the retraining job ------------------------------------------------------------

    def run_retraining(self, context: JobContext) -> dict[str, Any]:
        """The ``retrain`` job: training set, candidate, gates, then on to live traffic
        (or a decision). Every step is idempotent under the job's key."""
        rollout = self.rollouts.get(int(context.job.args["rollout"]))
        if rollout.state != "retraining":
            return {"skipped": f"rollout {rollout.id} is {rollout.state}"}
        policy = self.policies.get(rollout.endpoint).policy
        champion = self.ws.model(rollout.champion or "")
        key = f"{RETRAIN}:{context.job.key}"
        now = rollout.data_until or _utc(None)
        context.log(f"building the training set of rollout {rollout.id}")
        data = retrain.training_set(
            self.ws,
            rollout.endpoint,
            champion,
            since=rollout.data_since,
            until=now,
            include_original=policy.retrain.include_original,
            measured=policy.gates.fairness.sensitive if policy.gates.fairness else (),
        )
        context.check()
        dataset, proposal = retrain.register_training_set(
            self.ws, rollout.endpoint, champion, data, key
        )
        context.log(f"training set {dataset}: {data.from_log:,} rows from the log")
        candidate = retrain.train_candidate(
            self.ws, champion, dataset, key, guard=lambda conn: self.jobs.hold(conn, context.job)
        )
        context.log(f"candidate {candidate.ref}")
        context.check()
        report = self.gate(champion, candidate, dataset, policy)
        context.log("gates " + ("passed" if report["passed"] else "failed"))
        rollout = self.rollouts.move(
            rollout.id,
            "retraining",
            expect=("retraining",),
            now=now,
            candidate=candidate.ref,
            dataset=dataset,
            gates=report,
            contract_proposal=proposal,
        )
        after = self.decisions.after_gates(rollout, policy, now=now)
        return {"candidate": candidate.ref, "dataset": dataset, "state": after.state}

    def gate(
        self, champion: ModelVersion, candidate: ModelVersion, dataset: str, policy: Policy
    ) -> dict[str, Any]:
        """Candidate against champion on the candidate's hold-out (the newest rows of its
        training set, which it did not train on)."""
        spec = retrain.champion_spec(candidate)
        table = self.ws.load_dataset(dataset)
        holdout, truth = training_data.holdout(spec, table, candidate.task)  # type: ignore[arg-type]
        outputs = {}
        for role, version in (("champion", champion), ("candidate", candidate)):
            predictor = self.ws.load_model(version.ref)
            proba = predictor.predict_proba(holdout) if version.task == "classification" else None
            outputs[role] = (predictor.predict(holdout), proba)
        segments = {
            name: holdout.column(name).to_numpy(zero_copy_only=False)
            for name in policy.gates.segments
            if name in holdout.column_names
        }
        fairness = policy.gates.fairness or spec.fairness
        sensitive = {
            name: holdout.column(name).to_pylist()
            for name in (fairness.sensitive if fairness else ())
            if name in holdout.column_names
        }
        cost = None
        if (
            policy.gates.max_p99_latency_ms is not None
            or policy.gates.max_cost_per_1000 is not None
        ):
            sample = holdout.slice(0, _COST_SAMPLE_ROWS).to_pandas()
            price = policy.gates.cpu_hour_cost
            cost = measure_cost(
                self.ws.load_model(candidate.ref),
                sample,
                cpu_hour_cost=self.ws.settings.cpu_hour_price if price is None else price,
            )
        report = evaluate_gates(
            policy.gates,
            task=candidate.task,
            classes=candidate.flavor_metadata.get("classes"),
            y_true=truth,
            champion=outputs["champion"],
            candidate=outputs["candidate"],
            segments=segments or None,
            candidate_cost=cost,
            contract_problems=contract_problems(champion, candidate),
            fairness=fairness,
            sensitive=sensitive,
        )
        return {**report.to_dict(), "holdout": {"dataset": dataset, "rows": len(truth)}}


class Decisions:
    """Promote, reject, roll back: the same path for the loop and for a person."""

    def __init__(self, workspace: Workspace, rollouts: RolloutStore) -> None:
        self.ws = workspace
        self.rollouts = rollouts

    def _end(self, rollout_id: int, state: str, **values: Any) -> Rollout:
        """Move a rollout to a final ``state``; the policy's alert that started it is
        answered then, whichever way it ended, and resolves."""
        ended = self.rollouts.move(rollout_id, state, **values)
        if self.rollouts.active(ended.endpoint) is None:
            self.ws.monitors.alerts.resolve(ended.endpoint, TRIGGER_ALERT, now=values.get("now"))
        return ended

    def after_gates(self, rollout: Rollout, policy: Policy, *, now: datetime) -> Rollout:
        gates = rollout.gates or {}
        if not gates.get("passed"):
            reasons = gates.get("reasons") or ["the gates failed"]
            return self.reject(rollout, "gates failed: " + "; ".join(reasons), now=now, actor=None)
        assert rollout.candidate is not None
        if policy.mode is not None:
            self.ws.deploy(
                rollout.endpoint,
                challenger=rollout.candidate,
                mode=policy.mode,
                share=policy.rollout.share,
                note=f"rollout {rollout.id}: the candidate on live traffic ({policy.mode})",
            )
            return self.rollouts.move(
                rollout.id,
                policy.mode,
                expect=("retraining",),
                now=now,
                live_since=now,
                reason=f"passed its gates; now in {policy.mode} for {policy.rollout.duration}",
            )
        if policy.promotes_alone:
            return self.promote(rollout, now=now, actor=None)
        return self.rollouts.move(
            rollout.id,
            "awaiting_approval",
            expect=("retraining",),
            now=now,
            reason=f"passed its gates; waiting for setpoint approve {rollout.id} (or reject)",
        )

    def promote(
        self,
        rollout: Rollout,
        *,
        now: datetime | None = None,
        actor: str | None,
        live: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> Rollout:
        """Make the candidate the champion; ``note``: why, from the person approving,
        kept in the rollout's reason and its audit event."""
        if rollout.candidate is None:
            raise ConflictError(f"rollout {rollout.id} has no candidate to promote yet")
        candidate = self.ws.model(rollout.candidate)
        current = self.ws.model(f"{candidate.name}@{CHAMPION}")
        if rollout.champion and current.ref != rollout.champion:
            raise ConflictError(
                f"the champion changed to {current.ref} since rollout {rollout.id} began "
                f"against {rollout.champion}; reject it and let the policy start again"
            )
        self.ws.promote(candidate.name, candidate.version)
        self._take_off(rollout, f"rollout {rollout.id}: {candidate.ref} promoted")
        with contextlib.suppress(NotFoundError):  # an endpoint without a monitor
            self.ws.monitors.rebase(rollout.endpoint)
        said = f"{candidate.ref} is the champion (was {current.ref})"
        values: dict[str, Any] = {"reason": f"{said}; approved: {note}" if note else said}
        if live is not None:
            values["live"] = live
        return self._end(
            rollout.id,
            "promoted",
            expect=("retraining", "shadow", "canary", "awaiting_approval"),
            now=now,
            decided_by=actor,
            **values,
        )

    def reject(
        self,
        rollout: Rollout,
        reason: str,
        *,
        now: datetime | None = None,
        actor: str | None,
        live: dict[str, Any] | None = None,
    ) -> Rollout:
        if not rollout.active:
            raise ConflictError(f"rollout {rollout.id} is already {rollout.state}")
        self._take_off(rollout, f"rollout {rollout.id}: candidate rejected")
        values: dict[str, Any] = {"reason": reason}
        if live is not None:
            values["live"] = live
        return self._end(rollout.id, "rejected", now=now, decided_by=actor, **values)

    def fail(self, rollout: Rollout, reason: str, *, now: datetime) -> Rollout:
        """End a rollout the loop cannot take further; a candidate it put on the endpoint
        comes off (when the endpoint itself is still there to take it off)."""
        with contextlib.suppress(SetpointError):
            self._take_off(rollout, f"rollout {rollout.id} failed")
        return self._end(rollout.id, "failed", now=now, reason=reason)

    def roll_back(self, rollout: Rollout, live: dict[str, Any], *, now: datetime) -> Rollout:
        """Take a regressing canary off: the champion answers everything again."""
        self._take_off(rollout, f"rollout {rollout.id}: canary rolled back")
        return self._end(
            rollout.id,
            "rolled_back",
            expect=("canary",),
            now=now,
            live=live,
            reason="canary rolled back: " + "; ".join(live.get("reasons", [])),
        )

    def accept_contract(self, rollout: Rollout, *, actor: str) -> Rollout:
        """Make the contract the retraining proposed current for the champion's training
        data: the rows it admits (a new category, a moved range) count from then on."""
        from setpoint.data.contract import Contract

        proposal = rollout.contract_proposal
        if not proposal or "contract" not in proposal:
            raise ConflictError(f"rollout {rollout.id} proposed no contract change")
        if proposal.get("accepted_by"):
            raise ConflictError(
                f"rollout {rollout.id}'s contract was already accepted by {proposal['accepted_by']}"
            )
        revision = self.ws.attach_contract(
            proposal["against"],
            Contract.from_dict(proposal["contract"]),
            note=f"proposed by rollout {rollout.id}: {'; '.join(proposal.get('changes', []))}",
        )
        accepted = {**proposal, "accepted_by": actor, "revision": revision}
        return self.rollouts.update(rollout.id, contract_proposal=accepted)

    def _take_off(self, rollout: Rollout, note: str) -> None:
        """The endpoint without the candidate (when it is the one on it)."""
        deployment = self.ws.deployments.get(rollout.endpoint)
        on_it = deployment.config.challenger
        if on_it is not None and self.ws.model(on_it).ref == rollout.candidate:
            self.ws.deploy(rollout.endpoint, no_challenger=True, note=note)


def handlers(loop: Loop) -> dict[str, Callable[[JobContext], Any]]:
    from setpoint.loop.handlers import HANDLERS

    return {**HANDLERS, RETRAIN: loop.run_retraining}


def gated_metric(version: ModelVersion) -> str:
    metrics = (version.evaluation.get("metrics") or {}).get("validation") or {}
    return primary_metric(version.task, metrics, metrics) or PRIMARY[version.task]


def contract_problems(champion: ModelVersion, candidate: ModelVersion) -> list[str]:
    """What would break the endpoint's callers: features added, dropped or of a new kind."""
    before = (champion.contract or {}).get("columns", {})
    after = (candidate.contract or {}).get("columns", {})
    problems = [f"the candidate also needs {name!r}" for name in after if name not in before]
    problems += [f"the candidate no longer takes {name!r}" for name in before if name not in after]
    problems += [
        f"{name!r} is {after[name]['kind']} for the candidate, {before[name]['kind']} before"
        for name in after
        if name in before and after[name]["kind"] != before[name]["kind"]
    ]
    return problems


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
