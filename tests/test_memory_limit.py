"""The memory limit: above its high-water mark OTLP requests get 503, the writer takes smaller batches, an idle
writer still admits work; the resident size is the process's own, read from /proc."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2

from correlator.api.server import Server
from correlator.errors import Overloaded
from correlator.otlp.decode import Signal
from correlator.service.ingest import IngestWriter
from correlator.service.memory import MIB, MemoryGuard, limit_malloc_arenas, resident_bytes
from correlator.service.own_metrics import OwnMetrics
from tests.conftest import start_server
from tests.ingest_support import count_spans, mapped_traces, post_until_refused


def _sample(metrics: OwnMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def cramped(data_dir: Path) -> Iterator[Server]:
    """A server whose memory limit any process is over: only an idle writer admits a request."""
    running = start_server(data_dir, memory_limit_mib=1, queue_max_wait_s=0, batch_max_records=1_000)
    yield running
    running.stop()


def test_the_resident_size_is_this_process_s() -> None:
    import psutil

    measured, reference = resident_bytes(), psutil.Process().memory_info().rss
    assert measured is not None
    assert abs(measured - reference) < 64 * MIB  # the two reads are moments apart
    assert MemoryGuard(0).refusal() is None  # 0: no limit
    assert MemoryGuard(1024**4).refusal() is None  # a terabyte: room
    assert "memory limit" in (MemoryGuard(1 * MIB).refusal() or "")


def test_a_busy_writer_over_the_limit_refuses_and_an_idle_one_admits(cramped: Server, service_name: str) -> None:
    metrics = OwnMetrics()
    writer = IngestWriter(
        cramped.state.store, metrics, batch_max_records=3_000, queue_max_records=100_000, memory=MemoryGuard(MIB)
    )
    try:
        first = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 1, 3_000))  # idle: admitted
        with pytest.raises(Overloaded, match=r"\(memory limit 1 MiB\); retry later"):
            writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 2, 10))
        assert _sample(metrics, "correlator_ingest_refusals_total", bound="memory") == 1
        assert first.result(60).accepted == 3_000
        # Idle again once that insert is done: the next request gets in whatever the memory.
        assert writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 3, 20)).result(60).accepted == 20
    finally:
        writer.close()
    assert count_spans(cramped, service_name) == 3_020


def test_over_the_high_water_mark_the_writer_takes_quarter_batches(cramped: Server, service_name: str) -> None:
    level = [0]  # the resident size the guard reads: low while the work is admitted, high when batches are taken
    metrics = OwnMetrics()
    guard = MemoryGuard(100 * MIB, read=lambda: level[0])
    writer = IngestWriter(
        cramped.state.store, metrics, batch_max_records=4_000, queue_max_records=100_000, memory=guard
    )
    try:
        first = writer.submit_rows(Signal.TRACES, mapped_traces(service_name, 1, 20_000))  # keeps the writer busy
        waiting = [writer.submit_rows(Signal.TRACES, mapped_traces(service_name, i, 1_000)) for i in range(2, 6)]
        level[0] = 100 * MIB  # over the high-water mark before the writer comes back for the next batch
        assert not first.done(), "the first insert ended before the others were queued"
        assert first.result(60).accepted == 20_000
        assert [w.result(60).accepted for w in waiting] == [1_000] * 4
    finally:
        writer.close()
    batches = {"table": "otel_traces", "path": "python"}
    inserts = (
        _sample(metrics, "correlator_store_batch_records_sum", **batches),
        _sample(metrics, "correlator_store_batch_records_count", **batches),
    )
    # One insert of the first request, then one per 1000-record request (a quarter of 4000), not one for all four.
    assert inserts == (24_000, 5)


def test_requests_over_the_limit_get_503_before_their_body_and_the_acknowledged_are_stored(
    cramped: Server, service_name: str
) -> None:
    with httpx.Client(timeout=60) as client:
        acknowledged, refused = post_until_refused(client, cramped, service_name)
        exposition = client.get(cramped.url() + "/metrics").text
    assert refused, "six concurrent requests never met a busy writer"
    assert {r.status_code for r in refused} == {503}
    assert refused[0].headers["Retry-After"] == "1"
    assert "(memory limit 1 MiB)" in status_pb2.Status.FromString(refused[0].content).message
    assert 'correlator_ingest_refusals_total{bound="memory"}' in exposition
    assert "process_resident_memory_bytes" in exposition
    assert acknowledged
    assert count_spans(cramped, service_name) == acknowledged


def test_malloc_arenas_are_left_alone_when_the_operator_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    if os.uname().sysname == "Linux" and os.confstr("CS_GNU_LIBC_VERSION"):
        monkeypatch.delenv("MALLOC_ARENA_MAX")
        assert limit_malloc_arenas(8) is True  # glibc's own default for this process's first arenas: harmless


@pytest.mark.parametrize(
    ("preset", "decay_ms"),
    [pytest.param(None, 250, id="default"), pytest.param("dirty_decay_ms:3000", 3000, id="operator's")],
)
def test_the_engine_allocator_returns_pages_after_250_ms_unless_told_otherwise(
    preset: str | None, decay_ms: int
) -> None:
    """The package sets JE_MALLOC_CONF before the engine loads (jemalloc reads it once); the engine's own
    allocator statistics, read in a fresh interpreter through an embedded store, show what it took."""
    import subprocess
    import sys
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    if preset is not None:
        env["JE_MALLOC_CONF"] = preset
    with tempfile.TemporaryDirectory() as data:
        code = (
            "import sys; from correlator.store import Store, StoreConfig; "
            "print(Store(StoreConfig('chdb://' + sys.argv[1])).rows('SELECT * FROM system.jemalloc_stats')[0][0])"
        )
        shown = subprocess.run(
            [sys.executable, "-c", code, data + "/data"], capture_output=True, text=True, env=env, timeout=120
        )
    assert shown.returncode == 0, shown.stderr
    assert f"opt.dirty_decay_ms: {decay_ms} (arenas.dirty_decay_ms: {decay_ms})" in shown.stdout
