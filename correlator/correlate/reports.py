"""MTTR and DORA reports from frames of incidents and deploys; the definitions travel with every report."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

MTTR_DEFINITION = {
    "time_to_resolve": "resolved_at - opened_at",
    "time_to_detect": "opened_at - impact_started_at (the impact start found in telemetry)",
    "time_to_acknowledge": "acknowledged_at - opened_at",
    "mttr_s": "mean time to resolve of the incidents opened in the window and resolved by its end",
    "median_ttr_s": "median time to resolve, same incidents",
    "p90_ttr_s": "90th percentile of time to resolve (nearest rank), same incidents",
    "open_incidents": "incidents opened in the window and not resolved by its end: counted, never averaged",
}
DORA_DEFINITION = {
    "deploys": "deploys started in the window in the environment, rollbacks not counted",
    "deploys_per_day": "deploys / days in the window",
    "failed_deploys": "counted deploys whose status is failed or rolled_back, or that an incident names as its cause",
    "change_failure_rate": "failed_deploys / deploys",
    "mttr_s": "mean time to resolve of incidents of the environment's services opened in the window",
    "median_ttr_s": "median of the same: DORA's time to restore",
    "lead_time_s": "median of finished_at - commit_time over counted deploys that carry a commit time",
    "bands": "2023 State of DevOps thresholds (as DevLake uses them); null without data",
}
GROUPINGS = ("service", "severity", "team", "month")


@dataclass(frozen=True)
class Durations:
    """Mean, median and 90th percentile of some durations in seconds; None when there are none."""

    count: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


def durations(values: Sequence[float]) -> Durations:
    """Summary of durations in seconds; p90 by nearest rank."""
    if not values:
        return Durations(0, None, None, None)
    ordered = sorted(values)
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n)
    return Durations(len(ordered), statistics.fmean(ordered), statistics.median(ordered), ordered[rank - 1])


@dataclass(frozen=True)
class MttrGroup:
    """One group of an MTTR report."""

    key: str
    incidents: int
    open_incidents: int
    resolve: Durations


@dataclass(frozen=True)
class MttrReport:
    """MTTR over a window, overall and per group."""

    since: datetime
    until: datetime
    incidents: int
    open_incidents: int
    resolve: Durations
    detect: Durations
    acknowledge: Durations
    groups: tuple[MttrGroup, ...]


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def mttr_report(
    incidents: pl.DataFrame, since: datetime, until: datetime, group_of: Callable[[Mapping[str, object]], str] | None
) -> MttrReport:
    """The report over incidents opened in [since, until); those unresolved at `until` are only counted."""
    rows = incidents.to_dicts()

    def resolved(row: Mapping[str, object]) -> bool:
        at = row["resolved_at"]
        return isinstance(at, datetime) and at < until

    def ttr(subset: list[dict[str, Any]]) -> Durations:
        return durations([_seconds(r["resolved_at"], r["opened_at"]) or 0.0 for r in subset if resolved(r)])

    detect = [_seconds(r["opened_at"], r["impact_started_at"]) for r in rows if r["impact_started_at"] is not None]
    acknowledge = [
        _seconds(r["acknowledged_at"], r["opened_at"])
        for r in rows
        if isinstance(r["acknowledged_at"], datetime) and r["acknowledged_at"] < until
    ]
    groups: list[MttrGroup] = []
    if group_of is not None:
        keyed: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            keyed.setdefault(group_of(row), []).append(row)
        for key in sorted(keyed):
            subset = keyed[key]
            open_count = sum(1 for r in subset if not resolved(r))
            groups.append(MttrGroup(key, len(subset), open_count, ttr(subset)))
    return MttrReport(
        since=since,
        until=until,
        incidents=len(rows),
        open_incidents=sum(1 for r in rows if not resolved(r)),
        resolve=ttr(rows),
        detect=durations([d for d in detect if d is not None]),
        acknowledge=durations([a for a in acknowledge if a is not None]),
        groups=tuple(groups),
    )


@dataclass(frozen=True)
class DoraReport:
    """The four keys over a window in one environment, with their performance bands."""

    since: datetime
    until: datetime
    environment: str
    deploys: int
    deploys_per_day: float
    failed_deploys: int
    change_failure_rate: float | None
    restore: Durations
    lead_time_s: float | None
    bands: dict[str, str | None]


def frequency_band(deploys_per_day: float, deploys: int) -> str | None:
    """On demand (daily or more) elite; weekly high; monthly medium; less low."""
    if deploys == 0:
        return None
    if deploys_per_day >= 1:
        return "elite"
    if deploys_per_day >= 1 / 7:
        return "high"
    if deploys_per_day >= 1 / 30:
        return "medium"
    return "low"


def lead_time_band(seconds: float | None) -> str | None:
    """Under a day elite; under a week high; under a month medium; longer low."""
    if seconds is None:
        return None
    for limit, band in ((timedelta(days=1), "elite"), (timedelta(days=7), "high"), (timedelta(days=30), "medium")):
        if seconds < limit.total_seconds():
            return band
    return "low"


def failure_band(rate: float | None) -> str | None:
    """At most 5 % elite, 10 % high, 15 % medium, more low (the 2023 report's 5 / 10 / 15 / 64 % clusters)."""
    if rate is None:
        return None
    for limit, band in ((0.05, "elite"), (0.10, "high"), (0.15, "medium")):
        if rate <= limit:
            return band
    return "low"


def restore_band(median_s: float | None) -> str | None:
    """Under an hour elite; under a day high; under a week medium; longer low (banded on the median)."""
    if median_s is None:
        return None
    for limit, band in ((timedelta(hours=1), "elite"), (timedelta(days=1), "high"), (timedelta(days=7), "medium")):
        if median_s < limit.total_seconds():
            return band
    return "low"


def dora_report(
    deploys: pl.DataFrame,
    causes: set[str],
    incidents: pl.DataFrame,
    since: datetime,
    until: datetime,
    environment: str,
) -> DoraReport:
    """The four keys: `deploys` started in the window, `incidents` of the environment's services opened in it."""
    counted = deploys.filter(~pl.col("is_rollback"))
    failed = counted.filter(pl.col("status").is_in(["failed", "rolled_back"]) | pl.col("deploy_id").is_in(list(causes)))
    count = counted.height
    days = max((until - since).total_seconds() / 86400, 1e-9)
    leads = [
        (finished - committed).total_seconds()
        for committed, finished in counted.select("commit_time", "finished_at").iter_rows()
        if committed is not None and finished is not None
    ]
    restore_times = [
        (resolved - opened).total_seconds()
        for opened, resolved in incidents.select("opened_at", "resolved_at").iter_rows()
        if resolved is not None and resolved < until
    ]
    restore = durations(restore_times)
    rate = failed.height / count if count else None
    lead = statistics.median(leads) if leads else None
    per_day = count / days
    return DoraReport(
        since=since,
        until=until,
        environment=environment,
        deploys=count,
        deploys_per_day=per_day,
        failed_deploys=failed.height,
        change_failure_rate=rate,
        restore=restore,
        lead_time_s=lead,
        bands={
            "deployment_frequency": frequency_band(per_day, count),
            "lead_time": lead_time_band(lead),
            "change_failure_rate": failure_band(rate),
            "time_to_restore": restore_band(restore.median_s),
        },
    )


MTTR_COLUMNS = ("key", "incidents", "open_incidents", "mttr_s", "median_ttr_s", "p90_ttr_s")


def mttr_rows(report: MttrReport) -> list[dict[str, object]]:
    """The report as table rows: one per group, then a `total` row (the csv and md formats)."""
    rows: list[dict[str, object]] = [
        {"key": g.key, "incidents": g.incidents, "open_incidents": g.open_incidents, "mttr_s": g.resolve.mean_s,
         "median_ttr_s": g.resolve.median_s, "p90_ttr_s": g.resolve.p90_s}
        for g in report.groups
    ]  # fmt: skip
    rows.append(
        {"key": "total", "incidents": report.incidents, "open_incidents": report.open_incidents,
         "mttr_s": report.resolve.mean_s, "median_ttr_s": report.resolve.median_s, "p90_ttr_s": report.resolve.p90_s}
    )  # fmt: skip
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def as_csv(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Rows as CSV with a header; nulls empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def as_markdown(rows: Sequence[Mapping[str, object]], columns: Sequence[str], notes: Mapping[str, str]) -> str:
    """Rows as a Markdown table, followed by the definitions."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) or "-" for c in columns) + " |" for row in rows]
    lines += ["", *(f"- `{name}`: {text}" for name, text in notes.items())]
    return "\n".join(lines) + "\n"
