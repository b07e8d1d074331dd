"""One grammar for spans of time, read the same by every setting that takes one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint._durations import LONGEST, format_duration, parse_duration
from setpoint.cli.loop import every_seconds
from setpoint.errors import UsageError
from setpoint.loop.policy import Policy
from setpoint.monitoring.settings import MonitorConfig
from setpoint.serving.config import retention_span


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=LONGEST))
def test_format_then_parse_gives_the_same_span(span: timedelta) -> None:
    assert parse_duration(format_duration(span), what="x") == span


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30s", timedelta(seconds=30)),
        ("0.1s", timedelta(milliseconds=100)),
        ("5m", timedelta(minutes=5)),
        (" 1.5 h ", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("1h30m", timedelta(minutes=90)),
        ("1d 12h", timedelta(hours=36)),
    ],
)
def test_the_forms_read(text: str, span: timedelta) -> None:
    assert parse_duration(text, what="x") == span


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "is not a span of time"),
        ("90", "is not a span of time"),
        ("90d\n", "is not a span of time"),
        ("-5m", "is not a span of time"),
        ("5 minutes", "is not a span of time"),
        ("0m", "must be a positive span"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("36501d", "too long"),
    ],
)
def test_a_mistake_names_the_setting_and_the_forms(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_duration(text, what="cooldown")
    assert caught.value.message.startswith("cooldown ")


def _policy_cooldown(text: str) -> timedelta:
    return Policy.from_yaml(f"triggers: [drift_share: 0.3]\ncooldown: {text}\n").cooldown_span


def _policy_duration(text: str) -> timedelta:
    policy = Policy.from_yaml(f"triggers: [drift_share: 0.3]\nrollout: {{duration: {text}}}\n")
    return policy.rollout.span


def _window(text: str) -> timedelta:
    return timedelta(seconds=MonitorConfig(window=text).window_seconds)


def _every(text: str) -> timedelta:
    return timedelta(seconds=every_seconds(text))


ENTRY_POINTS: dict[str, Callable[[str], timedelta]] = {
    "monitor create --window": _window,
    "policy cooldown": _policy_cooldown,
    "policy rollout duration": _policy_duration,
    "loop --every": _every,
    "deploy --log-retention": retention_span,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("text", ["2h", "1.5h", "90m", "5400s", "1h30m", "1d", "0.5d", "2w"])
def test_every_setting_reads_the_same_text_as_the_same_span(entry: str, text: str) -> None:
    assert ENTRY_POINTS[entry](text) == parse_duration(text, what="x")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("text", ["soon", "90", "-1h", "1h1h"])
def test_every_setting_refuses_the_same_text(entry: str, text: str) -> None:
    with pytest.raises(UsageError, match=r"span of time|largest first"):
        ENTRY_POINTS[entry](text)


ZERO_MEANS_NONE = ("policy cooldown", "policy rollout duration")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_zero_is_none_where_a_setting_says_so_and_refused_elsewhere(entry: str) -> None:
    if any(entry.startswith(name) for name in ZERO_MEANS_NONE):
        assert ENTRY_POINTS[entry]("0m") == timedelta(0)  # as before: no cooldown
    else:
        with pytest.raises(UsageError, match="positive span"):
            ENTRY_POINTS[entry]("0m")


@pytest.mark.parametrize(
    ("entry", "text", "message"),
    [
        ("monitor create --window", "30s", "at least 1m"),
        ("monitor create --window", "90.5s", "whole number of seconds"),
        ("deploy --log-retention", "30m", "at least 1h"),
    ],
)
def test_each_setting_keeps_its_own_limits(entry: str, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ENTRY_POINTS[entry](text)
