"""A background thread that runs reconcile steps every few seconds, so stored deploys and analyses follow telemetry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from correlator.errors import CorrelatorError

log = logging.getLogger(__name__)


class Reconciler:
    """Calls each step in turn every `interval_s` until stopped; a failing step is logged and retried next time."""

    def __init__(self, steps: list[Callable[[], object]], interval_s: float) -> None:
        self._steps = steps
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deploy-reconciler", daemon=True)

    def start(self) -> Reconciler:
        if self._interval_s > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            for step in self._steps:
                try:
                    step()
                except CorrelatorError as e:
                    log.warning("background step %s failed, will retry: %s", getattr(step, "__name__", step), e.message)
