"""The ingest use case shared by OTLP/HTTP and OTLP/gRPC: decode a body, queue its records, wait until stored."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import anyio
import anyio.to_thread

from correlator.errors import Overloaded, StoreUnavailable
from correlator.otlp.decode import Encoding, Signal, decode_request, decompress
from correlator.otlp.mappers import MAPPERS, count_records
from correlator.service.ingest import ENGINE_TABLES, ExportResult, IngestWriter
from correlator.service.own_metrics import OwnMetrics

# How long, and how many, export requests are remembered to answer a resent copy from its first attempt. Exporters
# resend a request whose answer they did not get in time (10 s by default, the collector retries for 5 minutes).
REMEMBER_S = 600.0
REMEMBER_MAX = 20_000
# Bodies decoded at once. Decoding holds the GIL but for decompressing and hashing, so more threads add no speed,
# only memory: a 3 MiB body of 8,192 spans parses into a 10 MiB message, and with gzip bodies (16 MiB of them
# allowed in decoding, max_decoding_bytes) ten decoded at once had put 100 MiB on the server's peak.
DECODING_THREADS = 2


@dataclass(frozen=True)
class _Queued:
    """What an export request waits on: its own work (`owned`: it may withdraw it) or an identical earlier one's."""

    done: Future[ExportResult]
    records: int
    owned: bool = True


class _Recent:
    """Recent export requests by a digest of their decompressed body, each with a future of its write.

    A request identical to one queued or stored in the last REMEMBER_S is that export sent again (an exporter past
    its deadline retries with the same body): it waits on the first one's write instead of writing the records
    twice. A request is remembered before it is decoded, so a resend arriving meanwhile finds it too. Identical
    bodies carry identical ids and timestamps, so nothing distinct is ever merged.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, Future[ExportResult]]] = OrderedDict()

    @staticmethod
    def key(signal: Signal, encoding: Encoding, data: bytes) -> bytes:
        # SHA-256 runs on the CPU's SHA extensions where present: about 1.7x blake2b's speed on 3 MB bodies here.
        digest = hashlib.sha256(data)
        digest.update(f"{signal.value}:{encoding.name}".encode())
        return digest.digest()[:16]

    def claim(self, key: bytes) -> tuple[Future[ExportResult], bool]:
        """The future of an identical request's write and False; else a new future for this one's and True.

        An earlier write that was withdrawn or failed (its future cancelled) does not count: this one writes its own.
        """
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry[1].cancelled():
                return entry[1], False
            claimed: Future[ExportResult] = Future()
            self._entries[key] = (now, claimed)
            self._entries.move_to_end(key)
            while self._entries and (
                len(self._entries) > REMEMBER_MAX or next(iter(self._entries.values()))[0] < now - REMEMBER_S
            ):
                self._entries.popitem(last=False)
            return claimed, True


def _follow(claimed: Future[ExportResult], work: Future[ExportResult]) -> None:
    """Resolve `claimed` with `work`'s result once stored; cancel it when the write was withdrawn or failed, so that
    a resend waiting on it writes its own (and no remembered future keeps an error's frames and their bodies)."""

    def settle(done: Future[ExportResult]) -> None:
        if done.cancelled() or done.exception() is not None:
            claimed.cancel()
        else:
            claimed.set_result(done.result())

    work.add_done_callback(settle)


class OtlpIngest:
    """Turns export requests into stored rows; raises CorrelatorError subclasses for what a client did wrong.

    Traces, logs and metrics go to the engine as protobuf bodies when the store can parse them (embedded
    chDB), which is several times faster than flattening in Python; every body the engine cannot render
    exactly as the exporter would is mapped in Python.
    """

    def __init__(
        self,
        writer: IngestWriter,
        metrics: OwnMetrics,
        max_body_bytes: int,
        write_timeout_s: float,
        max_decoding_bytes: int,
        retry_after_s: int = 1,
        engine_parsing: bool = True,
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._write_timeout_s = write_timeout_s
        self._max_decoding_bytes = max_decoding_bytes
        self._retry_after_s = retry_after_s
        self._engine_parsing = engine_parsing
        self._decoding_bytes = 0
        self._decoders = anyio.CapacityLimiter(DECODING_THREADS)
        self._recent = _Recent()

    @contextlib.contextmanager
    def _decoding(self, size: int) -> Iterator[None]:
        """Bound the bodies being decoded at once: the write queue bounds rows, this bounds what precedes it."""
        # One event loop runs every route, so this check-and-add needs no lock.
        if self._decoding_bytes and self._decoding_bytes + size > self._max_decoding_bytes:
            self._metrics.refusals.labels("decoding").inc()
            raise Overloaded(
                f"{self._decoding_bytes} bytes of requests are being decoded already; retry later", self._retry_after_s
            )
        self._decoding_bytes += size
        try:
            yield
        finally:
            self._decoding_bytes -= size

    def _decode_and_queue(
        self, signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None, queued: list[_Queued]
    ) -> None:
        """Queue the records, or find an identical request's write; append what the request waits on."""
        data = decompress(body, content_encoding, self.max_body_bytes)
        claimed, first = self._recent.claim(_Recent.key(signal, encoding, data))
        if not first:
            self._metrics.resent.labels(signal.value).inc()
            queued.append(_Queued(claimed, 0, owned=False))
            return
        try:
            work = self._queue(signal, data, encoding)
        except BaseException:
            claimed.cancel()  # a resend waiting on it decodes for itself and gets its own answer
            raise
        _follow(claimed, work.done)
        queued.append(work)

    def _queue(self, signal: Signal, data: bytes, encoding: Encoding) -> _Queued:
        # Decoding here, even when the engine parses the body again, answers a bad body with its own 400
        # instead of failing a whole batch, and counts the records the queue bound is measured in.
        request = decode_request(signal, data, encoding)
        if self._engine_parsing and signal in ENGINE_TABLES:
            records = count_records(signal, request)
            self._metrics.received.labels(signal.value).inc(records)
            if encoding is not Encoding.PROTOBUF:
                data = request.SerializeToString()
            return _Queued(self._writer.submit_body(signal, data, records), records)
        mapped = MAPPERS[signal](request)
        self._metrics.received.labels(signal.value).inc(mapped.accepted + mapped.rejected)
        return _Queued(self._writer.submit_rows(signal, mapped), mapped.accepted)

    def check_room(self) -> None:
        """Raise Overloaded when a request would be refused now: callers check before reading a body."""
        self._writer.check_room()

    async def export_body(
        self, signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None
    ) -> ExportResult:
        """Decode one OTLP body (HTTP or gRPC), queue its records, and wait until they are stored."""
        while True:
            # Refuse before the costly part when the queue is already over a bound: decoding would be wasted.
            self._writer.check_room()
            # Filled by the decoding thread, so that a cancellation arriving while it runs still finds the work.
            queued: list[_Queued] = []
            try:
                with self._decoding(len(body)):
                    await anyio.to_thread.run_sync(
                        self._decode_and_queue, signal, body, encoding, content_encoding, queued, limiter=self._decoders
                    )
                work = queued[0]
                # asyncio.wait neither raises nor cancels what it waits on: whether that may be is decided below
                waiter = asyncio.wrap_future(work.done)
                finished, _ = await asyncio.wait({waiter}, timeout=self._write_timeout_s)
            except asyncio.CancelledError:
                # The client went away (a gRPC deadline, a closed HTTP connection): unless the writer has the
                # records already, they are never written, so a client that gave up finds nothing stored.
                self._withdraw(signal, queued)
                raise
            if not finished:
                if self._withdraw(signal, queued):
                    raise StoreUnavailable(
                        f"the store did not get to the write within {self._write_timeout_s:g} s; nothing was stored"
                    )
                raise StoreUnavailable(f"the store did not finish the write within {self._write_timeout_s:g} s")
            if waiter.cancelled() and not work.owned:
                continue  # the identical request this one waited on was withdrawn or failed: write this one
            result = waiter.result()
            if result.rejected and work.owned:
                self._metrics.rejected.labels(signal.value, "invalid_record").inc(result.rejected)
            return result

    def _withdraw(self, signal: Signal, queued: list[_Queued]) -> bool:
        """Cancel this request's own queued work the writer has not taken yet; True if it will never be written.
        Work an earlier identical request queued stays: that request may still be waiting for it."""
        for work in queued:
            if work.owned and work.done.cancel():
                self._metrics.rejected.labels(signal.value, "withdrawn").inc(work.records)
                return True
        return False

    def count_rejected_request(self, signal: Signal, reason: str) -> None:
        """Count a whole request refused before its records were queued (bad body, too large, overloaded...)."""
        self._metrics.rejected.labels(signal.value, reason).inc()
