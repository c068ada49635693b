"""The committed OpenAPI document is the living contract: it must be what the code generates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from correlator.api.openapi import openapi_document
from correlator.api.server import Server
from correlator.store.migrate import LATEST_VERSION
from tests.processes import correlator_command

ROOT = Path(__file__).resolve().parent.parent


def test_committed_openapi_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == openapi_document(), "docs/openapi.json is stale: run `correlator openapi > docs/openapi.json`"


def test_openapi_lists_the_otlp_and_ops_routes() -> None:
    paths = openapi_document()["paths"]
    for path in ("/v1/traces", "/v1/logs", "/v1/metrics", "/healthz", "/readyz", "/metrics", "/api/v1/store"):
        assert path in paths


def test_cli_status_is_an_http_client_of_the_server(server: Server) -> None:
    result = subprocess.run(
        correlator_command("status", "--url", server.url(), "--json"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == LATEST_VERSION
    assert {t["table"] for t in document["tables"]} >= {"otel_traces", "otel_logs", "otel_metrics_sum"}


def test_cli_reports_an_unreachable_server_plainly() -> None:
    result = subprocess.run(
        correlator_command("status", "--url", "http://127.0.0.1:9"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "cannot reach the correlator at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_errors_use_the_error_shape(server: Server) -> None:
    import httpx

    response = httpx.get(server.url() + "/api/v1/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"type": "not_found", "message": "Not Found"}}
    wrong_method = httpx.delete(server.url() + "/api/v1/store")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "method_not_allowed"
