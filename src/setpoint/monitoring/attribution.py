"""Attribution drift: does the model still explain its answers by the same features?

Each feature's *share* of the explanation is its mean |contribution| over a sample
of rows divided by the sum over all features (``models/explain.py``; summed over a
classifier's outputs). The reference's shares are measured on the monitor's
reference sample, each window's on a sample of the window's answered rows, the same
way and on the same number of rows. A feature whose share moved by at least
``share_change`` (absolute) has drifted in attribution.

This catches what matters to the model and ignores what does not: a shift in a
feature the model does not use moves no share (its contributions stay zero), while a
shift that pushes the most important feature into a region where the model
responds differently moves its share, whatever the feature's own drift test says.

Tree flavors are explained by their library's exact TreeSHAP (microseconds a row);
the others by shap's permutation explainer (the ``explain`` extra) against the first
rows of the reference sample as background, which costs hundreds of model calls a
row, so only when asked and on fewer rows (``permutation_rows``). A model whose
inputs include personal data is not explained: the log keeps only its keyed hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from setpoint.errors import DependencyMissingError
from setpoint.models import explain

if TYPE_CHECKING:
    from setpoint.models.predictor import Predictor
    from setpoint.monitoring.settings import AttributionSettings

__all__ = ["Attributor", "compare", "shares"]


def shares(explained: explain.Explanation) -> dict[str, float]:
    """Each feature's share of the mean |contribution| (summed over the outputs), in
    the explanation's feature order; all zero when nothing contributes."""
    size = np.abs(explained.contributions).sum(axis=1).mean(axis=0)
    total = float(size.sum())
    return {
        name: (float(value) / total if total > 0 else 0.0)
        for name, value in zip(explained.features, size, strict=True)
    }


def compare(
    reference: Mapping[str, float], window: Mapping[str, float], *, share_change: float
) -> dict[str, Any]:
    """Per feature, the reference's and the window's share and the change; the
    features whose share moved by at least ``share_change``, largest reference share
    first; and the total variation distance between the two."""
    features: dict[str, dict[str, Any]] = {}
    for name, before in reference.items():
        after = window.get(name, 0.0)
        change = after - before
        features[name] = {
            "reference": before,
            "window": after,
            "change": change,
            "drifted": abs(change) >= share_change,
        }
    drifted = [name for name, f in features.items() if f["drifted"]]
    drifted.sort(key=lambda name: -reference[name])
    distance = 0.5 * sum(abs(f["change"]) for f in features.values())
    return {
        "features": features,
        "drifted": drifted,
        "distance": distance,
        "share_change": share_change,
    }


@dataclass(frozen=True)
class Attributor:
    """Explains samples of rows with one model version: ``reference`` holds the
    features' shares on the reference sample; ``background``: reference rows for the
    flavors without TreeSHAP."""

    predictor: Predictor
    background: pa.Table
    settings: AttributionSettings
    features: tuple[str, ...]
    reference: dict[str, float]

    @classmethod
    def of(
        cls,
        predictor: Predictor,
        sample: pa.Table,
        settings: AttributionSettings,
        features: Mapping[str, str],
    ) -> Attributor | None:
        """An attributor for ``predictor`` with the shares of ``sample`` (reference
        rows), or None when it cannot be explained from the log: attribution turned
        off, no explain method, personal data among its inputs (``features``: the
        monitored, non-personal, columns), or the ``explain`` extra missing."""
        if not hasattr(predictor, "explain") or sample.num_rows == 0:
            return None
        inputs = tuple(predictor.features)
        if any(name not in features for name in inputs):
            return None
        background = sample.slice(0, explain.BACKGROUND_ROWS).select(list(inputs))
        made = cls(predictor, background, settings, inputs, {})
        if made.rows == 0:
            return None
        reference = made.shares(sample)
        if reference is None:
            return None
        made.reference.update(reference)
        return made

    @property
    def exact(self) -> bool:
        from setpoint.models.flavors._trees import TreePredictor

        return isinstance(self.predictor, TreePredictor)

    @property
    def rows(self) -> int:
        """How many rows of a window (and of the reference) are explained."""
        if self.exact:
            return self.settings.rows
        return min(self.settings.rows, self.settings.permutation_rows)

    def measure(self, inputs: pa.Table) -> dict[str, Any] | None:
        """A window's attribution against the reference's (``compare``), with the
        rows it was measured on; None when it cannot be explained."""
        found = self.shares(inputs)
        if found is None:
            return None
        compared = compare(self.reference, found, share_change=self.settings.share_change)
        return {"rows": min(inputs.num_rows, self.rows), **compared}

    def shares(self, table: pa.Table) -> dict[str, float] | None:
        """The features' shares of the explanation on up to ``rows`` rows of
        ``table`` (taken evenly across it), or None when the model cannot be
        explained here (the ``explain`` extra missing)."""
        if table.num_rows == 0:
            return None
        picked = _evenly(table.num_rows, self.rows)
        rows = table.select(list(self.features)).take(pa.array(picked))
        method: Any = self.predictor.explain  # type: ignore[attr-defined]
        try:
            if self.exact:
                explained = method(rows)
            else:
                explained = method(rows, self.background, permutations=explain.PERMUTATIONS)
        except DependencyMissingError:
            return None
        return shares(explained)


def _evenly(n: int, k: int) -> np.ndarray[Any, np.dtype[np.intp]]:
    """``k`` row numbers spread evenly over ``n`` rows (all of them when fewer): the
    same rows on every run, and the whole window's span rather than its start."""
    if n <= k:
        return np.arange(n, dtype=np.intp)
    return np.linspace(0, n - 1, k).round().astype(np.intp)
