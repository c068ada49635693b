"""The correlator's own Prometheus metrics, on a registry per app so several apps can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OwnMetrics:
    """Counters and histograms served on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "correlator_otlp_received", "OTLP records received, by signal", ["signal"], registry=self.registry
        )
        self.stored = Counter(
            "correlator_otlp_stored", "OTLP records stored, by signal", ["signal"], registry=self.registry
        )
        self.rejected = Counter(
            "correlator_otlp_rejected",
            "OTLP records or requests rejected, by signal and reason",
            ["signal", "reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "correlator_ingest_queue_depth", "Records waiting for the writer, by signal", ["signal"],
            registry=self.registry,
        )  # fmt: skip
        self.insert_seconds = Histogram(
            "correlator_store_insert_seconds",
            "Time of one batch insert, by table and path (engine: the engine parsed OTLP; python: rows mapped here)",
            ["table", "path"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_records = Histogram(
            "correlator_store_batch_records",
            "Records in one batch insert, by table and path",
            ["table", "path"],
            buckets=(1, 10, 100, 1000, 10_000, 100_000, 1_000_000),
            registry=self.registry,
        )
        self.webhooks = Counter(
            "correlator_webhook_deliveries",
            "Webhook deliveries, by source and outcome (created, updated, duplicate, ignored, refused)",
            ["source", "outcome"],
            registry=self.registry,
        )
