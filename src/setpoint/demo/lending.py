"""A generated lending data stream: loan applications and whether they defaulted.

Realistic enough to exercise everything setpoint does: numeric and categorical
features with missing values, a time column, and two kinds of change that can be
switched on from a given date: covariate shift (applicants get younger, ask for
more, and come through a new channel) and concept drift (the relation between the
features and default changes, as when an economy turns). Everything is drawn from a
seeded generator, so a seed gives the same data on every machine; nothing is
downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

GRADES = ("A", "B", "C", "D", "E", "F", "G")
HOME = ("rent", "mortgage", "own")
PURPOSES = ("debt_consolidation", "credit_card", "home_improvement", "car", "medical", "other")
CHANNELS = ("branch", "web", "partner")
TARGET = "defaulted"
AGE_BAND = "age_band"
AGE_BANDS = ("under 30", "30 to 49", "50 and over")
TIME_COLUMN = "applied_at"


@dataclass(frozen=True)
class Drift:
    """What changes in the stream from ``start`` on (both default to nothing)."""

    start: datetime | None = None
    covariate: float = 0.0  # 0 = none, 1 = the full shift
    concept: float = 0.0  # 0 = none, 1 = the full change in the label relation


def applications(
    n: int,
    *,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    days: float = 90.0,
    drift: Drift = Drift(),
    seed: int = 0,
    age_band: bool = False,
) -> pd.DataFrame:
    """``n`` loan applications spread evenly over ``days`` from ``start``, with the
    label column ``defaulted`` (0/1). ``age_band`` adds the applicant's age band
    (``AGE_BANDS``), a sensitive attribute to measure fairness by: after the change,
    the young go bad more often than any feature but age says."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86_400, n))
    applied_at = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
    drifted = (
        np.zeros(n, dtype=bool)
        if drift.start is None
        else np.asarray(applied_at >= pd.Timestamp(drift.start))
    )
    shift = drift.covariate * drifted

    age = np.clip(rng.normal(42 - 8 * shift, 11, n), 18, 90).round()
    income = np.exp(rng.normal(10.9 - 0.25 * shift, 0.45, n)).round(-2)
    loan_amount = np.clip(rng.lognormal(9.3 + 0.35 * shift, 0.6, n), 500, 60_000).round(-2)
    term = np.where(rng.random(n) < 0.7 - 0.3 * shift, 36, 60)
    employment_years = np.clip(rng.gamma(2.0, 3.0 - 1.5 * shift, n), 0, 45).round(1)
    credit_lines = rng.poisson(8 - 3 * shift, n)
    dti = np.clip(loan_amount / income * 100 + rng.normal(12, 6, n), 0, 95).round(1)
    grade_score = (
        0.04 * dti - 0.03 * employment_years - 0.015 * (age - 40) - 0.9 + rng.normal(0, 0.9, n)
    )
    grade = np.asarray(GRADES)[
        np.clip(np.digitize(grade_score, [-0.6, 0.0, 0.5, 1.0, 1.5, 2.1]), 0, 6)
    ]
    home = _choice(rng, HOME, [0.45, 0.4, 0.15], n)
    purpose = _choice(rng, PURPOSES, [0.4, 0.2, 0.12, 0.1, 0.08, 0.1], n)
    # Partners were a trickle (2%) before the change and bring half the business after.
    channel = np.where(
        rng.random(n) < 0.02 + 0.48 * shift,
        "partner",
        _choice(rng, ("branch", "web"), [0.5, 0.5], n),
    )

    # Missing values, as real application forms have.
    employment = employment_years.astype(float)
    employment[rng.random(n) < 0.04] = np.nan

    grade_rank = np.searchsorted(GRADES, grade)
    before = (
        -4.2
        + 0.035 * dti
        + 0.28 * grade_rank
        + 0.5 * (term == 60)
        - 0.06 * np.nan_to_num(employment, nan=2.0)
        + 0.6 * (home == "rent")
        - 0.3 * (purpose == "home_improvement")
    )
    # After the change: young borrowers and big loans through partners go bad;
    # the old debt-to-income signal weakens.
    after = (
        -3.6
        + 0.01 * dti
        + 0.1 * grade_rank
        + 1.6 * (age < 32)
        + 1.1 * (loan_amount > 20_000)
        + 1.3 * (channel == "partner")
        - 0.02 * np.nan_to_num(employment, nan=2.0)
    )
    concept = drift.concept * drifted
    logit = (1 - concept) * before + concept * after
    defaulted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    frame = pd.DataFrame(
        {
            TIME_COLUMN: applied_at,
            "age": age.astype(np.int64),
            "income": income,
            "loan_amount": loan_amount,
            "term": term.astype(np.int64),
            "employment_years": employment,
            "credit_lines": credit_lines.astype(np.int64),
            "debt_to_income": dti,
            "grade": grade,
            "home_ownership": home,
            "purpose": purpose,
            "channel": channel,
            TARGET: defaulted,
        }
    )
    if age_band:
        bands = np.digitize(age, [30, 50])
        # Before the label, the last column.
        frame.insert(len(frame.columns) - 1, AGE_BAND, np.asarray(AGE_BANDS)[bands])
    return frame


def _choice(
    rng: np.random.Generator, values: tuple[str, ...], p: list[float], n: int
) -> np.ndarray:
    return np.asarray(values)[rng.choice(len(values), size=n, p=np.asarray(p) / sum(p))]
