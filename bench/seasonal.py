"""Thresholds learned from time: the false alarms they remove, the power they cost.

    python bench/seasonal.py [--seeds 5] [--per-month 1000]

Data generated with numpy (no downloads): a year of card spending, 1,000 rows a
month, whose months differ by season (the mean spend moves by +/-15 around 100 with a
within-month spread of 10, and the mix of four regions moves with it; ``tenure`` does
not move), and the same year with no season at all (``flat``). The reference is one
year; the current data is cut into months (``setpoint.compare(..., chunk="1M")``):

- false alarms: two more years drawn from the same pattern; the share of months
  where any drift condition held;
- detection: one more year with every month's spend shifted by ``d`` within-month
  standard deviations; the share of months where a drift condition held.

Each is measured with thresholds learned from random windows of the reference only
(``random``: the reference is given without its time column) and also from its own
months (``time``: the threshold is the largest of the static, random-window and
time-chunk ones). The domain classifier is off (its learned threshold is tested in
``tests/monitoring/test_thresholds.py``); every figure is a share of
``seeds x months`` windows.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

import setpoint

REGIONS = ["north", "south", "east", "west"]
SHIFTS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


def year(
    when: int, rng: np.random.Generator, *, per_month: int, amplitude: float, shift: float = 0.0
) -> pd.DataFrame:
    months = []
    for m in range(12):
        start = pd.Timestamp(year=when, month=m + 1, day=1)
        span = (start + pd.offsets.MonthBegin(1) - start).total_seconds()
        phase = 2 * np.pi * m / 12
        swing = amplitude / 15  # the region mix moves with the spend
        weights = np.array([1 + 0.6 * swing * np.cos(phase), 1 - 0.6 * swing * np.cos(phase), 1, 1])
        months.append(
            pd.DataFrame(
                {
                    "when": start + pd.to_timedelta(rng.uniform(0, span, per_month), unit="s"),
                    "spend": rng.normal(
                        100 + amplitude * np.sin(phase) + 10 * shift, 10, per_month
                    ),
                    "region": rng.choice(REGIONS, per_month, p=weights / weights.sum()),
                    "tenure": rng.normal(5, 2, per_month),
                }
            )
        )
    return pd.concat(months, ignore_index=True)


def flagged(reference: pd.DataFrame, current: pd.DataFrame, *, with_time: bool) -> list[bool]:
    ref = reference if with_time else reference.drop(columns="when")
    result = setpoint.compare(ref, current, time_column="when", chunk="1M", multivariate=False)
    return [any(a["key"].startswith("drift:") for a in c["alerts"]) for c in result.chunks]


def measure(seeds: int, per_month: int, amplitude: float) -> dict[str, Any]:
    rates: dict[str, dict[str, list[bool]]] = {"random": {}, "time": {}}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        shape = {"per_month": per_month, "amplitude": amplitude}
        reference = year(2023, rng, **shape)
        same = pd.concat([year(2024, rng, **shape), year(2025, rng, **shape)])
        shifted = {d: year(2024, rng, **shape, shift=d) for d in SHIFTS}
        for mode in rates:
            with_time = mode == "time"
            rates[mode].setdefault("0", []).extend(flagged(reference, same, with_time=with_time))
            for d, current in shifted.items():
                found = flagged(reference, current, with_time=with_time)
                rates[mode].setdefault(str(d), []).extend(found)
    return {
        mode: {d: float(np.mean(found)) for d, found in by_shift.items()}
        for mode, by_shift in rates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-month", type=int, default=1_000)
    args = parser.parse_args()
    started = time.perf_counter()
    rates = {
        name: measure(args.seeds, args.per_month, amplitude)
        for name, amplitude in (("seasonal", 15.0), ("flat", 0.0))
    }
    print(f"{args.seeds} seeds x 12 months ({args.per_month:,} rows a month)")
    print()
    print(f"{'':<14}{'seasonal reference':^22}{'flat reference':^22}")
    print(f"{'shift (sd)':<14}" + f"{'random':>11}{'time':>11}" * 2)
    rows = [("false alarms", "0", ".1%")] + [(f"{d:g}", str(d), ".0%") for d in SHIFTS]
    for label, key, form in rows:
        cells = [rates[name][mode][key] for name in rates for mode in ("random", "time")]
        print(f"{label:<14}" + "".join(f"{format(c, form):>11}" for c in cells))
    print()
    print("shift: every month's spend moved by that many within-month standard")
    print("deviations; figures: the share of monthly windows where drift was flagged.")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
