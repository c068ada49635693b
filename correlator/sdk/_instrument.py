"""Library instrumentation for FastAPI, requests and httpx, each only when its OpenTelemetry package is installed."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

logger = logging.getLogger(__name__)

# (library, instrumentation module, instrumentor class); the module imports the library, so either missing skips it.
INSTRUMENTATIONS = (
    ("fastapi", "opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor"),
    ("requests", "opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    ("httpx", "opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
)


class Instrumentor(Protocol):
    """What every OpenTelemetry instrumentor offers (their base class is a process-wide singleton per library)."""

    @property
    def is_instrumented_by_opentelemetry(self) -> bool: ...

    def instrument(self, **kwargs: Any) -> Any: ...


def _instrumentor(module: str, name: str) -> Instrumentor | None:
    try:
        instrumentor: Instrumentor = getattr(importlib.import_module(module), name)()
    except ImportError:
        return None
    return instrumentor


def instrument_libraries(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list[str]:
    """Instrument every supported library whose instrumentation is installed; returns the libraries' names."""
    instrumented = []
    for library, module, name in INSTRUMENTATIONS:
        instrumentor = _instrumentor(module, name)
        if instrumentor is None:
            continue
        # Already done by opentelemetry-instrument or an earlier call: a second instrument() only warns.
        if not instrumentor.is_instrumented_by_opentelemetry:
            # FastAPI's instrumentor swaps fastapi.FastAPI, so apps created from now on are covered too.
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        instrumented.append(library)
    return instrumented


def instrument_app(app: Any) -> bool:
    """Trace the requests of a FastAPI app made before `configure()`; False without FastAPI's instrumentation."""
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        logger.warning("opentelemetry-instrumentation-fastapi is not installed: the app's requests are not traced")
        return False
    # Apps created after configure() were instrumented at birth; instrumenting again only logs a warning.
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        # The global providers are proxies until configure() runs, so this works before it as well as after.
        FastAPIInstrumentor.instrument_app(app)
    return True
