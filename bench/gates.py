"""The gates' paired bootstrap: the registry's metrics per resample, or all at once.

    python bench/gates.py [--rows 5000] [--resamples 500] [--repeat 3]

A binary classifier's hold-out (labels, two models' probabilities; generated with
numpy, no downloads) is resampled ``--resamples`` times, the same rows for both
models, and each gated metric is computed for both on every resample:

- baseline: scikit-learn through the metric registry
  (``setpoint.models.evaluation.evaluate``), once per resample and model — what the
  gates would do without ``setpoint.loop.bootstrap``;
- ours: ``bootstrap.paired_differences``, every resample at once from the resamples'
  row counts.

Both are timed in alternation ``--repeat`` times; the table shows medians and the
ratio, measured in the same run (the machine is shared and noisy). The two must agree:
the difference of the candidate's and the champion's metric on every resample is
checked to 1e-9 before anything is timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from setpoint.loop.bootstrap import paired_differences
from setpoint.models.evaluation import METRICS, evaluate

METRIC_NAMES = ["roc_auc", "log_loss", "accuracy", "f1"]


def hold_out(rows: int) -> tuple[np.ndarray, tuple, tuple]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    signal = y + rng.normal(0, 1.0, rows)

    def answers(noise: float) -> tuple[np.ndarray, np.ndarray]:
        score = 1 / (1 + np.exp(-(signal + rng.normal(0, noise, rows) - 0.5)))
        proba = np.column_stack([1 - score, score])
        return (score >= 0.5).astype(int), proba

    return y, answers(0.8), answers(0.5)


def baseline(y: np.ndarray, champion: tuple, candidate: tuple, resamples: int) -> dict:
    rng = np.random.default_rng(0)
    n = len(y)
    out = {name: np.empty(resamples) for name in METRIC_NAMES}
    idx = rng.integers(0, n, size=(resamples, n))
    for b in range(resamples):
        rows = idx[b]
        values = {}
        for role, (pred, proba) in (("champion", champion), ("candidate", candidate)):
            values[role] = evaluate(
                y[rows],
                pred[rows],
                proba[rows],
                task="classification",
                classes=[0, 1],
                metrics=METRIC_NAMES,
            )
        for name in METRIC_NAMES:
            sign = 1.0 if METRICS[name].higher_is_better else -1.0
            out[name][b] = sign * (values["candidate"][name] - values["champion"][name])
    return out


def ours(y: np.ndarray, champion: tuple, candidate: tuple, resamples: int) -> dict:
    return paired_differences(
        METRIC_NAMES, y, champion, candidate, "classification", [0, 1], resamples=resamples, seed=0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    y, champion, candidate = hold_out(args.rows)

    # The same resamples (same seed, same draws) must give the same differences.
    small = 20
    slow, fast = baseline(y, champion, candidate, small), ours(y, champion, candidate, small)
    for name in METRIC_NAMES:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-9, atol=1e-12, err_msg=name)

    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(args.repeat):
        for label, run in (("baseline", baseline), ("ours", ours)):
            start = time.perf_counter()
            run(y, champion, candidate, args.resamples)
            times[label].append(time.perf_counter() - start)
    base, mine = statistics.median(times["baseline"]), statistics.median(times["ours"])
    print(
        f"{args.rows:,} rows, {args.resamples} paired resamples, metrics {', '.join(METRIC_NAMES)}"
    )
    print(f"{'':28}{'median s':>10}{'ratio':>8}")
    print(f"{'registry per resample':28}{base:>10.2f}{1.0:>8.2f}")
    print(f"{'bootstrap.paired_differences':28}{mine:>10.2f}{mine / base:>8.3f}")


if __name__ == "__main__":
    main()
