"""Figures the benchmarks share: nearest-rank percentiles and goal verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of already sorted, non-empty samples."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p99, max and mean of latencies in milliseconds, rounded to the microsecond."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    return {"p50_ms": round(percentile(ordered, 0.50), 3),
            "p99_ms": round(percentile(ordered, 0.99), 3), "max_ms": round(ordered[-1], 3),
            "mean_ms": round(sum(ordered) / len(ordered), 3)}


def goal(name: str, value: float, limit: float, unit: str) -> dict[str, Any]:
    """A goal of the form ``value <= limit``, with its verdict."""
    return {"goal": name, "value": round(value, 3), "limit": round(limit, 3), "unit": unit,
            "pass": value <= limit}


def goal_line(g: dict[str, Any]) -> str:
    verdict = "PASS" if g["pass"] else "FAIL"
    return f"  {verdict}  {g['goal']}: {g['value']} {g['unit']} (goal <= {g['limit']})"


def figure_line(label: str, f: dict[str, float], width: int = 40) -> str:
    """One row of ``percentiles`` figures under ``label``."""
    return (f"  {label:<{width}} p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms  "
            f"max {f['max_ms']:.3f} ms")
