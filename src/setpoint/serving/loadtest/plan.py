"""The capacity plan: what a sustainable rate means in replicas and money, beside what
the same predictions cost scored in batch.

Prices are per core-hour (the ``cpu_hour_price`` setting) and a month is 730 hours.
A serving replica is charged for the cores it holds all month whether busy or not:
``workers`` cores (one uvicorn process per worker, each on a core of its own).
Batch scoring is charged for the CPU time it uses: rows per CPU-second measured here,
in this process, on the same reference rows (``measure_batch``).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from setpoint.workspace import Workspace

HOURS_A_MONTH = 730
BATCH_ROWS = 200_000  # rows scored to time batch scoring: long enough to average out


@dataclass(frozen=True)
class CapacityPlan:
    sustainable_rps: float | None  # the highest step that met the objective
    workers: int  # cores a replica holds: the server's worker processes
    target_rps: float | None
    cpu_hour_price: float
    batch_rows_per_cpu_second: float | None = None

    @property
    def per_core_rps(self) -> float | None:
        if self.sustainable_rps is None:
            return None
        return self.sustainable_rps / self.workers

    @property
    def replica_month_cost(self) -> float:
        return self.workers * HOURS_A_MONTH * self.cpu_hour_price

    @property
    def replicas(self) -> int | None:
        """Replicas that hold ``target_rps`` each within its sustainable rate."""
        if self.target_rps is None or not self.sustainable_rps:
            return None
        return max(1, math.ceil(self.target_rps / self.sustainable_rps - 1e-9))

    @property
    def monthly_cost(self) -> float | None:
        return None if self.replicas is None else self.replicas * self.replica_month_cost

    @property
    def realtime_cost_per_1000(self) -> float | None:
        """Per 1,000 predictions at the target rate (rounded-up replicas included), or,
        without a target, at a replica's sustainable rate all month."""
        if not self.sustainable_rps:
            return None
        if self.target_rps and self.monthly_cost is not None:
            predictions = self.target_rps * 3600 * HOURS_A_MONTH
            return self.monthly_cost / predictions * 1000
        return self.workers * self.cpu_hour_price / 3600 / self.sustainable_rps * 1000

    @property
    def batch_cost_per_1000(self) -> float | None:
        if not self.batch_rows_per_cpu_second:
            return None
        return self.cpu_hour_price / 3600 / self.batch_rows_per_cpu_second * 1000

    @property
    def batch_monthly_cost(self) -> float | None:
        """The target's month of predictions (rate x 730 h), scored in batch instead."""
        per_1000 = self.batch_cost_per_1000
        if per_1000 is None or not self.target_rps:
            return None
        return self.target_rps * 3600 * HOURS_A_MONTH / 1000 * per_1000

    def to_dict(self) -> dict[str, Any]:
        return {
            "sustainable_rps": self.sustainable_rps,
            "workers": self.workers,
            "per_core_rps": self.per_core_rps,
            "target_rps": self.target_rps,
            "replicas": self.replicas,
            "cpu_hour_price": self.cpu_hour_price,
            "replica_month_cost": self.replica_month_cost,
            "monthly_cost": self.monthly_cost,
            "realtime_cost_per_1000": self.realtime_cost_per_1000,
            "batch_rows_per_cpu_second": self.batch_rows_per_cpu_second,
            "batch_cost_per_1000": self.batch_cost_per_1000,
            "batch_monthly_cost": self.batch_monthly_cost,
        }


def measure_batch(ws: Workspace, model_ref: str, records: list[dict[str, Any]]) -> float:
    """Rows per CPU-second of batch scoring ``model_ref`` on ``records``: the rows read
    from Parquet, predicted and written to Parquet as ``setpoint predict`` does
    (``batch/steps.score_table``), repeated to ``BATCH_ROWS`` rows. CPU time of the
    whole process, so a model's own threads (LightGBM's OpenMP) are counted."""
    from setpoint.batch.steps import score_table

    predictor = ws.load_model(model_ref)
    table = pa.Table.from_pylist(records)
    repeats = max(1, math.ceil(BATCH_ROWS / max(1, table.num_rows)))
    source = io.BytesIO()
    pq.write_table(pa.concat_tables([table] * repeats), source)
    started = time.process_time()
    rows = pq.read_table(io.BytesIO(source.getvalue()))
    scored = score_table(predictor, rows)
    pq.write_table(scored, io.BytesIO())
    used = time.process_time() - started
    return rows.num_rows / used if used > 0 else float("inf")
