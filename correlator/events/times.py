"""Times as the API and the webhooks take them: RFC 3339 with any offset, durations back from now, sane bounds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from correlator.errors import BadRequest

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
# Alertmanager's and Grafana's "not set".
ZERO_TIME_PREFIX = "0001-01-01"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Python's fromisoformat takes at most 6 fractional digits; RFC 3339 senders (Go) send up to 9.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `1h`, `7d`, `2w` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise BadRequest(f"expected a duration like '15m', '1h' or '7d', got {text!r}")
    try:
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise BadRequest(f"expected a duration of at most {timedelta.max.days} days, got {text!r}") from None


def parse_instant(text: str, *, field: str, now: datetime) -> datetime | None:
    """An RFC 3339 time (any offset) as aware UTC; the zero time is None; refuses times out of bounds."""
    text = text.strip()
    if not text or text.startswith(ZERO_TIME_PREFIX):
        return None
    normalized = _FRACTION.sub(r"\1", text.replace("z", "Z"))
    try:
        value = datetime.fromisoformat(normalized)
    except ValueError:
        raise BadRequest(f"{field}: expected an RFC 3339 time like '2026-11-26T08:00:00Z', got {text!r}") from None
    if value.tzinfo is None:
        raise BadRequest(f"{field}: expected a time with an offset ('Z' or '+01:00'), got {text!r}")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the last year a datetime holds
        raise BadRequest(f"{field}: {text!r} is past the year 9999") from None
    return check_bounds(value, field=field, now=now)


def check_bounds(value: datetime, *, field: str, now: datetime) -> datetime:
    """Refuse times before 2000 or more than a day in the future (API.md, Conventions)."""
    if value < EARLIEST:
        raise BadRequest(f"{field}: {value.isoformat()} is before 2000")
    if value > now + FUTURE_SLACK:
        raise BadRequest(f"{field}: {value.isoformat()} is more than a day in the future")
    return value


def parse_time_or_ago(text: str, *, field: str, now: datetime) -> datetime:
    """`since`/`until`: an RFC 3339 time, or a duration back from now."""
    if _DURATION.match(text):
        try:
            return now - parse_duration(text)
        except OverflowError:
            raise BadRequest(f"{field}: {text!r} back from now is before the year 1") from None
    value = parse_instant(text, field=field, now=now)
    if value is None:
        raise BadRequest(f"{field}: the zero time is not a bound")
    return value


def from_epoch_seconds(seconds: float) -> datetime:
    """Unix seconds as aware UTC."""
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class Window:
    """A half-open time window [since, until)."""

    since: datetime
    until: datetime

    def whole_minutes(self) -> Window:
        """The smallest window of whole minutes holding this one: since down to its minute, until up to its."""
        since = self.since.replace(second=0, microsecond=0)
        until = self.until.replace(second=0, microsecond=0)
        if until < self.until:
            until += timedelta(minutes=1)
        return Window(since, until)


def parse_window(
    since: str | None, until: str | None, *, default: timedelta, longest: timedelta, now: datetime
) -> Window:
    """The window of a list or a view: defaults to `default` back from now; refuses reversed or too long ones."""
    end = parse_time_or_ago(until, field="until", now=now) if until else now
    start = parse_time_or_ago(since, field="since", now=now) if since else end - default
    if start > end:
        raise BadRequest(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    if end - start > longest:
        raise BadRequest(f"the window is longer than the longest allowed, {longest.days} days")
    return Window(start, end)
