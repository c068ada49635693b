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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from correlator.api.server import Server
from correlator.otlp.logs import LOG_COLUMNS, map_logs
from correlator.otlp.rows import ColumnBlock
from correlator.otlp.traces import TRACE_COLUMNS, map_traces
from correlator.store import Store
from correlator.store.native_insert import NativeInsertResult
from tests.factories import T0, any_value, key_values, span

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
    return store.insert_otlp(signal, [request.SerializeToString() for request in requests], f"eq_{signal}_engine")


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
