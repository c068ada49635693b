"""`configure()`: the process's tracer, meter and logger providers, exporting over OTLP, set up once."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from correlator.sdk._exporters import ExportSettings, build_exporters, resolve_protocol
from correlator.sdk._instrument import instrument_app, instrument_libraries
from correlator.sdk._logging import LogBridge
from correlator.sdk._resource import ServiceIdentity, build_resource

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Telemetry:
    """The providers `configure()` set up, to flush before a pause and to shut down before exit."""

    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    instrumented: list[str]
    _log_bridge: LogBridge | None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shut_down: bool = False

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export what is buffered; False when a signal was not flushed in time, or after shutdown."""
        if self._shut_down:
            return False
        millis = int(timeout_s * 1000)
        flushes = (self.tracer_provider.force_flush, self.meter_provider.force_flush, self.logger_provider.force_flush)
        return all([_never_raising(flush, millis) for flush in flushes])

    def shutdown(self) -> None:
        """Flush and stop all three providers and take the log handler off; later calls do nothing."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        # The handler goes first: records logged from here on would reach a provider that is closing.
        if self._log_bridge is not None:
            self._log_bridge.remove()
        for stop in (self.tracer_provider.shutdown, self.meter_provider.shutdown, self.logger_provider.shutdown):
            _never_raising(stop)


def _never_raising(call: Callable[..., Any], *args: Any) -> bool:
    # The meter provider raises when a reader times out; the host app must not die of a collector that is down.
    try:
        return call(*args) is not False
    except Exception:
        logger.warning("telemetry %s failed", getattr(call, "__qualname__", call), exc_info=True)
        return False


@dataclass(frozen=True)
class _Configured:
    """The process's one configuration and what asked for it, to tell a repeated call from a different one."""

    telemetry: Telemetry
    attributes: Mapping[str, Any]
    export: ExportSettings


_configure_lock = threading.Lock()
_configured: _Configured | None = None


def configure(
    service_name: str | None = None,
    *,
    service_namespace: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    deployment_id: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    protocol: str | None = None,
    timeout_s: float | None = None,
    metric_interval_s: float | None = None,
    instrument: bool = True,
    app: Any = None,
    logging_level: int = logging.INFO,
) -> Telemetry:
    """Send this process's traces, metrics and logs over OTLP, labelled with its service and deploy (docs/sdk.md)."""
    global _configured
    identity = ServiceIdentity(service_name, service_namespace, service_version, environment, deployment_id, revision)
    resource = build_resource(identity, os.environ)
    export = ExportSettings(resolve_protocol(protocol, os.environ), endpoint, headers, timeout_s)
    with _configure_lock:
        # OpenTelemetry allows one set of global providers per process: a later call gets the first one's Telemetry.
        if _configured is None:
            telemetry = _start(resource, export, metric_interval_s, instrument, logging_level)
            _configured = _Configured(telemetry, dict(resource.attributes), export)
        elif (dict(resource.attributes), export) != (_configured.attributes, _configured.export):
            logger.warning(
                "correlator.sdk is already configured in this process (service %r); this call's settings are ignored",
                _configured.attributes.get("service.name"),
            )
        telemetry = _configured.telemetry
    if app is not None and instrument:
        instrument_app(app)
    return telemetry


def _start(
    resource: Resource, export: ExportSettings, metric_interval_s: float | None, instrument: bool, logging_level: int
) -> Telemetry:
    exporters = build_exporters(export)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporters.spans))
    interval_ms = None if metric_interval_s is None else metric_interval_s * 1000
    reader = PeriodicExportingMetricReader(exporters.metrics, export_interval_millis=interval_ms)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporters.logs))
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # Global providers cannot be replaced; a second log handler and instrumentation would duplicate every record.
        logger.warning(
            "OpenTelemetry is already set up in this process (opentelemetry-instrument?): it stays in charge, and "
            "correlator.sdk's providers are not made global, bridge no logs and instrument nothing"
        )
        return Telemetry(resource, tracer_provider, meter_provider, logger_provider, [], None)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    set_logger_provider(logger_provider)
    bridge = LogBridge(logger_provider, logging_level)
    instrumented = instrument_libraries(tracer_provider, meter_provider) if instrument else []
    return Telemetry(resource, tracer_provider, meter_provider, logger_provider, instrumented, bridge)
