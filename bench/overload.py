"""Overload: real OTLP exporters push three times the sustainable ingest rate at `correlator serve` for a minute.

Run: .venv/bin/python -m bench.overload [--seconds 60] [--factor 3] [--rate SPANS_PER_S] [--resend-s 60]
     [--json out.json]

1. Probe (skipped with --rate): the sustainable rate, measured as bench/ingest.py measures it (10 clients posting
   8192-span protobuf requests back to back, retrying 503s) against a server on a fresh store.
2. Overload: a second server on another fresh store. Sender processes (multiprocessing) each run a producer
   that makes batches at their share of factor x the sustainable rate into a bounded queue (a full queue drops
   the batch, as the SDK's BatchSpanProcessor drops spans) and exporter threads that take batches from it and
   call the OpenTelemetry SDK's `OTLPSpanExporter.export()` (OTLP/HTTP protobuf). The exporter is the real one:
   its HTTP session, its retries of 429/502/503/504 honouring Retry-After, its 10 s deadline per export. An
   export() that returns SUCCESS is an acknowledged batch of known size; one that fails is made again with the
   same batch until `--resend-s` after the producers stop, as a collector's retry_on_failure does (the server
   answers a resent body from its first write). The exporter's retries hide the answer
   to each attempt, so its requests.Session is a subclass that counts every answer (200, 503, ...) and every
   transport error: that gives the share of 429/503 answers.
3. After the senders stop, the server is stopped gracefully (SIGTERM: it writes what it queued) and this process
   opens the store and counts rows per batch (each batch carries a unique `bench.batch` resource attribute).
   Every acknowledged batch must be stored; a batch stored twice is a duplicate (an export retried after an
   attempt that was stored but answered too late, after the exporter's deadline); a batch stored without an
   acknowledgement is one whose last export() gave up while the server still wrote it.

Why the spans are encoded once: the SDK's encoder turns 8192 ReadableSpans into protobuf in about 1 s of CPU
(2.7 s on a busy 2-core machine), so encoding every batch would cap the senders far below the rate to test and
take the server's CPU. Each sender encodes its batches once with the SDK's own `encode_spans`, with a
fixed-width placeholder in the `bench.batch` attribute, and every export stamps the batch's key into a copy of
those bytes (the same length, so still valid protobuf). Everything from export() on is the SDK's code.

Memory: the server holds its resident memory under `CORRELATOR_MEMORY_LIMIT_MIB` by refusing requests (503) while
it is within a reserve of it (correlator/service/memory.py). The report prints the peak RSS (the kernel's VmHWM, and
psutil samples) against that configured limit, and the 503s by the bound that refused them (the server's
`correlator_ingest_refusals_total`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.payloads import stamped, traces_body

BATCH_KEY = "bench.batch"
PLACEHOLDER = "#" * 16
MIB = 1024 * 1024
# The server's settings under test, passed explicitly so the report can name them (these are the defaults).
SERVER_SETTINGS: dict[str, float] = {
    "CORRELATOR_QUEUE_MAX_RECORDS": 400_000,
    "CORRELATOR_BATCH_MAX_RECORDS": 100_000,
    "CORRELATOR_MAX_DECODING_BYTES": 16 * MIB,
    "CORRELATOR_QUEUE_MAX_WAIT_S": 3,
    "CORRELATOR_WRITE_TIMEOUT_S": 30,
    "CORRELATOR_MEMORY_LIMIT_MIB": 2048,
}
# The sustainable rate docs/benchmarks.md gives for 8192-span trace requests from 10 clients (with --no-probe).
DOCUMENTED_RATE = 42_745


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(300)


def start_server(data_dir: Path, log_path: Path, settings: dict[str, float] | None = None) -> ServerProcess:
    port = _free_port()
    env = {**os.environ, **{k: str(v) for k, v in (settings or SERVER_SETTINGS).items()}}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "correlator", "serve", "--dsn", f"chdb://{data_dir}", "--port", str(port),
             "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"correlator serve exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return ServerProcess(process, url, data_dir)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("correlator serve did not become ready")


# --- the probe: bench/ingest.py's traces protobuf x8192 scenario, for a fixed time -----------------------------


def probe(url: str, seconds: float, clients: int = 10, batch: int = 8192) -> tuple[float, float]:
    """Spans/s acknowledged by closed-loop clients (retrying 503s), and the share of 503s among the answers."""
    bodies = [traces_body(batch, seed) for seed in range(16)]
    headers = {"Content-Type": "application/x-protobuf"}
    acknowledged = Counter[str]()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        with httpx.Client(timeout=120) as client:
            sent = index
            while time.monotonic() < deadline:
                body = stamped(bodies[sent % len(bodies)], sent)  # no two alike: see payloads.stamped
                response = client.post(url + "/v1/traces", content=body, headers=headers)
                with lock:
                    acknowledged[str(response.status_code)] += 1
                if response.status_code == 200:
                    sent += clients
                elif response.status_code in (429, 503):
                    time.sleep(0.05)
                else:
                    raise RuntimeError(f"probe: {response.status_code} {response.text[:200]}")

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker, i) for i in range(clients)]:
            future.result()
    elapsed = time.monotonic() - started
    answers = sum(acknowledged.values())
    return acknowledged["200"] * batch / elapsed, (answers - acknowledged["200"]) / max(answers, 1)


# --- the senders: OTLPSpanExporter in several processes ---------------------------------------------------------


def encoded_batch(batch: int, seed: int) -> bytes:
    """`batch` spans like bench/payloads.py's, as ReadableSpans encoded by the SDK's own encoder, once."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    # The spans of bench/payloads.py (its attributes and times), made into SDK spans.
    template = ExportTraceServiceRequest.FromString(traces_body(batch, seed))
    resource_spans = template.resource_spans[0]
    resource_attributes: dict[str, Any] = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    resource = Resource({**resource_attributes, BATCH_KEY: PLACEHOLDER})
    scope = InstrumentationScope(resource_spans.scope_spans[0].scope.name, resource_spans.scope_spans[0].scope.version)
    spans = []
    for proto in resource_spans.scope_spans[0].spans:
        attributes = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in proto.attributes}
        context = SpanContext(int.from_bytes(proto.trace_id, "big"), int.from_bytes(proto.span_id, "big"), False)
        parent = (
            SpanContext(context.trace_id, int.from_bytes(proto.parent_span_id, "big"), False)
            if proto.parent_span_id
            else None
        )
        status = Status(StatusCode.ERROR, proto.status.message) if proto.status.code == 2 else Status(StatusCode.UNSET)
        spans.append(
            ReadableSpan(
                name=proto.name,
                context=SpanContext(context.trace_id, context.span_id, False, TraceFlags(1)),
                parent=parent,
                resource=resource,
                attributes=attributes,
                kind=SpanKind.SERVER if proto.kind == 2 else SpanKind.CLIENT,
                start_time=proto.start_time_unix_nano,
                end_time=proto.end_time_unix_nano,
                instrumentation_scope=scope,
                status=status,
            )
        )
    return bytes(encode_spans(spans).SerializePartialToString())


class StampedBatch(Sequence[Any]):
    """What export() receives: a batch of known size whose encoding is the SDK's, stamped with its key."""

    def __init__(self, encoded: bytes, size: int, key: str) -> None:
        self._encoded = encoded
        self._size = size
        self.key = key

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("a pre-encoded batch has no span objects")

    def SerializePartialToString(self) -> bytes:  # the protobuf method export() calls
        return self._encoded.replace(PLACEHOLDER.encode(), self.key.encode(), 1)


@dataclass
class SenderResult:
    produced: int = 0
    dropped_at_sender: int = 0
    left_in_queue: int = 0
    exports: int = 0
    resends: int = 0
    acknowledged_keys: list[str] = field(default_factory=list)
    failed_keys: list[str] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    export_seconds: list[float] = field(default_factory=list)


def _sender(
    index: int,
    url: str,
    encoded: list[bytes],
    batch: int,
    rate: float,
    seconds: float,
    threads: int,
    queue_batches: int,
    results: Any,
    resend_s: float,
) -> None:
    """One sender process: a producer at `rate` spans/s into a bounded queue, `threads` exporters draining it; an
    export() that fails is made again with the same batch, as a collector's `retry_on_failure` does, until
    `resend_s` after the producer stopped (0: never, the SDK's own retries alone)."""
    import logging

    import requests
    from opentelemetry.exporter.otlp.proto.http import trace_exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    # The batch serializes itself: see the module docstring (everything after encoding is the SDK's).
    trace_exporter.encode_spans = lambda spans: spans  # type: ignore[assignment,return-value]
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    class CountingSession(requests.Session):
        """The exporter's session, counting every attempt's answer (its retries are otherwise invisible)."""

        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            try:
                response = super().request(*args, **kwargs)
            except Exception as e:
                with lock:
                    answers[type(e).__name__] += 1
                raise
            with lock:
                answers[str(response.status_code)] += 1
            return response

    result = SenderResult()
    work: queue.Queue[StampedBatch] = queue.Queue(queue_batches)
    stop = threading.Event()
    stopped_at = [float("inf")]
    rng = random.Random(index)

    def produce() -> None:
        started = time.monotonic()
        made = 0
        while (now := time.monotonic()) < started + seconds:
            due = int((now - started) * rate / batch) + 1
            while made < due:
                key = f"{index:04d}{made:012d}"
                made += 1
                with lock:
                    result.produced += 1
                try:
                    work.put_nowait(StampedBatch(encoded[rng.randrange(len(encoded))], batch, key))
                except queue.Full:
                    with lock:
                        result.dropped_at_sender += 1
            time.sleep(min(0.01, batch / rate))
        stopped_at[0] = time.monotonic()
        stop.set()

    def export() -> None:
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", session=CountingSession(), timeout=10)
        again: StampedBatch | None = None
        while True:
            if again is not None:
                item = again
            elif stop.is_set():
                break
            else:
                try:
                    item = work.get(timeout=0.1)
                except queue.Empty:
                    continue
            began = time.monotonic()
            outcome = exporter.export(item)
            with lock:
                result.exports += 1
                again = None
                if outcome is SpanExportResult.SUCCESS:
                    result.acknowledged_keys.append(item.key)
                    result.export_seconds.append(time.monotonic() - began)
                elif resend_s > 0 and not (stop.is_set() and time.monotonic() > stopped_at[0] + resend_s):
                    result.resends += 1
                    again = item
                else:
                    result.failed_keys.append(item.key)
        exporter.shutdown()

    workers = [threading.Thread(target=export) for _ in range(threads)]
    for worker in workers:
        worker.start()
    produce()
    for worker in workers:
        worker.join()
    result.left_in_queue = work.qsize()
    result.answers = dict(answers)
    results.put(asdict(result))


# --- the run ----------------------------------------------------------------------------------------------------


@dataclass
class OverloadReport:
    sustainable_rate: float
    rate_source: str
    factor: float
    target_rate: float
    seconds: float
    batch: int
    senders: int
    exporters: int
    produced_spans: int
    dropped_at_sender_spans: int
    offered_rate: float
    exports: int
    resend_s: float
    resends: int
    acknowledged_spans: int
    failed_spans: int
    acknowledged_rate: float
    stored_spans: int
    stored_rate: float
    lost_acknowledged_batches: int
    duplicate_batches: int
    stored_unacknowledged_batches: int
    answers: dict[str, int]
    refusals: dict[str, int]
    overloaded_share: float
    export_p50_s: float
    export_p99_s: float
    idle_rss_mib: float
    peak_rss_mib: float
    peak_rss_sampled_mib: float
    probe_peak_rss_mib: float
    memory_limit_mib: float
    settings: dict[str, float]
    cores: int
    load_average: float

    def table(self) -> str:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        rss = f"{self.idle_rss_mib:,.0f} MiB / {self.peak_rss_mib:,.0f} MiB"
        rows = [
            ("sustainable rate (spans/s)", f"{self.sustainable_rate:,.0f} ({self.rate_source})"),
            (
                "target (factor x sustainable)",
                f"{self.target_rate:,.0f}/s ({self.factor:g}x), {self.seconds:.0f} s",
            ),
            ("senders", f"{self.senders} processes x {self.exporters} OTLPSpanExporters, {self.batch} spans/export"),
            ("offered (made by the senders)", f"{self.produced_spans:,} spans = {self.offered_rate:,.0f}/s"),
            ("dropped by full sender queues", f"{self.dropped_at_sender_spans:,} spans"),
            (
                "failed exports made again",
                f"{self.resends:,} (same batch, until {self.resend_s:g} s after the senders stop)"
                if self.resend_s
                else "none (the SDK's own retries only)",
            ),
            ("export() SUCCESS = acknowledged", f"{self.acknowledged_spans:,} spans = {self.acknowledged_rate:,.0f}/s"),
            ("export() FAILURE (gave up)", f"{self.failed_spans:,} spans"),
            ("stored (after graceful stop)", f"{self.stored_spans:,} spans = {self.stored_rate:,.0f}/s"),
            ("acknowledged batches missing", f"{self.lost_acknowledged_batches}"),
            ("batches stored twice (retries)", f"{self.duplicate_batches}"),
            ("stored, not acknowledged", f"{self.stored_unacknowledged_batches} batches"),
            ("HTTP answers to all attempts", answers),
            ("429/503 share of answers", f"{self.overloaded_share:.1%}"),
            ("503s by refusing bound", ", ".join(f"{k}: {v}" for k, v in sorted(self.refusals.items())) or "none"),
            ("export() latency p50 / p99", f"{self.export_p50_s:.1f} s / {self.export_p99_s:.1f} s"),
            ("server RSS idle / peak (VmHWM)", f"{rss} (psutil samples: {self.peak_rss_sampled_mib:,.0f} MiB)"),
            ("peak RSS at sustainable load", f"{self.probe_peak_rss_mib:,.0f} MiB (the probe's server)"),
            ("memory limit (configured)", f"{self.memory_limit_mib:,.0f} MiB"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:{width}}  {value}" for name, value in rows)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _refusals(url: str) -> dict[str, int]:
    """The server's 503s by the bound that refused (its /metrics)."""
    counts: dict[str, int] = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("correlator_ingest_refusals_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('"')[1]] = int(float(value))
    return counts


def _count_batches(data_dir: Path) -> dict[str, int]:
    from correlator.store import Store, StoreConfig

    store = Store(StoreConfig(f"chdb://{data_dir}"))
    try:
        rows = store.rows(
            "SELECT ResourceAttributes[{key:String}] AS batch, count() FROM otel.otel_traces GROUP BY batch",
            {"key": BATCH_KEY},
        )
    finally:
        store.close()
    return {str(batch): int(n) for batch, n in rows}


def run(
    workdir: Path,
    *,
    seconds: float = 60,
    factor: float = 3,
    rate: float | None = None,
    probe_seconds: float = 20,
    batch: int = 8192,
    senders: int = 4,
    exporters: int = 16,
    rate_source: str = "given",
    queue_max_records: int | None = None,
    queue_max_wait_s: float | None = None,
    memory_limit_mib: int | None = None,
    resend_s: float = 60,
    probe_peak_mib: float = float("nan"),
    log: Any = print,
) -> OverloadReport:
    """Probe (unless `rate` is given, with the probe's peak RSS if known), then the overload run."""
    probe_peak = probe_peak_mib
    if rate is None:
        server = start_server(workdir / "probe-data", workdir / "probe.log")
        try:
            probe(server.url, 5)  # warm up: the first engine-side inserts plan their SQL
            rate, probe_refused = probe(server.url, probe_seconds)
            probe_peak = _peak_rss_mib(server.process.pid)
        finally:
            server.stop()
        source = f"probe: 10 clients x {batch} spans for {probe_seconds:g} s, {probe_refused:.0%} 503s"
        log(f"sustainable rate: {rate:,.0f} spans/s ({source})")
    else:
        source = rate_source
    target = rate * factor

    log(f"encoding {senders} batches of {batch} spans with the SDK's encoder ...")
    encoded = [encoded_batch(batch, seed) for seed in range(senders)]
    settings = dict(SERVER_SETTINGS)
    if queue_max_records is not None:
        settings["CORRELATOR_QUEUE_MAX_RECORDS"] = queue_max_records
    if queue_max_wait_s is not None:
        settings["CORRELATOR_QUEUE_MAX_WAIT_S"] = queue_max_wait_s
    if memory_limit_mib is not None:
        settings["CORRELATOR_MEMORY_LIMIT_MIB"] = memory_limit_mib
    server = start_server(workdir / "data", workdir / "overload.log", settings)
    process = psutil.Process(server.process.pid)
    idle_rss = process.memory_info().rss / MIB
    sampled_peak = idle_rss
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    log(f"overload: {target:,.0f} spans/s for {seconds:g} s from {senders} processes x {exporters} exporters")
    processes = [
        context.Process(
            target=_sender,
            args=(
                i,
                server.url,
                encoded,
                batch,
                target / senders,
                seconds,
                exporters,
                exporters * 2,
                results,
                resend_s,
            ),
        )
        for i in range(senders)
    ]
    started = time.monotonic()
    for sender in processes:
        sender.start()
    collected: list[dict[str, Any]] = []
    while len(collected) < senders:
        with contextlib.suppress(queue.Empty):
            collected.append(results.get(timeout=0.2))
        sampled_peak = max(sampled_peak, process.memory_info().rss / MIB)
    elapsed = time.monotonic() - started
    for sender in processes:
        sender.join(60)
    peak = _peak_rss_mib(server.process.pid)
    refusals = _refusals(server.url)
    assert server.stop() == 0, "the server did not stop cleanly"
    stored = _count_batches(server.data_dir)

    acknowledged = [key for r in collected for key in r["acknowledged_keys"]]
    failed = [key for r in collected for key in r["failed_keys"]]
    answers: Counter[str] = Counter()
    for r in collected:
        answers.update(r["answers"])
    latencies = sorted(s for r in collected for s in r["export_seconds"])
    produced = sum(r["produced"] for r in collected) * batch
    stored_spans = sum(n for key, n in stored.items() if key)
    refused = answers["429"] + answers["503"]
    report = OverloadReport(
        sustainable_rate=rate,
        rate_source=source,
        factor=factor,
        target_rate=target,
        seconds=seconds,
        batch=batch,
        senders=senders,
        exporters=exporters,
        produced_spans=produced,
        dropped_at_sender_spans=sum(r["dropped_at_sender"] for r in collected) * batch,
        offered_rate=produced / seconds,
        exports=sum(r["exports"] for r in collected),
        resend_s=resend_s,
        resends=sum(r["resends"] for r in collected),
        acknowledged_spans=len(acknowledged) * batch,
        failed_spans=len(failed) * batch,
        acknowledged_rate=len(acknowledged) * batch / elapsed,
        stored_spans=stored_spans,
        stored_rate=stored_spans / elapsed,
        lost_acknowledged_batches=sum(1 for key in acknowledged if stored.get(key, 0) < batch),
        duplicate_batches=sum(n // batch - 1 for key, n in stored.items() if key and n > batch),
        stored_unacknowledged_batches=len(set(stored) - set(acknowledged) - {""}),
        answers=dict(answers),
        refusals=refusals,
        overloaded_share=refused / max(sum(answers.values()), 1),
        export_p50_s=statistics.median(latencies) if latencies else float("nan"),
        export_p99_s=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
        idle_rss_mib=idle_rss,
        peak_rss_mib=peak,
        peak_rss_sampled_mib=sampled_peak,
        probe_peak_rss_mib=probe_peak,
        memory_limit_mib=settings["CORRELATOR_MEMORY_LIMIT_MIB"],
        settings=settings,
        cores=os.cpu_count() or 0,
        load_average=os.getloadavg()[0],
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="how long the senders push")
    parser.add_argument("--factor", type=float, default=3, help="multiple of the sustainable rate to offer")
    parser.add_argument("--rate", type=float, help="the sustainable rate in spans/s (skips the probe)")
    parser.add_argument(
        "--no-probe", action="store_true", help=f"take the documented rate ({DOCUMENTED_RATE:,} spans/s)"
    )
    parser.add_argument("--probe-seconds", type=float, default=20)
    parser.add_argument("--batch", type=int, default=8192, help="spans per export")
    parser.add_argument("--senders", type=int, default=4, help="sender processes")
    parser.add_argument("--exporters", type=int, default=16, help="exporter threads per sender process")
    parser.add_argument(
        "--queue-max-records", type=int, help="the server's CORRELATOR_QUEUE_MAX_RECORDS (default: its default)"
    )
    parser.add_argument(
        "--queue-max-wait-s", type=float, help="the server's CORRELATOR_QUEUE_MAX_WAIT_S (default: its default)"
    )
    parser.add_argument(
        "--memory-limit-mib", type=int, help="the server's CORRELATOR_MEMORY_LIMIT_MIB (default: its default)"
    )
    parser.add_argument(
        "--resend-s",
        type=float,
        default=60,
        help="make a failed export again with the same batch until this long after the senders stop, as a"
        " collector's retry_on_failure does (0: never; the SDK's own retries alone)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rate = float(DOCUMENTED_RATE) if args.no_probe else args.rate
    source = "docs/benchmarks.md" if args.no_probe else "--rate"
    with tempfile.TemporaryDirectory(prefix="correlator-overload-") as workdir:
        report = run(
            Path(workdir),
            seconds=args.seconds,
            factor=args.factor,
            rate=rate,
            probe_seconds=args.probe_seconds,
            batch=args.batch,
            senders=args.senders,
            exporters=args.exporters,
            rate_source=source,
            queue_max_records=args.queue_max_records,
            queue_max_wait_s=args.queue_max_wait_s,
            memory_limit_mib=args.memory_limit_mib,
            resend_s=args.resend_s,
        )
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    if report.lost_acknowledged_batches:
        sys.exit(f"{report.lost_acknowledged_batches} acknowledged batches are missing from the store")


if __name__ == "__main__":
    main()
