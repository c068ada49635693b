"""The bridge from Python `logging` to OpenTelemetry logs, so records carry the active span's trace and span ids."""

from __future__ import annotations

import logging

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider


def _not_from_opentelemetry(record: logging.LogRecord) -> bool:
    # The SDK's own diagnostics (a failing export, above all) would be queued into the pipeline they report on.
    return not record.name.startswith("opentelemetry")


class LogBridge:
    """An OpenTelemetry handler on the root logger, removable again at shutdown."""

    def __init__(self, provider: LoggerProvider, level: int) -> None:
        self.handler = LoggingHandler(level=level, logger_provider=provider)
        self.handler.addFilter(_not_from_opentelemetry)
        root = logging.getLogger()
        self._previous_root_level = root.level
        # The root's own level (WARNING by default) would drop records before any handler saw them.
        self._lowered_to = level if root.level > level else None
        if self._lowered_to is not None:
            root.setLevel(level)
        root.addHandler(self.handler)

    def remove(self) -> None:
        """Take the handler off the root logger and undo the level change, unless the app has changed it since."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        if self._lowered_to is not None and root.level == self._lowered_to:
            root.setLevel(self._previous_root_level)
