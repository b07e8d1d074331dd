"""Effect-size thresholds learned from the reference, for the window size in use.

How far a window's distribution sits from the reference by chance alone depends on
the feature and on the window's size: a high-cardinality category or a spiky discrete
feature in windows of a few hundred rows can exceed a static threshold with nothing
changed. So a monitor measures the noise floor of each feature on the reference
itself: it splits the reference rows at random into two halves, summarizes one half
as a reference, draws windows of the monitor's size from the other half, and records
each feature's effect size. The learned threshold is the larger of the static one
and a high quantile of those no-drift effects.

The halves matter. Windows drawn from a reference that contains them look closer to
it than new traffic ever can (in the limit, a window the size of the reference is
identical to it), so thresholds measured that way are too tight and alarm on honest
traffic. Held-out halves are, if anything, a little generous: the half-size
reference is itself noisier than the whole.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from setpoint.errors import InvalidDataError, UsageError
from setpoint.monitoring.drift import DriftSettings, detect
from setpoint.monitoring.summary import NumericReference, ReferenceSummary, summarize

MIN_ROWS = 200


def learn_effect_thresholds(
    reference: pa.Table,
    kinds: Mapping[str, str],
    *,
    window_rows: int,
    settings: DriftSettings | None = None,
    windows: int = 30,
    quantile: float = 0.99,
    seed: int = 0,
) -> dict[str, float]:
    """Each feature's effect threshold for windows of ``window_rows`` rows: at least
    the static one in ``settings``, raised to the ``quantile`` of the effect sizes of
    ``windows`` no-drift windows (held-out reference rows against the other half)."""
    settings = settings or DriftSettings()
    if window_rows < 1:
        raise UsageError(f"window_rows must be 1 or more, not {window_rows}")
    if not 0 < quantile < 1:
        raise UsageError(f"quantile must be between 0 and 1, not {quantile}")
    if reference.num_rows < MIN_ROWS:
        raise InvalidDataError(
            f"learning thresholds needs at least {MIN_ROWS} reference rows; "
            f"got {reference.num_rows}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(reference.num_rows)
    half = reference.num_rows // 2
    base = ReferenceSummary.build(reference.take(pa.array(order[:half])), kinds)
    held_out = order[half:]
    # Windows larger than the held-out half are drawn with replacement: their noise is
    # then that of the half, slightly more than a real window's, never less.
    replace = window_rows > len(held_out)
    effects: dict[str, list[float]] = {name: [] for name in base.columns}
    for _ in range(windows):
        rows = rng.choice(held_out, size=window_rows, replace=replace)
        report = detect(base, summarize(reference.take(pa.array(rows)), base), settings)
        for name, feature in report.features.items():
            if np.isfinite(feature.effect):
                effects[name].append(feature.effect)
    learned = {}
    for name, ref in base.columns.items():
        static = settings.threshold(
            name, "numeric" if isinstance(ref, NumericReference) else "categorical"
        )
        noise = float(np.quantile(effects[name], quantile)) if effects[name] else 0.0
        learned[name] = max(static, noise)
    return learned
