"""Versioned, idempotent migrations recorded in `schema_migrations`; one numbered sequence for everyone."""

from __future__ import annotations

from dataclasses import dataclass

from correlator.store.client import Store
from correlator.store.ddl import Migration, Target
from correlator.store.identifiers import quote_identifier
from correlator.store.schema_otel import OTEL_TABLES
from correlator.store.schema_platform import PLATFORM_TABLES

MIGRATIONS: tuple[Migration, ...] = (OTEL_TABLES, PLATFORM_TABLES)
LATEST_VERSION = max(m.version for m in MIGRATIONS)

_LEDGER = "schema_migrations"


@dataclass(frozen=True)
class PlannedStatement:
    """One statement of the plan, with the migration it belongs to."""

    version: int
    name: str
    sql: str


def target_for(database: str) -> Target:
    """The DDL target of a single-node store."""
    return Target(database=database)


def _bootstrap(database: str) -> list[str]:
    db = quote_identifier(database)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(_LEDGER)}\n"
        "(\n    version UInt32,\n    name String,\n    applied_at DateTime64(3) DEFAULT now64(3)\n)\n"
        "ENGINE = ReplacingMergeTree\nORDER BY version",
    ]


def plan(database: str, applied: set[int] | None = None) -> list[PlannedStatement]:
    """Every statement that brings a database from the `applied` versions to the latest, in order."""
    done = applied or set()
    target = target_for(database)
    statements = [PlannedStatement(0, "bootstrap", sql) for sql in _bootstrap(database)]
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


def migrate(store: Store) -> list[int]:
    """Apply what is missing; return the versions applied now. Safe to run again and again."""
    database = store.config.database
    done = applied_versions(store)
    applied_now: list[int] = []
    table = f"{quote_identifier(database)}.{quote_identifier(_LEDGER)}"
    for sql in _bootstrap(database):
        store.command(sql)
    target = target_for(database)
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
