"""Settings parse with messages that say what was expected; DSNs never leak passwords into messages."""

from __future__ import annotations

import pytest

from correlator.errors import BadRequest
from correlator.settings import Settings, load_settings, parse_tokens
from correlator.store import StoreConfig, quote_identifier


def test_tokens_parse_scopes() -> None:
    assert parse_tokens("a:read, b:write,,") == {"a": "read", "b": "write"}
    assert parse_tokens("") == {}
    assert parse_tokens("with:colon:write") == {"with:colon": "write"}


@pytest.mark.parametrize("spec", ["nocolon", "x:admin", ":read"])
def test_bad_tokens_are_named(spec: str) -> None:
    with pytest.raises(ValueError, match="expected CORRELATOR_API_TOKENS items like"):
        parse_tokens(spec)


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRELATOR_HTTP_PORT", "9999")
    monkeypatch.setenv("CORRELATOR_BIND", "0.0.0.0")
    assert Settings().http_port == 9999
    settings = load_settings(http_port=7000, bind=None)
    assert settings.http_port == 7000
    assert settings.bind == "0.0.0.0"


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CORRELATOR_BIND", "CORRELATOR_API_TOKENS", "CORRELATOR_CLICKHOUSE_DSN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.bind == "127.0.0.1"
    assert settings.clickhouse_dsn.startswith("chdb:///")
    assert settings.clickhouse_dsn.endswith(".correlator/data")
    assert (settings.http_port, settings.otlp_http_port, settings.otlp_grpc_port) == (8080, 4318, 4317)
    assert settings.max_body_bytes == 64 * 1024 * 1024


def test_port_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a port from 0 to 65535, got 70000"):
        Settings(http_port=70000)


def test_server_dsn_is_described_without_password() -> None:
    config = StoreConfig("https://alice:s3cret@ch.example:8443/otel")
    assert config.embedded_dir is None
    assert config.describe() == "https://alice@ch.example:8443/otel"


def test_relative_embedded_path_is_refused() -> None:
    with pytest.raises(BadRequest, match="expected an absolute path"):
        _ = StoreConfig("chdb://relative/dir").embedded_dir


@pytest.mark.parametrize("name", ["otel", "otel_traces", "db.table_1"])
def test_identifiers_are_quoted(name: str) -> None:
    assert quote_identifier(name) == f"`{name}`"


@pytest.mark.parametrize("name", ["a`b", "x; DROP TABLE y", "", "1abc", "a b"])
def test_hostile_identifiers_are_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        quote_identifier(name)
