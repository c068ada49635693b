"""The engine-side span insert alone, in process: steady throughput, CPU a span, and where one insert's time goes.

Run: .venv/bin/python -m bench.engine_ingest [--seconds 40] [--bodies 5] [--settings "merge_selector_base = 5"]

No HTTP, no queue: this process calls `Store.insert_otlp` on batches of `--bodies` bodies of 8,192 spans (the
batch the writer forms with 10 exporters) on a fresh, migrated store, for `--seconds`, while the engine merges in
the background as it does in `serve`. It prints spans/s, CPU time a span (this process's, merges included), how
busy both cores were and the peak RSS. Then, on single batches, what each step of an insert costs: parsing and
checking the bodies (the stage), flattening them into a table of the Null engine, into a table like otel_traces
without views, and into otel_traces with its views. Last, the baseline: the engine-only INSERT ... SELECT of the
very rows stored into a copy of otel_traces. `--settings` applies MergeTree settings to the tables every insert
writes before the run (to compare merge settings against migration 7's).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.payloads import stamped, traces_body
from correlator.store import Store, StoreConfig
from correlator.store import native_insert as native
from correlator.store.migrate import migrate
from correlator.store.schema_merges import INSERTED_TABLES

SPANS_PER_BODY = 8192


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bodies:
    """Distinct request bodies (each stamped with its own number, as a resend would not be)."""

    def __init__(self, per_batch: int) -> None:
        self._bases = [traces_body(SPANS_PER_BODY, seed) for seed in range(16)]
        self._per_batch = per_batch
        self._next = 0

    def batch(self) -> list[bytes]:
        first, self._next = self._next, self._next + self._per_batch
        return [stamped(self._bases[n % len(self._bases)], n) for n in range(first, self._next)]


def _steady(store: Store, bodies: Bodies, seconds: float) -> float:
    spans, cpu, started = 0, _cpu_s(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = bodies.batch()
        store.insert_otlp("traces", batch)
        spans += len(batch) * SPANS_PER_BODY
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    print(
        f"steady: {spans / elapsed:,.0f} spans/s over {elapsed:.0f} s, {cpu / spans * 1e6:.1f} us of CPU a span,"
        f" both cores {cpu / elapsed / 2 * 100:.0f} % busy, peak RSS {_peak_rss_mib():.0f} MiB"
    )
    return spans / elapsed


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _steps(store: Store, bodies: Bodies, workdir: Path, rounds: int) -> None:
    """Median time of each step of one insert, on fresh batches."""
    store.command("CREATE TABLE otel.bench_null AS otel.otel_traces ENGINE = Null")
    store.command("CREATE TABLE otel.bench_bare AS otel.otel_traces")
    client = store._client()
    stages: list[float] = []
    inserts: dict[str, list[float]] = {"bench_null": [], "bench_bare": [], "otel_traces": []}
    for _ in range(rounds):
        for table, timings in inserts.items():
            started = time.perf_counter()
            prepared = native.prepare_traces(client, "otel", bodies.batch(), workdir, table=table)
            stages.append(time.perf_counter() - started)
            started = time.perf_counter()
            prepared.run(client)
            timings.append(time.perf_counter() - started)
    stage_ms = statistics.median(stages) * 1000
    null_ms, bare_ms, full_ms = (statistics.median(inserts[t]) * 1000 for t in inserts)
    spans = len(bodies.batch()) * SPANS_PER_BODY
    print(f"\none insert of {spans:,} spans, median of {rounds} (ms of wall time):")
    print(f"  parse and check the bodies (stage)   {stage_ms:7.0f}")
    print(f"  flatten (into a Null table)          {null_ms:7.0f}")
    print(f"  + write a part like otel_traces'     {bare_ms - null_ms:7.0f}")
    print(f"  + otel_traces' views                 {full_ms - bare_ms:7.0f}")
    total_ms = stage_ms + full_ms
    print(f"  = stage + insert into otel_traces    {total_ms:7.0f}  ({spans / total_ms * 1000:,.0f} spans/s)")
    store.command("DROP TABLE otel.bench_null")
    store.command("DROP TABLE otel.bench_bare")


def _baseline(store: Store) -> float:
    """rows/s of INSERT ... SELECT of the stored spans into a copy of otel_traces (indexes, no views), median of 3."""
    store.command("CREATE TABLE otel.bench_copy AS otel.otel_traces")
    rows = int(store.rows("SELECT count() FROM otel.otel_traces")[0][0])
    timings = []
    for _ in range(3):
        store.command("TRUNCATE TABLE otel.bench_copy")
        started = time.perf_counter()
        store.command("INSERT INTO otel.bench_copy SELECT * FROM otel.otel_traces")
        timings.append(time.perf_counter() - started)
    store.command("DROP TABLE otel.bench_copy")
    return rows / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40, help="length of the steady run")
    parser.add_argument("--bodies", type=int, default=5, help=f"bodies of {SPANS_PER_BODY} spans per insert")
    parser.add_argument("--rounds", type=int, default=5, help="batches per step measured")
    parser.add_argument("--settings", default="", help="MergeTree settings for the tables every insert writes")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="correlator-bench-engine-"))
    store = Store(StoreConfig(f"chdb://{workdir / 'data'}"))
    try:
        migrate(store)
        if args.settings:
            for table in INSERTED_TABLES:
                store.command(f"ALTER TABLE otel.{table} MODIFY SETTING {args.settings}")
        print(f"tables every insert writes: {args.settings or 'migration 7 settings'}")
        bodies = Bodies(args.bodies)
        steady = _steady(store, bodies, args.seconds)
        _steps(store, bodies, workdir / "steps", args.rounds)
        rate = _baseline(store)
        spans = args.bodies * SPANS_PER_BODY
        print(f"\nengine-only baseline (INSERT ... SELECT of the stored spans, no views): {rate:,.0f} rows/s")
        print(f"one batch of {spans:,} spans at that rate: {spans / rate * 1000:.0f} ms")
        print(f"ratio steady engine-side ingest / engine-only: {steady / rate:.2f}")
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
