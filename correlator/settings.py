"""One settings object for the whole service: argument > CORRELATOR_* environment variable > default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".correlator/data")


def default_dsn() -> str:
    """The embedded store in ./.correlator/data, as an absolute chdb:// DSN."""
    return f"chdb://{DEFAULT_DATA_DIR.resolve()}"


class Settings(BaseSettings):
    """Every knob of `correlator serve`; environment variables are CORRELATOR_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="CORRELATOR_", extra="ignore")

    clickhouse_dsn: str = Field(default_factory=default_dsn)
    clickhouse_database: str = "otel"
    bind: str = "127.0.0.1"
    http_port: int = 8080
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    api_tokens: str = ""
    # Bodies are refused above this size after decompression (OTLP spec: 413).
    max_body_bytes: int = 64 * 1024 * 1024
    # Compressed bodies being decoded at once; beyond it requests get 503 (the queue bounds what follows).
    max_decoding_bytes: int = 256 * 1024 * 1024
    # The writer's bounds: a batch closes at this many records; the queue refuses work beyond its limit.
    batch_max_records: int = 100_000
    queue_max_records: int = 400_000
    # How long a request may wait for its records to be stored before the writer is declared stuck.
    write_timeout_s: float = 30.0
    retry_after_s: int = 1
    # Let the embedded engine parse OTLP protobuf itself (off: every body is mapped in Python).
    engine_parsing: bool = True
    # Batches with fewer records than this (metrics: four times this) are mapped in Python: the engine's fixed
    # cost per insert (planning its flattening SQL, ~0.4 s here, more for metrics) outweighs its speed below it.
    engine_parsing_min_records: int = 8192

    @field_validator("http_port", "otlp_http_port", "otlp_grpc_port")
    @classmethod
    def _port_range(cls, port: int) -> int:
        if not 0 <= port <= 65535:
            raise ValueError(f"expected a port from 0 to 65535, got {port}")
        return port

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
