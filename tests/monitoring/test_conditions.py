"""Which windows raise the data-contract alerts: quality:refused and
quality:out_of_contract, each against its share of the window's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from setpoint.errors import UsageError
from setpoint.monitoring.conditions import conditions
from setpoint.monitoring.settings import MonitorConfig
from setpoint.monitoring.window import Window

START = datetime(2026, 6, 1, tzinfo=UTC)


def window(answered: int, scored: int, refused: int, rules: list[dict[str, Any]]) -> Window:
    results = {
        "judged": True,
        "drift": {"drifted_features": [], "drifted": False, "drift_share": None, "features": {}},
        "performance": {"reference": None},
        "quality": {"contract": {"scored": scored, "refused": refused, "rules": rules}},
    }
    return Window(START, START + timedelta(days=1), answered, results)


def judged(w: Window, **settings: Any) -> dict[str, Any]:
    """The conditions ``w`` judged: what holds, or None (judged, not holding)."""
    monitor = SimpleNamespace(config=MonitorConfig(**settings), reference=SimpleNamespace())
    return conditions(monitor, w)  # type: ignore[arg-type]


def raised(w: Window, **settings: Any) -> dict[str, tuple[str, str, Any]]:
    return {k: v for k, v in judged(w, **settings).items() if v is not None}


RULES = [
    {"column": "loan_amount", "rule": "max", "scored": 60, "refused": 0},
    {"column": "age", "rule": "max", "scored": 40, "refused": 0},
    {"column": "income", "rule": "type", "scored": 0, "refused": 11},
    {"column": "grade", "rule": "category", "scored": 5, "refused": 0},
    {"column": "term", "rule": "not_null", "scored": 0, "refused": 2},
]


def test_shares_at_their_thresholds_raise_both_alerts_naming_the_top_rules() -> None:
    alerts = raised(window(1_000, 100, 13, RULES))
    severity, message, evidence = alerts["quality:refused"]
    assert severity == "warning"
    assert "1.3% of the rows in 2026-06-01 00:00 to 2026-06-02 00:00 UTC" in message
    assert "(13 of 1,013; threshold 1.0%)" in message
    assert message.endswith("income type (11 rows), term not_null (2 rows)")
    assert evidence["refused"] == 13
    severity, message, _ = alerts["quality:out_of_contract"]
    assert severity == "warning"
    assert "10.0% of the rows answered" in message
    assert "loan_amount max (60 rows), age max (40 rows), grade category (5 rows)" in message


def test_shares_under_their_thresholds_are_judged_and_clear() -> None:
    quiet = window(1_000, 49, 10, RULES)  # 4.9% scored, 0.99% refused
    assert judged(quiet) == {"quality:refused": None, "quality:out_of_contract": None}
    assert raised(quiet, max_out_of_contract_share=0.04).keys() == {"quality:out_of_contract"}
    assert raised(window(1_000, 0, 0, []), max_refused_share=0.0) == {}  # nothing refused


def test_a_window_without_rows_judges_nothing() -> None:
    assert judged(window(0, 0, 0, []), max_refused_share=0.0) == {}


def test_a_handful_of_rows_judges_nothing() -> None:
    # One odd request in a quiet hour is 100% of it: no verdict, no flapping alert.
    few = window(3, 1, 2, [{"column": "x", "rule": "max", "scored": 1, "refused": 2}])
    assert judged(few) == {}


def test_a_window_whose_every_row_was_refused_alerts() -> None:
    refused = window(0, 0, 150, [{"column": "x", "rule": "max", "scored": 0, "refused": 150}])
    assert judged(refused).keys() == {"quality:refused"}  # nothing answered: not judged
    assert "100.0% of the rows" in raised(refused)["quality:refused"][1]


def test_windows_stored_before_contract_counts_raise_nothing() -> None:
    old = window(1_000, 0, 0, [])
    del old.results["quality"]["contract"]
    assert judged(old) == {}


def test_the_thresholds_are_settings_kept_with_the_monitor() -> None:
    config = MonitorConfig(max_refused_share=0.02, max_out_of_contract_share=0.2)
    again = MonitorConfig.from_dict(config.to_dict())
    assert (again.max_refused_share, again.max_out_of_contract_share) == (0.02, 0.2)
    stored_before = {k: v for k, v in config.to_dict().items() if not k.startswith("max_")}
    assert MonitorConfig.from_dict(stored_before).max_refused_share == 0.01
    for bad in (-0.1, 1.5, True, "a lot"):
        with pytest.raises(UsageError, match="max_refused_share: must be"):
            MonitorConfig(max_refused_share=bad)  # type: ignore[arg-type]
