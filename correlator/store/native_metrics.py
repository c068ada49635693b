"""Engine-side OTLP metrics ingest: ClickHouse parses ExportMetricsServiceRequest bodies into otel_metrics_*."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from clickhouse_connect.driver.client import Client

from correlator.otlp.metrics import DEFAULT_TABLES, HEAD_COLUMNS, TAIL_COLUMNS
from correlator.otlp.native_schema import BODY_INDEX_FIELD_NAME, METRICS_REQUEST_MESSAGE
from correlator.store.identifiers import quote_identifier
from correlator.store.native_insert import (
    ATTRS,
    LEAN_ATTRS,
    NativeInsertResult,
    PreparedInsert,
    attr_map_with,
    build_detail_sql,
    build_stage_sql,
    dups_in,
    insert_settings,
    request_containers,
    stage_batch,
    stage_table,
    unsupported_in,
)

# Metric types in the order of their `data` oneof members (and of the stage's per-type point counts).
KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
_EXEMPLAR_KINDS = KINDS[:4]

# --------------------------------------------------------------------------------------------
# Input structure (see native_insert for how ClickHouse matches it to the .proto). Oneof
# presence columns carry the member's field number: whether a number was sent as_int or
# as_double (an int must become a Float64 of its value), and which type a Metric holds. The
# latter is not read: tracking it makes the reader refuse a Metric with two types on the wire,
# where protobuf would keep only the last one and the flattening would write both.
# --------------------------------------------------------------------------------------------
_DATA_ONEOF = "Enum8('none' = 0, 'gauge' = 5, 'sum' = 7, 'histogram' = 9, 'exponential_histogram' = 10, 'summary' = 11)"
_POINT_NUMBER = "value Enum8('none' = 0, 'as_double' = 4, 'as_int' = 6), as_double Float64, as_int Int64"
_EXEMPLAR_NUMBER = "value Enum8('none' = 0, 'as_double' = 3, 'as_int' = 6), as_double Float64, as_int Int64"
_EXEMPLARS = (
    f"Array(Tuple(filtered_attributes {ATTRS}, time_unix_nano UInt64, {_EXEMPLAR_NUMBER},"
    " span_id String, trace_id String))"
)
_POINT_HEAD = f"attributes {ATTRS}, start_time_unix_nano UInt64, time_unix_nano UInt64"
_NUMBER_POINT = f"Tuple({_POINT_HEAD}, {_POINT_NUMBER}, exemplars {_EXEMPLARS}, flags UInt32)"
_HISTOGRAM_POINT = (
    f"Tuple({_POINT_HEAD}, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64),"
    f" exemplars {_EXEMPLARS}, flags UInt32, min Float64, max Float64)"
)
_BUCKETS = "Tuple(offset Int32, bucket_counts Array(UInt64))"
_EXPONENTIAL_POINT = (
    f"Tuple({_POINT_HEAD}, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive {_BUCKETS},"
    f" negative {_BUCKETS}, exemplars {_EXEMPLARS}, flags UInt32, min Float64, max Float64)"
)
_SUMMARY_POINT = (
    f"Tuple({_POINT_HEAD}, count UInt64, sum Float64,"
    " quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32)"
)
METRICS_STRUCTURE = (
    f"{BODY_INDEX_FIELD_NAME} UInt32, resource_metrics Array(Tuple(resource Tuple(attributes {ATTRS}),"
    " schema_url String, scope_metrics Array(Tuple(scope Tuple(name String, version String,"
    f" attributes {ATTRS}, dropped_attributes_count UInt32), schema_url String,"
    f" metrics Array(Tuple(name String, description String, unit String, data {_DATA_ONEOF},"
    f" gauge Tuple(data_points Array({_NUMBER_POINT})),"
    f" sum Tuple(data_points Array({_NUMBER_POINT}), aggregation_temporality Int32, is_monotonic Bool),"
    f" histogram Tuple(data_points Array({_HISTOGRAM_POINT}), aggregation_temporality Int32),"
    f" exponential_histogram Tuple(data_points Array({_EXPONENTIAL_POINT}), aggregation_temporality Int32),"
    f" summary Tuple(data_points Array({_SUMMARY_POINT}))))))))"
)

# Attribute values one level deep (native_insert.LEAN_ATTRS), for batches of scalar values.
METRICS_STRUCTURE_LEAN = METRICS_STRUCTURE.replace(ATTRS, LEAN_ATTRS)

_METRICS = "resource_metrics.scope_metrics.metrics"
# Every attribute value's oneof column, per request (see native_insert._TRACE_KIND_PATHS).
_METRIC_KIND_PATHS = (
    "resource_metrics.resource.attributes.value.value",
    "resource_metrics.scope_metrics.scope.attributes.value.value",
    *(f"{_METRICS}.{kind}.data_points.attributes.value.value" for kind in KINDS),
    *(f"{_METRICS}.{kind}.data_points.exemplars.filtered_attributes.value.value" for kind in _EXEMPLAR_KINDS),
)
_NS = 1_000_000_000
_DATETIME_END_NS = (2**32) * _NS


def _points_of(kind: str) -> str:
    """Data points of one metric type on the wire (vectorised: no lambda to plan)."""
    return f"length(arrayFlatten({_METRICS}.{kind}.data_points.flags))"


def _metric_unusual() -> str:
    """Cheap gate: values that are arrays, maps or string-table references, in one pass over all values."""
    every = f"arrayConcat({', '.join(f'arrayFlatten({p})' for p in _METRIC_KIND_PATHS)})"
    return f"toUInt64(arrayExists(x -> x IN ('array_value', 'kvlist_value', 'string_value_strindex'), {every}))"


def _walk(check: Callable[[str], str], point: Callable[[str], str] | None = None, exemplar: str = "") -> str:
    """Sum over a request of `check` on every KeyValue list, plus `point(kind)` per point `p` and `exemplar` per `e`."""
    # One traversal serves all checks: each separate pass over the nested points costs about as much.
    per_kind = []
    for kind in KINDS:
        terms = [check("p.attributes")]
        if point is not None:
            terms.append(point(kind))
        if kind in _EXEMPLAR_KINDS:
            terms.append(f"arraySum(e -> {' + '.join(filter(None, (check('e.filtered_attributes'), exemplar)))},"
                         " p.exemplars)")  # fmt: skip
        per_kind.append(f"arraySum(p -> {' + '.join(terms)}, m.{kind}.data_points)")
    resource, scope, metric = [check("rm.resource.attributes")], [check("sm.scope.attributes")], per_kind
    if point is not None:
        # Every other string the flattening copies, checked once per resource, scope and metric.
        resource.append(_bad_text(["rm.schema_url"]))
        scope.append(_bad_text(["sm.schema_url", "sm.scope.name", "sm.scope.version"]))
        metric = [_bad_text(["m.name", "m.description", "m.unit"]), *per_kind]
    return (
        f"arraySum(rm -> {' + '.join(resource)}"
        f" + arraySum(sm -> {' + '.join(scope)}"
        f" + arraySum(m -> {' + '.join(metric)}, sm.metrics), rm.scope_metrics), resource_metrics)"
    )


def _point_problems(kind: str) -> str:
    """Per point: times past DateTime's range, and for histograms bucket counts that do not fit the bounds."""
    # Past 2106 the Python path fails the insert, and it rejects the histogram points.
    terms = [f"(p.start_time_unix_nano >= {_DATETIME_END_NS})", f"(p.time_unix_nano >= {_DATETIME_END_NS})"]
    if kind == "histogram":
        # Plain comparisons: IN with a non-constant element would make the sum Nullable.
        terms.append("(notEmpty(p.bucket_counts) AND length(p.bucket_counts) != length(p.explicit_bounds) + 1)")
    return " + ".join(terms)


# Per exemplar: a time past DateTime's range, and ids of another length than pdata's (the Python path
# would write their hex, pdata and the exporter reject them).
_EXEMPLAR_PROBLEMS = (
    f"(e.time_unix_nano >= {_DATETIME_END_NS})"
    " + (notEmpty(e.span_id) AND length(e.span_id) != 8) + (notEmpty(e.trace_id) AND length(e.trace_id) != 16)"
)


def _bad_text(strings: Sequence[str]) -> str:
    """1 if any of these strings is not valid UTF-8 (Go's and upb's decoders reject it; the engine would not).

    The strings are joined with '\\n' and validated once: an ASCII separator can neither complete a truncated
    sequence nor continue one, so the join is valid exactly when every part is.
    """
    # Checked inside the traversal rather than over flattened paths: extracting each of dozens of
    # nested paths from the parsed requests costs more than the check itself.
    parts = ", '\\n', ".join(strings)
    return f"(NOT isValidUTF8(concat({parts})))"


def _list_problems(attrs: str) -> str:
    """Per KeyValue list: duplicate keys, and keys or string values that are not valid UTF-8."""
    texts = (f"arrayStringConcat({attrs}.key, '\\n')", f"arrayStringConcat({attrs}.value.string_value, '\\n')")
    return f"{dups_in(attrs)} + {_bad_text(texts)}"


def _metric_request_unsupported() -> str:
    """Always-checked constructs of a metrics request the SQL cannot write as the Python path does."""
    return f"toUInt64({_walk(_list_problems, _point_problems, _EXEMPLAR_PROBLEMS)})"


def _points_column(kind: str) -> str:
    """Stage column holding a request's data points of one metric type."""
    return f"points_{kind}"


def metrics_stage_sql(
    stage: str, data_glob: str, schema_path: Path, threads: int, block_requests: int = 65409, lean: bool = False
) -> str:
    """CREATE TABLE (Memory) holding each parsed metrics request with its point counts and cheap check counts."""
    return build_stage_sql(
        stage,
        data_glob,
        schema_path,
        threads,
        block_requests,
        message=METRICS_REQUEST_MESSAGE,
        structure=METRICS_STRUCTURE_LEAN if lean else METRICS_STRUCTURE,
        root="resource_metrics",
        # The per-type counts below, by alias.
        rows=" + ".join(quote_identifier(_points_column(kind)) for kind in KINDS),
        unusual=_metric_unusual(),
        unsupported=_metric_request_unsupported(),
        extra=[(_points_column(kind), f"toUInt64({_points_of(kind)})") for kind in KINDS],
    )


def metrics_detail_sql(stage: str) -> str:
    """Per-value verdict (unsupported count, array/map count) for flagged staged metrics requests."""
    return build_detail_sql(stage, _walk(unsupported_in), request_containers(_METRIC_KIND_PATHS))


# --------------------------------------------------------------------------------------------
# Flattening: resource and scope columns per scope in a subquery, then one ARRAY JOIN chain down
# to the points (`m` a Metric, `p` one of its points); whole tuples are joined, which is far
# cheaper than joining many parallel arrays.
# --------------------------------------------------------------------------------------------
def _seconds(ns: str) -> str:
    """Unix nanoseconds -> DateTime, truncated to the second like the Python path's `ns // 1e9`."""
    return f"toDateTime(intDiv({ns}, {_NS}))"


def _number(kind: str, as_double: str, as_int: str) -> str:
    """Float64 of a number oneof: an int is converted, a double (or nothing: 0.0) taken as is."""
    return f"if({kind} = 'as_int', toFloat64({as_int}), {as_double})"


def _exemplar_columns(full: bool) -> dict[str, str]:
    """Exemplars.* columns from the point's exemplars."""
    return {
        "Exemplars.FilteredAttributes": (
            f"arrayMap(ea -> {attr_map_with('ea', full)}, p.exemplars.filtered_attributes)"
        ),
        "Exemplars.TimeUnix": f"arrayMap(t -> {_seconds('t')}, p.exemplars.time_unix_nano)",
        "Exemplars.Value": f"arrayMap((k, d, i) -> {_number('k', 'd', 'i')}, p.exemplars.value,"
        " p.exemplars.as_double, p.exemplars.as_int)",
        # Unlike span ids, exemplar ids are written as hex even when all zero ('' only when empty).
        "Exemplars.SpanId": "arrayMap(x -> lower(hex(x)), p.exemplars.span_id)",
        "Exemplars.TraceId": "arrayMap(x -> lower(hex(x)), p.exemplars.trace_id)",
    }


def _column_exprs(kind: str, full: bool) -> dict[str, str]:
    """Expression of every column of one metric type's table, in the table's column order."""
    exprs = {
        "ResourceAttributes": "resource_attributes",
        "ResourceSchemaUrl": "resource_schema_url",
        "ScopeName": "scope_name",
        "ScopeVersion": "scope_version",
        "ScopeAttributes": "scope_attributes",
        "ScopeDroppedAttrCount": "scope_dropped",
        "ScopeSchemaUrl": "scope_schema_url",
        "ServiceName": "service_name",
        "MetricName": "m.name",
        "MetricDescription": "m.description",
        "MetricUnit": "m.unit",
        "Attributes": attr_map_with("p.attributes", full),
        "StartTimeUnix": _seconds("p.start_time_unix_nano"),
        "TimeUnix": _seconds("p.time_unix_nano"),
        "Flags": "p.flags",
        "Value": _number("p.value", "p.as_double", "p.as_int"),
        "AggregationTemporality": f"m.{kind}.aggregation_temporality",
        "IsMonotonic": f"m.{kind}.is_monotonic",
        "Count": "p.count",
        "Sum": "p.sum",
        "BucketCounts": "p.bucket_counts",
        "ExplicitBounds": "p.explicit_bounds",
        "Min": "p.min",
        "Max": "p.max",
        "Scale": "p.scale",
        "ZeroCount": "p.zero_count",
        "PositiveOffset": "p.positive.offset",
        "PositiveBucketCounts": "p.positive.bucket_counts",
        "NegativeOffset": "p.negative.offset",
        "NegativeBucketCounts": "p.negative.bucket_counts",
        "ValueAtQuantiles.Quantile": "p.quantile_values.quantile",
        "ValueAtQuantiles.Value": "p.quantile_values.value",
        **_exemplar_columns(full),
    }
    return {column: exprs[column] for column in HEAD_COLUMNS + TAIL_COLUMNS[kind]}


def metrics_insert_sql(
    database: str, stage: str, kind: str, table: str, *, full_values: bool, skip_unsupported: bool, threads: int = 2
) -> str:
    """INSERT ... SELECT flattening the staged requests' points of one metric type into its table."""
    exprs = _column_exprs(kind, full_values)
    cols = ", ".join(quote_identifier(c) for c in exprs)
    source = stage_table(stage)
    if skip_unsupported:
        # Bound server-side ({skip:Array(UInt32)}), never formatted into the text.
        source = f"(SELECT resource_metrics FROM {source} WHERE NOT has({{skip:Array(UInt32)}}, body))"
    return (
        f"INSERT INTO {quote_identifier(database)}.{quote_identifier(table)} ({cols})\n"
        f"SELECT {', '.join(exprs.values())}\n"
        "FROM (\n"
        # Resource and scope columns are computed once per scope, then replicated per metric and point.
        "  SELECT\n"
        f"    {attr_map_with('rm.resource.attributes', full_values)} AS resource_attributes,\n"
        # pcommon Map.Get returns the first match; duplicates are sent to the fallback anyway.
        "    resource_attributes['service.name'] AS service_name, rm.schema_url AS resource_schema_url,\n"
        "    sm.scope.name AS scope_name, sm.scope.version AS scope_version,\n"
        f"    {attr_map_with('sm.scope.attributes', full_values)} AS scope_attributes,\n"
        "    sm.scope.dropped_attributes_count AS scope_dropped, sm.schema_url AS scope_schema_url,\n"
        "    sm.metrics AS metrics\n"
        f"  FROM {source}\n"
        "  ARRAY JOIN resource_metrics AS rm\n"
        "  ARRAY JOIN rm.scope_metrics AS sm\n"
        ")\n"
        "ARRAY JOIN metrics AS m\n"
        # No filter on m.data: the Protobuf reader refuses a Metric with two members of its `data` oneof
        # (the whole batch then fails to stage), so only the member `data` names can hold points.
        f"ARRAY JOIN m.{kind}.data_points AS p\n"
        f"{insert_settings(threads, full_values)}"
    )


def prepare_metrics(
    client: Client,
    database: str,
    bodies: Sequence[bytes],
    workdir: Path,
    *,
    tables: dict[str, str] | None = None,
    threads: int = 2,
) -> PreparedInsert:
    """Stage ExportMetricsServiceRequest bodies; one INSERT per metric type with points (into its table in
    `tables`), to run later. Rows count the points; bodies the engine cannot render are in the fallback."""
    if not bodies:
        return PreparedInsert(None, [], NativeInsertResult(rows=0))
    names = {**DEFAULT_TABLES, **(tables or {})}
    extra = [_points_column(kind) for kind in KINDS]
    # One staged block per thread: every block pays for extracting the nested paths the checks read,
    # which costs metrics requests more than the finer balance gains.
    batch = stage_batch(client, bodies, workdir, threads, metrics_stage_sql, metrics_detail_sql, extra, 1)
    bad = batch.bad
    inserts = []
    for index, kind in enumerate(KINDS):
        points = sum(counts[index] for body, counts in batch.extra_of.items() if body not in bad)
        if not points:
            continue
        sql = metrics_insert_sql(
            database,
            batch.stage,
            kind,
            names[kind],
            full_values=batch.full_values,
            skip_unsupported=bool(bad),
            threads=threads,
        )
        inserts.append(sql)
    return batch.prepared(inserts)
