"""The correlator's own Prometheus metrics, on a registry per app so several apps can live in one process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from correlator.errors import CorrelatorError

log = logging.getLogger(__name__)


class HeadlineCollector(Collector):
    """Open incidents, MTTR and change failure rate over 30 days, computed at scrape time (cached upstream)."""

    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self._figures()
        except CorrelatorError as e:
            log.warning("headline metrics unavailable: %s", e.message)
            return
        active = GaugeMetricFamily(
            "correlator_incidents_active",
            "Unresolved incidents, by service and severity",
            labels=["service", "severity"],
        )
        for (service, severity), count in sorted(figures["open_incidents"].items()):
            active.add_metric([service, severity], count)
        yield active
        mttr = GaugeMetricFamily(
            "correlator_mttr_seconds", "Mean time to resolve of incidents opened in the window", labels=["window"]
        )
        if figures["mttr_s"] is not None:
            mttr.add_metric(["30d"], figures["mttr_s"])
        yield mttr
        failure = GaugeMetricFamily(
            "correlator_change_failure_ratio",
            "Failed deploys over counted deploys in the window, by environment",
            labels=["window", "environment"],
        )
        for environment, rate in sorted(figures["change_failure_rate"].items()):
            if rate is not None:
                failure.add_metric(["30d", environment], rate)
        yield failure


class OwnMetrics:
    """Counters and histograms served on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU seconds, open files
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
        self.resent = Counter(
            "correlator_otlp_resent_requests",
            "OTLP requests identical to one queued or stored in the last 10 minutes (an exporter's retry after a"
            " timeout), answered from that one's write instead of writing again, by signal",
            ["signal"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "correlator_ingest_refusals",
            "OTLP requests answered 503 (retry later), by the bound that refused them: queue_records, queue_wait,"
            " memory, decoding or stopping",
            ["bound"],
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

    def watch_headline(self, figures: Callable[[], dict[str, Any]]) -> None:
        """Serve the reports' headline figures as gauges on /metrics."""
        self.registry.register(HeadlineCollector(figures))
