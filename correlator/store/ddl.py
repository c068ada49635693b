"""DDL as objects: tables and materialized views render to SQL for one node, or for a cluster (SCHEMA.md).

On a cluster every table becomes two: `<name>_local` (ON CLUSTER, the Replicated variant of its engine) holding
the data, and a Distributed table under the plain name that reads and inserts go through, spreading rows by the
table's sharding key. Materialized views read and write the local tables. docs/cluster.md says why each key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from correlator.store.identifiers import quote_identifier

MAP = "Map(LowCardinality(String), String)"
TABLE_SETTINGS = "index_granularity = 8192, ttl_only_drop_parts = 1"
# Keeper path of a replicated table; {shard} and {replica} are the server's macros (the clickhouse-operator sets them).
REPLICATION_PATH = "/clickhouse/tables/{shard}/{database}/"

_ENGINE = re.compile(r"^(?P<name>[A-Za-z]*MergeTree)(?:\((?P<args>.*)\))?$")


@dataclass(frozen=True)
class Column:
    """One column: name, type, and an optional codec or MATERIALIZED/DEFAULT expression."""

    name: str
    type: str
    codec: str | None = "ZSTD(1)"
    expression: str | None = None

    def render(self) -> str:
        parts = [quote_identifier(self.name), self.type]
        if self.expression:
            parts.append(self.expression)
        if self.codec:
            parts.append(f"CODEC({self.codec})")
        return " ".join(parts)


@dataclass(frozen=True)
class Index:
    """A data-skipping index."""

    name: str
    expression: str
    type: str
    granularity: int = 1

    def render(self) -> str:
        return f"INDEX {self.name} {self.expression} TYPE {self.type} GRANULARITY {self.granularity}"


def string_literal(name: str) -> str:
    """A name (cluster, database, table) as an SQL string literal; only identifier characters pass."""
    return "'" + quote_identifier(name)[1:-1] + "'"


@dataclass(frozen=True)
class Target:
    """Where DDL lands: the database, the default table engine and, for a cluster, its name (one node when empty)."""

    database: str
    engine: str = "MergeTree"
    if_not_exists: bool = True
    cluster: str = ""
    local_suffix: str = "_local"

    @property
    def clustered(self) -> bool:
        """True when the DDL is for a cluster: local replicated tables behind Distributed ones."""
        return bool(self.cluster)

    def name(self, table: str) -> str:
        """The quoted name readers and writers use (the Distributed table on a cluster)."""
        return f"{quote_identifier(self.database)}.{quote_identifier(table)}"

    def local_table(self, table: str) -> str:
        """The unquoted name of the table that holds the rows: `<name>_local` on a cluster."""
        return table + self.local_suffix if self.clustered else table

    def local_name(self, table: str) -> str:
        """The quoted name of the table that holds the rows."""
        return self.name(self.local_table(table))

    def on_cluster(self) -> str:
        """The ` ON CLUSTER '<name>'` clause, empty on one node."""
        return f" ON CLUSTER {string_literal(self.cluster)}" if self.clustered else ""

    def replicated(self, engine: str, table: str) -> str:
        """The Replicated variant of a MergeTree-family engine, keeping its own arguments after path and replica."""
        match = _ENGINE.match(engine)
        if match is None:
            raise ValueError(f"expected a MergeTree-family engine like 'ReplacingMergeTree(v)', got {engine!r}")
        path = string_literal(self.local_table(table))[1:-1]
        args = [f"'{REPLICATION_PATH}{path}'", "'{replica}'"]
        if match["args"]:
            args.append(match["args"])
        return f"Replicated{match['name']}({', '.join(args)})"

    def distributed(self, table: str, sharding_key: str) -> str:
        """The Distributed engine over a table's local tables on every shard."""
        return (
            f"Distributed({string_literal(self.cluster)}, {string_literal(self.database)}, "
            f"{string_literal(self.local_table(table))}, {sharding_key})"
        )


@dataclass(frozen=True)
class CreateTable:
    """CREATE TABLE with columns, indexes, partition and order keys (and a sharding key for a cluster)."""

    table: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str | None = None
    indexes: tuple[Index, ...] = ()
    primary_key: str | None = None
    engine: str | None = None  # None: the target's engine
    settings: str = TABLE_SETTINGS
    ttl: str | None = None
    # Which shard a row goes to through the Distributed table; a function of the ORDER BY key wherever rows
    # are deduplicated or aggregated by it, since merges only ever see one shard.
    sharding_key: str | None = None

    def render(self, target: Target) -> str:
        """The table that holds the rows: the table itself on one node, its replicated local table on a cluster."""
        body = ",\n    ".join([c.render() for c in self.columns] + [i.render() for i in self.indexes])
        exists = "IF NOT EXISTS " if target.if_not_exists else ""
        engine = self.engine or target.engine
        if target.clustered:
            engine = target.replicated(engine, self.table)
        lines = [f"CREATE TABLE {exists}{target.local_name(self.table)}{target.on_cluster()}\n(\n    {body}\n)"]
        lines.append(f"ENGINE = {engine}")
        if self.partition_by:
            lines.append(f"PARTITION BY {self.partition_by}")
        if self.primary_key:
            lines.append(f"PRIMARY KEY {self.primary_key}")
        lines.append(f"ORDER BY {self.order_by}")
        if self.ttl:
            lines.append(f"TTL {self.ttl}")
        if self.settings:
            lines.append(f"SETTINGS {self.settings}")
        return "\n".join(lines)

    def render_distributed(self, target: Target) -> str:
        """The Distributed table under the plain name, with the local table's columns."""
        if self.sharding_key is None:
            raise ValueError(f"table {self.table} has no sharding key, which a cluster needs")
        exists = "IF NOT EXISTS " if target.if_not_exists else ""
        return (
            f"CREATE TABLE {exists}{target.name(self.table)}{target.on_cluster()} AS {target.local_name(self.table)}\n"
            f"ENGINE = {target.distributed(self.table, self.sharding_key)}"
        )

    def statements(self, target: Target) -> list[str]:
        """One statement on one node; the local table, then the Distributed one, on a cluster."""
        if not target.clustered:
            return [self.render(target)]
        return [self.render(target), self.render_distributed(target)]


@dataclass(frozen=True)
class CreateMaterializedView:
    """CREATE MATERIALIZED VIEW ... TO target AS SELECT; `{source}` in the select names the source table.

    On a cluster the view reads the local source table and writes the local target on each node, so it sees
    every row inserted on that node, and only those.
    """

    view: str
    to_table: str
    source_table: str
    select: str

    def render(self, target: Target) -> str:
        exists = "IF NOT EXISTS " if target.if_not_exists else ""
        select = self.select.format(source=target.local_name(self.source_table))
        return (
            f"CREATE MATERIALIZED VIEW {exists}{target.name(self.view)}{target.on_cluster()} "
            f"TO {target.local_name(self.to_table)}\nAS {select}"
        )

    def statements(self, target: Target) -> list[str]:
        return [self.render(target)]


def insert_guard(table: str) -> str:
    """The condition every migration's INSERT ... SELECT into a (quoted) table carries, which makes it idempotent."""
    return f"(SELECT count() FROM {table}) = 0"


@dataclass(frozen=True)
class InsertSelect:
    """INSERT INTO target SELECT ...: fills a new derived table from what its source already holds.

    One node only: on a cluster an INSERT cannot run ON CLUSTER, and each shard would have to copy its own local
    rows, so it renders nothing there (docs/cluster.md says what to run instead).
    """

    to_table: str
    source_table: str
    select: str
    # More sources the same select copies from, in the same statement (UNION ALL): the guard allows one copy.
    more_sources: tuple[str, ...] = ()

    def select_sql(self, target: Target) -> str:
        """What the copy selects, from every source, without the guard."""
        sources = (self.source_table, *self.more_sources)
        return "\nUNION ALL\n".join(self.select.format(source=target.name(source)) for source in sources)

    def statements(self, target: Target) -> list[str]:
        if target.clustered:
            return []
        select = self.select_sql(target)
        to_table = target.name(self.to_table)
        # Only into an empty table: a migration run again after a crash must not count the rows twice.
        return [f"INSERT INTO {to_table}\nSELECT * FROM (\n{select}\n)\nWHERE {insert_guard(to_table)}"]


@dataclass(frozen=True)
class ModifySettings:
    """ALTER TABLE ... MODIFY SETTING on the table that holds the rows (each local table, on a cluster)."""

    table: str
    settings: str

    def statements(self, target: Target) -> list[str]:
        return [f"ALTER TABLE {target.local_name(self.table)}{target.on_cluster()} MODIFY SETTING {self.settings}"]


Operation = CreateTable | CreateMaterializedView | InsertSelect | ModifySettings


@dataclass(frozen=True)
class Migration:
    """A numbered, idempotent step of the schema; operations render to SQL for a dry run."""

    version: int
    name: str
    operations: tuple[Operation, ...] = field(default_factory=tuple)

    def statements(self, target: Target) -> list[str]:
        return [sql for op in self.operations for sql in op.statements(target)]
