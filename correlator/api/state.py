"""What the routes share: the store, the writer, the ingest use case, auth and metrics of one running app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from correlator.api.auth import TokenAuth
from correlator.correlate.health import HealthThresholds
from correlator.service.analysis import IncidentAnalyses
from correlator.service.deploys import Deploys, ImplicitDeployRules
from correlator.service.health import Health
from correlator.service.incidents import Incidents
from correlator.service.ingest import IngestWriter
from correlator.service.memory import MIB, MemoryGuard
from correlator.service.otlp_ingest import OtlpIngest
from correlator.service.own_metrics import OwnMetrics
from correlator.service.reconciler import Reconciler
from correlator.service.reports import Reports, load_owners
from correlator.service.webhooks import Webhooks
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
    deploys: Deploys
    incidents: Incidents
    webhooks: Webhooks
    reconciler: Reconciler
    health: Health
    analyses: IncidentAnalyses
    reports: Reports

    def close(self) -> None:
        """Flush what is queued, stop background work, then let go of the store."""
        self.writer.close()
        self.reconciler.stop()
        self.store.close()


def build_state(settings: Settings) -> AppState:
    """Open the store (refusing plainly when another process holds it), migrate it, start the writer."""
    auth = TokenAuth(settings.tokens())
    store = Store(StoreConfig(settings.clickhouse_dsn, settings.clickhouse_database))
    try:
        migrate(store, cluster=settings.clickhouse_cluster)
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
        max_wait_s=settings.queue_max_wait_s,
        memory=MemoryGuard(settings.memory_limit_mib * MIB),
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
    rules = ImplicitDeployRules(
        rollback_min_gap=timedelta(seconds=settings.deploys_rollback_min_gap_s),
        cover_before=timedelta(seconds=settings.deploys_cover_before_s),
        cover_after=timedelta(seconds=settings.deploys_cover_after_s),
    )
    deploys = Deploys(store, rules)
    incidents = Incidents(store)
    webhooks = Webhooks(store, deploys, incidents)
    thresholds = HealthThresholds(
        failing_error_ratio=settings.health_failing_error_ratio,
        degraded_error_ratio=settings.health_degraded_error_ratio,
        degraded_p95_factor=settings.health_degraded_p95_factor,
    )
    health = Health(store, deploys, thresholds)
    analyses = IncidentAnalyses(store, incidents)
    # In the background: telemetry becomes implicit deploys, then open incidents' analyses follow it.
    reconciler = Reconciler([deploys.reconcile, analyses.refresh], settings.deploys_reconcile_interval_s).start()
    reports = Reports(store, load_owners(settings.owners_file))
    metrics.watch_headline(reports.headline)
    return AppState(
        settings, store, metrics, writer, ingest, auth, deploys, incidents, webhooks, reconciler, health, analyses,
        reports,
    )  # fmt: skip
