"""Versioned, idempotent migrations recorded in `schema_migrations`; one numbered sequence for everyone.

With a cluster name every statement runs ON CLUSTER and tables become local replicated ones behind Distributed
ones (store/ddl.py, docs/cluster.md); the ledger too.
"""

from __future__ import annotations

from dataclasses import dataclass

from correlator.errors import BadRequest
from correlator.store.client import Store
from correlator.store.ddl import Column, CreateTable, Migration, Target
from correlator.store.identifiers import quote_identifier
from correlator.store.schema_analysis import ANALYSIS_TABLES
from correlator.store.schema_merges import FEWER_MERGES, FEWER_TRACE_VIEW_MERGES
from correlator.store.schema_otel import OTEL_TABLES
from correlator.store.schema_platform import PLATFORM_TABLES
from correlator.store.schema_rollups import ROLLUP_TABLES
from correlator.store.schema_trace_view import TRACE_VIEW_EXEMPLARS, TRACE_VIEW_TABLES

MIGRATIONS: tuple[Migration, ...] = (
    OTEL_TABLES,
    PLATFORM_TABLES,
    ANALYSIS_TABLES,
    ROLLUP_TABLES,
    TRACE_VIEW_TABLES,
    TRACE_VIEW_EXEMPLARS,
    FEWER_MERGES,
    FEWER_TRACE_VIEW_MERGES,
)
LATEST_VERSION = max(m.version for m in MIGRATIONS)

_LEDGER = "schema_migrations"


@dataclass(frozen=True)
class PlannedStatement:
    """One statement of the plan, with the migration it belongs to."""

    version: int
    name: str
    sql: str


# The ledger as a cluster creates it; one node keeps the statement it has always run (_bootstrap).
_CLUSTER_LEDGER = CreateTable(
    table=_LEDGER,
    columns=(
        Column("version", "UInt32", None),
        Column("name", "String", None),
        Column("applied_at", "DateTime64(3)", None, "DEFAULT now64(3)"),
    ),
    engine="ReplacingMergeTree",
    order_by="version",
    settings="",
    sharding_key="cityHash64(version)",
)


def target_for(database: str, cluster: str = "") -> Target:
    """The DDL target of a store: one node, or the named cluster."""
    return Target(database=database, cluster=cluster)


def _bootstrap(target: Target) -> list[str]:
    db = quote_identifier(target.database)
    if target.clustered:
        return [f"CREATE DATABASE IF NOT EXISTS {db}{target.on_cluster()}", *_CLUSTER_LEDGER.statements(target)]
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(_LEDGER)}\n"
        "(\n    version UInt32,\n    name String,\n    applied_at DateTime64(3) DEFAULT now64(3)\n)\n"
        "ENGINE = ReplacingMergeTree\nORDER BY version",
    ]


def plan(database: str, applied: set[int] | None = None, cluster: str = "") -> list[PlannedStatement]:
    """Every statement that brings a database from the `applied` versions to the latest, in order."""
    done = applied or set()
    target = target_for(database, cluster)
    statements = [PlannedStatement(0, "bootstrap", sql) for sql in _bootstrap(target)]
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        statements += [PlannedStatement(migration.version, migration.name, sql) for sql in migration.statements(target)]
    return statements


def applied_versions(store: Store) -> set[int]:
    """The versions recorded as applied; empty when the ledger does not exist yet."""
    database = store.config.database
    exists = store.rows(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": database, "table": _LEDGER},
    )
    if not exists or exists[0][0] == 0:
        return set()
    table = f"{quote_identifier(database)}.{quote_identifier(_LEDGER)}"
    return {int(row[0]) for row in store.rows(f"SELECT DISTINCT version FROM {table}")}


def migrate(store: Store, cluster: str = "") -> list[int]:
    """Apply what is missing; return the versions applied now. Safe to run again and again."""
    database = store.config.database
    target = target_for(database, cluster)
    if target.clustered and store.config.embedded_dir is not None:
        raise BadRequest(
            f"expected a ClickHouse server DSN (http(s)://...) for the cluster {cluster!r}, "
            f"got the embedded store {store.config.dsn}"
        )
    done = applied_versions(store)
    applied_now: list[int] = []
    table = f"{quote_identifier(database)}.{quote_identifier(_LEDGER)}"
    for sql in _bootstrap(target):
        store.command(sql)
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for sql in migration.statements(target):
            store.command(sql)
        store.command(
            f"INSERT INTO {table} (version, name) VALUES ({{version:UInt32}}, {{name:String}})",
            {"version": migration.version, "name": migration.name},
        )
        applied_now.append(migration.version)
    return applied_now
