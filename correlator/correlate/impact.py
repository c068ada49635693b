"""Deploy impact: the deployed service in equal windows before and after, tested for errors and latency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import polars as pl

from correlator.correlate.stats import mann_whitney_greater, two_proportion_z
from correlator.model import ErrorCount

Verdict = Literal["regression", "healthy", "insufficient_data"]


@dataclass(frozen=True)
class ImpactRules:
    """When a change is a regression (API.md, Default methods; settings may change them)."""

    window: timedelta = timedelta(minutes=30)
    min_requests: int = 50
    error_p: float = 0.01
    min_error_delta: float = 0.01
    latency_p: float = 0.01
    min_p95_rise: float = 0.20


@dataclass(frozen=True)
class SideStats:
    """One side of the comparison: its window and the deployed service's requests in it."""

    since: datetime
    until: datetime
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Impact:
    """What a deploy did to its service (API.md, Impact)."""

    verdict: Verdict
    before: SideStats
    after: SideStats
    error_ratio_delta: float | None
    p95_ms_delta: float | None
    new_error_types: tuple[ErrorCount, ...]
    evidence: tuple[str, ...]


def impact_windows(
    start: datetime, previous_start: datetime | None, next_start: datetime | None, now: datetime, rules: ImpactRules
) -> tuple[datetime, datetime, datetime]:
    """(since, split, until): equal windows around the deploy's start, cut at the neighbouring deploys and now."""
    length = rules.window
    if previous_start is not None:
        length = min(length, start - previous_start)
    if next_start is not None:
        length = min(length, next_start - start)
    length = max(min(length, now - start), timedelta(0))
    return start - length, start, start + length


def _side(frame: pl.DataFrame, side: str, since: datetime, until: datetime) -> tuple[SideStats, list[float]]:
    rows = frame.filter(pl.col("side") == side).to_dicts()
    if not rows:
        return SideStats(since, until, 0, 0, None, None, None), []
    row = rows[0]
    stats = SideStats(since, until, row["requests"], row["errors"], row["p50_ms"], row["p95_ms"], row["p99_ms"])
    return stats, list(row["durations_ms"])


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def new_error_types(errors: pl.DataFrame) -> tuple[ErrorCount, ...]:
    """Error types (type, message shape) seen after the split and not before, most frequent first."""
    before = {(t, m) for t, m in errors.filter(pl.col("side") == "before").select("type", "message").iter_rows()}
    after = errors.filter(pl.col("side") == "after").sort(["count", "type", "message"], descending=[True, False, False])
    return tuple(
        ErrorCount(t, m, int(n))
        for t, m, n in after.select("type", "message", "count").iter_rows()
        if (t, m) not in before
    )


def deploy_impact(
    sides: pl.DataFrame,
    errors: pl.DataFrame,
    callers: pl.DataFrame,
    windows: tuple[datetime, datetime, datetime],
    service: str,
    rules: ImpactRules,
) -> Impact:
    """The verdict on the deployed service's own requests, with sentences of evidence.

    Callers' failures are evidence only where the failing spans are calls to the deployed service (`callers`
    holds exactly those), never part of the verdict.
    """
    since, split, until = windows
    before, before_ms = _side(sides, "before", since, split)
    after, after_ms = _side(sides, "after", split, until)
    fresh = new_error_types(errors)
    error_delta = (
        after.error_ratio - before.error_ratio
        if after.error_ratio is not None and before.error_ratio is not None
        else None
    )
    p95_delta = after.p95_ms - before.p95_ms if after.p95_ms is not None and before.p95_ms is not None else None
    evidence: list[str] = []
    if min(before.requests, after.requests) < rules.min_requests:
        evidence.append(
            f"{service} served {before.requests} requests before and {after.requests} after the deploy; "
            f"at least {rules.min_requests} in each window are needed for a verdict"
        )
        return Impact("insufficient_data", before, after, error_delta, p95_delta, fresh, tuple(evidence))

    regression = False
    z, p = two_proportion_z(before.errors, before.requests, after.errors, after.requests)
    assert error_delta is not None
    if p < rules.error_p and error_delta >= rules.min_error_delta:
        regression = True
        evidence.append(
            f"{service}'s error ratio rose from {_percent(before.error_ratio)} ({before.errors}/{before.requests}) "
            f"to {_percent(after.error_ratio)} ({after.errors}/{after.requests}) after the deploy "
            f"(two-proportion z = {z:.1f}, {_p_text(p)})"
        )
    else:
        evidence.append(
            f"{service}'s error ratio went from {_percent(before.error_ratio)} to {_percent(after.error_ratio)}: "
            "no significant rise"
        )
    if before.p95_ms and after.p95_ms is not None:
        rise = after.p95_ms / before.p95_ms - 1
        rank_p = mann_whitney_greater(before_ms, after_ms)
        if rise >= rules.min_p95_rise and rank_p < rules.latency_p:
            regression = True
            evidence.append(
                f"{service}'s p95 latency rose from {before.p95_ms:.1f} ms to {after.p95_ms:.1f} ms "
                f"(+{rise * 100:.0f}%; Mann-Whitney {_p_text(rank_p)})"
            )
        else:
            evidence.append(
                f"{service}'s p95 latency went from {before.p95_ms:.1f} ms to {after.p95_ms:.1f} ms: "
                "no significant rise"
            )
    for error in fresh[:3]:
        evidence.append(
            f"new error after the deploy: {error.type}: {error.message} ({error.count} times), "
            "not seen in the window before"
        )
    for caller, before_calls, before_errors, after_calls, after_errors in _caller_rows(callers):
        ratio_before = before_errors / before_calls if before_calls else None
        if after_calls and after_errors / after_calls > (ratio_before or 0) + rules.min_error_delta:
            evidence.append(
                f"{caller}'s calls to {service} failed {_percent(after_errors / after_calls)} after the deploy "
                f"({after_errors}/{after_calls}), {_percent(ratio_before)} before"
            )
    verdict: Verdict = "regression" if regression else "healthy"
    return Impact(verdict, before, after, error_delta, p95_delta, fresh, tuple(evidence))


def _caller_rows(callers: pl.DataFrame) -> list[tuple[str, int, int, int, int]]:
    """Per caller: calls and errors before, calls and errors after."""
    table: dict[str, list[int]] = {}
    for caller, side, calls, errors in callers.select("caller", "side", "calls", "errors").iter_rows():
        counts = table.setdefault(caller, [0, 0, 0, 0])
        offset = 0 if side == "before" else 2
        counts[offset] += int(calls)
        counts[offset + 1] += int(errors)
    return [(caller, c[0], c[1], c[2], c[3]) for caller, c in sorted(table.items())]
