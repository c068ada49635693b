"""When an incident's impact began: the change point of its service's per-minute error ratio or p95."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from correlator.correlate.stats import mann_whitney_greater, two_proportion_z


@dataclass(frozen=True)
class ChangePointRules:
    """How sure a change point must be (docs/correlation.md)."""

    min_baseline_minutes: int = 10
    error_z: float = 3.0
    min_error_delta: float = 0.01
    p95_factor: float = 1.5
    p95_rank_p: float = 0.01


@dataclass(frozen=True)
class ImpactStart:
    """The first minute of the impact and the signal that showed it (`error_ratio`, `p95`), or none found."""

    at: datetime | None
    signal: str


def impact_start(minutes: pl.DataFrame, rules: ChangePointRules) -> ImpactStart:
    """The single most likely change point of the error ratio (else of the p95), if it is significant.

    Every minute k after a baseline of at least `min_baseline_minutes` splits the series in two; for errors
    the split with the largest two-proportion z wins, when z >= `error_z` and the ratio rose by at least
    `min_error_delta`; for latency the split with the largest rise of the median per-minute p95 wins, when it
    rose by `p95_factor` and a rank test on the per-minute p95s gives p < `p95_rank_p`. The impact then
    "stays above" its baseline by construction: the later segment is tested as a whole.
    """
    rows = minutes.sort("minute").select("minute", "requests", "errors", "p95_ms").rows()
    if len(rows) <= rules.min_baseline_minutes:
        return ImpactStart(None, "none")
    total_requests = sum(r[1] for r in rows)
    total_errors = sum(r[2] for r in rows)
    best: tuple[float, int] | None = None
    before_requests = before_errors = 0
    for k, (_, requests, errors, _) in enumerate(rows):
        if k >= rules.min_baseline_minutes:
            after_requests, after_errors = total_requests - before_requests, total_errors - before_errors
            z, _ = two_proportion_z(before_errors, before_requests, after_errors, after_requests)
            delta = after_errors / after_requests - before_errors / before_requests if before_requests else 0.0
            if z >= rules.error_z and delta >= rules.min_error_delta and (best is None or z > best[0]):
                best = (z, k)
        before_requests += requests
        before_errors += errors
    if best is not None:
        return ImpactStart(rows[best[1]][0], "error_ratio")
    p95s = [r[3] for r in rows]
    best_rise: tuple[float, int] | None = None
    for k in range(rules.min_baseline_minutes, len(rows)):
        baseline = statistics.median(p95s[:k])
        later = statistics.median(p95s[k:])
        if baseline <= 0:
            continue
        rise = later / baseline
        better = rise >= rules.p95_factor and (best_rise is None or rise > best_rise[0])
        if better and mann_whitney_greater(p95s[:k], p95s[k:]) < rules.p95_rank_p:
            best_rise = (rise, k)
    if best_rise is not None:
        return ImpactStart(rows[best_rise[1]][0], "p95")
    return ImpactStart(None, "none")
