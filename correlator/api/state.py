"""What the routes share: the store, the writer, the ingest use case, auth and metrics of one running app."""

from __future__ import annotations

from dataclasses import dataclass

from correlator.api.auth import TokenAuth
from correlator.service.ingest import IngestWriter
from correlator.service.otlp_ingest import OtlpIngest
from correlator.service.own_metrics import OwnMetrics
from correlator.settings import Settings
from correlator.store import Store, StoreConfig
from correlator.store.migrate import migrate


@dataclass
class AppState:
    """The running app's parts; built at start-up, closed at shutdown."""

    settings: Settings
    store: Store
    metrics: OwnMetrics
    writer: IngestWriter
    ingest: OtlpIngest
    auth: TokenAuth

    def close(self) -> None:
        """Flush what is queued, then let go of the store."""
        self.writer.close()
        self.store.close()


def build_state(settings: Settings) -> AppState:
    """Open the store (refusing plainly when another process holds it), migrate it, start the writer."""
    auth = TokenAuth(settings.tokens())
    store = Store(StoreConfig(settings.clickhouse_dsn, settings.clickhouse_database))
    try:
        migrate(store)
    except Exception:
        store.close()
        raise
    metrics = OwnMetrics()
    writer = IngestWriter(
        store,
        metrics,
        settings.batch_max_records,
        settings.queue_max_records,
        settings.retry_after_s,
        engine_min_records=settings.engine_parsing_min_records,
    )
    ingest = OtlpIngest(
        writer,
        metrics,
        settings.max_body_bytes,
        settings.write_timeout_s,
        settings.max_decoding_bytes,
        settings.retry_after_s,
        engine_parsing=settings.engine_parsing and store.parses_otlp,
    )
    return AppState(settings, store, metrics, writer, ingest, auth)
