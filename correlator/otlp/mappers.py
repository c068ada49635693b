"""Which mapping serves which signal, and how many records a request holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.otlp.decode import Signal
from correlator.otlp.logs import map_logs
from correlator.otlp.metrics import map_metrics
from correlator.otlp.rows import Mapped
from correlator.otlp.traces import map_traces

MAPPERS: dict[Signal, Callable[[Any], Mapped]] = {
    Signal.TRACES: map_traces,
    Signal.LOGS: map_logs,
    Signal.METRICS: map_metrics,
}


def count_records(signal: Signal, request: Any) -> int:
    """Spans, log records or data points in a request; loops over resources and scopes only."""
    if signal is Signal.TRACES:
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal is Signal.LOGS:
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind:
                    total += len(getattr(metric, kind).data_points)
    return total
