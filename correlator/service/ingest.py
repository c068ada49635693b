"""The group-committing writer: requests wait until their records are in the store, batches amortize inserts."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from correlator.errors import Overloaded, StoreError, StoreUnavailable
from correlator.otlp.decode import Encoding, Signal, decode_request
from correlator.otlp.mappers import MAPPERS
from correlator.otlp.metrics import DEFAULT_TABLES as METRIC_TABLES
from correlator.otlp.rows import ColumnBlock, Mapped
from correlator.service.memory import MemoryGuard
from correlator.service.own_metrics import OwnMetrics
from correlator.store import Store

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


class IngestWriter:
    """One writer thread; a batch is whatever arrived while the previous insert ran (up to a size bound).

    An idle writer inserts at once and a busy one amortizes; no request waits on a timer. Admission has three
    bounds: the records queued, the expected wait, queued records over the measured write rate (a request
    admitted must be stored before its exporter's deadline, or it is stored for a client that has gone), and
    the process's resident memory (MemoryGuard). Past any, submit raises Overloaded and the exporter retries
    later; an idle writer admits a request whatever the bounds, so that the server always makes progress. A
    request is answered only after its insert returned; one whose client went away before the writer took it is
    cancelled (Future.cancel) and never written.
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
        self._thread = threading.Thread(target=self._run, name="correlator-writer", daemon=True)
        self._thread.start()

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
            self._cond.notify()
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

    def _take_batch(self) -> list[_Pending] | None:
        """The next batch ([] if everything taken had been cancelled); None once stopping with nothing queued."""
        with self._cond:
            while not self._pending and not self._stopping:
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

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            if not batch:
                continue  # everything taken had been cancelled
            started = time.perf_counter()
            try:
                self._write_engine_parsed(batch)
                self._write_rows([item for item in batch if item.mapped is not None])
            except Exception as e:  # a failure goes back to the waiting requests, never kills the writer
                log.exception("batch insert failed")
                error = e if isinstance(e, StoreUnavailable) else StoreUnavailable(f"the insert failed: {e}")
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)
            finally:
                with self._cond:
                    self._measured(sum(item.records for item in batch), time.perf_counter() - started)
                    for item in batch:
                        self._release(item)
                self._memory.release()

    def _resolve(self, item: _Pending, result: ExportResult) -> None:
        self._metrics.stored.labels(item.signal.value).inc(result.accepted)
        item.done.set_result(result)

    def _write_engine_parsed(self, batch: list[_Pending]) -> None:
        """One engine-side insert per signal; bodies it cannot render exactly go to the Python mapping."""
        for signal, tables in ENGINE_TABLES.items():
            items = [item for item in batch if item.signal is signal and item.body is not None]
            if not items:
                continue
            records = sum(item.records for item in items)
            if records < self._engine_min_records * ENGINE_MIN_RECORDS_SCALE.get(signal, 1):
                # The engine's fixed cost per insert (planning its flattening SQL) outweighs its speed on small
                # batches: these are faster mapped in Python.
                fallback = set(range(len(items)))
            else:
                fallback = self._insert_engine_parsed(signal, tables, items)
                self._metrics.batch_records.labels(_table_label(signal, tables), "engine").observe(records)
            for index, item in enumerate(items):
                assert item.body is not None
                if index in fallback:
                    item.mapped = MAPPERS[signal](decode_request(signal, item.body, Encoding.PROTOBUF))
                else:
                    self._resolve(item, ExportResult(item.records, 0, ""))

    def _insert_engine_parsed(self, signal: Signal, tables: dict[str, str], items: list[_Pending]) -> set[int]:
        """The engine parses and inserts the bodies; returns the indexes it left for the Python mapping."""
        started = time.perf_counter()
        try:
            bodies = [item.body for item in items if item.body is not None]
            outcome = self._store.insert_otlp(signal.value, bodies, tables)
        except StoreError:
            # Almost always the staging failed and nothing was written, so the Python path takes the whole group.
            # Should a later INSERT of a multi-table (metrics) batch fail after an earlier one committed, those
            # rows are written twice: delivery is at least once, as with any exporter retry.
            log.exception("engine-side insert of %d %s bodies failed; mapping them in Python", len(items), signal)
            return set(range(len(items)))
        elapsed = time.perf_counter() - started
        self._metrics.insert_seconds.labels(_table_label(signal, tables), "engine").observe(elapsed)
        return set(outcome.fallback)

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
        """Stop taking work, write everything queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
