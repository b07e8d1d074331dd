"""What a window's predictions cost, per model version, from the prediction log.

Each prediction record carries its share of what the serving process spent
(``serving/meter.py``): CPU milliseconds (``cpu_ms``, the model's part as well in
``model_cpu_ms``) and memory held (``mem_gb_s``). A window adds them up per model
version and route, and prices them (``setpoint.cost.Prices``):

- ``served``: what callers were answered with (champion, canary, fallback, cache);
- ``shadow``: a challenger's copies, which nobody received, apart.

Rows logged without these fields (a log written before they existed, or traffic
backfilled from a file) count as rows but not in the cost, which is over the
``measured_rows``. Cache hits cost no model CPU; ``cache_saved`` prices what their
rows would have cost at the version's model CPU per predicted row in the window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from setpoint.cost import Prices

# The log columns a window's cost is read from.
COLUMNS = (
    "ts",
    "request_id",
    "model",
    "version",
    "route",
    "cached",
    "cpu_ms",
    "model_cpu_ms",
    "mem_gb_s",
)


def usage_columns(log: pa.Table) -> pa.Table:
    """The cost columns of a prediction log table (null ones where it lacks them)."""
    n = log.num_rows
    columns = {}
    for name in COLUMNS:
        if name in log.column_names:
            columns[name] = log.column(name)
        else:
            columns[name] = pa.nulls(n, pa.float64())
    return pa.table(columns)


def window_cost(rows: pa.Table, prices: Prices) -> dict[str, Any] | None:
    """The cost of the rows of ``usage_columns`` that fell in one window: per model
    version, served and shadow apart; None for a window with no rows."""
    if rows.num_rows == 0:
        return None
    shadow = pc.fill_null(pc.equal(rows.column("route"), "shadow"), False)
    out: dict[str, Any] = {"prices": prices.to_dict()}
    for part, mask in (("served", pc.invert(shadow)), ("shadow", shadow)):
        chosen = rows.filter(mask)
        out[part] = _versions(chosen, prices) if chosen.num_rows else []
    served = out["served"]
    out["total"] = _total(served, prices) if served else None
    return out


def _versions(rows: pa.Table, prices: Prices) -> list[dict[str, Any]]:
    models = rows.column("model").to_pylist()
    versions = rows.column("version").to_pylist()
    keys = sorted(set(zip(models, versions, strict=True)), key=lambda k: (str(k[0]), k[1] or 0))
    pairs = np.array([f"{m}@{v}" for m, v in zip(models, versions, strict=True)])
    out = []
    for model, version in keys:
        mask = pairs == f"{model}@{version}"
        out.append(_figures(rows.filter(pa.array(mask)), prices, model=model, version=version))
    return out


def _figures(rows: pa.Table, prices: Prices, **names: Any) -> dict[str, Any]:
    def values(name: str) -> np.ndarray:
        return np.asarray(rows.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

    cpu, model, memory = values("cpu_ms"), values("model_cpu_ms"), values("mem_gb_s")
    cached = np.asarray(pc.fill_null(rows.column("cached"), False).to_numpy(zero_copy_only=False))
    measured = ~np.isnan(cpu)
    predicted = measured & ~cached
    cpu_s = float(np.nansum(cpu[measured])) / 1000
    model_s = float(np.nansum(model[measured])) / 1000
    gb_s = float(np.nansum(memory[measured]))
    per_row_model_s = model_s / predicted.sum() if predicted.any() else None
    hits = int((measured & cached).sum())
    figures: dict[str, Any] = {
        **names,
        "rows": rows.num_rows,
        "requests": len(pc.unique(rows.column("request_id"))),
        "cached_rows": int(cached.sum()),
        "measured_rows": int(measured.sum()),
        "cpu_seconds": cpu_s,
        "model_cpu_seconds": model_s,
        "server_cpu_seconds": max(cpu_s - model_s, 0.0),
        "memory_gb_hours": gb_s / 3600,
    }
    figures.update(_priced(figures, prices))
    figures["cache_saved"] = (
        None if per_row_model_s is None or not hits else prices.cost(per_row_model_s * hits)
    )
    return figures


def _priced(figures: dict[str, Any], prices: Prices) -> dict[str, Any]:
    measured = figures["measured_rows"]
    cpu_cost = prices.cost(figures["cpu_seconds"])
    memory_cost = prices.cost(0.0, figures["memory_gb_hours"] * 3600)
    model_cost = prices.cost(figures["model_cpu_seconds"])
    per_1000 = (lambda amount: amount / measured * 1000) if measured else (lambda amount: None)
    return {
        "cost": cpu_cost + memory_cost if measured else None,
        "cost_per_1000": per_1000(cpu_cost + memory_cost),
        "model_cost_per_1000": per_1000(model_cost),
        "server_cost_per_1000": per_1000(max(cpu_cost - model_cost, 0.0)),
        "memory_cost_per_1000": per_1000(memory_cost),
    }


_ADDED = (
    "rows",
    "requests",
    "cached_rows",
    "measured_rows",
    "cpu_seconds",
    "model_cpu_seconds",
    "server_cpu_seconds",
    "memory_gb_hours",
)


def _total(versions: list[dict[str, Any]], prices: Prices) -> dict[str, Any]:
    total: dict[str, Any] = {name: sum(v[name] for v in versions) for name in _ADDED}
    total.update(_priced(total, prices))
    saved = [v["cache_saved"] for v in versions if v["cache_saved"] is not None]
    total["cache_saved"] = sum(saved) if saved else None
    return total


def money(amount: float) -> str:
    """An amount with three significant figures, never in scientific notation."""
    if amount == 0 or not math.isfinite(amount):
        return f"{amount:g}"
    places = max(2, 2 - math.floor(math.log10(abs(amount))))
    return f"{amount:,.{places}f}"


def describe(cost: dict[str, Any] | None) -> str | None:
    """A window's cost in a sentence: per 1,000 predictions served and its parts,
    what the cache saved and what shadow copies cost apart; None when not measured."""
    if cost is None:
        return None
    total = cost.get("total")
    if total is None or total.get("cost_per_1000") is None:
        return None
    per_1000 = total["cost_per_1000"]
    parts = [
        (name, total[f"{name}_cost_per_1000"] / per_1000 if per_1000 else 0.0)
        for name in ("model", "server", "memory")
    ]
    text = (
        f"{money(per_1000)} per 1,000 predictions ("
        + ", ".join(f"{name} {share:.0%}" for name, share in parts)
        + ")"
    )
    versions = cost.get("served") or []
    if len(versions) > 1:
        text += "; " + ", ".join(
            f"{v['model']}@{v['version']} {money(v['cost_per_1000'])}"
            for v in versions
            if v.get("cost_per_1000") is not None
        )
    if total.get("cache_saved"):
        text += f"; the cache saved {money(total['cache_saved'])}"
    shadow = [v for v in cost.get("shadow") or [] if v.get("cost") is not None]
    if shadow:
        spent, rows = sum(v["cost"] for v in shadow), sum(v["measured_rows"] for v in shadow)
        text += (
            f"; shadow copies ({rows:,} row{'' if rows == 1 else 's'}) cost {money(spent)} more, "
            f"{money(spent / rows * 1000)} per 1,000"
        )
    return text
