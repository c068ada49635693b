"""The only layer that talks to ClickHouse: DSNs, migrations, queries and inserts."""

from correlator.store.client import Store, StoreConfig
from correlator.store.identifiers import quote_identifier

__all__ = ["Store", "StoreConfig", "quote_identifier"]
