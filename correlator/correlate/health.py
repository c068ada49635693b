"""Service health from RED figures: rates, ratios and a status with documented thresholds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import polars as pl

from correlator.model import Endpoint, ErrorCount


@dataclass(frozen=True)
class HealthThresholds:
    """When a service is failing or degraded (API.md, Traces and services; settings may change them)."""

    failing_error_ratio: float = 0.05
    degraded_error_ratio: float = 0.01
    degraded_p95_factor: float = 2.0


@dataclass(frozen=True)
class ServiceRed:
    """One service's requests, errors and latency in a window, with its status."""

    service: str
    status: str
    requests: int
    rate_rps: float
    error_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    log_errors: int
    baseline_p95_ms: float | None


def health_status(
    requests: int, error_ratio: float | None, p95_ms: float | None, baseline_p95_ms: float | None,
    thresholds: HealthThresholds,
) -> str:  # fmt: skip
    """`no_data` without requests; `failing`, `degraded` or `healthy` by the thresholds."""
    if requests == 0 or error_ratio is None:
        return "no_data"
    if error_ratio >= thresholds.failing_error_ratio:
        return "failing"
    slow = p95_ms is not None and baseline_p95_ms and p95_ms > thresholds.degraded_p95_factor * baseline_p95_ms
    if error_ratio >= thresholds.degraded_error_ratio or slow:
        return "degraded"
    return "healthy"


def service_red(
    services: list[str],
    red: pl.DataFrame,
    log_errors: pl.DataFrame,
    baseline: pl.DataFrame,
    window_s: float,
    thresholds: HealthThresholds,
) -> list[ServiceRed]:
    """Every listed service's RED figures and status, in the order given; services without rows are no_data."""
    frame = (
        pl.DataFrame({"service": services}, schema={"service": pl.String})
        .join(red, on="service", how="left")
        .join(log_errors, on="service", how="left")
        .join(baseline, on="service", how="left")
    )
    result: list[ServiceRed] = []
    for row in frame.iter_rows(named=True):
        requests = int(row["requests"] or 0)
        error_ratio = (row["errors"] or 0) / requests if requests else None
        p95 = row["p95_ms"] if requests else None
        baseline_p95 = row["baseline_p95_ms"]
        result.append(
            ServiceRed(
                service=row["service"],
                status=health_status(requests, error_ratio, p95, baseline_p95, thresholds),
                requests=requests,
                rate_rps=requests / window_s if window_s > 0 else 0.0,
                error_ratio=error_ratio,
                p50_ms=row["p50_ms"] if requests else None,
                p95_ms=p95,
                p99_ms=row["p99_ms"] if requests else None,
                log_errors=int(row["log_errors"] or 0),
                baseline_p95_ms=baseline_p95,
            )
        )
    return result


def errors_by_service(frame: pl.DataFrame) -> dict[str, list[ErrorCount]]:
    """Rows of (service, type, message, count) as each service's error types, order kept."""
    grouped: dict[str, list[ErrorCount]] = defaultdict(list)
    for service, kind, message, count in frame.select("service", "type", "message", "count").iter_rows():
        grouped[service].append(ErrorCount(kind, message, int(count)))
    return grouped


def endpoints_by_service(frame: pl.DataFrame) -> dict[str, list[Endpoint]]:
    """Rows of (service, name, requests, error_ratio, p95_ms) as each service's endpoints, order kept."""
    grouped: dict[str, list[Endpoint]] = defaultdict(list)
    columns = ("service", "name", "requests", "error_ratio", "p95_ms")
    for service, name, requests, error_ratio, p95_ms in frame.select(*columns).iter_rows():
        grouped[service].append(Endpoint(name, int(requests), float(error_ratio), float(p95_ms)))
    return grouped
