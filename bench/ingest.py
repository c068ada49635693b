"""End-to-end OTLP/HTTP ingest benchmark against a real `correlator serve`, with an engine-only baseline.

Run: .venv/bin/python -m bench.ingest [--spans 300000] [--clients 10] [--only NAME]

The server runs as its own process on a fresh data directory; this process is the client. It prints,
per scenario, records/s, request latency percentiles and the server's peak RSS; then, after the server
stopped, it opens the same store and times `INSERT INTO copy SELECT * FROM <table>` of the very rows that
were ingested: the engine-only ceiling. The ratio end-to-end / engine-only is the figure to watch. A second
baseline inserts the same rows into the same table of a freshly migrated database, whose views fire as on ingest:
what the schema itself costs the engine, parsing and flattening aside.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.payloads import logs_body, metrics_body, stamped, traces_body


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    table: str
    batch: int
    make: Callable[[int, int], bytes]
    content_type: str = "application/x-protobuf"
    gzip: bool = False


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    records: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _json_traces(batch: int, seed: int) -> bytes:
    """OTLP JSON of the same spans (hex ids, as the spec wants)."""
    message = ExportTraceServiceRequest.FromString(traces_body(batch, seed))
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _PeakSplit:
    """Samples the server's resident set every 20 ms: what it held at its highest, anonymous against file-backed
    (the engine's library is mapped from its file: most of the idle size is its pages)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                lines = Path(f"/proc/{self._pid}/status").read_text().splitlines()
            except OSError:
                return
            fields = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k.startswith("Rss")}
            if sum(fields.values()) > sum(self.peak.values()):
                self.peak = fields

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        parts = ", ".join(f"{k[3:].lower()} {v / 1024:.0f}" for k, v in self.peak.items() if v)
        return f"{sum(self.peak.values()) / 1024:.0f} MiB ({parts})" if self.peak else "not sampled"


_REQUEST_NUMBERS = itertools.count()


def _run(url: str, scenario: Scenario, total: int, clients: int) -> Result:
    distinct = 16
    bases = [scenario.make(scenario.batch, seed) for seed in range(distinct)]
    requests = max(total // scenario.batch, clients)
    # Every request's body differs, across scenarios too (payloads.stamped); gzip ones are compressed before the
    # clock starts.
    bodies = [stamped(bases[i % distinct], next(_REQUEST_NUMBERS)) for i in range(requests)]
    if scenario.gzip:
        bodies = [gzip.compress(body, 1) for body in bodies]
    headers = {"Content-Type": scenario.content_type}
    if scenario.gzip:
        headers["Content-Encoding"] = "gzip"
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            for index in counter:
                started = time.perf_counter()
                while True:
                    response = client.post(url + scenario.path, content=bodies[index], headers=headers)
                    if response.status_code == 200:
                        break
                    if response.status_code not in (429, 503):
                        raise RuntimeError(f"{scenario.name}: {response.status_code} {response.text[:200]}")
                    time.sleep(0.05)
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return Result(scenario, requests * scenario.batch, time.perf_counter() - started, latencies)


def _batch_figures(exposition: str) -> str:
    """Mean records and seconds per insert of the engine path, from the server's own histograms."""
    sums: dict[str, float] = {}
    for line in exposition.splitlines():
        for name in ("correlator_store_batch_records", "correlator_store_insert_seconds"):
            for suffix in ("_sum", "_count"):
                if line.startswith(name + suffix + "{") and 'path="engine"' in line:
                    sums[name + suffix] = sums.get(name + suffix, 0.0) + float(line.rsplit(" ", 1)[1])
    count = sums.get("correlator_store_batch_records_count", 0.0)
    if not count:
        return "none on the engine path"
    records = sums["correlator_store_batch_records_sum"] / count
    inserts = max(1.0, sums.get("correlator_store_insert_seconds_count", 0.0))
    seconds = sums.get("correlator_store_insert_seconds_sum", 0.0) / inserts
    return f"{count:.0f} inserts, mean {records:,.0f} records, mean {seconds:.2f} s"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _engine_only(dsn: str, tables: list[str]) -> dict[str, float]:
    """rows/s of INSERT ... SELECT of the stored rows into an identical table (indexes and all)."""
    from correlator.store import Store, StoreConfig

    store = Store(StoreConfig(dsn))
    rates: dict[str, float] = {}
    try:
        for table in tables:
            copy = f"bench_copy_{table}"
            store.command(f"DROP TABLE IF EXISTS otel.{copy}")
            store.command(f"CREATE TABLE otel.{copy} AS otel.{table}")
            rows = int(store.rows(f"SELECT count() FROM otel.{table}")[0][0])
            timings = []
            for _ in range(3):
                store.command(f"TRUNCATE TABLE otel.{copy}")
                started = time.perf_counter()
                store.command(f"INSERT INTO otel.{copy} SELECT * FROM otel.{table}")
                timings.append(time.perf_counter() - started)
            rates[table] = rows / statistics.median(timings)
    finally:
        store.close()
    return rates


def _engine_only_schema(dsn: str, tables: list[str]) -> dict[str, float]:
    """rows/s of INSERT ... SELECT of the stored rows into the same table of a freshly migrated database: the
    schema's own cost, its views firing (the trace-id lookup, the trace view's copies, the rollups), median of 3."""
    from correlator.store import Store, StoreConfig
    from correlator.store.migrate import migrate

    scratch = "bench_schema"
    store = Store(StoreConfig(dsn, scratch))
    rates: dict[str, float] = {}
    try:
        for table in tables:
            rows = int(store.rows(f"SELECT count() FROM otel.{table}")[0][0])
            timings = []
            for _ in range(3):
                store.command(f"DROP DATABASE IF EXISTS {scratch} SYNC")
                migrate(store)
                started = time.perf_counter()
                # The settings of the service's own inserts (native_insert.insert_settings).
                store.command(
                    f"INSERT INTO {scratch}.{table} SELECT * FROM otel.{table}"
                    " SETTINGS max_insert_threads = 2, parallel_view_processing = 1"
                )
                timings.append(time.perf_counter() - started)
            rates[table] = rows / statistics.median(timings)
        store.command(f"DROP DATABASE IF EXISTS {scratch} SYNC")
    finally:
        store.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=300_000, help="records per scenario")
    # A collector's exporter sends with 10 consumers by default (sending_queue.num_consumers).
    parser.add_argument("--clients", type=int, default=10, help="concurrent client connections")
    parser.add_argument(
        "--python-only", action="store_true", help="map every body in Python (CORRELATOR_ENGINE_PARSING=false)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--only", default="", help="run only the scenarios whose name contains this text")
    args = parser.parse_args()

    scenarios = [
        Scenario("traces protobuf x512", "/v1/traces", "otel_traces", 512, traces_body),
        Scenario("traces protobuf x8192", "/v1/traces", "otel_traces", 8192, traces_body),
        Scenario("traces protobuf+gzip x8192", "/v1/traces", "otel_traces", 8192, traces_body, gzip=True),
        Scenario("traces JSON x512", "/v1/traces", "otel_traces", 512, _json_traces, "application/json"),
        Scenario("logs protobuf x8192", "/v1/logs", "otel_logs", 8192, logs_body),
        Scenario("metrics protobuf x8192", "/v1/metrics", "otel_metrics_sum", 8192, metrics_body),
    ]
    scenarios = [s for s in scenarios if args.only in s.name]
    if not scenarios:
        parser.error(f"no scenario name contains {args.only!r}")
    workdir = Path(tempfile.mkdtemp(prefix="correlator-bench-"))
    data_dir = workdir / "data"
    port = _free_port()
    env = {**os.environ, "CORRELATOR_CLICKHOUSE_DSN": f"chdb://{data_dir}"}
    if args.python_only:
        env["CORRELATOR_ENGINE_PARSING"] = "false"
    server = subprocess.Popen(
        [sys.executable, "-m", "correlator", "serve", "--port", str(port), "--otlp-http-port", "0",
         "--otlp-grpc-port", "0", "--log-level", "warning"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        idle_rss = _rss_mib(server.pid)
        split = _PeakSplit(server.pid)
        path = "Python mapping only" if args.python_only else "engine-side parsing"
        print(
            f"server pid {server.pid} ({path}), idle RSS {idle_rss:.0f} MiB, {args.clients} clients, "
            f"{os.cpu_count()} cores"
        )
        print(f"{'scenario':30} {'records/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'peak RSS MiB':>13}")
        results = []
        for scenario in scenarios:
            total = args.spans if "JSON" not in scenario.name else args.spans // 3
            result = _run(url, scenario, total, args.clients)
            results.append(result)
            print(
                f"{scenario.name:30} {result.rate:11,.0f} {_percentile(result.latencies_ms, 0.5):8.1f} "
                f"{_percentile(result.latencies_ms, 0.95):8.1f} {_percentile(result.latencies_ms, 0.99):8.1f} "
                f"{_peak_rss_mib(server.pid):13.0f}",
                flush=True,
            )
        peak = _peak_rss_mib(server.pid)
        sampled = split.stop()
        batches = _batch_figures(httpx.get(url + "/metrics").text)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)

    print(f"server peak RSS over the run: {peak:.0f} MiB; sampled every 20 ms, at most {sampled}")
    print(f"writer batches (records per insert, insert time): {batches}")
    baseline = _engine_only(f"chdb://{data_dir}", ["otel_traces", "otel_logs", "otel_metrics_sum"])
    print("\nengine-only baseline (INSERT ... SELECT of the same rows, same table definition, median of 3):")
    for table, rate in baseline.items():
        print(f"  {table:20} {rate:11,.0f} rows/s")
    schema = _engine_only_schema(f"chdb://{data_dir}", list(baseline))
    print("\nthe same into the schema's tables, their views firing (a freshly migrated database, median of 3):")
    for table, rate in schema.items():
        print(f"  {table:20} {rate:11,.0f} rows/s")
    print(f"\nratio end-to-end / engine-only: {'bare table':>10} {'with views':>11}")
    for result in results:
        table = result.scenario.table
        print(f"  {result.scenario.name:30} {result.rate / baseline[table]:10.2f} {result.rate / schema[table]:11.2f}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
