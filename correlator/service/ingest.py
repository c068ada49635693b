"""The group-committing writer: requests wait until their records are in the store, batches amortize inserts."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from correlator.errors import Overloaded, StoreError, StoreUnavailable
from correlator.otlp.decode import Encoding, Signal, decode_request
from correlator.otlp.mappers import MAPPERS
from correlator.otlp.metrics import DEFAULT_TABLES as METRIC_TABLES
from correlator.otlp.rows import ColumnBlock, Mapped
from correlator.service.memory import MemoryGuard
from correlator.service.own_metrics import OwnMetrics
from correlator.store import Store
from correlator.store.native_insert import PreparedInsert

log = logging.getLogger(__name__)

# The tables the engine-side path writes, per signal it can parse: record type -> table (as Store.insert_otlp takes).
ENGINE_TABLES: dict[Signal, dict[str, str]] = {
    Signal.TRACES: {"traces": "otel_traces"},
    Signal.LOGS: {"logs": "otel_logs"},
    Signal.METRICS: dict(METRIC_TABLES),
}


# Multiplier of engine_min_records per signal. A metrics batch pays one INSERT (and its planning) per metric
# type on top of the staging, about 0.9 s for two types on 2 cores; the engine path only overtakes the Python
# mapping from roughly 25-30k points (measured with sum + histogram points, 3 attributes each).
ENGINE_MIN_RECORDS_SCALE = {Signal.METRICS: 4}


def _table_label(signal: Signal, tables: dict[str, str]) -> str:
    """The `table` label of an engine-side insert: its table, or `otel_<signal>_*` when it writes several."""
    names = set(tables.values())
    return names.pop() if len(names) == 1 else f"otel_{signal.value}_*"


@dataclass(frozen=True)
class ExportResult:
    """What happened to one export request's records."""

    accepted: int
    rejected: int
    error_message: str

    @classmethod
    def of(cls, mapped: Mapped) -> ExportResult:
        return cls(mapped.accepted, mapped.rejected, mapped.error_message)


@dataclass
class _Pending:
    """One request's work: either a valid protobuf body for the engine to parse, or rows mapped in Python."""

    signal: Signal
    records: int
    done: Future[ExportResult]
    body: bytes | None = None
    mapped: Mapped | None = None


def _map(signal: Signal, items: list[_Pending]) -> None:
    """Map the bodies of `items` in Python (the rows are written with the batch's other mapped rows)."""
    for item in items:
        assert item.body is not None
        item.mapped = MAPPERS[signal](decode_request(signal, item.body, Encoding.PROTOBUF))


@dataclass
class _Group:
    """One signal's bodies of a batch, parsed by the engine: the insert to run, and how long the parse took."""

    signal: Signal
    tables: dict[str, str]
    items: list[_Pending]
    prepared: PreparedInsert | None
    seconds: float


@dataclass
class _Parsed:
    """A batch taken from the queue (when), and its engine-side groups once parsed."""

    batch: list[_Pending]
    taken: float
    groups: list[_Group] = field(default_factory=list)


class IngestWriter:
    """Two writer threads; a batch is whatever arrived while the previous one was written (up to a size bound).

    The first thread takes a batch and has the engine parse and check it (Store.prepare_otlp); the second writes
    it. The next batch is parsed while the previous one is written, once as many records as that one holds are
    queued (or the second thread is idle), so batches stay as large as the load makes them; at most two batches
    are in the engine at once. An idle writer inserts at once and a busy one amortizes; no request waits on a
    timer. Admission has three bounds: the records queued, the expected wait, queued records over the measured
    write rate (a request admitted must be stored before its exporter's deadline, or it is stored for a client
    that has gone), and the process's resident memory (MemoryGuard). Past any, submit raises Overloaded and the
    exporter retries later; an idle writer admits a request whatever the bounds, so that the server always makes
    progress. A request is answered only after its insert returned; one whose client went away before the writer
    took it is cancelled (Future.cancel) and never written.
    """

    def __init__(
        self,
        store: Store,
        metrics: OwnMetrics,
        batch_max_records: int,
        queue_max_records: int,
        retry_after_s: int = 1,
        engine_min_records: int = 0,
        max_wait_s: float = 0.0,
        memory: MemoryGuard | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._batch_max = batch_max_records
        self._queue_max = queue_max_records
        self._retry_after_s = retry_after_s
        self._engine_min_records = engine_min_records
        self._max_wait_s = max_wait_s
        self._memory = memory or MemoryGuard(0)
        # Records per second the writer stores, a moving average over recent batches (0 until the first one).
        self._rate = 0.0
        self._pending: deque[_Pending] = deque()
        self._queued_records = 0
        self._cond = threading.Condition()
        self._stopping = False
        # Batches parsed by the first thread for the second to write, and how many batches are in the engine
        # (parsing or parsed, not yet written) with the records of the latest one.
        self._parsed: deque[_Parsed | None] = deque()
        self._in_engine = 0
        self._latest_records = 0
        self._last_written = 0.0
        self._threads = [
            threading.Thread(target=self._parse_batches, name="correlator-writer-parse", daemon=True),
            threading.Thread(target=self._write_batches, name="correlator-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def submit_body(self, signal: Signal, body: bytes, records: int) -> Future[ExportResult]:
        """Queue a valid protobuf request body for the engine to parse (any signal in ENGINE_TABLES)."""
        return self._submit(_Pending(signal, records, Future(), body=body))

    def submit_rows(self, signal: Signal, mapped: Mapped) -> Future[ExportResult]:
        """Queue rows mapped in Python."""
        return self._submit(_Pending(signal, mapped.accepted, Future(), mapped=mapped))

    def _submit(self, item: _Pending) -> Future[ExportResult]:
        if item.records == 0:
            item.done.set_result(ExportResult.of(item.mapped) if item.mapped else ExportResult(0, 0, ""))
            return item.done
        with self._cond:
            self._check_room(item.records)
            self._pending.append(item)
            self._queued_records += item.records
            self._metrics.queue_depth.labels(item.signal.value).inc(item.records)
            self._cond.notify_all()  # both writer threads wait on it
        return item.done

    def expected_wait_s(self, records: int = 0) -> float:
        """Seconds until `records` more would be stored, at the measured rate (0 before the first batch)."""
        return (self._queued_records + records) / self._rate if self._rate else 0.0

    def check_room(self, records: int = 0) -> None:
        """Raise Overloaded if `records` more would not be admitted now (callers check before costly decoding)."""
        with self._cond:
            self._check_room(records)

    def _check_room(self, records: int) -> None:
        if refusal := self._refusal(records):
            bound, message, retry_after_s = refusal
            self._metrics.refusals.labels(bound).inc()
            raise Overloaded(message, retry_after_s)

    def _refusal(self, records: int) -> tuple[str, str, int] | None:
        """The bound that refuses `records` more now, why, and when to come back; None when they are admitted."""
        if self._stopping:
            return "stopping", "the server is shutting down", self._retry_after_s
        if not self._queued_records:
            return None  # a single request larger than every bound still gets in when the queue is empty
        if self._queued_records + records > self._queue_max:
            message = f"the write queue is full ({self._queued_records} records waiting); retry later"
            return "queue_records", message, self._retry_after_s
        wait = self.expected_wait_s(records)
        if self._max_wait_s and wait > self._max_wait_s:
            message = (
                f"the write queue holds {wait:.1f} s of work ({self._queued_records} records at"
                f" {self._rate:,.0f}/s), over the {self._max_wait_s:g} s allowed; retry later"
            )
            # Come back once what is queued now should be written: an exporter whose deadline ends sooner
            # gives up now instead of sending again late, when an admitted attempt could outlive it.
            return "queue_wait", message, max(self._retry_after_s, math.ceil(wait))
        if refusal := self._memory.refusal():
            return "memory", refusal, self._retry_after_s
        return None

    def _measured(self, records: int, seconds: float) -> None:
        """Fold one batch's write rate into the moving average (recent batches weigh most).

        Only batches of a busy writer count: a small batch's rate is mostly the insert's fixed cost and would
        make a queue look slower to drain than it is.
        """
        if records >= self._batch_max // 4 and seconds > 0:
            rate = records / seconds
            self._rate = rate if not self._rate else 0.7 * self._rate + 0.3 * rate

    def _ready_for_batch(self) -> bool:
        """Whether the parsing thread should take a batch now (called under the condition)."""
        if self._in_engine >= 2:
            return False  # one batch is being written and the next one is parsed already
        if self._stopping:
            return True
        if not self._pending:
            return False
        # While a batch is written, wait until the next one is as large as it (or as large as allowed): taken
        # early, it would hold only the requests that arrived first.
        return not self._in_engine or self._queued_records - self._latest_records >= min(
            self._latest_records, self._batch_max
        )

    def _take_batch(self) -> list[_Pending] | None:
        """The next batch ([] if everything taken had been cancelled); None once stopping with nothing queued."""
        with self._cond:
            while not self._ready_for_batch():
                self._cond.wait()
            if not self._pending:
                return None
            # The engine's working memory grows with the batch: near the memory limit, write smaller ones.
            limit = self._batch_max // 4 if self._memory.over_high_water() else self._batch_max
            batch: list[_Pending] = []
            size = 0
            while self._pending and (not batch or size + self._pending[0].records <= limit):
                item = self._pending.popleft()
                if not item.done.set_running_or_notify_cancel():
                    self._release(item)  # its client went away before the writer got to it: never written
                    continue
                batch.append(item)
                size += item.records
            return batch

    def _release(self, item: _Pending) -> None:
        self._queued_records -= item.records
        self._metrics.queue_depth.labels(item.signal.value).dec(item.records)

    def _parse_batches(self) -> None:
        """The first thread: take each batch and have the engine parse it, then hand it to the second."""
        while (batch := self._take_batch()) is not None:
            if not batch:
                continue  # everything taken had been cancelled
            parsed = _Parsed(batch, time.perf_counter())
            try:
                self._parse(parsed)
            except Exception as e:  # a failure goes back to the waiting requests, never kills the writer
                self._fail(parsed, e)
                self._done(parsed, in_engine=False)
                continue
            with self._cond:
                self._in_engine += 1
                self._latest_records = sum(item.records for item in batch)
                self._parsed.append(parsed)
                self._cond.notify_all()
        with self._cond:
            self._parsed.append(None)
            self._cond.notify_all()

    def _write_batches(self) -> None:
        """The second thread: write each parsed batch and answer its requests."""
        while True:
            with self._cond:
                while not self._parsed:
                    self._cond.wait()
                parsed = self._parsed.popleft()
            if parsed is None:
                return
            try:
                self._write(parsed)
            except Exception as e:  # a failure goes back to the waiting requests, never kills the writer
                self._fail(parsed, e)
            finally:
                self._done(parsed)

    def _fail(self, parsed: _Parsed, error: Exception) -> None:
        """Answer the batch's unanswered requests with the error; drop what the engine parsed of it."""
        log.exception("batch insert failed")
        for group in parsed.groups:
            if group.prepared is not None:
                with contextlib.suppress(StoreError):
                    self._store.discard_prepared(group.prepared)
        if not isinstance(error, StoreUnavailable):
            error = StoreUnavailable(f"the insert failed: {error}")
        for item in parsed.batch:
            if not item.done.done():
                item.done.set_exception(error)

    def _done(self, parsed: _Parsed, in_engine: bool = True) -> None:
        """Release a finished batch's records, and measure the time it added to the writer's."""
        finished = time.perf_counter()
        records = sum(item.records for item in parsed.batch)
        with self._cond:
            # A batch parsed while the previous one was written cost the writer only the time since that one.
            self._measured(records, finished - max(parsed.taken, self._last_written))
            self._last_written = finished
            for item in parsed.batch:
                self._release(item)
            if in_engine:
                self._in_engine -= 1
            self._cond.notify_all()
        self._memory.release()

    def _resolve(self, item: _Pending, result: ExportResult) -> None:
        self._metrics.stored.labels(item.signal.value).inc(result.accepted)
        item.done.set_result(result)

    def _parse(self, parsed: _Parsed) -> None:
        """One engine-side parse per signal; bodies it cannot render exactly are mapped in Python here."""
        for signal, tables in ENGINE_TABLES.items():
            items = [item for item in parsed.batch if item.signal is signal and item.body is not None]
            if not items:
                continue
            records = sum(item.records for item in items)
            if records < self._engine_min_records * ENGINE_MIN_RECORDS_SCALE.get(signal, 1):
                # The engine's fixed cost per insert (planning its flattening SQL) outweighs its speed on small
                # batches: these are faster mapped in Python.
                _map(signal, items)
                continue
            started, bodies = time.perf_counter(), [item.body for item in items if item.body is not None]
            try:
                prepared = self._store.prepare_otlp(signal.value, bodies, tables)
            except StoreError:
                # Nothing was written: the Python path takes the whole group.
                log.exception("engine-side parse of %d %s bodies failed; mapping them in Python", len(items), signal)
                _map(signal, items)
                continue
            parsed.groups.append(_Group(signal, tables, items, prepared, time.perf_counter() - started))
            _map(signal, [items[index] for index in prepared.result.fallback])

    def _write(self, parsed: _Parsed) -> None:
        """Write a parsed batch: the engine-side inserts, then the records mapped in Python."""
        for group in parsed.groups:
            prepared, group.prepared = group.prepared, None
            assert prepared is not None
            signal, items, started = group.signal, group.items, time.perf_counter()
            label = _table_label(signal, group.tables)
            try:
                result = self._store.run_prepared(prepared)
            except StoreError:
                # Should a later INSERT of a multi-table (metrics) batch fail after an earlier one committed, those
                # rows are written twice: delivery is at least once, as with any exporter retry.
                log.exception("engine-side insert of %d %s bodies failed; mapping them in Python", len(items), signal)
                _map(signal, [item for item in items if item.mapped is None])
                continue
            finally:
                self._metrics.batch_records.labels(label, "engine").observe(sum(item.records for item in items))
            self._metrics.insert_seconds.labels(label, "engine").observe(group.seconds + time.perf_counter() - started)
            fallback = set(result.fallback)
            for index, item in enumerate(items):
                if index not in fallback:
                    self._resolve(item, ExportResult(item.records, 0, ""))
        self._write_rows([item for item in parsed.batch if item.mapped is not None])

    def _write_rows(self, items: list[_Pending]) -> None:
        merged: dict[str, ColumnBlock] = {}
        for item in items:
            assert item.mapped is not None
            for table, block in item.mapped.blocks.items():
                if not len(block):
                    continue
                if table in merged:
                    merged[table].extend(block)
                else:
                    merged[table] = ColumnBlock(block.table, block.columns, [list(col) for col in block.data])
        for table, block in merged.items():
            started = time.perf_counter()
            self._store.insert_columns(table, block.columns, block.data)
            self._metrics.insert_seconds.labels(table, "python").observe(time.perf_counter() - started)
            self._metrics.batch_records.labels(table, "python").observe(len(block))
        for item in items:
            assert item.mapped is not None
            self._resolve(item, ExportResult.of(item.mapped))

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop taking work, write everything queued, then stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
