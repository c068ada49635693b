"""The group-committing writer: requests wait until their records are in the store, batches amortize inserts."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from correlator.errors import Overloaded, StoreUnavailable
from correlator.otlp.decode import Signal
from correlator.otlp.rows import ColumnBlock, Mapped
from correlator.service.own_metrics import OwnMetrics
from correlator.store import Store

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    signal: Signal
    mapped: Mapped
    records: int
    done: Future[None]


class IngestWriter:
    """One writer thread; a batch is whatever arrived while the previous insert ran (up to a size bound).

    An idle writer inserts at once and a busy one amortizes; no request waits on a timer. The queue is
    bounded in records, so memory stays bounded: past the bound, submit() raises Overloaded and the
    exporter retries later. A request is acknowledged only after its insert returned.
    """

    def __init__(
        self,
        store: Store,
        metrics: OwnMetrics,
        batch_max_records: int,
        queue_max_records: int,
        retry_after_s: int = 1,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._batch_max = batch_max_records
        self._queue_max = queue_max_records
        self._retry_after_s = retry_after_s
        self._pending: deque[_Pending] = deque()
        self._queued_records = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="correlator-writer", daemon=True)
        self._thread.start()

    @property
    def queued_records(self) -> int:
        """Records accepted but not yet written."""
        return self._queued_records

    def submit(self, signal: Signal, mapped: Mapped) -> Future[None]:
        """Queue a request's rows; the future resolves once they are stored."""
        done: Future[None] = Future()
        records = sum(len(block) for block in mapped.blocks.values())
        if records == 0:
            done.set_result(None)
            return done
        with self._cond:
            if self._stopping:
                raise Overloaded("the server is shutting down", self._retry_after_s)
            # A single request larger than the whole queue still gets in when the queue is empty.
            if self._queued_records and self._queued_records + records > self._queue_max:
                raise Overloaded(
                    f"the write queue is full ({self._queued_records} records waiting); retry later",
                    self._retry_after_s,
                )
            self._pending.append(_Pending(signal, mapped, records, done))
            self._queued_records += records
            self._metrics.queue_depth.labels(signal.value).inc(records)
            self._cond.notify()
        return done

    def _take_batch(self) -> list[_Pending]:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            batch: list[_Pending] = []
            size = 0
            while self._pending and (not batch or size + self._pending[0].records <= self._batch_max):
                item = self._pending.popleft()
                batch.append(item)
                size += item.records
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return  # stopping and drained
            try:
                self._write(batch)
            except Exception as e:  # every failure goes back to the waiting requests, never kills the writer
                log.exception("batch insert failed")
                error = e if isinstance(e, StoreUnavailable) else StoreUnavailable(f"the insert failed: {e}")
                for item in batch:
                    item.done.set_exception(error)
            else:
                for item in batch:
                    self._metrics.stored.labels(item.signal.value).inc(item.records)
                    item.done.set_result(None)
            finally:
                with self._cond:
                    for item in batch:
                        self._queued_records -= item.records
                        self._metrics.queue_depth.labels(item.signal.value).dec(item.records)

    def _write(self, batch: list[_Pending]) -> None:
        merged: dict[str, ColumnBlock] = {}
        for item in batch:
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
            self._metrics.insert_seconds.labels(table).observe(time.perf_counter() - started)
            self._metrics.batch_records.labels(table).observe(len(block))

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop taking work, write everything queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
