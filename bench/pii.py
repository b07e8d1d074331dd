"""What keeping personal data as a keyed hash costs on the hot path.

    python bench/pii.py [--repeat 20000]

The server builds each answered row's prediction-log record with ``log_records``;
with a personal-data column in the request it also hashes that column's value
(HMAC-SHA256 under the workspace's secret) or leaves it out. This times building the
records of one answer, for a one-row request (the usual) and a 100-row request, with
no PII column (the baseline, measured in the same run), one hashed, three hashed, and
one dropped, on a request of 12 columns like the demo's. The table gives the median
microseconds per answer and the ratio to the baseline; the per-request cost of the
whole server (about 100-200 microseconds for a one-row request on this machine,
bench/serving.py) puts the difference in proportion.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from setpoint.data.contract import ColumnRule, Contract
from setpoint.data.pii import PiiPolicy
from setpoint.serving.lane import Answer, PredictRequest, log_records

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = b"s" * 32
ROW = {
    "customer": 123456789,
    "email": "ana@example.test",
    "phone": "+44 20 7946 0000",
    "age": 41,
    "income": 52_000.0,
    "loan_amount": 9_000.0,
    "term": 36,
    "employment_years": 4.5,
    "credit_lines": 7,
    "debt_to_income": 24.1,
    "grade": "C",
    "channel": "web",
}


def policy(**modes: str) -> PiiPolicy:
    columns = {name: ColumnRule(kind="string", pii=modes.get(name, False)) for name in ROW}
    return PiiPolicy.of(Contract(columns=columns), SECRET)


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Median microseconds of ``call`` over ``repeat`` runs in batches of 100."""
    samples = []
    for _ in range(max(1, repeat // 100)):
        start = time.perf_counter()
        for _ in range(100):
            call()
        samples.append((time.perf_counter() - start) / 100 * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20_000)
    args = parser.parse_args()
    cases = {
        "no PII column (baseline)": policy(),
        "1 column hashed": policy(customer="hash"),
        "3 columns hashed": policy(customer="hash", email="hash", phone="hash"),
        "1 column dropped": policy(customer="drop"),
    }
    table = Table(
        "personal data", "1 row, µs", "ratio", "100 rows, µs", "ratio", title="log_records"
    )
    results: dict[str, tuple[float, float]] = {}
    for name, pii in cases.items():
        one = PredictRequest(None, 1, "r", row=dict(ROW))
        many = PredictRequest({k: [v] * 100 for k, v in ROW.items()}, 100, "m")
        answer_one = Answer("r", "m", 1, [0], [[0.4, 0.6]], [0, 1], [])
        answer_many = Answer("m", "m", 1, [0] * 100, [[0.4, 0.6]] * 100, [0, 1], [])
        results[name] = (
            timed(
                lambda p=pii, a=answer_one, r=one: log_records("e", r, a, p, now=NOW), args.repeat
            ),
            timed(
                lambda p=pii, a=answer_many, r=many: log_records("e", r, a, p, now=NOW),
                args.repeat // 20,
            ),
        )
    base_one, base_many = results["no PII column (baseline)"]
    for name, (t_one, t_many) in results.items():
        table.add_row(
            name,
            f"{t_one:.2f}",
            f"{t_one / base_one:.2f}x",
            f"{t_many:.1f}",
            f"{t_many / base_many:.2f}x",
        )
    console = Console()
    console.print(table)
    console.print(f"python {platform.python_version()}, {platform.machine()}")


if __name__ == "__main__":
    main()
