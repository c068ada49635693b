"""DDL as objects: tables and materialized views render to SQL for one node now, and for a cluster later."""

from __future__ import annotations

from dataclasses import dataclass, field

from correlator.store.identifiers import quote_identifier

MAP = "Map(LowCardinality(String), String)"
TABLE_SETTINGS = "index_granularity = 8192, ttl_only_drop_parts = 1"


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


@dataclass(frozen=True)
class Target:
    """Where DDL lands: the database and the table engine (a parameter, so cluster mode can swap it)."""

    database: str
    engine: str = "MergeTree"
    if_not_exists: bool = True

    def name(self, table: str) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(table)}"


@dataclass(frozen=True)
class CreateTable:
    """CREATE TABLE with columns, indexes, partition and order keys."""

    table: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str | None = None
    indexes: tuple[Index, ...] = ()
    primary_key: str | None = None
    engine: str | None = None  # None: the target's engine
    settings: str = TABLE_SETTINGS
    ttl: str | None = None

    def render(self, target: Target) -> str:
        body = ",\n    ".join([c.render() for c in self.columns] + [i.render() for i in self.indexes])
        exists = "IF NOT EXISTS " if target.if_not_exists else ""
        lines = [f"CREATE TABLE {exists}{target.name(self.table)}\n(\n    {body}\n)"]
        lines.append(f"ENGINE = {self.engine or target.engine}")
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


@dataclass(frozen=True)
class CreateMaterializedView:
    """CREATE MATERIALIZED VIEW ... TO target AS SELECT; `{source}` in the select names the source table."""

    view: str
    to_table: str
    source_table: str
    select: str

    def render(self, target: Target) -> str:
        exists = "IF NOT EXISTS " if target.if_not_exists else ""
        select = self.select.format(source=target.name(self.source_table))
        return f"CREATE MATERIALIZED VIEW {exists}{target.name(self.view)} TO {target.name(self.to_table)}\nAS {select}"


@dataclass(frozen=True)
class Migration:
    """A numbered, idempotent step of the schema; operations render to SQL for a dry run."""

    version: int
    name: str
    operations: tuple[CreateTable | CreateMaterializedView, ...] = field(default_factory=tuple)

    def statements(self, target: Target) -> list[str]:
        return [op.render(target) for op in self.operations]
