"""The real otelcol-correlator for tests: finding the binary, validating configs, running it on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "collector_config"
DEFAULT_BINARY = ROOT / ".collector" / "bin" / "otelcol-correlator"

T = TypeVar("T")


def collector_binary() -> Path:
    """The binary under test (CORRELATOR_OTELCOL, else the one scripts/build-collector makes).

    Missing, the test skips, except under CI, where a missing collector is a failure: CI builds it first.
    """
    configured = os.environ.get("CORRELATOR_OTELCOL")
    path = Path(configured) if configured else DEFAULT_BINARY
    if not path.is_absolute():
        path = ROOT / path
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"otelcol-correlator is not built at {path}: run scripts/build-collector (it needs Go)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; under CI the collector tests must run, not skip")
    pytest.skip(reason)


def listen_env() -> dict[str, str]:
    """Free ports for everything a shipped config listens on, so tests never touch 4317, 4318, 13133 or 8888."""
    return {
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{free_port()}",
        "OTELCOL_METRICS_PORT": str(free_port()),
    }


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without settings the configs read, plus the overrides."""
    read_by_configs = ("CORRELATOR_URL", "CORRELATOR_TOKEN", "CLICKHOUSE_", "OTELCOL_", "K8S_NODE_NAME", "KUBECONFIG")
    env = {key: value for key, value in os.environ.items() if not key.startswith(read_by_configs)}
    env.update(overrides)
    return env


def run_collector_command(binary: Path, *args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """One short collector command (validate, print-config), its output captured."""
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, env=child_env(env), check=False
    )


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """A collector config file; JSON is YAML, so the collector reads it as is."""
    path.write_text(json.dumps(config, indent=2))
    return path


@dataclass
class RunningCollector:
    """A started collector child process with its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM (the collector drains its pipelines), SIGKILL if it hangs; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout_s)


@contextmanager
def running_collector(binary: Path, config: Path, env: Mapping[str, str], log_dir: Path) -> Iterator[RunningCollector]:
    """Run the collector until the block ends; ready once its health_check extension answers 200."""
    full_env = child_env(env)
    log_path = log_dir / f"otelcol-{config.stem}-{free_port()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=full_env
        )
    collector = RunningCollector(process, log_path, full_env)
    try:
        health = f"http://{env['OTELCOL_HEALTH_ENDPOINT']}/"

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the collector exited with {process.returncode}:\n{collector.log()}")
            try:
                return httpx.get(health, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, what="the collector's health check", timeout_s=60, log=collector.log)
        yield collector
    finally:
        collector.stop()


def wait_for(probe: Callable[[], T], *, what: str, timeout_s: float = 60, log: Callable[[], str] | None = None) -> T:
    """Poll until probe returns something truthy; fail naming `what` (and the collector's log) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n--- collector log ---\n{log()}" if log else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(0.25)


class _ExpositionHandler(BaseHTTPRequestHandler):
    """Serves fixed Prometheus exposition texts by path, as a sidecar's metrics port does."""

    pages: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every second would flood the test output."""


class _IPv6HTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def exposition_server(pages: Mapping[str, str], host: str = "127.0.0.1") -> Iterator[str]:
    """An HTTP server on a free loopback port serving {path: exposition text}; yields its address as a
    Prometheus target (`host:port`, `[host]:port` for IPv6)."""
    handler = type("Handler", (_ExpositionHandler,), {"pages": dict(pages)})
    ipv6 = ":" in host
    httpd = (_IPv6HTTPServer if ipv6 else ThreadingHTTPServer)((host, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        yield f"[{host}]:{port}" if ipv6 else f"{host}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def escape_dollars(value: Any) -> Any:
    """Config taken from print-config, made fit to be read again: the collector expands `$`, `$$` is a literal."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape_dollars(item) for item in value]
    if isinstance(value, dict):
        return {key: escape_dollars(item) for key, item in value.items()}
    return value


# A service configured with correlator.sdk, as its own process: OpenTelemetry's providers are process-global.
# argv: endpoint, service name. Prints the ids of the span it logged in.
SDK_APP = """
import json, logging, sys
from opentelemetry import metrics, trace
from correlator.sdk import configure

endpoint, service = sys.argv[1], sys.argv[2]
telemetry = configure(
    service_name=service, service_version="1.2.3", deployment_id="d-1", environment="staging",
    endpoint=endpoint, instrument=False,
)
orders = metrics.get_meter("checkout.app").create_counter("orders_placed", unit="{order}")
with trace.get_tracer("checkout.app").start_as_current_span("POST /orders") as span:
    logging.getLogger("checkout").warning("order placed")
    orders.add(42, {"payment.method": "card"})
context = span.get_span_context()
telemetry.shutdown()
print(json.dumps({"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}))
"""
