"""Multivariate drift: can a classifier tell the reference from the window?

Per-feature tests miss a change in how features move together: two features whose
correlation flips keep both their distributions, so every marginal test passes. A
domain classifier sees the joint distribution. A gradient-boosted model (trees find
interactions without being told) learns to separate a reference sample from a window
sample of the same size; its cross-validated ROC AUC is the signal. 0.5 means the two
are indistinguishable; the further above, the more the data moved. The AUC of the
folds also gives its spread, so a small sample cannot pass noise off as drift.

Both samples are capped (``max_rows`` each, drawn at random with a fixed seed): the
detector costs the same on a window of ten thousand rows as on one of ten million.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from setpoint.data.kinds import TEXT_KINDS, Kind
from setpoint.errors import InvalidDataError

MIN_ROWS = 50  # per side; fewer cannot be told apart meaningfully in 5 folds
DEFAULT_THRESHOLD = 0.55
MAX_CATEGORIES = 255  # HistGradientBoostingClassifier's limit per categorical feature


@dataclass(frozen=True)
class DomainResult:
    auc: float  # mean over the folds
    auc_std: float
    n_reference: int
    n_current: int
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "auc": self.auc,
            "auc_std": self.auc_std,
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
    max_rows: int = 5_000,
    folds: int = 5,
    seed: int = 0,
) -> DomainResult:
    """The cross-validated AUC of telling ``current`` from ``reference`` on the columns
    in ``kinds`` (datetimes are left out). Drift when the AUC is at least
    ``threshold`` and more than two fold standard errors above 0.5."""
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
    ref = _sample(reference, names, n, rng)
    cur = _sample(current, names, n, rng)
    frame = pd.concat([ref, cur], ignore_index=True)
    categorical = [kinds[name] in TEXT_KINDS for name in names]
    for name, is_text in zip(names, categorical, strict=True):
        if is_text:  # the same codes on both sides: one category set over the pair
            frame[name] = _codes(frame[name])
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    target = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    model = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        categorical_features=np.asarray(categorical, dtype=bool),
        random_state=seed,
    )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(
        model, frame.to_numpy(dtype=np.float64), target, cv=splitter, scoring="roc_auc"
    )
    auc = float(np.mean(scores))
    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
    significant = auc - 0.5 > 2 * std / math.sqrt(len(scores))
    return DomainResult(auc, std, n, n, threshold, bool(auc >= threshold and significant))


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
