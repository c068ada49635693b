"""The ingest use case shared by OTLP/HTTP and OTLP/gRPC: decode a body, queue its records, wait until stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import Future

import anyio.to_thread

from correlator.errors import Overloaded, StoreUnavailable
from correlator.otlp.decode import Encoding, Signal, decode_request, decompress
from correlator.otlp.mappers import MAPPERS, count_records
from correlator.service.ingest import ENGINE_TABLES, ExportResult, IngestWriter
from correlator.service.own_metrics import OwnMetrics


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

    @contextlib.contextmanager
    def _decoding(self, size: int) -> Iterator[None]:
        """Bound the bodies being decoded at once: the write queue bounds rows, this bounds what precedes it."""
        # One event loop runs every route, so this check-and-add needs no lock.
        if self._decoding_bytes and self._decoding_bytes + size > self._max_decoding_bytes:
            raise Overloaded(
                f"{self._decoding_bytes} bytes of requests are being decoded already; retry later", self._retry_after_s
            )
        self._decoding_bytes += size
        try:
            yield
        finally:
            self._decoding_bytes -= size

    def _decode_and_queue(
        self,
        signal: Signal,
        body: bytes,
        encoding: Encoding,
        content_encoding: str | None,
        queued: list[tuple[Future[ExportResult], int]],
    ) -> None:
        """Queue the records; append the future the writer resolves once they are stored, and their count."""
        data = decompress(body, content_encoding, self.max_body_bytes)
        # Decoding here, even when the engine parses the body again, answers a bad body with its own 400
        # instead of failing a whole batch, and counts the records the queue bound is measured in.
        request = decode_request(signal, data, encoding)
        if self._engine_parsing and signal in ENGINE_TABLES:
            records = count_records(signal, request)
            self._metrics.received.labels(signal.value).inc(records)
            if encoding is not Encoding.PROTOBUF:
                data = request.SerializeToString()
            queued.append((self._writer.submit_body(signal, data, records), records))
            return
        mapped = MAPPERS[signal](request)
        self._metrics.received.labels(signal.value).inc(mapped.accepted + mapped.rejected)
        queued.append((self._writer.submit_rows(signal, mapped), mapped.accepted))

    async def export_body(
        self, signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None
    ) -> ExportResult:
        """Decode one OTLP body (HTTP or gRPC), queue its records, and wait until they are stored."""
        # Refuse before the costly part when the queue is already over a bound: decoding would be wasted.
        self._writer.check_room()
        # Filled by the decoding thread, so that a cancellation arriving while it runs still finds the work.
        queued: list[tuple[Future[ExportResult], int]] = []
        try:
            with self._decoding(len(body)):
                await anyio.to_thread.run_sync(self._decode_and_queue, signal, body, encoding, content_encoding, queued)
            done = queued[0][0]
            # shield: waiting must not cancel the future itself; whether it may be is decided below
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), self._write_timeout_s)
        except TimeoutError as e:
            if self._withdraw(signal, queued):
                raise StoreUnavailable(
                    f"the store did not get to the write within {self._write_timeout_s:g} s; nothing was stored"
                ) from e
            raise StoreUnavailable(f"the store did not finish the write within {self._write_timeout_s:g} s") from e
        except asyncio.CancelledError:
            # The client went away (a gRPC deadline, a closed HTTP connection): unless the writer has the
            # records already, they are never written, so a client that gave up finds nothing stored.
            self._withdraw(signal, queued)
            raise
        if result.rejected:
            self._metrics.rejected.labels(signal.value, "invalid_record").inc(result.rejected)
        return result

    def _withdraw(self, signal: Signal, queued: list[tuple[Future[ExportResult], int]]) -> bool:
        """Cancel queued work the writer has not taken yet; True if it will never be written."""
        for done, records in queued:
            if done.cancel():
                self._metrics.rejected.labels(signal.value, "withdrawn").inc(records)
                return True
        return False

    def count_rejected_request(self, signal: Signal, reason: str) -> None:
        """Count a whole request refused before its records were queued (bad body, too large, overloaded...)."""
        self._metrics.rejected.labels(signal.value, reason).inc()
