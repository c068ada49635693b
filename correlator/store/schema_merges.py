"""Migrations 7 and 8: the tables every insert writes merge fewer, larger parts.

Each engine-side insert writes one part to each of these tables, and the engine's background merges rewrite
those parts again and again as they grow: on 2 cores, about a third of the server's CPU under steady span
ingest. Two MergeTree settings trade a few more parts at a time for less of that work (docs/benchmarks.md,
"Merges"):
- `merge_selector_base = 10` (the engine's default is 5): a merge waits for parts of more similar sizes, so each
  row is rewritten fewer times on its way to a large part.
- `min_bytes_for_wide_part = 104857600`: parts under 100 MiB uncompressed (an insert's, and the first merges')
  are written compact, one file instead of two per column; larger ones are wide as before.
Measured in process on 40,960-span inserts: 42 to 46 us of CPU a span against 51 to 59, and 8 to 20 % more spans
a second. The rollups and the platform's tables are small and stay as they were.

Migration 8 raises `merge_selector_base` to 30 for `spans_by_trace` alone. Ordered by random trace ids, its parts
interleave row by row in every merge, which made its merges 40 to 50 % of all merge time under span ingest (27 to
33 % for otel_traces). At 30 they took 12.4 to 12.8 merge-seconds in 40 s against 18.9 to 25.2, for 19.7 to 20.7 us
of CPU a span against 20.5 to 21.4 in four alternating pairs, with no more active parts and trace lookups no slower
(docs/benchmarks.md).
"""

from __future__ import annotations

from correlator.store.ddl import Migration, ModifySettings
from correlator.store.schema_otel import LOGS, METRIC_TABLES, TRACE_ID_TS, TRACES
from correlator.store.schema_rollups import CALL_SPANS
from correlator.store.schema_trace_view import EXEMPLARS_BY_TRACE, SPANS_BY_TRACE

MERGE_SETTINGS = "merge_selector_base = 10, min_bytes_for_wide_part = 104857600"

INSERTED_TABLES = (TRACES, TRACE_ID_TS, SPANS_BY_TRACE, CALL_SPANS, LOGS, *METRIC_TABLES.values(), EXEMPLARS_BY_TRACE)
"""The tables that take a part of every span, log or metric insert."""

FEWER_MERGES = Migration(
    version=7,
    name="fewer, larger merges of the tables every insert writes",
    operations=tuple(ModifySettings(table, MERGE_SETTINGS) for table in INSERTED_TABLES),
)

TRACE_VIEW_MERGE_SETTINGS = "merge_selector_base = 30"

FEWER_TRACE_VIEW_MERGES = Migration(
    version=8,
    name="fewer merges of the trace view's copy, whose random trace ids interleave every merge",
    operations=(ModifySettings(SPANS_BY_TRACE, TRACE_VIEW_MERGE_SETTINGS),),
)
