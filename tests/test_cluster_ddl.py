"""Cluster mode DDL: every statement parses in the engine, local replicated tables sit behind Distributed ones
with the documented sharding keys, views read and write local tables, and one node's DDL is unchanged."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from correlator.api.server import Server
from correlator.cli.main import app
from correlator.errors import BadRequest
from correlator.store.ddl import CreateMaterializedView, CreateTable, Target
from correlator.store.migrate import MIGRATIONS, PlannedStatement, migrate, plan

CLUSTER = "correlator"
GOLDEN = Path(__file__).parent / "fixtures" / "ddl" / "single_node_v0-v2.sql"
# Transcribed from docs/cluster.md, not from the DDL, so a drift in either shows here.
EXPECTED_SHARDING = {
    "schema_migrations": "cityHash64(version)",
    "otel_traces": "cityHash64(TraceId)",
    "otel_traces_trace_id_ts": "cityHash64(TraceId)",
    "spans_by_trace": "cityHash64(TraceId)",
    "exemplars_by_trace": "rand64()",
    "otel_logs": "if(TraceId = '', rand64(), cityHash64(TraceId))",
    **{
        f"otel_metrics_{kind}": "cityHash64(ServiceName, MetricName, Attributes)"
        for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    },
    "deployments": "cityHash64(deploy_id)",
    "incidents": "cityHash64(incident_id)",
    "incident_events": "cityHash64(incident_id)",
    "webhook_deliveries": "cityHash64(source, delivery_id)",
    "service_version_minutes": "rand64()",
    "service_versions": "cityHash64(service, environment)",
    "incident_analysis": "cityHash64(incident_id)",
    "service_minutes": "rand64()",
    "service_hours": "rand64()",
    "service_red_minutes": "rand64()",
    "service_error_minutes": "rand64()",
    "span_minutes": "rand64()",
    "call_spans": "rand64()",
    "edge_minutes": "cityHash64(Minute)",
    "edge_minute_runs": "cityHash64(Minute)",
}
EXPECTED_ENGINES = {
    "schema_migrations": "ReplicatedReplacingMergeTree",
    "deployments": "ReplicatedReplacingMergeTree",
    "incidents": "ReplicatedReplacingMergeTree",
    "incident_events": "ReplicatedReplacingMergeTree",
    "webhook_deliveries": "ReplicatedReplacingMergeTree",
    "service_versions": "ReplicatedReplacingMergeTree",
    "service_version_minutes": "ReplicatedAggregatingMergeTree",
    "incident_analysis": "ReplicatedReplacingMergeTree",
    "service_minutes": "ReplicatedAggregatingMergeTree",
    "service_hours": "ReplicatedAggregatingMergeTree",
    "service_red_minutes": "ReplicatedAggregatingMergeTree",
    "service_error_minutes": "ReplicatedAggregatingMergeTree",
    "span_minutes": "ReplicatedAggregatingMergeTree",
    "edge_minutes": "ReplicatedReplacingMergeTree",
    "edge_minute_runs": "ReplicatedReplacingMergeTree",
}
CREATE_LOCAL = re.compile(
    r"^CREATE TABLE IF NOT EXISTS `otel`\.`(?P<table>\w+)_local` ON CLUSTER 'correlator'\n.*?"
    r"^ENGINE = (?P<engine>Replicated\w+)\('/clickhouse/tables/\{shard\}/\{database\}/(?P<path>\w+)', '\{replica\}'"
    r"(?P<args>[^\n]*)\)$",
    re.S | re.M,
)
CREATE_DISTRIBUTED = re.compile(
    r"^CREATE TABLE IF NOT EXISTS `otel`\.`(?P<table>\w+)` ON CLUSTER 'correlator' AS `otel`\.`(?P<local>\w+)`\n"
    r"ENGINE = Distributed\('correlator', 'otel', '(?P<target>\w+)', (?P<key>.+)\)$"
)
CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`\.`(?P<view>\w+)` ON CLUSTER 'correlator' "
    r"TO `otel`\.`(?P<to>\w+)`\nAS SELECT\b.*?\nFROM `otel`\.`(?P<source>\w+)`\n",
    re.S,
)


def cluster_plan() -> list[PlannedStatement]:
    return plan("otel", cluster=CLUSTER)


def _statement_id(statement: PlannedStatement) -> str:
    head = re.search(r"`otel`\.`(\w+)`", statement.sql)
    return f"{statement.version}-{head.group(1) if head else 'database'}"


@pytest.mark.parametrize("statement", [pytest.param(s, id=_statement_id(s)) for s in cluster_plan()])
def test_every_cluster_statement_parses_in_the_engine(server: Server, statement: PlannedStatement) -> None:
    assert server.state is not None
    formatted = server.state.store.rows("SELECT formatQuery({q:String})", {"q": statement.sql})[0][0]
    assert "ON CLUSTER correlator" in formatted


def test_every_table_is_local_and_replicated_behind_a_distributed_table_with_its_sharding_key() -> None:
    statements = [s.sql for s in cluster_plan()]
    local = {m["table"]: m for sql in statements if (m := CREATE_LOCAL.match(sql))}
    distributed = {m["table"]: m for sql in statements if (m := CREATE_DISTRIBUTED.match(sql))}
    # A new table needs its sharding key here and in docs/cluster.md, with the reason.
    assert set(local) == set(distributed) == set(EXPECTED_SHARDING)
    for table, match in distributed.items():
        assert match["local"] == match["target"] == f"{table}_local"
        assert match["key"] == EXPECTED_SHARDING[table], table
        assert local[table]["path"] == f"{table}_local"
        assert local[table]["engine"] == EXPECTED_ENGINES.get(table, "ReplicatedMergeTree"), table
    # The local table comes first: the Distributed one copies its columns.
    order = [
        m["table"] + ("_local" if CREATE_LOCAL.match(sql) else "")
        for sql in statements
        if (m := (CREATE_LOCAL.match(sql) or CREATE_DISTRIBUTED.match(sql)))
    ]
    for table in EXPECTED_SHARDING:
        assert order.index(f"{table}_local") < order.index(table)


def test_replicated_engines_keep_their_own_arguments() -> None:
    engines = {m["table"]: m["args"] for s in cluster_plan() if (m := CREATE_LOCAL.match(s.sql))}
    assert engines["deployments"] == ", updated_at, is_deleted"
    assert engines["incidents"] == ", updated_at"
    assert engines["service_version_minutes"] == ""
    assert engines["otel_traces"] == ""


def test_every_statement_but_the_ledger_insert_runs_on_the_cluster() -> None:
    statements = cluster_plan()
    assert statements[0].sql == "CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER 'correlator'"
    assert all(" ON CLUSTER 'correlator'" in s.sql for s in statements)


def test_views_read_local_sources_and_write_local_targets() -> None:
    views = {m["view"]: m for s in cluster_plan() if (m := CREATE_VIEW.match(s.sql))}
    expected = {
        view.view: view
        for migration in MIGRATIONS
        for view in migration.operations
        if isinstance(view, CreateMaterializedView)
    }
    assert set(views) == set(expected)
    for name, match in views.items():
        assert match["source"] == f"{expected[name].source_table}_local"
        assert match["to"] == f"{expected[name].to_table}_local"


def _columns(expression: str) -> set[str]:
    """The column names an expression uses: identifiers not followed by '(' and not string literals."""
    without_strings = re.sub(r"'[^']*'", "", expression)
    return {name for name in re.findall(r"\b([A-Za-z_]\w*)\b(?!\s*\()", without_strings)}


def test_deduplicated_tables_shard_by_a_function_of_their_order_key() -> None:
    # A ReplacingMergeTree merges (and FINAL dedups) within a shard only: every version of a row must land on
    # the shard of its first version, so the sharding key may use ORDER BY columns only.
    tables = [
        op
        for migration in MIGRATIONS
        for op in migration.operations
        if isinstance(op, CreateTable) and op.engine and "Replacing" in op.engine
    ]
    assert tables
    for table in tables:
        assert table.sharding_key is not None
        assert _columns(table.sharding_key) <= _columns(table.order_by), table.table


def test_single_node_ddl_is_byte_for_byte_what_it_was() -> None:
    # Released migrations never change; a deliberate change before release regenerates this file from
    # `correlator migrate --dry-run` (versions 0 to 2).
    rendered = "".join(f"-- {s.version:04d} {s.name}\n{s.sql};\n\n" for s in plan("otel") if s.version <= 2)
    assert rendered == GOLDEN.read_text()
    assert not any(word in rendered for word in ("ON CLUSTER", "_local", "Replicated", "Distributed"))


def test_a_cluster_name_must_be_an_identifier() -> None:
    with pytest.raises(BadRequest, match=r"expected an identifier of letters, digits, '_' and '\.', got 'my-cluster'"):
        plan("otel", cluster="my-cluster")


def test_a_cluster_needs_a_server_not_the_embedded_store(server: Server) -> None:
    assert server.state is not None
    with pytest.raises(BadRequest, match=r"expected a ClickHouse server DSN .* for the cluster 'correlator'"):
        migrate(server.state.store, cluster=CLUSTER)


def test_migrate_dry_run_prints_the_cluster_ddl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRELATOR_CLICKHOUSE_CLUSTER", CLUSTER)
    result = CliRunner().invoke(app, ["migrate", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "ENGINE = Distributed('correlator', 'otel', 'otel_traces_local', cityHash64(TraceId));" in result.output
    flag = CliRunner().invoke(app, ["migrate", "--dry-run", "--cluster", "other"])
    assert "ON CLUSTER 'other'" in flag.output


def _one_node_copy(sql: str) -> str:
    """A local statement as one node without Keeper can run it: plain engines, no ON CLUSTER."""
    sql = sql.replace(f" ON CLUSTER '{CLUSTER}'", "")
    return re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?", r"\1(", sql)


@pytest.fixture
def local_half(server: Server) -> Iterator[str]:
    """The cluster plan's local tables and views, made runnable on one node, in a scratch database."""
    assert server.state is not None
    store = server.state.store
    database = f"cluster_check_{uuid.uuid4().hex[:8]}"
    for statement in plan(database, cluster=CLUSTER):
        if "ENGINE = Distributed(" not in statement.sql:
            store.command(_one_node_copy(statement.sql))
    yield database
    store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def test_views_on_the_local_tables_fill_the_local_targets(server: Server, local_half: str) -> None:
    assert server.state is not None
    store = server.state.store
    at = datetime(2026, 4, 28, 12, 0, 3, tzinfo=UTC)
    store.command(
        f"INSERT INTO `{local_half}`.`otel_traces_local` (Timestamp, TraceId, SpanId, ServiceName, ResourceAttributes)"
        " VALUES ({at:DateTime64(9)}, 'abc123', 'span1', 'checkout',"
        " map('service.name', 'checkout', 'service.version', '1.5.0', 'deployment.id', 'd-1'))",
        {"at": at},
    )
    lookup = store.rows(f"SELECT TraceId, Start FROM `{local_half}`.`otel_traces_trace_id_ts_local`")
    assert lookup == [("abc123", at.replace(tzinfo=None))]
    minutes = store.rows(
        f"SELECT ServiceName, Version, DeploymentId, sum(Records) FROM `{local_half}`.`service_version_minutes_local`"
        " GROUP BY ServiceName, Version, DeploymentId"
    )
    assert minutes == [("checkout", "1.5.0", "d-1", 1)]


def test_target_renders_each_table_once_on_one_node() -> None:
    table = next(op for op in MIGRATIONS[0].operations if isinstance(op, CreateTable))
    assert table.statements(Target("otel")) == [table.render(Target("otel"))]
    assert len(table.statements(Target("otel", cluster=CLUSTER))) == 2
