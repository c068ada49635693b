"""One settings object for the whole service: argument > CORRELATOR_* environment variable > default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from correlator.events.options import parse_service_labels, parse_service_map

DEFAULT_DATA_DIR = Path(".correlator/data")


def default_dsn() -> str:
    """The embedded store in ./.correlator/data, as an absolute chdb:// DSN."""
    return f"chdb://{DEFAULT_DATA_DIR.resolve()}"


class Settings(BaseSettings):
    """Every knob of `correlator serve`; environment variables are CORRELATOR_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CORRELATOR_", extra="ignore")

    clickhouse_dsn: str = Field(default_factory=default_dsn)
    clickhouse_database: str = "otel"
    # A ClickHouse cluster (server DSN only): migrations create local replicated tables ON CLUSTER behind
    # Distributed tables under the usual names (docs/cluster.md). Empty: one node.
    clickhouse_cluster: str = ""
    bind: str = "127.0.0.1"
    http_port: int = 8080
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    api_tokens: str = ""
    # Bodies are refused above this size after decompression (OTLP spec: 413).
    max_body_bytes: int = 64 * 1024 * 1024
    # Compressed bodies being decoded or waiting to be (two at a time); beyond it requests get 503 (the queue bounds
    # what follows).
    max_decoding_bytes: int = 16 * 1024 * 1024
    # The writer's bounds: a batch closes at this many records; the queue refuses work beyond its limit.
    batch_max_records: int = 100_000
    queue_max_records: int = 400_000
    # ... and refuses work it expects to store later than this (queued records over the measured write rate):
    # under common exporter deadlines (10 s in the OpenTelemetry SDKs), so what it admits is stored in time.
    queue_max_wait_s: float = 3.0
    # The resident memory the server stays under: above its high-water mark (the limit less RESERVE_BYTES of
    # service/memory.py, or half the limit) OTLP requests get 503 until inserts have freed memory. 0: no limit.
    memory_limit_mib: int = 2048
    # How long a request may wait for its records to be stored before the writer is declared stuck.
    write_timeout_s: float = 30.0
    retry_after_s: int = 1
    # Let the embedded engine parse OTLP protobuf itself (off: every body is mapped in Python).
    engine_parsing: bool = True
    # Batches with fewer records than this (metrics: four times this) are mapped in Python: the engine's fixed
    # cost per insert (planning its flattening SQL, ~0.4 s here, more for metrics) outweighs its speed below it.
    engine_parsing_min_records: int = 8192
    # Webhook proofs (API.md, Auth): with a secret set, a delivery may prove itself instead of a write token.
    webhook_github_secret: str = ""
    webhook_gitlab_token: str = ""
    webhook_pagerduty_secret: str = ""
    webhook_flux_secret: str = ""
    # Alert labels that name the service, first present wins.
    alert_service_labels: str = "service,service_name,app,job"
    # Repository, application or mesh names to service names where they differ: `repo-name=service,...`.
    service_map: str = ""
    # Webhook bodies above this size are refused (413).
    max_webhook_bytes: int = 4 * 1024 * 1024
    # Service to team for reports: a JSON object or `service: team` lines (else teams come from service.namespace).
    owners_file: str = ""
    # The longest window a read may ask for.
    max_window_days: int = 90
    # Implicit deploys: a version seen again after another took over for this long is a new run (a rollback);
    # an explicit deploy covers a run when it started up to `cover_before` ahead of or `cover_after` past it.
    deploys_rollback_min_gap_s: float = 300.0
    deploys_cover_before_s: float = 7200.0
    deploys_cover_after_s: float = 600.0
    # Service health status (API.md): failing at or above this error ratio, degraded at or above the next, or
    # when p95 exceeds its own 24-hour baseline by this factor.
    health_failing_error_ratio: float = 0.05
    health_degraded_error_ratio: float = 0.01
    health_degraded_p95_factor: float = 2.0
    # How often telemetry is turned into implicit deploys in the background (reads also do it first).
    deploys_reconcile_interval_s: float = 10.0

    @field_validator("http_port", "otlp_http_port", "otlp_grpc_port")
    @classmethod
    def _port_range(cls, port: int) -> int:
        if not 0 <= port <= 65535:
            raise ValueError(f"expected a port from 0 to 65535, got {port}")
        return port

    @field_validator("service_map")
    @classmethod
    def _service_map_syntax(cls, spec: str) -> str:
        parse_service_map(spec)
        return spec

    def service_names(self) -> dict[str, str]:
        """The service map, outside name to service name."""
        return parse_service_map(self.service_map)

    def alert_labels(self) -> tuple[str, ...]:
        """The alert labels that name the service, in order."""
        return parse_service_labels(self.alert_service_labels)

    def tokens(self) -> dict[str, str]:
        """The configured bearer tokens, token to scope (`read` or `write`)."""
        return parse_tokens(self.api_tokens)


def parse_tokens(spec: str) -> dict[str, str]:
    """Parse `token:scope,token:scope`; scope is `read` or `write` (write implies read)."""
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, sep, scope = item.rpartition(":")
        if not sep or not token or scope not in ("read", "write"):
            raise ValueError(f"expected CORRELATOR_API_TOKENS items like 'secret:read' or 'secret:write', got {item!r}")
        tokens[token] = scope
    return tokens


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the overrides that are not None (command-line flags) winning."""
    return Settings(**{name: value for name, value in overrides.items() if value is not None})
