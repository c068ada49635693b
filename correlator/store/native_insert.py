"""Engine-side OTLP ingest: ClickHouse parses raw OTLP export bodies and flattens them into otel_traces/otel_logs."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clickhouse_connect.driver.client import Client

from correlator.otlp.logs import LOG_COLUMNS as LOGS_COLUMNS
from correlator.otlp.native_schema import (
    BODY_INDEX_FIELD_NAME,
    BODY_INDEX_FIELD_NUMBER,
    LOGS_REQUEST_MESSAGE,
    TRACES_REQUEST_MESSAGE,
    render_proto,
)
from correlator.otlp.traces import TRACE_COLUMNS as TRACES_COLUMNS
from correlator.store.identifiers import quote_identifier

# --------------------------------------------------------------------------------------------
# Input structure: the subset of the rendered .proto that the SQL reads. ClickHouse matches
# tuple element names to proto field names and skips every field not listed here.
# `value` inside an AnyValue tuple is the oneof itself (input_format_protobuf_oneof_presence):
# it tells which member was on the wire, so '' / false / 0 / 0.0 / "unset" stay distinct.
# --------------------------------------------------------------------------------------------
_ONEOF = (
    "Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, 'double_value' = 4,"
    " 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7, 'string_value_strindex' = 8)"
)
# string_value_strindex must be a column for the oneof column to report it (fields without a
# column are skipped before presence is recorded); it is only read to send such requests back.
_SCALARS = (
    "string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String,"
    " string_value_strindex Int32"
)
# Level 2 (elements of top-level arrays/maps): deeper containers arrive as raw bytes.
_VALUE_L2 = f"Tuple(value {_ONEOF}, {_SCALARS}, array_value String, kvlist_value String)"
_VALUE_L1 = (
    f"Tuple(value {_ONEOF}, {_SCALARS}, array_value Tuple(values Array({_VALUE_L2})),"
    f" kvlist_value Tuple(values Array(Tuple(key String, value {_VALUE_L2}))))"
)
ATTRS = f"Array(Tuple(key String, value {_VALUE_L1}))"
TRACES_STRUCTURE = (
    f"{BODY_INDEX_FIELD_NAME} UInt32, resource_spans Array(Tuple(resource Tuple(attributes {ATTRS}),"
    " scope_spans Array(Tuple(scope Tuple(name String, version String),"
    " spans Array(Tuple(trace_id String, span_id String, trace_state String, parent_span_id String,"
    " name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,"
    f" attributes {ATTRS},"
    f" events Array(Tuple(time_unix_nano UInt64, name String, attributes {ATTRS})),"
    f" links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {ATTRS})),"
    " status Tuple(message String, code Int32)))))))"
)

LOGS_STRUCTURE = (
    f"{BODY_INDEX_FIELD_NAME} UInt32, resource_logs Array(Tuple(resource Tuple(attributes {ATTRS}), schema_url String,"
    f" scope_logs Array(Tuple(scope Tuple(name String, version String, attributes {ATTRS}), schema_url String,"
    " log_records Array(Tuple(time_unix_nano UInt64, observed_time_unix_nano UInt64, severity_number Int32,"
    f" severity_text String, body {_VALUE_L1}, attributes {ATTRS}, flags UInt32, trace_id String,"
    " span_id String, event_name String))))))"
)

# The lean structures read every attribute value (and log body) as a level-2 value: an array or map arrives as raw
# bytes. Parsing and planning a batch of scalar values only, as nearly every request holds, costs about a quarter
# less than with the full structure (docs/benchmarks.md); a batch holding arrays or maps is parsed again with it.
LEAN_ATTRS = f"Array(Tuple(key String, value {_VALUE_L2}))"
TRACES_STRUCTURE_LEAN = TRACES_STRUCTURE.replace(ATTRS, LEAN_ATTRS)
LOGS_STRUCTURE_LEAN = LOGS_STRUCTURE.replace(ATTRS, LEAN_ATTRS).replace(f"body {_VALUE_L1}", f"body {_VALUE_L2}")

# Staged batches live in tables of their own database rather than in temporary tables, which only the session
# that made them sees: the writer stages the next batch on one thread while another inserts this one. Their names
# start with the process's pid, so that the next opener of the store drops what a killed process left
# (open_stage_database, which Store runs when it opens an embedded store).
STAGE_DATABASE = "_correlator_stage"


def stage_table(stage: str) -> str:
    """The quoted name of a staged batch's table."""
    return f"{quote_identifier(STAGE_DATABASE)}.{quote_identifier(stage)}"


_SPAN_KINDS = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
_STATUS_CODES = "['Unset', 'Ok', 'Error']"


def _literal(text: str) -> str:
    """Quote a constant this module built itself (path, structure) as an SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------------------------
# Value rendering: SQL mirrors of pcommon.Value.AsString(). Generated as text so the three
# nesting contexts (attribute value, JSON element, JSON map value) share one definition.
# --------------------------------------------------------------------------------------------
def _double_text(d: str) -> str:
    """Go's ES6-style float text: ClickHouse's shortest form, plus the '+' Go puts in big exponents."""
    return (
        f"multiIf(isNaN({d}), 'json: unsupported value: NaN',"
        f" isInfinite({d}), if({d} > 0, 'json: unsupported value: +Inf', 'json: unsupported value: -Inf'),"
        f" abs({d}) >= 1e21, replaceOne(toString({d}), 'e', 'e+'), toString({d}))"
    )


def _json_string(s: str) -> str:
    """Go encoding/json string literal: ClickHouse escaping, then Go's HTML-safe and lowercase-hex rules."""
    base = f"toJSONString({s})"
    # Go escapes <, > and & (HTML-safe) and writes \u00XX with lowercase hex; ClickHouse does
    # neither. Only strings containing such characters pay for the rewrite.
    fixed = base
    for src, dst in (("<", "\\\\u003c"), (">", "\\\\u003e"), ("&", "\\\\u0026")):
        fixed = f"replaceAll({fixed}, '{src}', '{dst}')"
    for hexdigit in "ABCDEF":
        fixed = f"replaceAll({fixed}, '\\\\u001{hexdigit}', '\\\\u001{hexdigit.lower()}')"
    for hexdigit in "BEF":
        fixed = f"replaceAll({fixed}, '\\\\u000{hexdigit}', '\\\\u000{hexdigit.lower()}')"
    return f"if(match({s}, '[<>&\\\\x0B\\\\x0E-\\\\x1F]'), {fixed}, {base})"


def _json_l2(v: str) -> str:
    """JSON text of a level-2 AnyValue (element of a top-level array or map)."""
    return (
        f"multiIf({v}.value = 'string_value', {_json_string(f'{v}.string_value')},"
        f" {v}.value = 'int_value', toString({v}.int_value),"
        f" {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'),"
        f" {v}.value = 'double_value', {_double_text(f'{v}.double_value')},"
        f" {v}.value = 'bytes_value', concat('\"', base64Encode({v}.bytes_value), '\"'),"
        # Only empty deeper containers are renderable; non-empty ones are counted as unsupported.
        f" {v}.value = 'array_value', '[]',"
        f" {v}.value = 'kvlist_value', '{{}}',"
        " 'null')"
    )


def _nan_in(values: str, v: str) -> str:
    """True when a level-2 value list holds a NaN/Inf double (Go's json.Marshal then fails: text '')."""
    return f"arrayExists({v} -> {v}.value = 'double_value' AND NOT isFinite({v}.double_value), {values})"


def _value_l1(v: str) -> str:
    """Attribute-value text of a level-1 AnyValue, as pcommon.Value.AsString() writes it."""
    arr = f"{v}.array_value.values"
    kvs = f"{v}.kvlist_value.values"
    array_json = (
        f"if({_nan_in(arr, 'e')}, '', concat('[', arrayStringConcat(arrayMap(e -> {_json_l2('e')}, {arr}), ','), ']'))"
    )
    kv_json = (
        f"if({_nan_in(f'arrayMap(q -> q.value, {kvs})', 'e')}, '',"
        f" concat('{{', arrayStringConcat(arrayMap(p -> concat({_json_string('p.key')}, ':', {_json_l2('p.value')}),"
        f" arraySort(p -> p.key, {kvs})), ','), '}}'))"
    )
    return (
        f"multiIf({v}.value = 'string_value', {v}.string_value,"
        f" {v}.value = 'int_value', toString({v}.int_value),"
        f" {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'),"
        f" {v}.value = 'double_value', {_double_text(f'{v}.double_value')},"
        f" {v}.value = 'bytes_value', base64Encode({v}.bytes_value),"
        f" {v}.value = 'array_value', {array_json},"
        f" {v}.value = 'kvlist_value', {kv_json},"
        " '')"
    )


def _unsupported_value(v: str) -> str:
    """Count of constructs inside one level-1 AnyValue that the SQL cannot render exactly."""
    l2_deep = "(e.value = 'array_value' AND e.array_value != '') OR (e.value = 'kvlist_value' AND e.kvlist_value != '')"
    return (
        # Containers nested deeper than two levels arrive as raw bytes.
        f"(arrayCount(e -> {l2_deep}, {v}.array_value.values)"
        f" + arrayCount(p -> {l2_deep.replace('e.', 'p.value.')}, {v}.kvlist_value.values)"
        # Duplicate keys inside a map value: Go keeps the last, SQL would emit both.
        f" + (length({v}.kvlist_value.values) - arrayUniq({v}.kvlist_value.values.key))"
        # Profiles-only string-table references have no text here.
        f" + ({v}.value = 'string_value_strindex')"
        f" + countEqual({v}.array_value.values.value, 'string_value_strindex')"
        f" + countEqual({v}.kvlist_value.values.value.value, 'string_value_strindex')"
        # Invalid UTF-8 inside arrays/maps (metrics bodies rely on this; trace and logs bodies were decoded by upb).
        f" + arrayCount(x -> NOT isValidUTF8(x), {v}.kvlist_value.values.key)"
        f" + arrayCount(x -> NOT isValidUTF8(x), {v}.array_value.values.string_value)"
        f" + arrayCount(x -> NOT isValidUTF8(x), {v}.kvlist_value.values.value.string_value))"
    )


def unsupported_in(attrs: str) -> str:
    """Count of constructs in a KeyValue list's values that the SQL cannot render exactly."""
    return f"arraySum(a -> toUInt64({_unsupported_value('a.value')}), {attrs})"


def dups_in(attrs: str) -> str:
    """Duplicate keys in a KeyValue list: the exporter keeps one entry, a Map built here would keep both."""
    return f"toUInt64(length({attrs}) - arrayUniq({attrs}.key))"


def _id_hex(raw: str, width: int) -> str:
    """Lowercase hex of an id; an empty or all-zero id becomes ''."""
    return f"if({raw} = '' OR {raw} = unhex(repeat('00', {width})), '', lower(hex({raw})))"


def _nano(ts: str) -> str:
    """fixed64 Unix nanoseconds -> DateTime64(9)."""
    return f"fromUnixTimestamp64Nano(reinterpretAsInt64({ts}), 'UTC')"


# Paths of every attribute value's oneof column in a request, relative to the root column.
# Chained tuple-element access on arrays of tuples yields nested arrays sharing the parsed data,
# and arrayFlatten turns them into one flat array per request: one vectorised pass, no lambda
# per value.
_TRACE_KIND_PATHS = (
    "resource_spans.resource.attributes.value.value",
    "resource_spans.scope_spans.spans.attributes.value.value",
    "resource_spans.scope_spans.spans.events.attributes.value.value",
    "resource_spans.scope_spans.spans.links.attributes.value.value",
)
# A span's own ids must be present; the Python path rejects a span without them.
_TRACE_REQUIRED_ID_PATHS = (
    ("resource_spans.scope_spans.spans.trace_id", 16),
    ("resource_spans.scope_spans.spans.span_id", 8),
)
_TRACE_ID_PATHS = (
    ("resource_spans.scope_spans.spans.parent_span_id", 8),
    ("resource_spans.scope_spans.spans.links.trace_id", 16),
    ("resource_spans.scope_spans.spans.links.span_id", 8),
)


def _count_kinds(kind_paths: Sequence[str], kinds: Sequence[str]) -> str:
    """How many values at the given oneof paths are of one of `kinds`."""
    # countEqual needs no lambda, which keeps planning cheap (this runs for every batch).
    return "toUInt64(" + " + ".join(f"countEqual(arrayFlatten({p}), '{k}')" for p in kind_paths for k in kinds) + ")"


def _request_unusual(kind_paths: Sequence[str]) -> str:
    """Cheap gate: how many of the value lists hold arrays, maps or string-table references (0: none)."""
    # hasAny stops at the first match and needs one pass per path, where counting needs one per kind.
    unusual = "['array_value', 'kvlist_value', 'string_value_strindex']"
    return "toUInt64(" + " + ".join(f"hasAny(arrayFlatten({p}), {unusual})" for p in kind_paths) + ")"


def request_containers(kind_paths: Sequence[str]) -> str:
    """Number of array/map values in a request (they need the full, slower renderer)."""
    return _count_kinds(kind_paths, ("array_value", "kvlist_value"))


def _bad_ids(id_paths: Sequence[tuple[str, int]], required: Sequence[tuple[str, int]] = ()) -> str:
    """Ids of a length pdata would reject, or missing where required (the Python path rejects those records)."""
    optional = [f"arrayCount(x -> length(x) NOT IN (0, {w}), arrayFlatten({p}))" for p, w in id_paths]
    needed = [f"arrayCount(x -> length(x) != {w}, arrayFlatten({p}))" for p, w in required]
    return " + ".join(optional + needed)


def _bad_span_times() -> str:
    """Spans ending before they start (or never ending): the Python path rejects them rather than wrap Duration."""
    spans = "arrayFlatten(resource_spans.scope_spans.spans"
    return f"arrayCount((s, e) -> e < s, {spans}.start_time_unix_nano), {spans}.end_time_unix_nano))"


def _trace_request_unsupported() -> str:
    """Always-checked constructs of a trace request the SQL cannot write as the collector does."""
    dups = (
        f"arraySum(rs -> {dups_in('rs.resource.attributes')}"
        f" + arraySum(ss -> arraySum(sp -> {dups_in('sp.attributes')}"
        f" + arraySum(ev -> {dups_in('ev.attributes')}, sp.events)"
        f" + arraySum(ln -> {dups_in('ln.attributes')}, sp.links),"
        " ss.spans), rs.scope_spans), resource_spans)"
    )
    return f"toUInt64({_bad_ids(_TRACE_ID_PATHS, _TRACE_REQUIRED_ID_PATHS)} + {_bad_span_times()} + {dups})"


def _trace_request_nested() -> str:
    """Per-value checks of arrays/maps/string-table refs, run only on requests the gate flagged."""
    return (
        f"arraySum(rs -> {unsupported_in('rs.resource.attributes')}"
        f" + arraySum(ss -> arraySum(sp -> {unsupported_in('sp.attributes')}"
        f" + arraySum(ev -> {unsupported_in('ev.attributes')}, sp.events)"
        f" + arraySum(ln -> {unsupported_in('ln.attributes')}, sp.links), ss.spans), rs.scope_spans), resource_spans)"
    )


_LOG_KIND_PATHS = (
    "resource_logs.resource.attributes.value.value",
    "resource_logs.scope_logs.scope.attributes.value.value",
    "resource_logs.scope_logs.log_records.attributes.value.value",
    "resource_logs.scope_logs.log_records.body.value",
)
_LOG_ID_PATHS = (
    ("resource_logs.scope_logs.log_records.trace_id", 16),
    ("resource_logs.scope_logs.log_records.span_id", 8),
)


def _log_request_unsupported() -> str:
    """Always-checked constructs of a logs request the SQL cannot write as the collector does."""
    dups = (
        f"arraySum(rl -> {dups_in('rl.resource.attributes')}"
        f" + arraySum(sl -> {dups_in('sl.scope.attributes')}"
        f" + arraySum(lr -> {dups_in('lr.attributes')}, sl.log_records), rl.scope_logs), resource_logs)"
    )
    return f"toUInt64({_bad_ids(_LOG_ID_PATHS)} + {dups})"


def _log_request_nested() -> str:
    """Per-value checks of arrays/maps/string-table refs, run only on requests the gate flagged."""
    return (
        f"arraySum(rl -> {unsupported_in('rl.resource.attributes')}"
        f" + arraySum(sl -> {unsupported_in('sl.scope.attributes')}"
        f" + arraySum(lr -> {unsupported_in('lr.attributes')} + toUInt64({_unsupported_value('lr.body')}),"
        " sl.log_records), rl.scope_logs), resource_logs)"
    )


def _scalar_text(v: str) -> str:
    """AsString() of one AnyValue tuple known to hold a scalar (log bodies in scalar-only batches)."""
    return (
        f"multiIf({v}.value = 'string_value', {v}.string_value, {v}.value = 'int_value', toString({v}.int_value),"
        f" {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'),"
        f" {v}.value = 'double_value', {_double_text(f'{v}.double_value')},"
        f" {v}.value = 'bytes_value', base64Encode({v}.bytes_value), '')"
    )


def _scalar_map(attrs: str) -> str:
    """Map(key -> AsString(value)) for a KeyValue list holding scalar values only (the common case).

    The lambda takes the value's subcolumns as parallel arrays instead of the whole tuple, which
    is about twice as fast, and all branches are cheap enough to evaluate without short-circuit.
    """
    render = (
        "multiIf(k = 'string_value', s, k = 'int_value', toString(i),"
        " k = 'bool_value', if(b, 'true', 'false'),"
        f" k = 'double_value', {_double_text('d')}, k = 'bytes_value', base64Encode(y), '')"
    )
    v = f"{attrs}.value"
    return (
        f"mapFromArrays({attrs}.key, arrayMap((k, s, i, d, b, y) -> {render}, {v}.value, {v}.string_value,"
        f" {v}.int_value, {v}.double_value, {v}.bool_value, {v}.bytes_value))"
    )


def attr_map_with(attrs: str, full: bool) -> str:
    """Map(key -> AsString(value)) of a KeyValue list, with the full or the scalar-only renderer."""
    if not full:
        return _scalar_map(attrs)
    return f"mapFromArrays({attrs}.key, arrayMap(a -> {_value_l1('a')}, {attrs}.value))"


def _span_select(full: bool) -> str:
    """Select list producing otel_traces columns from the per-span arrays joined in traces_insert_sql."""
    return ",\n".join(
        (
            _nano("start_ns"),
            _id_hex("trace_id", 16),
            _id_hex("span_id", 8),
            _id_hex("parent_span_id", 8),
            "trace_state",
            "span_name",
            f"transform(kind, [0, 1, 2, 3, 4, 5], {_SPAN_KINDS}, '')",
            "service_name",
            "resource_attributes",
            "scope_name",
            "scope_version",
            attr_map_with("attrs", full),
            # UInt64 subtraction wraps like Go's uint64(end-start) when end < start.
            "end_ns - start_ns",
            f"transform(status_code, [0, 1, 2], {_STATUS_CODES}, '')",
            "status_message",
            f"arrayMap(t -> {_nano('t')}, events.time_unix_nano)",
            "events.name",
            f"arrayMap(ea -> {attr_map_with('ea', full)}, events.attributes)",
            f"arrayMap(x -> {_id_hex('x', 16)}, links.trace_id)",
            f"arrayMap(x -> {_id_hex('x', 8)}, links.span_id)",
            "links.trace_state",
            f"arrayMap(la -> {attr_map_with('la', full)}, links.attributes)",
        )
    )


# Per-span fields joined in parallel: (alias, path below a ScopeSpans tuple).
_SPAN_FIELDS = (
    ("start_ns", "spans.start_time_unix_nano"),
    ("end_ns", "spans.end_time_unix_nano"),
    ("trace_id", "spans.trace_id"),
    ("span_id", "spans.span_id"),
    ("parent_span_id", "spans.parent_span_id"),
    ("trace_state", "spans.trace_state"),
    ("span_name", "spans.name"),
    ("kind", "spans.kind"),
    ("attrs", "spans.attributes"),
    ("status_code", "spans.status.code"),
    ("status_message", "spans.status.message"),
    ("events", "spans.events"),
    ("links", "spans.links"),
)


# --------------------------------------------------------------------------------------------
# Statements. Flow per batch: stage (parse once, cheap per-request checks) -> read the small
# per-request summary -> only if the gate flagged arrays/maps: per-value detail checks -> one
# INSERT of the clean requests -> drop the stage.
# --------------------------------------------------------------------------------------------
def build_stage_sql(
    stage: str,
    data_glob: str,
    schema_path: Path,
    threads: int,
    block_requests: int,
    *,
    message: str,
    structure: str,
    root: str,
    rows: str,
    unusual: str,
    unsupported: str,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """CREATE TABLE (Memory) holding each parsed request with its row count, check counts and `extra` columns."""
    extra_columns = "".join(f" {expr} AS {quote_identifier(name)}," for name, expr in extra)
    return (
        f"CREATE TABLE {stage_table(stage)} ENGINE = Memory AS\n"
        f"SELECT {BODY_INDEX_FIELD_NAME} AS body, toUInt64({rows}) AS row_count, {unusual} AS unusual,"
        f" {unsupported} AS unsupported,{extra_columns} {root}\n"
        f"FROM file({_literal(data_glob)}, 'Protobuf', {_literal(structure)})\n"
        f"SETTINGS format_schema = {_literal(f'{schema_path}:{message}')},"
        " input_format_protobuf_oneof_presence = 1,"
        # One file per thread: the bodies were split so both cores parse.
        f" max_threads = {int(threads)},"
        # Several staged blocks let the insert spread the flattening over threads as well.
        f" max_block_size = {max(1, int(block_requests))}"
    )


def build_detail_sql(stage: str, nested: str, containers: str) -> str:
    """Per-value verdict for the staged requests the gate flagged (kept out of the stage: costly to plan)."""
    return (
        f"SELECT body, toUInt64({nested}) AS nested_unsupported, {containers} AS containers"
        f" FROM {stage_table(stage)} WHERE unusual > 0"
    )


def traces_stage_sql(
    stage: str, data_glob: str, schema_path: Path, threads: int, block_requests: int = 65409, lean: bool = False
) -> str:
    """CREATE TABLE (Memory) holding each parsed trace request with its span count and cheap check counts."""
    return build_stage_sql(
        stage,
        data_glob,
        schema_path,
        threads,
        block_requests,
        message=TRACES_REQUEST_MESSAGE,
        structure=TRACES_STRUCTURE_LEAN if lean else TRACES_STRUCTURE,
        root="resource_spans",
        rows="arraySum(rs -> arraySum(ss -> length(ss.spans), rs.scope_spans), resource_spans)",
        unusual=_request_unusual(_TRACE_KIND_PATHS),
        unsupported=_trace_request_unsupported(),
    )


def traces_detail_sql(stage: str) -> str:
    """Per-value verdict (unsupported count, array/map count) for flagged staged trace requests."""
    return build_detail_sql(stage, _trace_request_nested(), request_containers(_TRACE_KIND_PATHS))


def summary_sql(stage: str, extra: Sequence[str] = ()) -> str:
    """One row per staged request: body index, row count, gate count, always-checked unsupported count, extras."""
    columns = "".join(f", {quote_identifier(name)}" for name in extra)
    return f"SELECT body, row_count, unusual, unsupported{columns} FROM {stage_table(stage)}"


def traces_insert_sql(
    database: str,
    stage: str,
    *,
    full_values: bool,
    skip_unsupported: bool,
    threads: int = 2,
    table: str = "otel_traces",
) -> str:
    """INSERT ... SELECT flattening the staged requests into otel_traces rows."""
    cols = ", ".join(quote_identifier(c) for c in TRACES_COLUMNS)
    source = stage_table(stage)
    if skip_unsupported:
        # Bound server-side ({skip:Array(UInt32)}), never formatted into the text.
        source = f"(SELECT resource_spans FROM {source} WHERE NOT has({{skip:Array(UInt32)}}, body))"
    span_arrays = ", ".join(f"ss.{path} AS {alias}" for alias, path in _SPAN_FIELDS)
    return (
        f"INSERT INTO {quote_identifier(database)}.{quote_identifier(table)} ({cols})\n"
        f"SELECT {_span_select(full_values)}\n"
        "FROM (\n"
        # Resource columns are computed once per resource and scope, then replicated per span.
        "  SELECT\n"
        f"    {attr_map_with('rs.resource.attributes', full_values)} AS resource_attributes,\n"
        # pcommon Map.Get returns the first match; duplicates are sent to the fallback anyway.
        "    resource_attributes['service.name'] AS service_name,\n"
        "    ss.scope.name AS scope_name, ss.scope.version AS scope_version,\n"
        # Only the span fields the table needs are pulled out, as parallel per-span arrays.
        f"    {span_arrays}\n"
        f"  FROM {source}\n"
        "  ARRAY JOIN resource_spans AS rs\n"
        "  ARRAY JOIN rs.scope_spans AS ss\n"
        ")\n"
        f"ARRAY JOIN {', '.join(alias for alias, _ in _SPAN_FIELDS)}\n"
        f"{insert_settings(threads, full_values)}"
    )


def logs_stage_sql(
    stage: str, data_glob: str, schema_path: Path, threads: int, block_requests: int = 65409, lean: bool = False
) -> str:
    """CREATE TABLE (Memory) holding each parsed logs request with its record count and cheap check counts."""
    return build_stage_sql(
        stage,
        data_glob,
        schema_path,
        threads,
        block_requests,
        message=LOGS_REQUEST_MESSAGE,
        structure=LOGS_STRUCTURE_LEAN if lean else LOGS_STRUCTURE,
        root="resource_logs",
        rows="arraySum(rl -> arraySum(sl -> length(sl.log_records), rl.scope_logs), resource_logs)",
        unusual=_request_unusual(_LOG_KIND_PATHS),
        unsupported=_log_request_unsupported(),
    )


def logs_detail_sql(stage: str) -> str:
    """Per-value verdict (unsupported count, array/map count) for flagged staged logs requests."""
    return build_detail_sql(stage, _log_request_nested(), request_containers(_LOG_KIND_PATHS))


# Per-record fields joined in parallel: (alias, path below a ScopeLogs tuple).
_LOG_FIELDS = (
    ("time_ns", "log_records.time_unix_nano"),
    ("observed_ns", "log_records.observed_time_unix_nano"),
    ("severity_number", "log_records.severity_number"),
    ("severity_text", "log_records.severity_text"),
    ("body", "log_records.body"),
    ("attrs", "log_records.attributes"),
    ("flags", "log_records.flags"),
    ("trace_id", "log_records.trace_id"),
    ("span_id", "log_records.span_id"),
    ("event_name", "log_records.event_name"),
)


def logs_insert_sql(
    database: str, stage: str, *, full_values: bool, skip_unsupported: bool, threads: int = 2, table: str = "otel_logs"
) -> str:
    """INSERT ... SELECT flattening the staged logs requests into otel_logs rows."""
    cols = ", ".join(quote_identifier(c) for c in LOGS_COLUMNS)
    source = stage_table(stage)
    if skip_unsupported:
        # Bound server-side ({skip:Array(UInt32)}), never formatted into the text.
        source = f"(SELECT resource_logs FROM {source} WHERE NOT has({{skip:Array(UInt32)}}, body))"
    body = _value_l1("body") if full_values else _scalar_text("body")
    select = ",\n".join(
        (
            # Timestamp falls back to the observed time when the event time is unset.
            _nano("if(time_ns = 0, observed_ns, time_ns)"),
            _id_hex("trace_id", 16),
            _id_hex("span_id", 8),
            # Go's uint8(...) conversions keep the low byte.
            "toUInt8(bitAnd(flags, 255))",
            "severity_text",
            "toUInt8(bitAnd(severity_number, 255))",
            "service_name",
            body,
            "resource_schema_url",
            "resource_attributes",
            "scope_schema_url",
            "scope_name",
            "scope_version",
            "scope_attributes",
            attr_map_with("attrs", full_values),
            "event_name",
        )
    )
    record_arrays = ", ".join(f"sl.{path} AS {alias}" for alias, path in _LOG_FIELDS)
    return (
        f"INSERT INTO {quote_identifier(database)}.{quote_identifier(table)} ({cols})\n"
        f"SELECT {select}\n"
        "FROM (\n"
        "  SELECT\n"
        f"    {attr_map_with('rl.resource.attributes', full_values)} AS resource_attributes,\n"
        "    resource_attributes['service.name'] AS service_name,\n"
        "    rl.schema_url AS resource_schema_url, sl.schema_url AS scope_schema_url,\n"
        "    sl.scope.name AS scope_name, sl.scope.version AS scope_version,\n"
        f"    {attr_map_with('sl.scope.attributes', full_values)} AS scope_attributes,\n"
        f"    {record_arrays}\n"
        f"  FROM {source}\n"
        "  ARRAY JOIN resource_logs AS rl\n"
        "  ARRAY JOIN rl.scope_logs AS sl\n"
        ")\n"
        f"ARRAY JOIN {', '.join(alias for alias, _ in _LOG_FIELDS)}\n"
        f"{insert_settings(threads, full_values)}"
    )


# --------------------------------------------------------------------------------------------
# Files handed to the engine
# --------------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """Protobuf base-128 varint (length prefixes and the body-index field)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BODY_INDEX_TAG = varint(BODY_INDEX_FIELD_NUMBER << 3)  # wire type 0 (varint)


@functools.cache
def _proto_text(lean: bool = False) -> str:
    """The rendered schema (lean: attribute values one level deep); the installed descriptors cannot change within a
    process."""
    return render_proto(max_value_depth=1) if lean else render_proto()


def ensure_schema_file(workdir: Path, lean: bool = False) -> Path:
    """Write the rendered .proto once; its name carries a content hash so a changed schema gets a new path."""
    text = _proto_text(lean)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(workdir).resolve() / f"otlp_native_{digest}.proto"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename so a concurrent reader never sees a partial schema.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".proto.tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    return path


def write_bodies(bodies: Sequence[bytes], workdir: Path, parts: int = 1) -> tuple[str, list[Path]]:
    """Write bodies length-delimited, each tagged with its index, into `parts` files; return (glob, paths)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"otlp_batch_{uuid.uuid4().hex}"
    parts = max(1, min(parts, len(bodies)))
    # Split by bytes, not by count, so the parallel readers get similar work.
    total = sum(len(b) for b in bodies)
    paths: list[Path] = []
    chunk: list[bytes] = []
    done = 0
    for i, body in enumerate(bodies):
        index = varint(i)
        chunk += (varint(len(body) + len(_BODY_INDEX_TAG) + len(index)), body, _BODY_INDEX_TAG, index)
        done += len(body)
        if len(paths) < parts - 1 and done * parts >= total * (len(paths) + 1):
            paths.append(_flush(workdir / f"{prefix}_{len(paths)}.bin", chunk))
            chunk = []
    if chunk or not paths:
        paths.append(_flush(workdir / f"{prefix}_{len(paths)}.bin", chunk))
    glob = str(workdir / f"{prefix}_*.bin")
    return glob, paths


def _flush(path: Path, chunk: list[bytes]) -> Path:
    """Write one data file, piece by piece: joined first, the batch's bodies would be held twice meanwhile."""
    with open(path, "wb") as fh:
        fh.writelines(chunk)
    return path


@dataclass
class NativeInsertResult:
    """Outcome of one native insert: rows written and the bodies left for the Python path."""

    rows: int
    fallback: list[int] = field(default_factory=list)
    used_full_renderer: bool = False


def insert_settings(threads: int, full_values: bool) -> str:
    """SETTINGS clause of the flattening INSERT."""
    # Two readers of the staged blocks and two MergeTree sinks keep both cores busy; the views on the tables
    # (the trace-id lookup, the rollups) run side by side instead of one after the other: +17 % spans/s measured
    # in process on 40k-span batches, at less CPU a span.
    settings = [
        f"max_threads = {int(threads)}",
        f"max_insert_threads = {int(threads)}",
        "parallel_view_processing = 1",
    ]
    if full_values:
        # Nested strings are JSON-escaped; ClickHouse would also escape '/', Go does not.
        settings.append("output_format_json_escape_forward_slashes = 0")
    else:
        # Scalar-only branches are all cheap: evaluating them all beats short-circuit masking.
        settings.append("short_circuit_function_evaluation = 'disable'")
    return "SETTINGS " + ", ".join(settings)


@dataclass
class Staged:
    """A parsed batch in a table of the staging database, with the verdict of the checks per body."""

    stage: str
    rows_of: dict[int, int]
    bad: set[int]
    full_values: bool
    extra_of: dict[int, tuple[int, ...]]

    @property
    def rows(self) -> int:
        """Rows of the bodies the engine keeps."""
        return sum(n for body, n in self.rows_of.items() if body not in self.bad)

    def prepared(self, inserts: Sequence[str]) -> PreparedInsert:
        """These INSERTs from the stage, to run later, each given the bad bodies to skip (bound as {skip})."""
        parameters = {"skip": sorted(self.bad)} if self.bad else None
        result = NativeInsertResult(rows=self.rows, fallback=sorted(self.bad), used_full_renderer=self.full_values)
        return PreparedInsert(self.stage, [(sql, parameters) for sql in inserts], result)


def _stage_prefix() -> str:
    return f"_otlp_stage_{int(os.getpid())}_"


def open_stage_database(client: Client) -> None:
    """Create the staging database, and drop the staged batches other processes left (the caller opens the store:
    none of them is running)."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(STAGE_DATABASE)}")
    left = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND NOT startsWith(name, {mine:String})",
        parameters={"db": STAGE_DATABASE, "mine": _stage_prefix()},
    ).result_rows
    for (name,) in left:
        drop_stage(client, name)


def drop_stage(client: Client, stage: str) -> None:
    """Drop a staged batch's table now (SYNC: the database would otherwise keep its rows for minutes)."""
    client.command(f"DROP TABLE IF EXISTS {stage_table(stage)} SYNC")


def stage_batch(
    client: Client,
    bodies: Sequence[bytes],
    workdir: Path,
    threads: int,
    stage_sql: Callable[..., str],
    detail_sql: Callable[[str], str],
    extra: Sequence[str] = (),
    blocks_per_thread: int = 4,
) -> Staged:
    """Parse and check a non-empty batch into a staged table; the verdict per body (with `extra` stage columns).

    The batch is parsed with the lean structure (stage_sql(..., lean=True)), and again with the full one only when
    a request holds arrays, maps or string-table references. The caller drops the table (drop_stage) once it
    inserted from it.
    """
    data_glob, paths = write_bodies(bodies, workdir, parts=threads)
    stage = _stage_prefix() + uuid.uuid4().hex
    try:
        # About four staged blocks per thread (by default): enough to balance, few enough to stay cheap.
        block_requests = -(-len(bodies) // (max(1, blocks_per_thread) * max(1, threads)))
        lean_schema = ensure_schema_file(workdir, lean=True)
        client.command(stage_sql(stage, data_glob, lean_schema, threads, block_requests, lean=True))
        summary = client.query(summary_sql(stage, extra)).result_rows
        if any(unusual for _, _, unusual, *_ in summary):
            # Arrays or maps somewhere: their values need the full structure.
            drop_stage(client, stage)
            client.command(stage_sql(stage, data_glob, ensure_schema_file(workdir), threads, block_requests))
            summary = client.query(summary_sql(stage, extra)).result_rows
        rows_of: dict[int, int] = {}
        extra_of: dict[int, tuple[int, ...]] = {}
        bad: set[int] = set()
        flagged = False
        for body, n, unusual, unsupported, *more in summary:
            rows_of[int(body)] = int(n)
            extra_of[int(body)] = tuple(int(x) for x in more)
            flagged = flagged or unusual > 0
            if unsupported:
                bad.add(int(body))
        containers = 0
        if flagged:
            # Rare path: arrays/maps/string-table refs somewhere in the batch.
            for body, nested_bad, cont in client.query(detail_sql(stage)).result_rows:
                if nested_bad:
                    bad.add(int(body))
                elif int(body) not in bad:
                    containers += int(cont)
        return Staged(stage, rows_of, bad, containers > 0, extra_of)
    except BaseException:
        drop_stage(client, stage)
        raise
    finally:
        # The staged table holds the parsed bodies: the files are not read again.
        for path in paths:
            path.unlink(missing_ok=True)


@dataclass
class PreparedInsert:
    """A staged batch and the INSERTs that write it: `run` writes and drops the stage, `discard` only drops it.

    Any client of the engine may run it, on any thread: the writer stages one batch while the previous one inserts.
    """

    stage: str | None
    statements: list[tuple[str, dict[str, list[int]] | None]]
    result: NativeInsertResult

    def run(self, client: Client) -> NativeInsertResult:
        try:
            for sql, parameters in self.statements:
                client.command(sql, parameters=parameters)
        finally:
            self.discard(client)
        return self.result

    def discard(self, client: Client) -> None:
        if self.stage is not None:
            drop_stage(client, self.stage)
            self.stage = None


def prepare_native(
    client: Client,
    bodies: Sequence[bytes],
    workdir: Path,
    threads: int,
    stage_sql: Callable[..., str],
    detail_sql: Callable[[str], str],
    insert_sql: Callable[[str, bool, bool], str],
) -> PreparedInsert:
    """Stage and check one batch of request bodies (lean structure first); the INSERT of its renderable bodies, to
    run later."""
    if not bodies:
        return PreparedInsert(None, [], NativeInsertResult(rows=0))
    batch = stage_batch(client, bodies, workdir, threads, stage_sql, detail_sql)
    return batch.prepared([insert_sql(batch.stage, batch.full_values, bool(batch.bad))] if batch.rows else [])


def prepare_traces(
    client: Client,
    database: str,
    bodies: Sequence[bytes],
    workdir: Path,
    *,
    table: str = "otel_traces",
    threads: int = 2,
) -> PreparedInsert:
    """Stage ExportTraceServiceRequest bodies; the INSERT of every renderable one into `table`, to run later."""
    return prepare_native(
        client,
        bodies,
        workdir,
        threads,
        traces_stage_sql,
        traces_detail_sql,
        lambda stage, full, skip: traces_insert_sql(
            database, stage, full_values=full, skip_unsupported=skip, threads=threads, table=table
        ),
    )


def prepare_logs(
    client: Client, database: str, bodies: Sequence[bytes], workdir: Path, *, table: str = "otel_logs", threads: int = 2
) -> PreparedInsert:
    """Stage ExportLogsServiceRequest bodies; the INSERT of every renderable one into `table`, to run later."""
    return prepare_native(
        client,
        bodies,
        workdir,
        threads,
        logs_stage_sql,
        logs_detail_sql,
        lambda stage, full, skip: logs_insert_sql(
            database, stage, full_values=full, skip_unsupported=skip, threads=threads, table=table
        ),
    )
