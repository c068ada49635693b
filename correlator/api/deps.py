"""What routes depend on: the app's state, the bearer-token check, request-time parsing of times, error bodies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from correlator.api.state import AppState
from correlator.events.times import Window, parse_instant, parse_window


class ApiError(BaseModel):
    """The body of every /api error."""

    error: dict[str, str]


def api_errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the error statuses it answers, each with the /api error body."""
    return {status: {"model": ApiError, "description": text} for status, text in described.items()}


def app_state(request: Request) -> AppState:
    """The running app's state."""
    state: AppState = request.app.state.correlator
    return state


async def require_token(request: Request) -> None:
    """Every /api route: a read token for GET, a write token for the rest, when tokens are configured."""
    state = app_state(request)
    state.auth.check(request.headers.get("authorization"), state.auth.needed_scope(request.method))


def window(request: Request, since: str | None, until: str | None, default: timedelta, now: datetime) -> Window:
    """A read's window from its `since`/`until` parameters (API.md, Conventions)."""
    longest = timedelta(days=app_state(request).settings.max_window_days)
    return parse_window(since, until, default=default, longest=longest, now=now)


def instant(value: str | None, field: str, now: datetime) -> datetime | None:
    """An optional RFC 3339 time from a body field; the zero time means absent."""
    return parse_instant(value, field=field, now=now) if value is not None else None
