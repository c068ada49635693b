"""Fixed queries of the store, each a named constant or function saying what it answers."""

from __future__ import annotations

from dataclasses import dataclass

from correlator.store.client import Store

TABLE_ROWS = """
SELECT name, total_rows
FROM system.tables
WHERE database = {db:String} AND engine LIKE '%MergeTree'
ORDER BY name
"""
"""How many rows each table of the database holds (from part metadata, so it is cheap)."""


@dataclass(frozen=True)
class TableRows:
    """One table and its row count."""

    table: str
    rows: int


def table_rows(store: Store) -> list[TableRows]:
    """Rows per table of the store's database."""
    return [
        TableRows(str(name), int(rows or 0)) for name, rows in store.rows(TABLE_ROWS, {"db": store.config.database})
    ]
