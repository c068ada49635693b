"""ExportMetricsServiceRequest to otel_metrics_* rows, one table per metric type, as the exporter maps them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.otlp.rows import ColumnBlock, Mapped
from correlator.otlp.values import attributes_map

NS = 1_000_000_000
HEAD_COLUMNS = (
    "ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "ScopeDroppedAttrCount", "ScopeSchemaUrl", "ServiceName", "MetricName", "MetricDescription", "MetricUnit",
    "Attributes", "StartTimeUnix", "TimeUnix",
)  # fmt: skip
EXEMPLAR_COLUMNS = (
    "Exemplars.FilteredAttributes", "Exemplars.TimeUnix", "Exemplars.Value", "Exemplars.SpanId", "Exemplars.TraceId",
)  # fmt: skip
TAIL_COLUMNS: dict[str, tuple[str, ...]] = {
    "gauge": ("Value", "Flags", *EXEMPLAR_COLUMNS),
    "sum": ("Value", "Flags", *EXEMPLAR_COLUMNS, "AggregationTemporality", "IsMonotonic"),
    "histogram": (
        "Count", "Sum", "BucketCounts", "ExplicitBounds", *EXEMPLAR_COLUMNS, "Flags", "Min", "Max",
        "AggregationTemporality",
    ),
    "exponential_histogram": (
        "Count", "Sum", "Scale", "ZeroCount", "PositiveOffset", "PositiveBucketCounts", "NegativeOffset",
        "NegativeBucketCounts", *EXEMPLAR_COLUMNS, "Flags", "Min", "Max", "AggregationTemporality",
    ),
    "summary": ("Count", "Sum", "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value", "Flags"),
}  # fmt: skip
DEFAULT_TABLES = {
    "gauge": "otel_metrics_gauge",
    "sum": "otel_metrics_sum",
    "histogram": "otel_metrics_histogram",
    "exponential_histogram": "otel_metrics_exponential_histogram",
    "summary": "otel_metrics_summary",
}


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else float(point.as_double)


def _exemplars(point: Any) -> list[list[Any]]:
    exemplars = point.exemplars
    return [
        [attributes_map(e.filtered_attributes) for e in exemplars],
        [e.time_unix_nano // NS for e in exemplars],
        [_number(e) for e in exemplars],
        # Exemplar ids are written as hex even when zero (unlike span ids).
        [e.span_id.hex() for e in exemplars],
        [e.trace_id.hex() for e in exemplars],
    ]


def _gauge_tail(metric: Any, point: Any) -> list[Any]:
    return [_number(point), point.flags, *_exemplars(point)]


def _sum_tail(metric: Any, point: Any) -> list[Any]:
    data = metric.sum
    return [_number(point), point.flags, *_exemplars(point), data.aggregation_temporality, data.is_monotonic]


def _histogram_tail(metric: Any, point: Any) -> list[Any]:
    return [
        point.count, point.sum, list(point.bucket_counts), list(point.explicit_bounds), *_exemplars(point),
        point.flags, point.min, point.max, metric.histogram.aggregation_temporality,
    ]  # fmt: skip


def _exponential_tail(metric: Any, point: Any) -> list[Any]:
    return [
        point.count, point.sum, point.scale, point.zero_count, point.positive.offset,
        list(point.positive.bucket_counts), point.negative.offset, list(point.negative.bucket_counts),
        *_exemplars(point), point.flags, point.min, point.max, metric.exponential_histogram.aggregation_temporality,
    ]  # fmt: skip


def _summary_tail(metric: Any, point: Any) -> list[Any]:
    quantiles = point.quantile_values
    return [
        point.count,
        point.sum,
        [q.quantile for q in quantiles],
        [q.value for q in quantiles],
        point.flags,
    ]


_TAILS: dict[str, Callable[[Any, Any], list[Any]]] = {
    "gauge": _gauge_tail,
    "sum": _sum_tail,
    "histogram": _histogram_tail,
    "exponential_histogram": _exponential_tail,
    "summary": _summary_tail,
}


# The first second past what a DateTime (UInt32 seconds, 2106-02-07) holds.
DATETIME_END_S = 2**32


def point_problem(kind: str, point: Any) -> str | None:
    """Why a data point cannot be stored, or None."""
    # Such a time failed the insert of the whole batch; the engine path leaves these points to this mapping.
    exemplars = point.exemplars if kind != "summary" else ()
    times = (point.start_time_unix_nano, point.time_unix_nano, *(e.time_unix_nano for e in exemplars))
    if max(times) // NS >= DATETIME_END_S:
        return f"{kind} point: a time past 2106-02-07, the last second a DateTime column holds"
    if kind == "histogram" and point.bucket_counts and len(point.bucket_counts) != len(point.explicit_bounds) + 1:
        return (
            f"histogram point: {len(point.bucket_counts)} bucket counts do not fit "
            f"{len(point.explicit_bounds)} explicit bounds"
        )
    return None


def map_metrics(request: Any, tables: dict[str, str] | None = None) -> Mapped:
    """Flatten data points into one block per metric type; a bad point is rejected, the rest kept."""
    names = tables or DEFAULT_TABLES
    blocks = {kind: ColumnBlock(names[kind], HEAD_COLUMNS + TAIL_COLUMNS[kind]) for kind in names}
    mapped = Mapped({block.table: block for block in blocks.values()})
    for resource_metrics in request.resource_metrics:
        resource = attributes_map(resource_metrics.resource.attributes)
        service = resource.get("service.name", "")
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_map = attributes_map(scope.attributes)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                block, tail = blocks[kind], _TAILS[kind]
                head = [
                    resource, resource_metrics.schema_url, scope.name, scope.version, scope_map,
                    scope.dropped_attributes_count, scope_metrics.schema_url, service, metric.name,
                    metric.description, metric.unit,
                ]  # fmt: skip
                for point in getattr(metric, kind).data_points:
                    problem = point_problem(kind, point)
                    if problem:
                        mapped.reject(f"metric {metric.name!r}: {problem}")
                        continue
                    row = [
                        *head,
                        attributes_map(point.attributes),
                        point.start_time_unix_nano // NS,
                        point.time_unix_nano // NS,
                        *tail(metric, point),
                    ]
                    for column, value in zip(block.data, row, strict=True):
                        column.append(value)
                    mapped.accepted += 1
    return mapped
