"""The ingest use case shared by OTLP/HTTP and OTLP/gRPC: map a request, queue its rows, wait until stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from correlator.errors import Overloaded, StoreUnavailable
from correlator.otlp.decode import Encoding, Signal, decode_request, decompress
from correlator.otlp.logs import map_logs
from correlator.otlp.metrics import map_metrics
from correlator.otlp.rows import Mapped
from correlator.otlp.traces import map_traces
from correlator.service.ingest import IngestWriter
from correlator.service.own_metrics import OwnMetrics

MAPPERS: dict[Signal, Callable[[Any], Mapped]] = {
    Signal.TRACES: map_traces,
    Signal.LOGS: map_logs,
    Signal.METRICS: map_metrics,
}


@dataclass(frozen=True)
class ExportResult:
    """What happened to one export request."""

    accepted: int
    rejected: int
    error_message: str


class OtlpIngest:
    """Turns export requests into stored rows; raising CorrelatorError subclasses for what a client did wrong."""

    def __init__(
        self,
        writer: IngestWriter,
        metrics: OwnMetrics,
        max_body_bytes: int,
        write_timeout_s: float,
        max_decoding_bytes: int,
        retry_after_s: int = 1,
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._write_timeout_s = write_timeout_s
        self._max_decoding_bytes = max_decoding_bytes
        self._retry_after_s = retry_after_s
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

    def _decode_and_map(self, signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None) -> Mapped:
        data = decompress(body, content_encoding, self.max_body_bytes)
        return MAPPERS[signal](decode_request(signal, data, encoding))

    async def export_body(
        self, signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None
    ) -> ExportResult:
        """Decode, map and store one OTLP/HTTP body."""
        with self._decoding(len(body)):
            mapped = await anyio.to_thread.run_sync(self._decode_and_map, signal, body, encoding, content_encoding)
        return await self._store(signal, mapped)

    async def _store(self, signal: Signal, mapped: Mapped) -> ExportResult:
        self._metrics.received.labels(signal.value).inc(mapped.accepted + mapped.rejected)
        if mapped.rejected:
            self._metrics.rejected.labels(signal.value, "invalid_record").inc(mapped.rejected)
        done = self._writer.submit(signal, mapped)
        try:
            # shield: a timed-out request must not cancel the future the writer will resolve
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), self._write_timeout_s)
        except TimeoutError as e:
            raise StoreUnavailable(f"the store did not finish the write within {self._write_timeout_s:g} s") from e
        return ExportResult(mapped.accepted, mapped.rejected, mapped.error_message)

    def count_rejected_request(self, signal: Signal, reason: str) -> None:
        """Count a whole request refused before mapping (bad body, too large, overloaded...)."""
        self._metrics.rejected.labels(signal.value, reason).inc()
