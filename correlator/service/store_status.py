"""Readiness and a description of what the store holds."""

from __future__ import annotations

from dataclasses import dataclass

from correlator.errors import StoreError
from correlator.store import Store
from correlator.store.migrate import LATEST_VERSION, applied_versions
from correlator.store.queries import TableRows, table_rows


@dataclass(frozen=True)
class StoreStatus:
    """The store's DSN (no password), schema version and rows per table."""

    dsn: str
    database: str
    schema_version: int
    tables: list[TableRows]


def readiness(store: Store) -> tuple[bool, str]:
    """Ready when the store answers and every migration is applied; else why not."""
    try:
        applied = applied_versions(store)
    except StoreError as e:
        return False, e.message
    missing = sorted(set(range(1, LATEST_VERSION + 1)) - applied)
    if missing:
        return False, f"migrations not applied: {missing}"
    return True, f"schema version {LATEST_VERSION}"


def describe(store: Store) -> StoreStatus:
    """Schema version and rows per table."""
    applied = applied_versions(store)
    return StoreStatus(store.config.describe(), store.config.database, max(applied, default=0), table_rows(store))
