"""The otel_* tables match SCHEMA.md column for column: names, types, codecs, indexes, partition and order keys."""

from __future__ import annotations

import re

import pytest

from correlator.api.server import Server
from correlator.store.ddl import insert_guard
from correlator.store.migrate import MIGRATIONS, plan
from correlator.store.schema_merges import INSERTED_TABLES
from correlator.store.schema_trace_view import SPANS_BY_TRACE
from tests.conftest import query

M = "Map(LowCardinality(String), String)"
EXEMPLARS = [
    ("Exemplars.FilteredAttributes", f"Array({M})"),
    ("Exemplars.TimeUnix", "Array(DateTime)"),
    ("Exemplars.Value", "Array(Float64)"),
    ("Exemplars.SpanId", "Array(String)"),
    ("Exemplars.TraceId", "Array(String)"),
]
METRIC_HEAD = [
    ("ResourceAttributes", M), ("ResourceSchemaUrl", "String"), ("ScopeName", "String"), ("ScopeVersion", "String"),
    ("ScopeAttributes", M), ("ScopeDroppedAttrCount", "UInt32"), ("ScopeSchemaUrl", "String"),
    ("ServiceName", "LowCardinality(String)"), ("MetricName", "LowCardinality(String)"),
    ("MetricDescription", "String"), ("MetricUnit", "String"), ("Attributes", M), ("StartTimeUnix", "DateTime"),
    ("TimeUnix", "DateTime"),
]  # fmt: skip
# Transcribed from SCHEMA.md, not from our DDL, so a drift in either shows here.
EXPECTED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "otel_traces": [
        ("Timestamp", "DateTime64(9)"), ("TraceId", "String"), ("SpanId", "String"), ("ParentSpanId", "String"),
        ("TraceState", "String"), ("SpanName", "LowCardinality(String)"), ("SpanKind", "LowCardinality(String)"),
        ("ServiceName", "LowCardinality(String)"), ("ResourceAttributes", M), ("ScopeName", "String"),
        ("ScopeVersion", "String"), ("SpanAttributes", M), ("Duration", "UInt64"),
        ("StatusCode", "LowCardinality(String)"), ("StatusMessage", "String"),
        ("Events.Timestamp", "Array(DateTime64(9))"), ("Events.Name", "Array(LowCardinality(String))"),
        ("Events.Attributes", f"Array({M})"), ("Links.TraceId", "Array(String)"), ("Links.SpanId", "Array(String)"),
        ("Links.TraceState", "Array(String)"), ("Links.Attributes", f"Array({M})"),
    ],
    "otel_traces_trace_id_ts": [("TraceId", "String"), ("Start", "DateTime"), ("End", "DateTime")],
    "otel_logs": [
        ("Timestamp", "DateTime64(9)"), ("TraceId", "String"), ("SpanId", "String"), ("TraceFlags", "UInt8"),
        ("SeverityText", "LowCardinality(String)"), ("SeverityNumber", "UInt8"),
        ("ServiceName", "LowCardinality(String)"), ("Body", "String"),
        ("ResourceSchemaUrl", "LowCardinality(String)"), ("ResourceAttributes", M),
        ("ScopeSchemaUrl", "LowCardinality(String)"), ("ScopeName", "String"),
        ("ScopeVersion", "LowCardinality(String)"), ("ScopeAttributes", M), ("LogAttributes", M),
        ("EventName", "String"),
        *[(f"__otel_materialized_{key}", "LowCardinality(String)") for key in (
            "k8s.cluster.name", "k8s.container.name", "k8s.deployment.name", "k8s.namespace.name", "k8s.node.name",
            "k8s.pod.name", "k8s.pod.uid", "deployment.environment.name")],
    ],
    "otel_metrics_gauge": [*METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *EXEMPLARS],
    "otel_metrics_sum": [
        *METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *EXEMPLARS, ("AggregationTemporality", "Int32"),
        ("IsMonotonic", "Bool"),
    ],
    "otel_metrics_histogram": [
        *METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"), ("BucketCounts", "Array(UInt64)"),
        ("ExplicitBounds", "Array(Float64)"), *EXEMPLARS, ("Flags", "UInt32"), ("Min", "Float64"),
        ("Max", "Float64"), ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_exponential_histogram": [
        *METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"), ("Scale", "Int32"), ("ZeroCount", "UInt64"),
        ("PositiveOffset", "Int32"), ("PositiveBucketCounts", "Array(UInt64)"), ("NegativeOffset", "Int32"),
        ("NegativeBucketCounts", "Array(UInt64)"), *EXEMPLARS, ("Flags", "UInt32"), ("Min", "Float64"),
        ("Max", "Float64"), ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_summary": [
        *METRIC_HEAD, ("Count", "UInt64"), ("Sum", "Float64"), ("ValueAtQuantiles.Quantile", "Array(Float64)"),
        ("ValueAtQuantiles.Value", "Array(Float64)"), ("Flags", "UInt32"),
    ],
}  # fmt: skip
METRIC_KEYS = (
    "toDate(TimeUnix)",
    "ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix",
)
EXPECTED_KEYS = {
    "otel_traces": ("toDate(Timestamp)", "ServiceName, SpanName, toDateTime(Timestamp)"),
    "otel_traces_trace_id_ts": ("toDate(Start)", "TraceId, Start"),
    "otel_logs": ("toDate(Timestamp)", "toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp"),
    **{
        f"otel_metrics_{kind}": METRIC_KEYS
        for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    },
}
MAP_BLOOM = "bloom_filter(0.01)"
EXPECTED_INDEXES = {
    "otel_traces": {
        ("idx_trace_id", "TraceId", "bloom_filter(0.001)"), ("idx_duration", "Duration", "minmax"),
        ("idx_res_attr_key", "mapKeys(ResourceAttributes)", MAP_BLOOM),
        ("idx_res_attr_value", "mapValues(ResourceAttributes)", MAP_BLOOM),
        ("idx_span_attr_key", "mapKeys(SpanAttributes)", MAP_BLOOM),
        ("idx_span_attr_value", "mapValues(SpanAttributes)", MAP_BLOOM),
    },
    "otel_traces_trace_id_ts": {("idx_trace_id", "TraceId", "bloom_filter(0.01)")},
    "otel_logs": {
        ("idx_trace_id", "TraceId", "text(tokenizer = 'array')"),
        ("idx_lower_body", "lower(Body)", "text(tokenizer = 'splitByNonAlpha')"),
        *{(f"idx_{p}_{k}", f"map{k.title()}s({c})", "text(tokenizer = 'array')")
          for p, c in (("res_attr", "ResourceAttributes"), ("scope_attr", "ScopeAttributes"),
                       ("log_attr", "LogAttributes"))
          for k in ("key", "value")},
    },
}  # fmt: skip


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
def test_columns_match_schema_md(server: Server, table: str) -> None:
    columns = query(
        server,
        "SELECT name, type FROM system.columns WHERE database = 'otel' AND table = {t:String} ORDER BY position",
        t=table,
    )
    assert columns == EXPECTED_COLUMNS[table]


@pytest.mark.parametrize("table", sorted(EXPECTED_KEYS))
def test_partition_order_and_settings_match_schema_md(server: Server, table: str) -> None:
    rows = query(
        server,
        "SELECT partition_key, sorting_key, engine, create_table_query FROM system.tables "
        "WHERE database = 'otel' AND name = {t:String}",
        t=table,
    )
    partition_key, sorting_key, engine, ddl = rows[0]
    assert (partition_key, sorting_key) == EXPECTED_KEYS[table]
    assert engine == "MergeTree"
    assert "index_granularity = 8192" in ddl
    assert "ttl_only_drop_parts = 1" in ddl


@pytest.mark.parametrize("table", sorted(EXPECTED_INDEXES))
def test_skip_indexes_match_schema_md(server: Server, table: str) -> None:
    rows = query(
        server,
        "SELECT name, expr, type_full FROM system.data_skipping_indices WHERE database = 'otel' AND table = {t:String}",
        t=table,
    )
    normalized = {(name, expr, type_full.replace('"', "'")) for name, expr, type_full in rows}
    assert normalized == EXPECTED_INDEXES[table]


def test_metric_tables_have_map_indexes_and_time_minmax(server: Server) -> None:
    rows = query(
        server,
        "SELECT table, groupArray(name) FROM system.data_skipping_indices "
        "WHERE database = 'otel' AND table LIKE 'otel_metrics_%' GROUP BY table",
    )
    for _table, names in rows:
        assert sorted(names) == sorted(
            ["idx_res_attr_key", "idx_res_attr_value", "idx_scope_attr_key", "idx_scope_attr_value", "idx_attr_key",
             "idx_attr_value", "idx_time_minmax"]
        )  # fmt: skip
    assert len(rows) == 5


def test_codecs_follow_the_exporter(server: Server) -> None:
    codecs = dict(
        query(
            server,
            "SELECT name, compression_codec FROM system.columns WHERE database = 'otel' AND table = 'otel_traces'",
        )
    )
    assert codecs["Timestamp"] == "CODEC(Delta(8), ZSTD(1))"
    assert codecs["TraceId"] == "CODEC(ZSTD(1))"


def test_trace_lookup_view_selects_min_and_max_per_trace(server: Server) -> None:
    ddl = query(
        server,
        "SELECT create_table_query FROM system.tables WHERE database='otel' AND name='otel_traces_trace_id_ts_mv'",
    )
    text = ddl[0][0]
    assert "min(Timestamp) AS Start" in text
    assert "max(Timestamp) AS End" in text
    assert "TraceId != ''" in text


def test_migrations_are_numbered_in_one_sequence_and_plan_is_printable() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    statements = plan("otel")
    assert statements[0].sql.startswith("CREATE DATABASE IF NOT EXISTS `otel`")
    # Idempotent when re-run: tables and views only if missing, copies only into an empty table, settings set again
    # to the same values.
    creates = [s.sql for s in statements if s.sql.startswith("CREATE ")]
    copies = [s.sql for s in statements if s.sql.startswith("INSERT INTO ")]
    alters = [s.sql for s in statements if s.sql.startswith("ALTER TABLE ")]
    assert len(creates) + len(copies) + len(alters) == len(statements)
    assert all("IF NOT EXISTS" in sql for sql in creates)
    assert alters
    assert all(" MODIFY SETTING " in sql for sql in alters)
    assert copies
    for sql in copies:
        table = sql.split()[2]
        assert sql.endswith(insert_guard(table))


def test_tables_every_insert_writes_merge_fewer_larger_parts_the_trace_view_copy_fewest(server: Server) -> None:
    rows = query(
        server,
        "SELECT name, create_table_query FROM system.tables WHERE database = 'otel' AND engine LIKE '%MergeTree'",
    )
    compact = {name for name, ddl in rows if "min_bytes_for_wide_part = 104857600" in ddl}
    assert compact == set(INSERTED_TABLES)
    bases = {name: re.findall(r"merge_selector_base = (\d+)", ddl) for name, ddl in rows}
    # Migration 8: the trace view's copy, whose random trace ids interleave every merge, merges fewer still.
    assert {name for name, base in bases.items() if base == ["30"]} == {SPANS_BY_TRACE}
    assert {name for name, base in bases.items() if base == ["10"]} == set(INSERTED_TABLES) - {SPANS_BY_TRACE}
    # SCHEMA.md's settings stay as they were.
    assert all("index_granularity = 8192" in ddl for name, ddl in rows if name.startswith("otel_"))
