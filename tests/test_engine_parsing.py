"""The engine-side OTLP parser writes exactly the rows the Python mapping writes, and hands back what it cannot render.

Each path writes into its own scratch copy of otel_traces/otel_logs in the session's engine; both are compared
row for row and column for column.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, Metric

from correlator.api.server import Server
from correlator.errors import StoreError
from correlator.otlp.logs import LOG_COLUMNS, map_logs
from correlator.otlp.metrics import map_metrics
from correlator.otlp.rows import ColumnBlock
from correlator.otlp.traces import TRACE_COLUMNS, map_traces
from correlator.store import Store
from correlator.store.native_insert import STAGE_DATABASE, NativeInsertResult, PreparedInsert, varint
from tests.factories import T0, any_value, key_values, logs_request, span, summary_request, traces_request

Request = ExportTraceServiceRequest | ExportLogsServiceRequest
SIGNALS = ("traces", "logs")
# A label unique per generated record first, then every column; timestamps in ns (a datetime would drop them).
READ_SQL = {
    "traces": "SELECT SpanName AS label, * REPLACE (toUnixTimestamp64Nano(Timestamp) AS Timestamp,"
    " arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS `Events.Timestamp`) FROM otel.{table}",
    "logs": "SELECT LogAttributes['rid'] AS label, * REPLACE (toUnixTimestamp64Nano(Timestamp) AS Timestamp)"
    " FROM otel.{table}",
}

STRINGS = ("", "plain", 'quo"te\\', "<html>&amp;", "tab\tnl\ncr\r", "bs\bff\f", "ctl\x00\x01\x0b\x0e\x1a\x1f\x7f",
           "uni é ü 中文 😀", "line\u2028sep\u2029", "/{}[]:,")  # fmt: skip
DOUBLES = (0.1, 1e21, 1e-7, 123.0, -0.0, 0.0, 5e-324, float("nan"), float("inf"), float("-inf"), 1e20, 1e-6, 9.99e-7,
           1.7976931348623157e308, 2.0**53, 1 / 3, -1e21, 1.5e-7, 123456789012345680000.0, 2.5e-300)  # fmt: skip
INTS = (0, 1, -1, 42, 2**63 - 1, -(2**63))
SCALARS: dict[str, Any] = {
    "s.html": "<>&", "s.unicode": "é ü 中文 😀", "s.ctl": "\x00\x01\x08\x0b\x0e\x1a\x1f\x7f\t\n\r\u2028\u2029",
    "s.empty": "", "b.true": True, "b.false": False, **{f"i.{n}": n for n in INTS},
    **{f"d.{d!r}": d for d in DOUBLES}, "y.bytes": b"\x00\x01\xfe\xff", "y.empty": b"", "unset": None,
}  # fmt: skip
CONTAINERS: dict[str, Any] = {
    "a.mixed": ["<>&", "\x01é\u2028", 7, -(2**63), 1e21, 1e-7, -0.0, 5e-324, True, b"\xff", None, [], {}],
    "a.empty": [], "m.empty": {}, "a.nan": [1, float("nan")], "m.inf": {"x": float("-inf")},
    "m.mixed": {"z": 0.5, "a": "<&>", "n": None, "A": [], "é": {}, "b": b"\x00", "i": 2**63 - 1, "k<": "\x1f"},
}  # fmt: skip
SEVERITIES = (0, 1, 9, 13, 17, 21, 24, 300, -1)  # out of range: the low byte, as Go's uint8() keeps it


SCALAR_MAKERS: tuple[Callable[[random.Random], Any], ...] = (
    lambda rng: rng.choice(STRINGS),
    lambda rng: rng.random() < 0.5,
    lambda rng: rng.choice([*INTS, rng.randint(-(10**12), 10**12)]),
    lambda rng: rng.choice(DOUBLES),
    lambda rng: rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30),
    lambda rng: struct.unpack("<d", rng.randbytes(8))[0],  # any bit pattern: subnormals, NaN payloads, extremes
    lambda rng: rng.choice([b"", b"\x00\xff", bytes(range(7))]),
    lambda rng: None,  # an AnyValue with nothing set
)
ELEMENT_MAKERS = (*SCALAR_MAKERS, lambda rng: [], lambda rng: {})  # inside an array/map: empty containers too


def value(rng: random.Random, containers: bool) -> Any:
    """A scalar, or an array/map of scalars and empty containers (one nesting level, which the engine renders)."""
    if not containers or rng.random() < 0.7:
        return rng.choice(SCALAR_MAKERS)(rng)
    items = [rng.choice(ELEMENT_MAKERS)(rng) for _ in range(rng.randint(0, 4))]
    return items if rng.random() < 0.5 else {f"{rng.choice('bazAé<')}{i}": item for i, item in enumerate(items)}


def attrs(rng: random.Random, prefix: str, containers: bool, most: int = 6) -> list[KeyValue]:
    return key_values({f"{prefix}.{i}": value(rng, containers) for i in range(rng.randint(0, most))})


def seeded_traces(seed: int, containers: bool, count: int) -> list[Request]:
    """Varied trace requests: several resources and scopes, every kind and status, events and links."""
    rng = random.Random(seed)
    requests: list[Request] = []
    for r in range(count):
        request = ExportTraceServiceRequest()
        for ri in range(rng.randint(1, 3)):
            rs = request.resource_spans.add()
            if rng.random() < 0.8:  # else no service.name at all
                rs.resource.attributes.extend(key_values({"service.name": rng.choice(["checkout", "é-svc", "", 7])}))
            rs.resource.attributes.extend(attrs(rng, "res", containers))
            for si in range(rng.randint(1, 3)):
                ss = rs.scope_spans.add()
                ss.scope.name, ss.scope.version = rng.choice([("", ""), (f"scope-{si}", "1.2.3"), ("lib", "")])
                for n in range(rng.randint(1 if r == 0 else 0, 4)):
                    start = T0 + rng.randrange(10**12)
                    sp = span(name=f"op-{seed}-{r}-{ri}-{si}-{n}", trace_id=rng.choice([bytes(16), rng.randbytes(16)]),
                              span_id=rng.randbytes(8) if rng.random() < 0.9 else bytes(8), start=start,
                              parent_span_id=rng.choice([b"", bytes(8), rng.randbytes(8)]),
                              duration_ns=rng.choice([0, 1, 123_456_789]), kind=rng.randrange(6))  # fmt: skip
                    sp.trace_state = rng.choice(["", "k=v,x=y"])
                    sp.status.code, sp.status.message = rng.randrange(3), rng.choice(["", "boom", "ünï"])
                    sp.attributes.extend(attrs(rng, "span", containers, 10))
                    for e in range(rng.randint(0, 3)):
                        event = sp.events.add(time_unix_nano=start + e, name=rng.choice(["exception", "log", ""]))
                        event.attributes.extend(attrs(rng, "ev", containers, 3))
                    for _ in range(rng.randint(0, 2)):
                        link = sp.links.add(trace_id=rng.choice([bytes(16), rng.randbytes(16)]))
                        link.span_id = rng.choice([bytes(8), rng.randbytes(8), b""])
                        link.trace_state = rng.choice(["", "a=b"])
                        link.attributes.extend(attrs(rng, "ln", containers, 3))
                    ss.spans.append(sp)
        requests.append(request)
    return requests


def seeded_logs(seed: int, containers: bool, count: int) -> list[Request]:
    """Varied logs requests: several resources and scopes, every body type, with and without ids."""
    rng = random.Random(seed)
    requests: list[Request] = []
    for r in range(count):
        request = ExportLogsServiceRequest()
        for ri in range(rng.randint(1, 3)):
            rl = request.resource_logs.add(schema_url=rng.choice(["", "https://opentelemetry.io/schemas/1.26.0"]))
            if rng.random() < 0.8:
                rl.resource.attributes.extend(key_values({"service.name": rng.choice(["checkout", "cart", ""])}))
            rl.resource.attributes.extend(attrs(rng, "res", containers))
            for si in range(rng.randint(1, 3)):
                sl = rl.scope_logs.add(schema_url=rng.choice(["", "s-url"]))
                sl.scope.name, sl.scope.version = rng.choice(["", "logger"]), rng.choice(["", "2.0"])
                sl.scope.attributes.extend(attrs(rng, "scope", containers, 3))
                for n in range(rng.randint(1 if r == 0 else 0, 4)):
                    observed = T0 + rng.randrange(10**12)
                    record = sl.log_records.add(
                        observed_time_unix_nano=observed, time_unix_nano=rng.choice([0, observed - 1000]),
                        severity_number=rng.choice(SEVERITIES), severity_text=rng.choice(["", "INFO", "warn"]),
                        flags=rng.choice([0, 1, 0x1FF]), trace_id=rng.choice([b"", bytes(16), rng.randbytes(16)]),
                        span_id=rng.choice([b"", bytes(8), rng.randbytes(8)]),
                        event_name=rng.choice(["", "device.app.lifecycle"]),
                    )  # fmt: skip
                    record.attributes.extend(key_values({"rid": f"log-{seed}-{r}-{ri}-{si}-{n}"}))
                    record.attributes.extend(attrs(rng, "log", containers))
                    if rng.random() < 0.9:
                        record.body.CopyFrom(any_value(value(rng, containers)))
        requests.append(request)
    return requests


def fixed_traces(tag: str, containers: bool) -> ExportTraceServiceRequest:
    """Every listed value in resource, span, event and link attributes; every kind, status and parent-id form."""
    values = {**SCALARS, **(CONTAINERS if containers else {})}
    request = ExportTraceServiceRequest()
    for index, resource in enumerate(({"host.name": "h1"}, {"service.name": "checkout", **values})):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(key_values(resource))  # the first resource has no service.name
        for scope in range(2):
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = (f"scope-{scope}", "1.0") if scope else ("", "")
            for kind in range(6):
                start = T0 + kind * 1_000_003
                sp = span(name=f"{tag}-{index}-{scope}-{kind}", start=start, duration_ns=kind * 999, kind=kind,
                          trace_id=bytes(16) if kind == 5 else bytes(range(index, index + 16)),
                          span_id=bytes((kind, scope, index, 1, 2, 3, 4, 5)),
                          parent_span_id=(b"", bytes(8), bytes(range(8, 16)))[kind % 3])  # fmt: skip
                sp.attributes.extend(key_values(values))
                sp.trace_state = "k=v" if kind % 2 else ""
                sp.status.code, sp.status.message = kind % 3, "boom" if kind % 3 == 2 else ""
                sp.events.add(time_unix_nano=start + 5, name="exception").attributes.extend(key_values(values))
                sp.events.add(time_unix_nano=start + 6, name="")
                link = sp.links.add(trace_id=bytes(range(16)), span_id=(b"", bytes(8), bytes(range(8)))[kind % 3])
                link.trace_state = "t=1"
                link.attributes.extend(key_values(values))
                ss.spans.append(sp)
    return request


def fixed_logs(tag: str, containers: bool) -> ExportLogsServiceRequest:
    """Every listed value as a body and in all three maps; ids, observed-only times, severities and event names."""
    values = {**SCALARS, **(CONTAINERS if containers else {})}
    request = ExportLogsServiceRequest()
    for index, resource in enumerate(({"host.name": "h1"}, {"service.name": "checkout", **values})):
        rl = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.26.0" if index else "")
        rl.resource.attributes.extend(key_values(resource))
        sl = rl.scope_logs.add(schema_url="s-url" if index else "")
        sl.scope.name, sl.scope.version = "logger", "2.0"
        sl.scope.attributes.extend(key_values(values if index else {}))
        for n, (key, body) in enumerate(values.items()):
            observed = T0 + n * 1_000_001
            record = sl.log_records.add(
                observed_time_unix_nano=observed, time_unix_nano=0 if n % 2 else observed - 7,  # odd: observed only
                severity_number=SEVERITIES[n % len(SEVERITIES)], severity_text=("", "INFO", "ERROR")[n % 3],
                flags=(0, 1, 0x1FF)[n % 3], trace_id=(b"", bytes(16), bytes(range(n, n + 16)))[n % 3],
                span_id=(b"", bytes(8), bytes(range(n, n + 8)))[n % 3],
                event_name="device.app.lifecycle" if n % 4 == 0 else "",
            )  # fmt: skip
            record.body.CopyFrom(any_value(body))
            record.attributes.extend(key_values({"rid": f"{tag}-{index}-{n:03}", "body.kind": key, **values}))
    return request


FIXED: dict[str, Callable[[str, bool], Request]] = {"traces": fixed_traces, "logs": fixed_logs}
SEEDED: dict[str, Callable[[int, bool, int], list[Request]]] = {"traces": seeded_traces, "logs": seeded_logs}


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[Store]:
    """The session's store with scratch tables eq_<signal>_py and eq_<signal>_engine shaped like otel_<signal>."""
    assert server.state is not None
    store = server.state.store
    scratch = [(signal, f"eq_{signal}_{side}") for signal in SIGNALS for side in ("py", "engine")]
    for signal, table in scratch:
        store.command(f"CREATE TABLE IF NOT EXISTS otel.{table} AS otel.otel_{signal}")
    yield store
    for _, table in scratch:
        store.command(f"DROP TABLE IF EXISTS otel.{table}")


def reset(store: Store, signal: str) -> None:
    """Empty both scratch tables of a signal (each test starts from nothing)."""
    for side in ("py", "engine"):
        store.command(f"TRUNCATE TABLE otel.eq_{signal}_{side}")


def write_python(store: Store, signal: str, requests: list[Request], table: str) -> int:
    """Map requests with the Python path and insert them as one block; returns the rows written."""
    mapper = map_traces if signal == "traces" else map_logs
    block = ColumnBlock(table, TRACE_COLUMNS if signal == "traces" else LOG_COLUMNS)
    for request in requests:
        block.extend(mapper(request, table).blocks[table])
    if len(block):
        store.insert_columns(table, block.columns, block.data)
    return len(block)


def write_engine(store: Store, signal: str, requests: list[Request]) -> NativeInsertResult:
    bodies = [request.SerializeToString() for request in requests]
    return store.insert_otlp(signal, bodies, {signal: f"eq_{signal}_engine"})


def brief(engine: Any, python: Any) -> Any:
    """Only the differing entries of two maps (or lists of maps), for a readable failure."""
    if isinstance(engine, dict) and isinstance(python, dict):
        return {k: (engine.get(k), python.get(k)) for k in {*engine, *python} if engine.get(k) != python.get(k)}
    if isinstance(engine, list) and isinstance(python, list) and len(engine) == len(python):
        return [brief(a, b) for a, b in zip(engine, python, strict=True) if a != b]
    return engine, python


def assert_same_rows(store: Store, signal: str) -> int:
    """Both scratch tables hold the same rows, column for column; returns how many."""
    names = ["label"] + [name for (name,) in store.rows(
        "SELECT name FROM system.columns WHERE database = 'otel' AND table = {t:String}"
        " AND default_kind != 'MATERIALIZED' ORDER BY position", {"t": f"eq_{signal}_py"})]  # fmt: skip
    python = store.rows(READ_SQL[signal].format(table=f"eq_{signal}_py") + " ORDER BY label")
    engine = store.rows(READ_SQL[signal].format(table=f"eq_{signal}_engine") + " ORDER BY label")
    assert [row[0] for row in engine] == [row[0] for row in python]
    for mine, theirs in zip(engine, python, strict=True):
        differences = {name: brief(a, b) for name, a, b in zip(names, mine, theirs, strict=True) if a != b}
        assert not differences, f"row {theirs[0]!r}: column -> (engine, python): {differences}"
    return len(python)


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize(
    ("batch", "full_renderer"),
    [
        pytest.param(lambda s: [FIXED[s]("fixed", True)], True, id="fixed-containers"),
        pytest.param(lambda s: [FIXED[s]("fixed", False)], False, id="fixed-scalars"),
        pytest.param(lambda s: SEEDED[s](20261126, True, 30), True, id="seeded-containers"),
        pytest.param(lambda s: SEEDED[s](99, True, 30), True, id="seeded-containers-2"),
        pytest.param(lambda s: SEEDED[s](7, False, 30), False, id="seeded-scalars"),
    ],
)
def test_engine_writes_the_rows_python_writes(
    store: Store, signal: str, batch: Callable[[str], list[Request]], full_renderer: bool
) -> None:
    reset(store, signal)
    requests = batch(signal)
    result = write_engine(store, signal, requests)
    assert result.fallback == []
    # Batches without arrays/maps take the engine's scalar-only renderer: both renderers are covered.
    assert result.used_full_renderer is full_renderer
    assert result.rows == write_python(store, signal, requests, f"eq_{signal}_py") > 0
    assert assert_same_rows(store, signal) == result.rows


Defect = Callable[[Any, Any], object]  # (resource, first record) -> mutates them
DEFECTS: dict[str, Defect] = {
    "array-in-array": lambda res, rec: rec.attributes.extend(key_values({"deep": [["x"]]})),
    "map-in-array": lambda res, rec: rec.attributes.extend(key_values({"deep": [{"k": "v"}]})),
    "array-in-map": lambda res, rec: rec.attributes.extend(key_values({"deep": {"k": [1]}})),
    "map-in-map": lambda res, rec: rec.attributes.extend(key_values({"deep": {"k": {"a": 1.5}}})),
    "duplicate-key": lambda res, rec: rec.attributes.extend(key_values({"dup": "one"}) + key_values({"dup": 2})),
    "duplicate-resource-key": lambda res, rec: res.attributes.extend(key_values({"service.name": "again"})),
    "short-trace-id": lambda res, rec: setattr(rec, "trace_id", b"\x01\x02\x03"),
    "long-trace-id": lambda res, rec: setattr(rec, "trace_id", bytes(range(17))),
}
LOG_DEFECTS: dict[str, Defect] = {"map-in-body": lambda res, rec: rec.body.CopyFrom(any_value([{"k": "v"}]))}


def with_defect(request: Request, defect: Defect) -> Request:
    """The request with one defect planted in its second resource and that resource's first record."""
    if isinstance(request, ExportTraceServiceRequest):
        resource, first = request.resource_spans[1], request.resource_spans[1].scope_spans[0].spans[0]
    else:
        resource, first = request.resource_logs[1], request.resource_logs[1].scope_logs[0].log_records[0]
    defect(resource.resource, first)
    return request


@pytest.mark.parametrize("signal", SIGNALS)
def test_unrenderable_bodies_come_back_and_python_completes_the_batch(store: Store, signal: str) -> None:
    reset(store, signal)
    defects = {**DEFECTS, **(LOG_DEFECTS if signal == "logs" else {})}
    good = SEEDED[signal](31, True, len(defects) + 1)
    batch: list[Request] = [good[0]]  # one defective body after each good one
    for index, (name, defect) in enumerate(defects.items()):
        batch += [with_defect(FIXED[signal](f"bad-{name}", index % 2 == 0), defect), good[index + 1]]
    result = write_engine(store, signal, batch)
    # Every defective body comes back (half of them hold no other array/map); the names say which one did not.
    assert [name for index, name in enumerate(defects) if 2 * index + 1 not in result.fallback] == []
    assert result.fallback == list(range(1, len(batch), 2))
    # The engine wrote every row of the other bodies and none of the fallback ones.
    kept = [request for index, request in enumerate(batch) if index not in result.fallback]
    assert result.rows == write_python(store, signal, kept, f"eq_{signal}_py") > 0
    assert assert_same_rows(store, signal) == result.rows
    # Engine rows plus the Python mapping of the fallback bodies = the Python mapping of the whole batch.
    store.command(f"TRUNCATE TABLE otel.eq_{signal}_py")
    whole = write_python(store, signal, batch, f"eq_{signal}_py")
    assert write_python(store, signal, [batch[index] for index in result.fallback], f"eq_{signal}_engine") > 0
    assert assert_same_rows(store, signal) == whole


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda sp: setattr(sp, "kind", 5), id="known-kind-control"),
        pytest.param(lambda sp: setattr(sp, "kind", 6), id="unknown-span-kind"),
        pytest.param(lambda sp: setattr(sp.status, "code", 3), id="unknown-status-code"),
        pytest.param(lambda sp: setattr(sp, "span_id", b""), id="empty-span-id"),
        pytest.param(lambda sp: setattr(sp, "trace_id", b""), id="empty-trace-id"),
        pytest.param(lambda sp: setattr(sp, "end_time_unix_nano", T0 - 5), id="end-before-start"),
        pytest.param(lambda sp: setattr(sp, "end_time_unix_nano", 0), id="no-end-time"),
    ],
)  # fmt: skip
def test_out_of_range_span_fields(store: Store, change: Callable[[Any], object]) -> None:
    """Engine rows plus the Python mapping of what it hands back must equal the Python mapping of the request."""
    reset(store, "traces")
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend([span(name="edge", start=T0), span(name="plain")])
    change(request.resource_spans[0].scope_spans[0].spans[0])
    fallback = write_engine(store, "traces", [request]).fallback
    write_python(store, "traces", [request for _ in fallback], "eq_traces_engine")
    write_python(store, "traces", [request], "eq_traces_py")
    assert assert_same_rows(store, "traces") >= 1


# --------------------------------------------------------------------------------------------
# Metrics: five tables per side (eq_metrics_<type>_py / _engine); every point carries a unique `pid` attribute.
# --------------------------------------------------------------------------------------------
METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
# No NaN among stored numbers: NaN != NaN would fail the row comparison (attribute values cover NaN as text).
POINT_DOUBLES = (0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, float("inf"), float("-inf"), 0.1, 2.0**53 + 1)


def metric_tables(side: str) -> dict[str, str]:
    return {kind: f"eq_metrics_{kind}_{side}" for kind in METRIC_TYPES}


@pytest.fixture(scope="module")
def metrics_store(store: Store) -> Iterator[Store]:
    """The session's store with scratch copies of the five otel_metrics_* tables per path."""
    scratch = [(kind, table) for side in ("py", "engine") for kind, table in metric_tables(side).items()]
    for kind, table in scratch:
        store.command(f"CREATE TABLE IF NOT EXISTS otel.{table} AS otel.otel_metrics_{kind}")
    yield store
    for _, table in scratch:
        store.command(f"DROP TABLE IF EXISTS otel.{table}")


def reset_metrics(store: Store) -> None:
    for side in ("py", "engine"):
        for table in metric_tables(side).values():
            store.command(f"TRUNCATE TABLE otel.{table}")


def write_metrics_python(store: Store, bodies: list[bytes], side: str = "py") -> tuple[int, int]:
    """Map bodies with the Python path and insert them; returns (points written, points rejected)."""
    tables = metric_tables(side)
    blocks = {table: ColumnBlock(table, ()) for table in tables.values()}
    written = rejected = 0
    for body in bodies:
        mapped = map_metrics(ExportMetricsServiceRequest.FromString(body), tables)
        rejected += mapped.rejected
        for table, block in mapped.blocks.items():
            if blocks[table].columns:
                blocks[table].extend(block)
            else:
                blocks[table] = ColumnBlock(table, block.columns, [list(column) for column in block.data])
    for table, block in blocks.items():
        if len(block):
            store.insert_columns(table, block.columns, block.data)
            written += len(block)
    return written, rejected


def write_metrics_engine(store: Store, bodies: list[bytes]) -> NativeInsertResult:
    return store.insert_otlp("metrics", bodies, metric_tables("engine"))


def assert_same_metric_rows(store: Store) -> int:
    """Each pair of scratch tables holds the same rows, column for column; returns how many in all."""
    total = 0
    for kind in METRIC_TYPES:
        py, engine = f"eq_metrics_{kind}_py", f"eq_metrics_{kind}_engine"
        names = ["label"] + [name for (name,) in store.rows(
            "SELECT name FROM system.columns WHERE database = 'otel' AND table = {t:String}"
            " AND default_kind != 'MATERIALIZED' ORDER BY position", {"t": py})]  # fmt: skip
        read = "SELECT Attributes['pid'] AS label, * FROM otel.{table} ORDER BY label"
        python, mine = store.rows(read.format(table=py)), store.rows(read.format(table=engine))
        assert [row[0] for row in mine] == [row[0] for row in python], kind
        for ours, theirs in zip(mine, python, strict=True):
            differences = {name: brief(a, b) for name, a, b in zip(names, ours, theirs, strict=True) if a != b}
            assert not differences, f"{kind} row {theirs[0]!r}: column -> (engine, python): {differences}"
        total += len(python)
    return total


def add_exemplars(point: Any, rng: random.Random, values: dict[str, Any], most: int = 3) -> None:
    """Exemplars with empty, all-zero and random ids, int, double and unset values."""
    for _ in range(rng.randint(0, most)):
        exemplar = point.exemplars.add(
            time_unix_nano=T0 + rng.randrange(10**12),
            span_id=rng.choice([b"", bytes(8), rng.randbytes(8)]),
            trace_id=rng.choice([b"", bytes(16), rng.randbytes(16)]),
        )
        which = rng.randrange(3)
        if which == 0:
            exemplar.as_int = rng.choice(INTS)
        elif which == 1:
            exemplar.as_double = rng.choice(POINT_DOUBLES)
        exemplar.filtered_attributes.extend(key_values(dict(rng.sample(sorted(values.items()), min(3, len(values))))))


def fill_point(kind: str, point: Any, rng: random.Random, pid: str, values: dict[str, Any]) -> None:
    """One data point of a metric type: times, a unique pid, attributes, values, optional fields, exemplars."""
    point.start_time_unix_nano = rng.choice([0, T0 - 10**9 - 1, T0])
    point.time_unix_nano = T0 + rng.randrange(10**12)
    point.attributes.extend(key_values({"pid": pid, **values}))
    point.flags = rng.choice([0, 1, 0xFFFFFFFF])
    if kind in ("gauge", "sum"):
        which = rng.randrange(3)  # int, double, or no value at all
        if which == 0:
            point.as_int = rng.choice([*INTS, rng.randint(-(10**18), 10**18)])
        elif which == 1:
            point.as_double = rng.choice([*POINT_DOUBLES, rng.uniform(-1e6, 1e6)])
    elif kind == "histogram":
        point.count, point.sum = rng.randrange(2**64), rng.choice(POINT_DOUBLES)
        bounds = sorted(rng.uniform(-10, 10) for _ in range(rng.randint(0, 5)))
        point.explicit_bounds.extend(bounds)
        if rng.random() < 0.8:  # else no buckets at all, which is allowed
            point.bucket_counts.extend(rng.randrange(2**64) for _ in range(len(bounds) + 1))
    elif kind == "exponential_histogram":
        point.count, point.sum, point.zero_count = rng.randrange(2**64), rng.uniform(0, 1e9), rng.randrange(100)
        point.scale, point.zero_threshold = rng.randint(-10, 20), rng.random()
        point.positive.offset, point.negative.offset = rng.randint(-(2**31), 2**31 - 1), rng.randint(-5, 5)
        point.positive.bucket_counts.extend(rng.randrange(2**64) for _ in range(rng.randint(0, 4)))
        point.negative.bucket_counts.extend(rng.randrange(1000) for _ in range(rng.randint(0, 4)))
    else:
        point.count, point.sum = rng.randrange(2**64), rng.choice(POINT_DOUBLES)
        for q in sorted(rng.random() for _ in range(rng.randint(0, 4))):
            point.quantile_values.add(quantile=q, value=rng.choice(POINT_DOUBLES))
    if kind in ("histogram", "exponential_histogram"):
        if rng.random() < 0.5:  # else absent: stored as 0
            point.min = rng.choice(POINT_DOUBLES)
        if rng.random() < 0.5:
            point.max = rng.choice(POINT_DOUBLES)
    if kind != "summary":
        add_exemplars(point, rng, values)


def add_metric(scope: Any, kind: str, rng: random.Random, tag: str, points: int, values: Callable[[], Any]) -> None:
    """A metric of one type with `points` points; sums and histograms get a temporality, sums monotonicity."""
    metric = scope.metrics.add(name=rng.choice([f"m.{kind}", "", "é/ünï"]), description=rng.choice(["", "d"]))
    metric.unit = rng.choice(["", "ms", "By"])
    data = getattr(metric, kind)
    data.SetInParent()  # the type is set even without points
    if kind in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = rng.choice([0, 1, 2, 7])  # 7: unknown, kept as a number
    if kind == "sum":
        data.is_monotonic = rng.random() < 0.5
    for n in range(points):
        fill_point(kind, data.data_points.add(), rng, f"{tag}-{n}", values())


def seeded_metrics(seed: int, containers: bool, count: int) -> list[bytes]:
    """Varied metrics requests: several resources and scopes, every type, empty metrics and types."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    for r in range(count):
        request = ExportMetricsServiceRequest()
        for ri in range(rng.randint(1, 3)):
            rm = request.resource_metrics.add(schema_url=rng.choice(["", "https://opentelemetry.io/schemas/1.26.0"]))
            if rng.random() < 0.8:
                rm.resource.attributes.extend(key_values({"service.name": rng.choice(["checkout", "cart", "", 3])}))
            rm.resource.attributes.extend(attrs(rng, "res", containers))
            for si in range(rng.randint(1, 3)):
                sm = rm.scope_metrics.add(schema_url=rng.choice(["", "s-url"]))
                sm.scope.name, sm.scope.version = rng.choice(["", "meter"]), rng.choice(["", "2.0"])
                sm.scope.dropped_attributes_count = rng.choice([0, 3])
                sm.scope.attributes.extend(attrs(rng, "scope", containers, 3))
                for mi in range(rng.randint(1 if r == 0 else 0, 6)):
                    kind = rng.choice(METRIC_TYPES)

                    def values() -> dict[str, Any]:
                        return {f"pt.{i}": value(rng, containers) for i in range(rng.randint(0, 5))}

                    add_metric(sm, kind, rng, f"{seed}-{r}-{ri}-{si}-{mi}", rng.randint(0, 4), values)
                if rng.random() < 0.2:
                    sm.metrics.add(name="no-data")  # a metric of no type: no rows
        bodies.append(request.SerializeToString())
    return bodies


def fixed_metrics(tag: str, containers: bool) -> bytes:
    """Every listed value in resource, scope, point and exemplar attributes, for every metric type."""
    values = {**SCALARS, **(CONTAINERS if containers else {})}
    rng = random.Random(tag)
    request = ExportMetricsServiceRequest()
    for index, resource in enumerate(({"host.name": "h1"}, {"service.name": "checkout", **values})):
        rm = request.resource_metrics.add(schema_url="https://opentelemetry.io/schemas/1.26.0" if index else "")
        rm.resource.attributes.extend(key_values(resource))
        for scope in range(2):
            sm = rm.scope_metrics.add(schema_url="s-url" if scope else "")
            sm.scope.name, sm.scope.version = ("meter", "2.0") if scope else ("", "")
            sm.scope.attributes.extend(key_values(values if scope else {}))
            sm.scope.dropped_attributes_count = scope * 5
            for kind in METRIC_TYPES:
                add_metric(sm, kind, rng, f"{tag}-{index}-{scope}-{kind}", 4, lambda: values)
    # Exemplar ids in every form, with int and double values, on the first gauge point.
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    del point.exemplars[:]
    point.exemplars.extend(
        [
            Exemplar(time_unix_nano=T0, as_int=-(2**63), span_id=bytes(8), trace_id=bytes(16)),
            Exemplar(time_unix_nano=T0 + 1, as_double=0.5, span_id=bytes(range(8)), trace_id=bytes(range(16))),
            Exemplar(time_unix_nano=T0 + 2, span_id=b"", trace_id=b""),
            Exemplar(time_unix_nano=T0 + 3, as_int=7, span_id=b"\xab" * 8, trace_id=b"\xcd" * 16),
        ]
    )
    point.exemplars[1].filtered_attributes.extend(key_values(values))
    return request.SerializeToString()


@pytest.mark.parametrize(
    ("bodies", "full_renderer"),
    [
        pytest.param(lambda: [fixed_metrics("fixed", True)], True, id="fixed-containers"),
        pytest.param(lambda: [fixed_metrics("fixed", False)], False, id="fixed-scalars"),
        pytest.param(lambda: seeded_metrics(20261126, True, 30), True, id="seeded-containers"),
        pytest.param(lambda: seeded_metrics(5, False, 30), False, id="seeded-scalars"),
        pytest.param(lambda: [fixed_metrics("a", False), *seeded_metrics(8, False, 3)], False, id="mixed"),
    ],
)
def test_engine_writes_the_metric_rows_python_writes(
    metrics_store: Store, bodies: Callable[[], list[bytes]], full_renderer: bool
) -> None:
    reset_metrics(metrics_store)
    batch = bodies()
    result = write_metrics_engine(metrics_store, batch)
    assert result.fallback == []
    assert result.used_full_renderer is full_renderer
    assert (result.rows, 0) == write_metrics_python(metrics_store, batch)
    assert result.rows > 0
    assert assert_same_metric_rows(metrics_store) == result.rows


def test_metric_types_without_points_write_nothing(metrics_store: Store) -> None:
    reset_metrics(metrics_store)
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    scope.metrics.add(name="empty-gauge").gauge.SetInParent()
    scope.metrics.add(name="no-type")
    assert write_metrics_engine(metrics_store, [request.SerializeToString()]).rows == 0
    assert write_metrics_engine(metrics_store, []).rows == 0
    assert assert_same_metric_rows(metrics_store) == 0


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def two_types_in_one_metric(tag: str) -> bytes:
    """A metric carrying a gauge and then a sum on the wire: protobuf keeps the last member of the oneof."""
    gauge, total = Metric(name=f"{tag}-twice"), Metric()
    gauge.gauge.data_points.add(as_int=1).attributes.extend(key_values({"pid": f"{tag}-gauge"}))
    total.sum.data_points.add(as_int=2).attributes.extend(key_values({"pid": f"{tag}-sum"}))
    metric = gauge.SerializeToString() + total.SerializeToString()
    return _field(1, _field(2, _field(2, metric)))


MetricDefect = Callable[[Any, Any, Any], object]  # (resource, scope, first point of the first histogram metric)


def _bad_buckets(res: Any, scope: Any, point: Any) -> None:
    del point.bucket_counts[:]
    point.bucket_counts.extend([1] * (len(point.explicit_bounds) + 2))


METRIC_DEFECTS: dict[str, MetricDefect] = {
    "inconsistent-buckets": _bad_buckets,
    "array-in-array": lambda res, sc, pt: pt.attributes.extend(key_values({"deep": [["x"]]})),
    "map-in-map": lambda res, sc, pt: pt.attributes.extend(key_values({"deep": {"k": {"a": 1.5}}})),
    "map-in-exemplar-array": lambda res, sc, pt: pt.exemplars.add(span_id=bytes(8)).filtered_attributes.extend(
        key_values({"deep": [{"k": "v"}]})
    ),
    "duplicate-key": lambda res, sc, pt: pt.attributes.extend(key_values({"dup": "one"}) + key_values({"dup": 2})),
    "duplicate-resource-key": lambda res, sc, pt: res.attributes.extend(key_values({"service.name": "again"})),
    "duplicate-scope-key": lambda res, sc, pt: sc.attributes.extend(key_values({"s": 1}) + key_values({"s": 2})),
    "duplicate-exemplar-key": lambda res, sc, pt: pt.exemplars.add().filtered_attributes.extend(
        key_values({"e": 1}) + key_values({"e": 1})
    ),
    "short-exemplar-span-id": lambda res, sc, pt: pt.exemplars.add(span_id=b"\x01\x02"),
    "long-exemplar-trace-id": lambda res, sc, pt: pt.exemplars.add(trace_id=bytes(range(17))),
}


def with_metric_defect(body: bytes, defect: MetricDefect) -> bytes:
    """The request with one defect planted in its second resource and first scope's histogram."""
    request = ExportMetricsServiceRequest.FromString(body)
    rm = request.resource_metrics[1]
    histogram = next(m for m in rm.scope_metrics[0].metrics if m.WhichOneof("data") == "histogram")
    defect(rm.resource, rm.scope_metrics[0].scope, histogram.histogram.data_points[0])
    return request.SerializeToString()


def test_unrenderable_metric_bodies_come_back_and_python_completes_the_batch(metrics_store: Store) -> None:
    reset_metrics(metrics_store)
    defective = {name: with_metric_defect(fixed_metrics(f"bad-{name}", i % 2 == 0), d)
                 for i, (name, d) in enumerate(METRIC_DEFECTS.items())}  # fmt: skip
    good = seeded_metrics(41, True, len(defective) + 1)
    batch = [good[0]]  # one defective body after each good one
    for index, body in enumerate(defective.values()):
        batch += [body, good[index + 1]]
    result = write_metrics_engine(metrics_store, batch)
    assert [name for index, name in enumerate(defective) if 2 * index + 1 not in result.fallback] == []
    assert result.fallback == list(range(1, len(batch), 2))
    kept = [body for index, body in enumerate(batch) if index not in result.fallback]
    assert (result.rows, 0) == write_metrics_python(metrics_store, kept)
    assert assert_same_metric_rows(metrics_store) == result.rows > 0
    # Engine rows plus the Python mapping of the fallback bodies = the Python mapping of the whole batch.
    reset_metrics(metrics_store)
    write_metrics_engine(metrics_store, batch)
    _, rejected_in_fallback = write_metrics_python(metrics_store, [batch[i] for i in result.fallback], "engine")
    whole, rejected = write_metrics_python(metrics_store, batch)
    assert rejected == rejected_in_fallback == 1  # the inconsistent histogram point, on both sides
    assert assert_same_metric_rows(metrics_store) == whole


def test_a_metric_with_two_types_on_the_wire_fails_the_whole_batch_before_writing(metrics_store: Store) -> None:
    """The engine cannot keep only the last oneof member as protobuf does: it refuses the batch, the writer maps it."""
    reset_metrics(metrics_store)
    body = two_types_in_one_metric("twice")
    assert [m.WhichOneof("data") for m in ExportMetricsServiceRequest.FromString(body).resource_metrics[0]
            .scope_metrics[0].metrics] == ["sum"]  # fmt: skip
    with pytest.raises(StoreError):
        write_metrics_engine(metrics_store, [seeded_metrics(3, False, 1)[0], body])
    assert assert_same_metric_rows(metrics_store) == 0


UTF8_PLACES: dict[str, Callable[[Any, Any, Any, str], object]] = {
    "resource-schema-url": lambda rm, sm, m, bad: setattr(rm, "schema_url", bad),
    "resource-key": lambda rm, sm, m, bad: rm.resource.attributes.extend(key_values({bad: 1})),
    "scope-name": lambda rm, sm, m, bad: setattr(sm.scope, "name", bad),
    "scope-value": lambda rm, sm, m, bad: sm.scope.attributes.extend(key_values({"k": bad})),
    "metric-unit": lambda rm, sm, m, bad: setattr(m, "unit", bad),
    "point-key": lambda rm, sm, m, bad: m.sum.data_points[0].attributes.extend(key_values({bad: "v"})),
    "exemplar-value": lambda rm, sm, m, bad: (
        m.sum.data_points[0].exemplars.add().filtered_attributes.extend(key_values({"k": bad}))
    ),
}


@pytest.mark.parametrize("place", UTF8_PLACES)
def test_metric_bodies_with_invalid_utf8_come_back(metrics_store: Store, place: str) -> None:
    """Protobuf refuses such a body; the engine would store the bytes, so it hands the body back."""
    reset_metrics(metrics_store)
    marker = "UTF8-MARKER!"
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    sm = rm.scope_metrics.add()
    metric = sm.metrics.add(name="m")
    metric.sum.data_points.add(as_int=1).attributes.extend(key_values({"pid": "p"}))
    UTF8_PLACES[place](rm, sm, metric, marker)
    body = request.SerializeToString().replace(marker.encode(), b"UTF8-\xff\xfeRKER!")
    good = seeded_metrics(12, False, 2)
    result = write_metrics_engine(metrics_store, [good[0], body, good[1]])
    assert result.fallback == [1]
    assert (result.rows, 0) == write_metrics_python(metrics_store, good)
    assert assert_same_metric_rows(metrics_store) == result.rows > 0


@pytest.mark.parametrize("where", ["start", "time", "exemplar"])
def test_metric_times_past_datetime_range_come_back(metrics_store: Store, where: str) -> None:
    """Seconds past 2106 do not fit DateTime: the engine would clamp them, the Python path fails; the body goes back."""
    reset_metrics(metrics_store)
    request = ExportMetricsServiceRequest()
    point = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
    late = 2**32 * 1_000_000_000
    if where == "start":
        point.start_time_unix_nano = late
    elif where == "time":
        point.time_unix_nano = late
    else:
        point.exemplars.add(time_unix_nano=2**64 - 1)
    good = seeded_metrics(13, False, 1)
    result = write_metrics_engine(metrics_store, [request.SerializeToString(), *good])
    assert result.fallback == [0]
    assert (result.rows, 0) == write_metrics_python(metrics_store, good)
    assert assert_same_metric_rows(metrics_store) == result.rows > 0


def _staged_structure(store: Store, prepared: PreparedInsert, root: str) -> str:
    """The type the stage gave the requests' `root` column (lean or full structure); the stage is dropped."""
    try:
        assert prepared.stage is not None
        ((structure,),) = store.rows(
            "SELECT type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
            " AND name = {root:String}",
            {"db": STAGE_DATABASE, "t": prepared.stage, "root": root},
        )
    finally:
        store.discard_prepared(prepared)
    return str(structure)


@pytest.mark.parametrize("containers", [False, True], ids=["scalars", "an-array"])
def test_batches_of_scalar_values_are_parsed_with_the_lean_structure(store: Store, containers: bool) -> None:
    # The lean structure reads attribute values one level deep (an array or map as raw bytes): cheaper to parse and
    # to plan. A batch holding an array or a map anywhere is parsed again with the full structure its values need.
    scalars = traces_request("lean", [span(attributes={"tag": "a"})])
    other = traces_request("lean", [span(attributes={"tags": ["a", "b"]} if containers else {"tag": "b"})])
    bodies = [scalars.SerializeToString(), other.SerializeToString()]
    structure = _staged_structure(
        store, store.prepare_otlp("traces", bodies, {"traces": "eq_traces_engine"}), "resource_spans"
    )
    assert ("kvlist_value Tuple(" in structure) is containers


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_logs_and_metrics_of_scalar_values_are_parsed_with_the_lean_structure(store: Store, signal: str) -> None:
    request = (
        logs_request("lean", [LogRecord(time_unix_nano=T0, body=any_value("done"))])
        if signal == "logs"
        else summary_request("lean", "lean.latency")
    )
    prepared = store.prepare_otlp(signal, [request.SerializeToString()], {signal: f"eq_{signal}_engine"})
    structure = _staged_structure(store, prepared, f"resource_{signal}")
    assert "kvlist_value Tuple(" not in structure
    assert "kvlist_value String" in structure
