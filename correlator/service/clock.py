"""Time for the service layer: the wall clock, and version stamps that never repeat for row replacement."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Now = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


class VersionStamps:
    """Strictly increasing times for `updated_at` columns: two writes in one clock tick still order."""

    def __init__(self, now: Now = utc_now) -> None:
        self._now = now
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def next(self) -> datetime:
        with self._lock:
            stamp = max(self._now(), self._last + timedelta(microseconds=1))
            self._last = stamp
            return stamp
