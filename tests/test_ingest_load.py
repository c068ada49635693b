"""A full write queue answers 503 + Retry-After (gRPC: UNAVAILABLE + RetryInfo); exporters retry; nothing is lost.
The writer parses the next batch while the previous one is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from correlator.api.server import Server
from correlator.errors import Overloaded
from correlator.otlp.decode import Signal
from correlator.service.ingest import IngestWriter
from correlator.service.own_metrics import OwnMetrics
from correlator.store import Store
from correlator.store.native_insert import STAGE_DATABASE, NativeInsertResult, PreparedInsert
from tests.conftest import query, start_server
from tests.factories import span, traces_request
from tests.ingest_support import PROTOBUF, count_spans, mapped_traces, post_until_refused, traces_body


@pytest.fixture(scope="module")
def tight(data_dir: Path) -> Iterator[Server]:
    """A server whose write queue holds about two requests (the wait bound off: this is about the records bound)."""
    running = start_server(data_dir, queue_max_records=1_000, batch_max_records=1_000, queue_max_wait_s=0)
    yield running
    running.stop()


def test_full_queue_answers_503_with_retry_after_and_keeps_what_it_acknowledged(
    tight: Server, service_name: str
) -> None:
    with httpx.Client(timeout=60) as client:
        acknowledged, refused = post_until_refused(client, tight, service_name)
    assert refused, "six concurrent requests never filled a queue of 1000 records"
    assert {r.status_code for r in refused} == {503}
    assert refused[0].headers["Retry-After"] == "1"
    status = status_pb2.Status.FromString(refused[0].content)
    assert status.code == 14  # UNAVAILABLE
    assert "write queue is full" in status.message
    assert count_spans(tight, service_name) == acknowledged


def test_grpc_full_queue_is_unavailable_with_retry_info(tight: Server, service_name: str) -> None:
    errors: list[grpc.RpcError] = []
    lock = threading.Lock()
    with grpc.insecure_channel(f"127.0.0.1:{tight.ports['otlp_grpc']}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        requests = [
            traces_request(service_name, [span(span_id=(i * 1000 + j + 1).to_bytes(8, "big")) for j in range(800)])
            for i in range(6)
        ]

        def export(request: object) -> None:
            try:
                stub.Export(request, timeout=60)
            except grpc.RpcError as e:
                with lock:
                    errors.append(e)

        for _ in range(20):
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(export, requests))
            if errors:
                break
    assert errors, "six concurrent exports never filled a queue of 1000 records"
    error = errors[0]
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 1


def test_real_exporters_retry_until_everything_is_stored(tight: Server, service_name: str) -> None:
    per_thread, threads = 2_000, 4

    def produce(index: int) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=tight.url("otlp_http") + "/v1/traces", timeout=30),
                max_export_batch_size=500,
                max_queue_size=per_thread,
            )
        )
        tracer = provider.get_tracer("load")
        for i in range(per_thread):
            tracer.start_span(f"op-{index}-{i % 5}").end()
        provider.shutdown()

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert count_spans(tight, service_name) == per_thread * threads


def test_queries_run_while_ingest_runs(server: Server, service_name: str) -> None:
    stop = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def read() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.get(server.url() + "/api/v1/store")
                    response.raise_for_status()
                    seen.append(count_spans(server, service_name))
                except BaseException as e:  # collected and asserted below
                    failures.append(e)
                    return

    reader = threading.Thread(target=read)
    reader.start()
    with httpx.Client(timeout=60) as client:
        for index in range(20):
            response = client.post(
                server.url() + "/v1/traces", content=traces_body(service_name, index, 500), headers=PROTOBUF
            )
            assert response.status_code == 200
    stop.set()
    reader.join(30)
    assert not failures
    assert len(seen) >= 2
    assert seen == sorted(seen)  # counts only grow: no partial batches become visible and vanish
    assert count_spans(server, service_name) == 20 * 500


def test_bodies_being_decoded_are_bounded_too(data_dir: Path, service_name: str) -> None:
    small = start_server(data_dir, max_decoding_bytes=50_000)
    try:
        bodies = [traces_body(service_name, i, 800) for i in range(8)]
        assert all(len(b) > 25_000 for b in bodies)  # two at once exceed the bound
        refused = 0
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                responses = list(
                    pool.map(lambda b: client.post(small.url() + "/v1/traces", content=b, headers=PROTOBUF), bodies)
                )
                refused += sum(r.status_code == 503 for r in responses)
                if refused:
                    break
        assert refused
        assert any(
            "being decoded" in status_pb2.Status.FromString(r.content).message
            for r in responses
            if r.status_code == 503
        )
    finally:
        small.stop()


def test_at_most_two_bodies_are_decoded_at_once(
    server: Server, service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoding holds the GIL but for decompressing and hashing: more bodies at once only add their decoded
    # messages (about three times the body) to the server's memory.
    assert server.state is not None
    ingest = server.state.ingest
    decode = ingest._decode_and_queue
    lock, running, most = threading.Lock(), [0], [0]

    def slow_decode(*args: Any) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)
            decode(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(ingest, "_decode_and_queue", slow_decode)
    bodies = [traces_body(service_name, i, 20) for i in range(6)]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda b: client.post(server.url() + "/v1/traces", content=b, headers=PROTOBUF), bodies))
    assert [r.status_code for r in codes] == [200] * 6
    assert most[0] == 2
    assert count_spans(server, service_name) == 6 * 20


def test_small_batches_take_the_python_path_and_large_ones_the_engine(data_dir: Path, service_name: str) -> None:
    adaptive = start_server(data_dir, engine_parsing_min_records=1_000)
    try:
        for size in (10, 1_500):
            body = traces_body(service_name, size, size)
            assert httpx.post(adaptive.url() + "/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        text = httpx.get(adaptive.url() + "/metrics").text
        assert 'correlator_store_batch_records_sum{path="python",table="otel_traces"} 10.0' in text
        assert 'correlator_store_batch_records_sum{path="engine",table="otel_traces"} 1500.0' in text
        assert count_spans(adaptive, service_name) == 1_510
    finally:
        adaptive.stop()


def test_work_withdrawn_before_the_writer_took_it_is_never_written(tight: Server, service_name: str) -> None:
    # A batch holds one request (batch bound = its size), so the second waits while the first is inserted.
    writer = IngestWriter(tight.state.store, OwnMetrics(), batch_max_records=3_000, queue_max_records=100_000)
    try:
        first = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 1, 3_000))
        second = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 2, 500))
        assert second.cancel(), "the writer took the second request while inserting the first"
        assert first.result(60).accepted == 3_000
        third = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 3, 200))
        assert third.result(60).accepted == 200  # the writer went on past the withdrawn one
    finally:
        writer.close()
    assert count_spans(tight, service_name) == 3_200
    assert writer.expected_wait_s() == 0  # the withdrawn records left the queue's count


def test_work_expected_to_wait_past_the_bound_is_refused(tight: Server, service_name: str) -> None:
    writer = IngestWriter(
        tight.state.store, OwnMetrics(), batch_max_records=4_000, queue_max_records=100_000, max_wait_s=0.001
    )
    try:
        assert writer.expected_wait_s(1_000) == 0  # no rate measured yet: only the records bound applies
        writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 1, 4_000)).result(60)
        rate_wait = writer.expected_wait_s(1_000)
        assert rate_wait > 0  # a busy batch (>= a quarter of the batch bound) measured the write rate
        busy = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 2, 4_000))
        with pytest.raises(Overloaded, match=r"s of work .* over the 0.001 s allowed") as refused:
            writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 3, 1_000))
        assert refused.value.retry_after_s >= 1
        busy.result(60)
    finally:
        writer.close()
    assert count_spans(tight, service_name) == 8_000


def _metric(exposition: str, name: str, **labels: str) -> float:
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    lines = [line for line in exposition.splitlines() if line.startswith(name) and all(w in line for w in wanted)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_client_that_leaves_while_queued_gets_nothing_stored(
    data_dir: Path, service_name: str, transport: str
) -> None:
    # One request per batch (the batch bound is its size): later requests wait behind inserts, and every other
    # client gives up after 50 ms, as an exporter past its deadline does (HTTP: closes its connection; gRPC: the
    # deadline travels with the call).
    slow = start_server(data_dir, batch_max_records=3_000, queue_max_records=1_000_000, queue_max_wait_s=0)
    service = f"{service_name}-{transport}"
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{slow.ports['otlp_grpc']}")
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with httpx.Client(timeout=60) as patient, httpx.Client(timeout=0.05) as impatient, channel:

            def send(index: int) -> tuple[int, int]:
                """(spans acknowledged, spans given up on)"""
                body = traces_body(service, index, 3_000)
                timeout = 60 if index % 2 == 0 else 0.05
                try:
                    if transport == "grpc":
                        stub.Export(ExportTraceServiceRequest.FromString(body), timeout=timeout)
                        return 3_000, 0
                    client = patient if index % 2 == 0 else impatient
                    response = client.post(slow.url() + "/v1/traces", content=body, headers=PROTOBUF)
                except (httpx.TimeoutException, grpc.RpcError):
                    return 0, 3_000
                assert response.status_code == 200
                return 3_000, 0

            with ThreadPoolExecutor(8) as pool:
                outcomes = list(pool.map(send, range(16)))
        acknowledged = sum(a for a, _ in outcomes)
        given_up = sum(g for _, g in outcomes)
        # The server may still be writing requests taken before their clients left: let it finish.
        for _ in range(600):
            metrics = httpx.get(slow.url() + "/metrics").text
            if _metric(metrics, "correlator_ingest_queue_depth", signal="traces") == 0:
                break
            time.sleep(0.1)
        withdrawn = _metric(metrics, "correlator_otlp_rejected_total", signal="traces", reason="withdrawn")
        stored = count_spans(slow, service)
    finally:
        slow.stop()
    assert acknowledged + given_up == 16 * 3_000
    assert acknowledged >= 8 * 3_000  # the patient half
    assert withdrawn >= 3_000, "no request was withdrawn after its client left"
    # Every acknowledged span is stored; of the given-up ones, at most those not withdrawn (some left before
    # their body was even queued).
    assert acknowledged <= stored <= acknowledged + given_up - withdrawn


def test_a_resent_request_is_answered_from_its_first_write_and_stored_once(data_dir: Path, service_name: str) -> None:
    # As in the test above, requests wait behind one-request inserts. Each client gives up on its first attempt
    # after 50 ms, as an exporter past its deadline does, and resends the same body patiently: whether the first
    # attempt was withdrawn, queued or already being written, the spans end up stored exactly once.
    slow = start_server(data_dir, batch_max_records=3_000, queue_max_records=1_000_000, queue_max_wait_s=0)
    try:
        with httpx.Client(timeout=60) as patient, httpx.Client(timeout=0.05) as impatient:
            url = slow.url() + "/v1/traces"
            once = traces_body(f"{service_name}-twice", 0, 3_000)
            assert [patient.post(url, content=once, headers=PROTOBUF).status_code for _ in range(2)] == [200, 200]

            def send(index: int) -> bool:
                """True when the first attempt was given up on (the client timed out)."""
                body = traces_body(service_name, index, 3_000)
                try:
                    gave_up = impatient.post(url, content=body, headers=PROTOBUF).status_code != 200
                except httpx.TimeoutException:
                    gave_up = True
                assert patient.post(url, content=body, headers=PROTOBUF).status_code == 200
                return gave_up

            with ThreadPoolExecutor(8) as pool:
                given_up = sum(pool.map(send, range(16)))
        metrics = httpx.get(slow.url() + "/metrics").text
        stored, stored_once = count_spans(slow, service_name), count_spans(slow, f"{service_name}-twice")
    finally:
        slow.stop()
    assert stored_once == 3_000
    assert given_up >= 4, "too few first attempts timed out for the test to mean anything"
    assert stored == 16 * 3_000  # every span acknowledged, none twice
    # The sequential resend above, and each resend that found its first attempt queued or being written.
    assert _metric(metrics, "correlator_otlp_resent_requests_total", signal="traces") >= 1


class _GatedStore:
    """The server's store; its first engine-side write waits (30 s at most) until a second batch was parsed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.parsed = 0
        self.parsed_second = threading.Event()
        self.first_write_waited: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def prepare_otlp(self, *args: Any) -> PreparedInsert:
        prepared = self._store.prepare_otlp(*args)
        self.parsed += 1
        if self.parsed == 2:
            self.parsed_second.set()
        return prepared

    def run_prepared(self, prepared: PreparedInsert) -> NativeInsertResult:
        if self.first_write_waited is None:
            self.first_write_waited = self.parsed_second.wait(30)
        return self._store.run_prepared(prepared)


def test_the_writer_parses_the_next_batch_while_the_previous_one_is_written(server: Server, service_name: str) -> None:
    assert server.state is not None
    store = _GatedStore(server.state.store)
    writer = IngestWriter(store, OwnMetrics(), batch_max_records=10_000, queue_max_records=100_000)  # type: ignore[arg-type]
    try:
        first = writer.submit_body(Signal.TRACES, traces_body(service_name, 1, 500), 500)
        deadline = time.monotonic() + 30
        while store.parsed < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # The first batch is parsed and its write waits at the gate: the second must be parsed meanwhile.
        second = writer.submit_body(Signal.TRACES, traces_body(service_name, 2, 500), 500)
        assert first.result(60).accepted == 500
        assert second.result(60).accepted == 500
        assert store.first_write_waited is True
    finally:
        writer.close()
    assert count_spans(server, service_name) == 1_000
    # Each batch's staged table was dropped once written.
    assert query(server, "SELECT count() FROM system.tables WHERE database = {db:String}", db=STAGE_DATABASE) == [(0,)]
