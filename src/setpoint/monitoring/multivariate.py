"""Multivariate drift: can a classifier tell the reference from the window?

Per-feature tests miss a change in how features move together: two features whose
correlation flips keep both their distributions, so every marginal test passes. A
domain classifier sees the joint distribution. A gradient-boosted model (trees find
interactions without being told) learns to separate a reference sample from a window
sample of the same size; the ROC AUC of its out-of-fold predictions is the signal.
0.5 means the two are indistinguishable; the further above, the more the data moved.

The AUC comes with its sampling error (DeLong's, from the out-of-fold predictions),
and drift needs both a large enough AUC and one that noise cannot explain: at least
the threshold and more than two standard errors above 0.5.

The cost is bounded whatever the data's size: both samples are capped (``max_rows``
each, drawn at random with a fixed seed), the folds are few, the model is small, and
it trains on one thread, so a window costs about one CPU-second of the whole process
(threads included), on a window of ten thousand rows as on one of ten million.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from scipy.stats import rankdata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from setpoint.data.kinds import TEXT_KINDS, Kind
from setpoint.errors import InvalidDataError, UsageError

MIN_ROWS = 50  # per side; fewer cannot be told apart meaningfully
DEFAULT_THRESHOLD = 0.55
MAX_ROWS = 5_000  # per side
MAX_FOLDS = 5
MAX_CATEGORIES = 255  # HistGradientBoostingClassifier's limit per categorical feature

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DomainResult:
    auc: float  # of the out-of-fold predictions
    auc_se: float  # its standard error (DeLong)
    n_reference: int
    n_current: int
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "auc": self.auc,
            "auc_se": self.auc_se,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


def domain_classifier(
    reference: pa.Table,
    current: pa.Table,
    kinds: Mapping[str, Kind],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_rows: int = MAX_ROWS,
    folds: int = 3,
    seed: int = 0,
) -> DomainResult:
    """The out-of-fold AUC of telling ``current`` from ``reference`` on the columns in
    ``kinds`` (datetimes are left out), with its standard error. Drift when the AUC is
    at least ``threshold`` and more than two standard errors above 0.5."""
    if not 2 <= folds <= MAX_FOLDS:
        raise UsageError(f"the domain classifier takes 2 to {MAX_FOLDS} folds, not {folds}")
    if not MIN_ROWS <= max_rows <= MAX_ROWS:
        raise UsageError(
            f"the domain classifier samples {MIN_ROWS} to {MAX_ROWS:,} rows a side, not {max_rows}"
        )
    names = [n for n, kind in kinds.items() if kind != "datetime"]
    if not names:
        raise InvalidDataError("the domain classifier needs at least one feature")
    n = min(reference.num_rows, current.num_rows, max_rows)
    if n < MIN_ROWS:
        raise InvalidDataError(
            f"the domain classifier needs at least {MIN_ROWS} rows on each side; "
            f"got {reference.num_rows} reference and {current.num_rows} current"
        )
    rng = np.random.default_rng(seed)
    frame = pd.concat(
        [_sample(reference, names, n, rng), _sample(current, names, n, rng)], ignore_index=True
    )
    categorical = [kinds[name] in TEXT_KINDS for name in names]
    for name, is_text in zip(names, categorical, strict=True):
        if is_text:  # the same codes on both sides: one category set over the pair
            frame[name] = _codes(frame[name])
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    x = frame.to_numpy(dtype=np.float64)
    target = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    scores = np.empty(2 * n, dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One thread: the cost is CPU time of the whole process, and OpenMP threads spinning
    # on a shared machine cost more than they save on samples this small.
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in splitter.split(x, target):
            model = HistGradientBoostingClassifier(
                max_iter=_ITERATIONS,
                learning_rate=_LEARNING_RATE,
                max_leaf_nodes=_LEAVES,
                early_stopping=False,
                categorical_features=np.asarray(categorical, dtype=bool),
                random_state=seed,
            )
            model.fit(x[train], target[train])
            scores[test] = model.predict_proba(x[test])[:, 1]
    auc, se = auc_with_se(scores[n:], scores[:n])
    drifted = auc >= threshold and auc - 0.5 > 2 * se
    return DomainResult(auc, se, n, n, threshold, bool(drifted))


_ITERATIONS, _LEARNING_RATE, _LEAVES = 50, 0.2, 15


def auc_with_se(positives: FloatArray, negatives: FloatArray) -> tuple[float, float]:
    """The ROC AUC of scores of positives against negatives (ties count a half) and
    its standard error by DeLong's method (from each score's placement among the
    other side's)."""
    m, k = len(positives), len(negatives)
    ranks = rankdata(np.concatenate([positives, negatives]))
    # A positive's placement: the share of negatives below it (ties a half).
    placed_pos = (ranks[:m] - rankdata(positives)) / k
    placed_neg = 1.0 - (ranks[m:] - rankdata(negatives)) / m
    auc = float(placed_pos.mean())
    variance = placed_pos.var(ddof=1) / m + placed_neg.var(ddof=1) / k
    return auc, math.sqrt(max(variance, 0.0))


def _sample(
    table: pa.Table, names: Sequence[str], n: int, rng: np.random.Generator
) -> pd.DataFrame:
    rows = np.sort(rng.choice(table.num_rows, size=n, replace=False))
    present = [name for name in names if name in table.column_names]
    frame = table.select(present).take(pa.array(rows)).to_pandas()
    for name in names:  # a column the window lacks is all missing there
        if name not in frame:
            frame[name] = None
    selected: pd.DataFrame = frame[list(names)]
    return selected


def _codes(values: pd.Series) -> pd.Series:
    """Category codes over both samples, missing values as NaN; beyond the
    ``MAX_CATEGORIES`` most frequent categories (the most the gradient-boosting model
    takes), the rest share one code."""
    text = values.astype("string")
    frequent = text.value_counts().index[: MAX_CATEGORIES - 1]
    kept = text.where(text.isin(frequent) | text.isna(), "\x00other")
    codes = kept.astype("category").cat.codes
    return codes.where(codes >= 0).astype("float64")
