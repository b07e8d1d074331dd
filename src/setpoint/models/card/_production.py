"""The sections of a model card about the version's life since training: known
limitations (the spec's, and what production showed: traffic outside the training
ranges, unresolved alerts), serving history and monitoring."""

from __future__ import annotations

from datetime import UTC, datetime

from setpoint._display import count, listing, minute, number
from setpoint.models.card._blocks import Block, Facts, Para, Table
from setpoint.models.card._facts import ModelCard, Watched
from setpoint.monitoring.alerts import SEVERITIES
from setpoint.monitoring.report import AlertEntry
from setpoint.monitoring.report._format import _pct, _when
from setpoint.monitoring.report._sections import _drifted, _verdict

MOST_OUT_OF_RANGE = 10
MOST_ALERTS = 10


def limitations(card: ModelCard) -> tuple[Block, ...]:
    stated = str((card.version.spec or {}).get("limitations") or "")
    blocks: list[Block] = [Para(stated or "None stated; add limitations: to the training spec.")]
    outside: list[tuple[str, ...]] = []
    alerts: list[tuple[str, ...]] = []
    for watched in card.watched:
        outside += _out_of_range(watched)
        ranked = sorted(watched.report.alerts, key=_most_severe_first)
        alerts += [
            (watched.endpoint, a.severity, a.state, _minute(a.first_seen), a.message)
            for a in ranked
        ]
    if not card.watched:
        blocks.append(Para("Nothing seen in production yet: no monitor has measured it."))
        return tuple(blocks)
    if outside:
        blocks.append(
            Table(
                "Traffic outside what the model saw in training",
                ("Feature", "Endpoint", "Rows out of range", "Unseen categories"),
                tuple(outside),
            )
        )
    else:
        blocks.append(Para("No traffic outside the training ranges or categories so far."))
    if alerts:
        more = len(alerts) - MOST_ALERTS
        blocks.append(
            Table(
                f"Unresolved alerts ({len(alerts)})"
                + (f"; the first {MOST_ALERTS}, most severe first" if more > 0 else ""),
                ("Endpoint", "Severity", "State", "Since (UTC)", "Message"),
                tuple(alerts[:MOST_ALERTS]),
            )
        )
    else:
        blocks.append(Para("No unresolved alerts on the endpoints serving it."))
    return tuple(blocks)


def _most_severe_first(alert: AlertEntry) -> int:
    known = alert.severity in SEVERITIES
    return -SEVERITIES.index(alert.severity) if known else len(SEVERITIES)


def _out_of_range(watched: Watched) -> list[tuple[str, ...]]:
    """Per feature, the share of the rows measured against the version that were
    outside the training range or an unseen category (the features most often so)."""
    windows = [w for w in watched.report.windows if w.quality is not None and w.n_rows]
    rows = sum(w.n_rows for w in windows)
    if not rows:
        return []
    ranged: dict[str, int] = {}
    unseen: dict[str, int] = {}
    for w in windows:
        assert w.quality is not None
        for name, n in w.quality.out_of_range.items():
            ranged[name] = ranged.get(name, 0) + n
        for name, n in w.quality.unseen.items():
            unseen[name] = unseen.get(name, 0) + n
    names = [n for n in {**ranged, **unseen} if ranged.get(n) or unseen.get(n)]
    names.sort(key=lambda n: -(ranged.get(n, 0) + unseen.get(n, 0)))
    return [
        (
            n,
            watched.endpoint,
            _pct(ranged[n] / rows) if n in ranged else "-",
            _pct(unseen[n] / rows) if n in unseen else "-",
        )
        for n in names[:MOST_OUT_OF_RANGE]
    ]


def _minute(when: datetime | None) -> str:
    return minute(None if when is None else when.astimezone(UTC))


def serving(card: ModelCard) -> tuple[Block, ...]:
    events: list[tuple[datetime, str, str, str]] = []
    for move in card.alias_moves:
        if move["to_version"] == card.version.version:
            what = f"{move['action']}d to {move['alias']}" + (
                f" (from version {move['from_version']})" if move["from_version"] else ""
            )
        else:
            what = f"{move['alias']} moved to version {move['to_version']} ({move['action']})"
        events.append((datetime.fromisoformat(str(move["at"])), what, str(move["actor"]), ""))
    for d in card.deployments:
        c = d.config
        what = f"endpoint {d.endpoint} revision {d.revision}: serves {c.model}"
        if c.challenger:
            what += f", challenger {c.challenger} ({c.mode}"
            what += f", {_pct(c.share)})" if c.mode == "canary" else ")"
        events.append((d.created_at, what, d.created_by, d.note))
    if not events:
        return (Para("Never promoted or deployed."),)
    events.sort(key=lambda e: e[0])
    now = [w.endpoint for w in card.watched if w.serves_now]
    blocks: list[Block] = [
        Table(
            "Alias moves involving this version, and deployments of its model",
            ("When (UTC)", "What", "By", "Note"),
            tuple((_minute(at), w, by, note) for at, w, by, note in events),
        )
    ]
    if now:
        blocks.append(Para(f"Serves now on: {', '.join(now)}."))
    return tuple(blocks)


def monitoring(card: ModelCard) -> tuple[Block, ...]:
    blocks: list[Block] = []
    for watched in card.watched:
        data = watched.report
        if not data.windows:
            blocks.append(
                Para(
                    f"{watched.endpoint} serves it, but no monitor window has been measured "
                    "against this version yet."
                )
            )
            continue
        last = data.windows[-1]
        drifted = [f.name for f in _drifted(last)] if last.judged else []
        rows = [
            ("Endpoint", watched.endpoint + ("" if watched.serves_now else " (no longer)")),
            ("Verdict", _verdict(data)),
            ("Latest window", f"{_when(last)} ({count(last.n_rows)} rows)"),
            ("Windows measured", f"{len(data.windows)} since {_when(data.windows[0])}"),
            ("Drifted features", listing(drifted, 8) if drifted else "none"),
        ]
        if last.attribution:
            moved = [a for a in last.attribution.values() if a.drifted]
            rows.append(
                (
                    "Attribution drift",
                    ", ".join(
                        f"{a.name} {_pct(a.reference)} to {_pct(a.window)} of the explanation"
                        for a in moved
                    )
                    if moved
                    else "none: each feature's share of the explanation as in training",
                )
            )
        if last.latency is not None and last.latency.p50_ms is not None:
            rows.append(("Median response", f"{number(last.latency.p50_ms)} ms"))
        blocks.append(Facts(tuple(rows)))
    if not blocks:
        return (Para("No monitor has measured traffic against this version."),)
    return tuple(blocks)
