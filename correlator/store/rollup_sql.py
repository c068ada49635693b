"""How a window is read from the per-minute tables: whole minutes from them, the partial ones from the spans.

A window [since, until) splits into the part before its first whole minute, the whole minutes, and the part after
its last whole minute. Queries bind the three ranges (`minute_parameters`) and paste the fragments below, so a
rollup read answers any window exactly as a scan of otel_traces would (schema_rollups.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

MINUTES_IN_WINDOW = "Minute >= {minute_since:DateTime('UTC')} AND Minute < {minute_until:DateTime('UTC')}"
"""The whole minutes of the window, on a rollup table's Minute."""

SPANS_AT_EDGES = (
    "((Timestamp >= {head_since:DateTime64(9, 'UTC')} AND Timestamp < {head_until:DateTime64(9, 'UTC')})"
    " OR (Timestamp >= {tail_since:DateTime64(9, 'UTC')} AND Timestamp < {tail_until:DateTime64(9, 'UTC')}))"
)
"""The partial minutes at the window's two ends, on otel_traces' Timestamp."""

HOURS_IN_WINDOW = "Hour >= {hour_since:DateTime('UTC')} AND Hour < {hour_until:DateTime('UTC')}"
"""The whole hours of the window's whole minutes, on an hourly table's Hour."""

MINUTES_AROUND_HOURS = (
    "((Minute >= {minute_since:DateTime('UTC')} AND Minute < {hour_since:DateTime('UTC')})"
    " OR (Minute >= {hour_until:DateTime('UTC')} AND Minute < {minute_until:DateTime('UTC')}))"
)
"""The whole minutes of the window outside its whole hours, on a per-minute table's Minute."""

_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)


def _floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def minute_parameters(since: datetime, until: datetime) -> dict[str, datetime]:
    """The bound values of MINUTES_IN_WINDOW and SPANS_AT_EDGES for the window [since, until)."""
    first = _floor_minute(since)
    if first < since:
        first += _MINUTE
    last = _floor_minute(until)
    if first >= last:  # no whole minute inside: the spans answer for all of it
        return {
            "minute_since": first, "minute_until": first,
            "head_since": since, "head_until": until, "tail_since": until, "tail_until": until,
        }  # fmt: skip
    return {
        "minute_since": first, "minute_until": last,
        "head_since": since, "head_until": first, "tail_since": last, "tail_until": until,
    }  # fmt: skip


def hour_parameters(since: datetime, until: datetime) -> dict[str, datetime]:
    """minute_parameters plus the bound values of HOURS_IN_WINDOW and MINUTES_AROUND_HOURS."""
    minutes = minute_parameters(since, until)
    first = minutes["minute_since"].replace(minute=0)
    if first < minutes["minute_since"]:
        first += _HOUR
    last = minutes["minute_until"].replace(minute=0)
    if first >= last:  # no whole hour inside: the minutes answer for all of it
        first = last = minutes["minute_since"]
    return {**minutes, "hour_since": first, "hour_until": last}
