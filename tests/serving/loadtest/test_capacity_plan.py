"""The capacity plan's arithmetic (serving/loadtest/plan.py)."""

from __future__ import annotations

import pytest

from setpoint.serving.loadtest.plan import HOURS_A_MONTH, CapacityPlan


def test_replicas_and_monthly_cost_for_a_target() -> None:
    plan = CapacityPlan(
        sustainable_rps=500,
        workers=2,
        target_rps=1800,
        cpu_hour_price=0.04,
        batch_rows_per_cpu_second=100_000,
    )
    assert plan.per_core_rps == 250
    assert plan.replicas == 4  # 3.6 replicas' worth, rounded up
    assert plan.replica_month_cost == pytest.approx(2 * 730 * 0.04)
    assert plan.monthly_cost == pytest.approx(4 * 2 * 730 * 0.04)
    predictions = 1800 * 3600 * HOURS_A_MONTH
    assert plan.realtime_cost_per_1000 == pytest.approx(4 * 2 * 730 * 0.04 / predictions * 1000)
    assert plan.batch_cost_per_1000 == pytest.approx(0.04 / 3600 / 100_000 * 1000)
    assert plan.batch_monthly_cost == pytest.approx(predictions / 1000 * plan.batch_cost_per_1000)
    assert plan.to_dict()["replicas"] == 4


def test_a_target_that_is_a_multiple_of_the_sustainable_rate_is_not_rounded_up() -> None:
    plan = CapacityPlan(sustainable_rps=500, workers=1, target_rps=1500, cpu_hour_price=1.0)
    assert plan.replicas == 3


def test_without_a_target_the_cost_is_at_the_sustainable_rate() -> None:
    plan = CapacityPlan(sustainable_rps=720, workers=1, target_rps=None, cpu_hour_price=0.036)
    assert plan.replicas is None
    assert plan.monthly_cost is None
    assert plan.realtime_cost_per_1000 == pytest.approx(0.036 / 3600 / 720 * 1000)
    assert plan.batch_cost_per_1000 is None


def test_nothing_sustainable_plans_nothing() -> None:
    plan = CapacityPlan(sustainable_rps=None, workers=1, target_rps=100, cpu_hour_price=0.03)
    assert plan.per_core_rps is None
    assert plan.replicas is None
    assert plan.realtime_cost_per_1000 is None
