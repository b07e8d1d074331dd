"""``setpoint policy``, ``rollouts``, ``approve``, ``reject`` and ``loop``: the closed loop."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from setpoint._durations import parse_duration
from setpoint.cli._common import (
    Col,
    Group,
    JsonFlag,
    emit,
    fmt,
    read_text,
    render_rows,
    short,
    state,
    stderr,
)
from setpoint.errors import UsageError

policy_app = typer.Typer(
    cls=Group,
    help="When an endpoint's model is retrained, and how far a candidate goes alone.",
    no_args_is_help=True,
)
rollouts_app = typer.Typer(
    cls=Group,
    help="Candidates on their way from a trigger to promoted, rejected or rolled back.",
    no_args_is_help=True,
)

Endpoint = Annotated[str, typer.Argument(help="Endpoint name, e.g. credit.", show_default=False)]
# The live metrics a person reads first, as available.
_SHOWN = ("roc_auc", "accuracy", "log_loss", "rmse", "mae", "r2")
RolloutId = Annotated[int, typer.Argument(help="Rollout id (see setpoint rollouts list).")]


def _loop(ctx: typer.Context) -> Any:
    from setpoint.loop.controller import Loop

    return Loop(state(ctx).workspace())


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    endpoint: Endpoint,
    file: Annotated[Path, typer.Argument(help="The policy as YAML (see docs/loop.md).")],
    json_: JsonFlag = False,
) -> None:
    """Set (or replace) the policy of an endpoint from a YAML file."""
    from setpoint.loop.policy import Policy

    policy = Policy.from_yaml(read_text(file), source=str(file))
    ws = state(ctx).workspace()
    ws.deployments.get(endpoint)  # the endpoint must exist
    stored = _loop(ctx).policies.set(endpoint, policy)

    def render(c: Console) -> None:
        c.print(f"Policy of [bold]{escape(endpoint)}[/] set:")
        c.print(policy.to_yaml().rstrip(), markup=False)

    emit(ctx, stored.to_dict(), render)


@policy_app.command("show")
def policy_show(ctx: typer.Context, endpoint: Endpoint, json_: JsonFlag = False) -> None:
    """Show the policy of an endpoint, with every default filled in."""
    stored = _loop(ctx).policies.get(endpoint)

    def render(c: Console) -> None:
        c.print(stored.policy.to_yaml().rstrip(), markup=False)
        if stored.cursor:
            c.print(f"[dim]looked at windows up to {stored.cursor:%Y-%m-%d %H:%M} UTC[/]")

    emit(ctx, stored.to_dict(), render)


@policy_app.command("remove")
def policy_remove(ctx: typer.Context, endpoint: Endpoint, json_: JsonFlag = False) -> None:
    """Remove the policy of an endpoint (its rollouts and their history stay)."""
    _loop(ctx).policies.remove(endpoint)
    emit(
        ctx,
        {"endpoint": endpoint, "removed": True},
        lambda c: c.print(f"Policy of {endpoint} removed.", markup=False),
    )


@rollouts_app.command("list")
def rollouts_list(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    state_: Annotated[
        str | None, typer.Option("--state", help="Only in this state, e.g. awaiting_approval.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json_: JsonFlag = False,
) -> None:
    """Rollouts, newest first."""
    found = _loop(ctx).rollouts.list(endpoint=endpoint, state=state_, limit=limit)

    def render(c: Console) -> None:
        if not found:
            c.print("No rollouts yet.")
            return
        render_rows(
            c,
            [
                short("id", "right"),
                "endpoint",
                "state",
                "champion",
                "candidate",
                short("since (UTC)"),
                Col("reason", fold=16),
            ],
            [
                (
                    str(r.id),
                    r.endpoint,
                    r.state,
                    r.champion or "-",
                    r.candidate or "-",
                    f"{r.created_at:%Y-%m-%d %H:%M}",
                    r.reason or "-",
                )
                for r in found
            ],
        )

    emit(ctx, [r.to_dict() for r in found], render)


@rollouts_app.command("show")
def rollouts_show(ctx: typer.Context, rollout: RolloutId, json_: JsonFlag = False) -> None:
    """A rollout with its evidence: what fired, the gate report, the live comparison."""
    found = _loop(ctx).rollouts.get(rollout)
    emit(ctx, found.to_dict(), lambda c: render_rollout(c, found.to_dict()))


def render_rollout(c: Console, r: dict[str, Any]) -> None:
    c.print(
        f"[bold]Rollout {r['id']}[/] of {escape(r['endpoint'])}: [bold]{r['state']}[/] — "
        f"{escape(r['reason'] or '')}"
    )
    trigger = r["trigger"] or {}
    c.print(f"  fired: {trigger.get('message', trigger)}", markup=False)
    c.print(
        f"  champion {r['champion']}, candidate {r['candidate'] or '(not trained yet)'}",
        markup=False,
    )
    if r["dataset"]:
        c.print(f"  trained on {r['dataset']}", markup=False)
    gates = r.get("gates")
    if gates:
        render_rows(
            c,
            ["check", short("passed"), Col("detail", fold=30)],
            [
                (
                    check["name"],
                    "yes" if check["passed"] else Text("no", style="red"),
                    check.get("detail") or "",
                )
                for check in gates.get("checks", [])
            ],
            title="gates",
        )
    liveinfo = r.get("live")
    if liveinfo:
        c.print(f"  live ({liveinfo.get('mode')}): {liveinfo.get('verdict')}", markup=False)
        if liveinfo.get("agreement") is not None:
            c.print(
                f"    agreement with the champion {liveinfo['agreement']:.1%} "
                f"on {liveinfo['pairs']:,} requests"
            )
        for side in ("candidate", "champion"):
            info = liveinfo.get(side) or {}
            metrics = info.get("metrics") or {}
            first = [k for k in _SHOWN if metrics.get(k) is not None][:3]
            shown = ", ".join(f"{k} {fmt(metrics[k])}" for k in first)
            c.print(
                f"    {side}: {info.get('rows', 0):,} answers, "
                f"{info.get('labels', 0):,} labelled {shown}",
                markup=False,
            )
    if r.get("contract_proposal"):
        c.print(
            "  [yellow]contract proposal[/]: "
            + escape(str(r["contract_proposal"].get("violations")))
        )


@rollouts_app.command("accept-contract")
def accept_contract(ctx: typer.Context, rollout: RolloutId, json_: JsonFlag = False) -> None:
    """Accept the contract change a retraining proposed (new categories, moved ranges):
    it becomes current for the champion's training data, so those rows count from now."""
    loop = _loop(ctx)
    found = loop.rollouts.get(rollout)
    done = loop.decisions.accept_contract(found, actor=state(ctx).workspace().actor)
    proposal = done.contract_proposal or {}

    def render(c: Console) -> None:
        c.print(
            f"Contract revision {proposal.get('revision')} of {proposal.get('against')} "
            f"accepted: {'; '.join(proposal.get('changes', [])) or 'no changes listed'}."
        )

    emit(ctx, done.to_dict(), render)


def approve(
    ctx: typer.Context,
    rollout: RolloutId,
    reason: Annotated[
        str | None, typer.Option(help="Why, for the audit trail (optional here).")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Promote a candidate that is waiting for approval (see setpoint rollouts list)."""
    loop = _loop(ctx)
    found = loop.rollouts.get(rollout)
    if found.state != "awaiting_approval":
        raise UsageError(
            f"rollout {rollout} is {found.state}; only a rollout awaiting approval is approved"
        )
    done = loop.decisions.promote(found, actor=state(ctx).workspace().actor, note=reason)
    emit(ctx, done.to_dict(), lambda c: c.print(f"Rollout {rollout}: {done.reason}.", markup=False))


def reject(
    ctx: typer.Context,
    rollout: RolloutId,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "rejected by a person",
    json_: JsonFlag = False,
) -> None:
    """Reject a candidate: it leaves live traffic and is never promoted by this rollout."""
    loop = _loop(ctx)
    found = loop.rollouts.get(rollout)
    done = loop.decisions.reject(found, reason, actor=state(ctx).workspace().actor)
    emit(
        ctx,
        done.to_dict(),
        lambda c: c.print(f"Rollout {rollout} rejected: {reason}.", markup=False),
    )


def loop(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    every: Annotated[
        str, typer.Option(help="Time between ticks: a span such as 30s... 5m, 1h.")
    ] = "5m",
    no_jobs: Annotated[
        bool, typer.Option("--no-jobs", help="Leave jobs to `setpoint worker` processes.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Run monitors, policies, rollouts and (unless --no-jobs) the job worker on a schedule.

    Each tick computes the monitor windows that are complete, lets each policy look at
    them, moves rollouts on, and runs due jobs. Stop with Ctrl-C.
    """
    seconds = every_seconds(every)
    controller = _loop(ctx)
    err = stderr()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    reports = []
    try:
        while True:
            report = controller.tick(run_jobs=not no_jobs)
            reports.append(report.to_dict())
            if not json_:
                err.print(_line(report))
            if once or stop.wait(seconds):
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(ctx, reports[-1] if once and reports else reports, lambda c: None)


def every_seconds(text: str) -> float:
    """``--every`` in seconds, read like every other span of time."""
    return parse_duration(text, what="--every").total_seconds()


def _line(report: Any) -> str:
    parts = [f"{report.at:%Y-%m-%d %H:%M:%S}"]
    windows = sum(report.windows.values())
    parts.append(f"{windows} new window(s)")
    if report.fired:
        parts.append(f"{len(report.fired)} trigger(s) fired")
    parts += report.moves
    if report.jobs:
        parts.append(f"{len(report.jobs)} job(s) run")
    parts += [f"[red]{escape(problem)}[/]" for problem in report.problems]
    return " · ".join(parts)
