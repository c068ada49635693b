"""Fuzzed parsers: every outside input gets a clean result or a 4xx CorrelatorError, never another exception.

Targets: the OTLP decoders (protobuf and OTLP JSON, plain or gzip) with the mapping to rows, for traces, logs and
metrics; every webhook parser; the time and window parser; and a slice of all of them through a running server.
Inputs are built from the protobuf descriptors and the webhook samples (mostly valid, then mutated) and from raw
bytes. The run is bounded and derandomized (CI sees the same inputs every time); `CORRELATOR_FUZZ_EXAMPLES`
multiplies the examples for a longer local run, and `bench/fuzz_long.py` pushes millions of inputs through the
OTLP decoders with the same generators. docs/fuzzing.md says what each property means and what the fuzzing found.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.api.server import Server
from correlator.errors import BadRequest, CorrelatorError, UndecodableBody
from correlator.events.github import parse_github
from correlator.events.times import parse_duration, parse_instant, parse_time_or_ago, parse_window
from correlator.events.webhooks import WEBHOOKS
from correlator.otlp.decode import REQUEST_TYPES, Encoding, Signal, decode_request, decompress, success_response
from correlator.otlp.mappers import MAPPERS, count_records
from correlator.otlp.rows import Mapped
from correlator.store.schema_otel import OTEL_TABLES
from tests.conftest import query, start_server
from tests.factories import T0, any_value, key_values, logs_request, span, traces_request

T = TypeVar("T")

# --- The property ---------------------------------------------------------------------------------------------

LIMIT = 4 * 1024 * 1024  # the decompression bound of the in-process targets
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_SCALE = max(1, int(os.environ.get("CORRELATOR_FUZZ_EXAMPLES", "1")))


def fuzz_settings(examples: int) -> settings:
    """Bounded, derandomized (CI sees the same inputs each run), no deadline: a slow example is not a failure."""
    return settings(
        max_examples=examples * _SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        # No explain phase: it reruns a failure hundreds of times to say which lines it ran, minutes on big inputs.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def refused_cleanly(error: BaseException) -> bool:
    """True for the refusals an outside input may earn: a CorrelatorError with a 4xx status."""
    return isinstance(error, CorrelatorError) and 400 <= error.status_code < 500


def expect_clean(call: Callable[[], T]) -> T | None:
    """The call's result, None for a 4xx CorrelatorError; any other exception fails the example."""
    try:
        return call()
    except Exception as e:
        if refused_cleanly(e):
            return None
        raise AssertionError(f"expected a result or a 4xx CorrelatorError, got {type(e).__name__}: {e}") from e


# --- Choices: one generator, driven by hypothesis in the suite and by `random` in bench/fuzz_long.py -------------


class Chooser:
    """The choices a generator makes; this one draws them from a seeded `random.Random` (fast, for long runs)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def pick(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) < percent

    def blob(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.integer(0, max_size))

    def text(self, max_size: int) -> str:
        alphabet = "aZ09 -_.:/'\"\\{}%$\x00\n\u00e9\u2028\U0001f600\ud800<>&"
        return "".join(self.pick(alphabet) for _ in range(self.integer(0, max_size)))


class DrawChooser(Chooser):
    """The same choices drawn through hypothesis, so failures shrink and the run is reproducible."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return int(self.data.draw(st.integers(low, high)))

    def blob(self, max_size: int) -> bytes:
        return bytes(self.data.draw(st.binary(max_size=max_size)))

    def text(self, max_size: int) -> str:
        return str(self.data.draw(st.text(max_size=max_size)))


# Strings that have broken parsers and SQL before: quotes, escapes, SQL and parameter syntax, NUL, separators.
HOSTILE_TEXTS = (
    "",
    " ",
    "checkout",
    "' OR 1=1 --",
    '"; DROP TABLE otel.otel_traces; --',
    "{x:String}",
    "$traces",
    "%s%s%n",
    "a\\'b",
    "\\",
    "a\x00b",
    "\u2028\u2029",
    "<script>&amp;",
    "\u00e9\u00e8\u4e2d\U0001f600",
    "x" * 300,
)
_NS_PER_S = 1_000_000_000
T0_NS = 1_767_225_600 * _NS_PER_S  # 2026-01-01T00:00:00Z
TIMESTAMPS_NS = (
    0,
    1,
    T0_NS,
    T0_NS + 1,
    T0_NS + 3600 * _NS_PER_S,
    (2**32) * _NS_PER_S - 1,
    (2**32) * _NS_PER_S,
    2**63 - 1,
    2**63,
    2**64 - 1,
)
DOUBLES = (0.0, -0.0, 1.5, -2.25, 1e-7, 1e21, 5e-324, 1.7976931348623157e308, math.nan, math.inf, -math.inf)
_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_64_BIT = frozenset(
    {
        FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64,
    }
)  # fmt: skip
_ID_WIDTHS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
# The message levels a generated request may nest (the request itself is level 0).
MAX_DEPTH = 9


def _hostile_text(chooser: Chooser) -> str:
    return chooser.pick(HOSTILE_TEXTS) if chooser.chance(70) else chooser.text(24)


def _integer(chooser: Chooser, field: FieldDescriptor) -> int:
    low, high = _RANGES[field.type]
    if field.name.endswith("time_unix_nano"):
        return chooser.pick(TIMESTAMPS_NS) if chooser.chance(80) else chooser.integer(low, high)
    if chooser.chance(50):
        return chooser.integer(0, 10)
    return chooser.pick((low, high, -1 if low else 1, 255, 256)) if chooser.chance(50) else chooser.integer(low, high)


def _scalar(chooser: Chooser, field: FieldDescriptor) -> tuple[Any, Any]:
    """A value for one scalar field: (protobuf value, OTLP JSON value)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        text = _hostile_text(chooser)
        if not text.isprintable() or "\ud800" in text:
            text = text.replace("\ud800", "?")  # a lone surrogate cannot be a protobuf string
        return text, text
    if kind == FieldDescriptor.TYPE_BYTES:
        if field.name in _ID_WIDTHS:
            width = _ID_WIDTHS[field.name]
            size = width if chooser.chance(80) else chooser.pick((0, 1, width - 1, width + 1, 32))
            raw = bytes(size) if chooser.chance(10) else chooser.blob(size).ljust(size, b"\x01")
            return raw, raw.hex().upper() if chooser.chance(20) else raw.hex()
        raw = chooser.blob(12)
        return raw, base64.b64encode(raw).decode()
    if kind == FieldDescriptor.TYPE_BOOL:
        flag = chooser.chance(50)
        return flag, flag
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        number = chooser.pick(DOUBLES) if chooser.chance(70) else chooser.integer(-(10**6), 10**6) / 64
        if math.isnan(number) or math.isinf(number):
            return number, {math.inf: "Infinity", -math.inf: "-Infinity"}.get(number, "NaN")
        return number, str(number) if chooser.chance(10) else number
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        names = [value.name for value in field.enum_type.values]
        if chooser.chance(70):
            name = chooser.pick(names)
            number = field.enum_type.values_by_name[name].number
            return number, name if chooser.chance(40) else number
        number = chooser.pick((-1, 6, 99, 2**31 - 1))
        return number, number
    number = _integer(chooser, field)
    # OTLP JSON: 64-bit integers travel as strings (numbers are accepted too).
    return number, str(number) if kind in _64_BIT and chooser.chance(70) else number


def build_message(
    chooser: Chooser, message: Message, depth: int = 0, budget: list[int] | None = None
) -> dict[str, Any]:
    """Fill a message with mostly valid, edge-biased values; returns the same content as an OTLP JSON object.

    `budget` bounds the messages of the whole request (60 by default), so a request stays small and quick.
    """
    budget = [60] if budget is None else budget
    budget[0] -= 1
    document: dict[str, Any] = {}
    descriptor: Descriptor = message.DESCRIPTOR
    chosen_oneofs = {
        oneof.name: chooser.pick(oneof.fields) for oneof in descriptor.oneofs if len(oneof.fields) > 1
    }  # fmt: skip
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.name in chosen_oneofs and chosen_oneofs[oneof.name] is not field:
            continue
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and (depth >= MAX_DEPTH or budget[0] <= 0):
            continue
        if not chooser.chance(85 if field.name in _ID_WIDTHS or field.name in ("key", "value", "name") else 55):
            continue
        key = field.json_name if chooser.chance(80) else field.name
        if field.is_repeated:
            count = chooser.integer(0, 3 if depth < 5 else 1)
            container = getattr(message, field.name)
            if is_message:
                document[key] = [build_message(chooser, container.add(), depth + 1, budget) for _ in range(count)]
            else:
                pairs = [_scalar(chooser, field) for _ in range(count)]
                container.extend(value for value, _ in pairs)
                document[key] = [item for _, item in pairs]
        elif is_message:
            child = getattr(message, field.name)
            child.SetInParent()
            document[key] = build_message(chooser, child, depth + 1, budget)
        else:
            value, item = _scalar(chooser, field)
            setattr(message, field.name, value)
            document[key] = item
    return document


# Stand for an integer of 5000 digits (more than Python's int() takes from text) and for arrays nested 100000 deep
# (past any recursion limit): json.dumps cannot write either, json_bytes puts them in by hand.
HUGE_INTEGER = "<an integer of 5000 digits>"
DEEP_NESTING = "<arrays nested 100000 deep>"


def json_value(chooser: Chooser, depth: int = 0) -> Any:
    """Any JSON value: the odd ones (huge numbers, deep arrays, lone surrogates) more often than chance would."""
    roll = chooser.integer(0, 11 if depth < 3 else 7)
    if roll == 0:
        return None
    if roll == 1:
        return chooser.chance(50)
    if roll == 2:
        return chooser.pick((0, -1, 2**63, 2**64, 10**30, -(10**400), HUGE_INTEGER))
    if roll == 3:
        return chooser.pick(DOUBLES[:8]) if chooser.chance(80) else chooser.integer(-1000, 1000) / 7
    if roll in (4, 5):
        return _hostile_text(chooser)
    if roll == 6:
        return chooser.pick(("NaN", "Infinity", "-1", "18446744073709551616", "1e5", "0x10", "\u00b2", "AAAA", "zz"))
    if roll == 7:
        return time_text(chooser)
    if roll in (8, 9):
        return [json_value(chooser, depth + 1) for _ in range(chooser.integer(0, 3))]
    if roll == 10:
        if chooser.chance(30):
            return DEEP_NESTING
        nested: Any = "deep"
        for _ in range(chooser.pick((20, 40, 120))):
            nested = [nested] if chooser.chance(50) else {"values": [{"key": "k", "value": {"kvlistValue": nested}}]}
        return nested
    return {_hostile_text(chooser): json_value(chooser, depth + 1) for _ in range(chooser.integer(0, 3))}


def _slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) of a JSON document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _slots(value)


def mutate_json(chooser: Chooser, document: Any, rounds: int) -> Any:
    """A copy of a document with a few slots replaced by odd values, removed, or renamed."""
    document = copy.deepcopy(document)
    for _ in range(rounds):
        slots = list(_slots(document))
        if not slots:
            return json_value(chooser)
        container, key = chooser.pick(slots)
        action = chooser.integer(0, 9)
        if action <= 5:
            container[key] = json_value(chooser)
        elif action == 6 and isinstance(container, dict):
            del container[key]
        elif action == 7 and isinstance(container, dict):
            container[_hostile_text(chooser)] = container.pop(key)
        elif action == 8:
            container[key] = time_text(chooser)
        else:
            container[key] = copy.deepcopy(container[key]) if chooser.chance(50) else [container[key]]
    return document


def json_bytes(chooser: Chooser, document: Any) -> bytes:
    """A document as a body, ASCII-escaped or raw UTF-8 (lone surrogates stay escaped)."""
    text = json.dumps(document, ensure_ascii=chooser.chance(50), allow_nan=True)
    # Python cannot print an integer past 4300 digits; its digits go in by hand.
    text = text.replace(json.dumps(HUGE_INTEGER), "9" * 5000)
    text = text.replace(json.dumps(DEEP_NESTING), "[" * 100_000 + "]" * 100_000)
    return text.encode("utf-8", "backslashreplace")


def mutate_bytes(chooser: Chooser, data: bytes) -> bytes:
    """A copy of a body with bytes flipped, cut, inserted or repeated."""
    buffer = bytearray(data)
    for _ in range(chooser.integer(1, 4)):
        action = chooser.integer(0, 4)
        at = chooser.integer(0, len(buffer))
        if action == 0 and buffer:
            at = min(at, len(buffer) - 1)
            buffer[at] = chooser.integer(0, 255)
        elif action == 1:
            del buffer[at:]
        elif action == 2:
            buffer[at:at] = chooser.blob(8)
        elif action == 3:
            # A length prefix or tag made huge: the varint of 2**62.
            buffer[at:at] = b"\x80\x80\x80\x80\x80\x80\x80\x80\x40"
        else:
            piece = bytes(buffer[at : at + chooser.integer(1, 16)])
            buffer[at:at] = piece * chooser.integer(1, 8)
    return bytes(buffer)


def time_text(chooser: Chooser) -> str:
    """An RFC 3339-like time or a duration, right or subtly (or badly) wrong."""
    if chooser.chance(30):
        number = chooser.pick(("0", "1", "15", "90", "2161", "999999", "10000000000", "9" * 30, "-1", "\u0661"))
        unit = chooser.pick(("s", "m", "h", "d", "w", "y", "", " h", "ms"))
        return f"{number}{unit}"
    year = chooser.pick(("0001", "1999", "2000", "2026", "2027", "9999", "10000", "0000", "20x6"))
    month = chooser.pick(("01", "04", "12", "13", "00", "1"))
    day = chooser.pick(("01", "28", "29", "31", "32"))
    clock = chooser.pick(("00:00:00", "12:00:03", "23:59:59", "24:00:00", "23:59:60", "1:2:3"))
    fraction = chooser.pick(("", ".5", ".123456", ".123456789", ".1234567890123", "."))
    offset = chooser.pick(("Z", "z", "+00:00", "-23:59", "+23:59", "+24:00", "+0200", " UTC", "", "+99:99", " +0200"))
    separator = chooser.pick(("T", "t", " ", "_"))
    text = f"{year}-{month}-{day}{separator}{clock}{fraction}{offset}"
    return text if chooser.chance(90) else text[: chooser.integer(0, len(text))] + chooser.text(4)


# --- OTLP: decode, map, and what the engine path does with an accepted body ----------------------------------

SIGNALS = tuple(Signal)
# The columns of every table the mapping writes, with their ClickHouse types (Nested columns as arrays).
_NESTED = re.compile(r"^Nested \((.*)\)$")


def _column_types() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for operation in OTEL_TABLES.operations:
        columns = getattr(operation, "columns", ())
        types: dict[str, str] = {}
        for column in columns:
            nested = _NESTED.match(column.type)
            if nested is None:
                types[column.name] = column.type
                continue
            for part in re.split(r",\s*(?![^()]*\))", nested.group(1)):
                name, _, kind = part.strip().partition(" ")
                types[f"{column.name}.{name}"] = f"Array({kind})"
        tables[getattr(operation, "table", "")] = types
    return tables


COLUMN_TYPES = _column_types()
_INT_RANGES = {
    "UInt8": (0, 2**8),
    "UInt32": (0, 2**32),
    "Int32": (-(2**31), 2**31),
    "UInt64": (0, 2**64),
    "DateTime": (0, 2**32),
    "DateTime64(9)": (-(2**63), 2**63),
}


def fits(kind: str, value: Any) -> bool:
    """Whether a mapped value can be written to a column of this ClickHouse type as the Python insert sends it."""
    kind = kind.removeprefix("LowCardinality(").removesuffix(")") if kind.startswith("LowCardinality(") else kind
    if kind.startswith("Array("):
        return isinstance(value, list) and all(fits(kind[6:-1], item) for item in value)
    if kind.startswith("Map("):
        return isinstance(value, dict) and all(fits("String", k) and fits("String", v) for k, v in value.items())
    if kind == "String":
        try:
            value.encode("utf-8")
        except (AttributeError, UnicodeEncodeError):
            return False
        return True
    if kind == "Float64":
        return isinstance(value, float | int)
    if kind == "Boolean":
        return isinstance(value, bool)
    low, high = _INT_RANGES[kind]
    return isinstance(value, int) and low <= value < high


def assert_storable(mapped: Mapped) -> None:
    """Every mapped row fits its table's column types: an insert never fails (and never fails a whole batch)."""
    for table, block in mapped.blocks.items():
        assert len({len(column) for column in block.data}) <= 1, f"{table}: columns of different lengths"
        types = COLUMN_TYPES[table]
        for name, column in zip(block.columns, block.data, strict=True):
            for row, value in enumerate(column):
                assert fits(types[name], value), f"{table}.{name} row {row}: {value!r} does not fit {types[name]}"


def check_otlp(signal: Signal, body: bytes, encoding: Encoding, content_encoding: str | None = None) -> bool:
    """The OTLP property; True when the body was accepted.

    A refused body is a 4xx CorrelatorError. An accepted one maps to storable rows without an error, and its
    protobuf serialization (what the engine path queues, and re-parses when it falls back) decodes again.
    """

    def decode() -> Message:
        return decode_request(signal, decompress(body, content_encoding, LIMIT), encoding)

    request = expect_clean(decode)
    if request is None:
        return False
    mapped = MAPPERS[signal](request)
    assert mapped.accepted + mapped.rejected == count_records(signal, request)
    assert_storable(mapped)
    again = decode_request(signal, request.SerializeToString(), Encoding.PROTOBUF)
    assert MAPPERS[signal](again).accepted == mapped.accepted
    success_response(signal, mapped.rejected, mapped.error_message, encoding)
    return True


def otlp_body(chooser: Chooser, signal: Signal) -> tuple[bytes, Encoding, str | None]:
    """A request body: generated, then (mostly) mutated, as protobuf or JSON, sometimes gzip; or raw bytes."""
    message = REQUEST_TYPES[signal]()
    document = build_message(chooser, message)
    form = chooser.integer(0, 9)
    if form <= 3:
        encoding, body = Encoding.PROTOBUF, message.SerializeToString()
        if chooser.chance(70):
            body = mutate_bytes(chooser, body)
    elif form <= 7:
        encoding = Encoding.JSON
        if chooser.chance(70):
            document = mutate_json(chooser, document, chooser.integer(1, 3))
        body = json_bytes(chooser, document)
        if chooser.chance(15):
            body = mutate_bytes(chooser, body)
    else:
        encoding = chooser.pick((Encoding.PROTOBUF, Encoding.JSON))
        body = chooser.blob(64)
    content_encoding = None
    if chooser.chance(15):
        content_encoding = "gzip"
        body = gzip.compress(body, mtime=0)
        if chooser.chance(30):
            body = mutate_bytes(chooser, body)
    elif chooser.chance(3):
        content_encoding = chooser.pick(("deflate", "br", "GZIP", " identity ", "x"))
    return body, encoding, content_encoding


@pytest.mark.parametrize("signal", SIGNALS, ids=[signal.value for signal in SIGNALS])
@fuzz_settings(200)
@given(data=st.data())
def test_otlp_decoders_accept_or_refuse_with_4xx(signal: Signal, data: st.DataObject) -> None:
    body, encoding, content_encoding = otlp_body(DrawChooser(data), signal)
    check_otlp(signal, body, encoding, content_encoding)


@pytest.mark.parametrize("signal", SIGNALS, ids=[signal.value for signal in SIGNALS])
@pytest.mark.parametrize("encoding", tuple(Encoding), ids=["protobuf", "json"])
@fuzz_settings(100)
@given(body=st.binary(max_size=256))
def test_otlp_decoders_take_raw_bytes(signal: Signal, encoding: Encoding, body: bytes) -> None:
    check_otlp(signal, body, encoding)


# --- Webhooks -------------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SAMPLES: dict[str, tuple[str, ...]] = {
    "argocd": ("argocd_deployed",),
    "github": ("github_deployment", "github_deployment_status", "github_ping"),
    "gitlab": ("gitlab_deployment",),
    "flux": ("flux_kustomization_succeeded", "flux_helmrelease_failed"),
    "alertmanager": ("alertmanager_v4",),
    "grafana": ("grafana_unified",),
    "pagerduty": ("pagerduty_incident_triggered", "pagerduty_incident_resolved"),
}
_SAMPLE_DOCUMENTS = {
    name: json.loads((FIXTURES / f"{name}.json").read_text()) for names in SAMPLES.values() for name in names
}
_GITHUB_EVENTS = {"github_deployment": "deployment", "github_deployment_status": "deployment_status"}


def webhook_delivery(chooser: Chooser, source: str) -> tuple[bytes, dict[str, str]]:
    """A delivery for one source: a sample with a few fields changed, its headers, or raw bytes."""
    sample = chooser.pick(SAMPLES[source])
    headers: dict[str, str] = {}
    if source == "github":
        event = _GITHUB_EVENTS.get(sample, "ping")
        headers["x-github-event"] = event if chooser.chance(90) else _hostile_text(chooser)
        headers["x-github-delivery"] = _hostile_text(chooser)
    elif source == "gitlab" and chooser.chance(80):
        headers["x-gitlab-event"] = "Deployment Hook" if chooser.chance(90) else _hostile_text(chooser)
    if chooser.chance(8):
        return chooser.blob(64), headers
    document = mutate_json(chooser, _SAMPLE_DOCUMENTS[sample], chooser.integer(0, 4))
    return json_bytes(chooser, document), headers


def check_webhook(source: str, body: bytes, headers: dict[str, str]) -> None:
    """The webhook property: a Delivery of well-formed records, or a 4xx CorrelatorError."""
    delivery = expect_clean(lambda: WEBHOOKS[source](body, headers, now=NOW))
    if delivery is None:
        return
    for record in (*delivery.deploys, *delivery.alerts):
        for name, value in vars(record).items():
            if isinstance(value, str):
                value.encode("utf-8")  # a lone surrogate here would fail the store's insert
            if isinstance(value, datetime):
                assert value.tzinfo is not None, f"{name} is a naive time"


@pytest.mark.parametrize("source", tuple(WEBHOOKS))
@fuzz_settings(150)
@given(data=st.data())
def test_webhook_parsers_accept_or_refuse_with_4xx(source: str, data: st.DataObject) -> None:
    body, headers = webhook_delivery(DrawChooser(data), source)
    check_webhook(source, body, headers)


# --- Times and windows ----------------------------------------------------------------------------------------


def check_times(since: str | None, until: str | None) -> None:
    """parse_duration, parse_instant, parse_time_or_ago and parse_window: a value or a BadRequest."""
    for text in filter(None, (since, until)):
        expect_clean(lambda text=text: parse_duration(text))
        value = expect_clean(lambda text=text: parse_instant(text, field="since", now=NOW))
        if value is not None:
            assert value.tzinfo is UTC
        expect_clean(lambda text=text: parse_time_or_ago(text, field="since", now=NOW))
    window = expect_clean(
        lambda: parse_window(since, until, default=timedelta(hours=1), longest=timedelta(days=90), now=NOW)
    )
    if window is not None:
        assert window.since <= window.until


@fuzz_settings(400)
@given(data=st.data())
def test_time_and_window_parsers_accept_or_refuse_with_400(data: st.DataObject) -> None:
    chooser = DrawChooser(data)
    texts = (None, "", *HOSTILE_TEXTS)
    since = time_text(chooser) if chooser.chance(80) else chooser.pick(texts)
    until = time_text(chooser) if chooser.chance(50) else chooser.pick(texts)
    check_times(since, until)


# --- The running server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(data_dir: Path) -> Iterator[Server]:
    """A server on its own database, so the fuzz rows stay out of other tests' reads; the engine ingest path."""
    running = start_server(data_dir, clickhouse_database="fuzz")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fuzz_python_server(data_dir: Path) -> Iterator[Server]:
    """The same on the Python ingest path (the mapping in Python, every insert by the driver)."""
    running = start_server(data_dir, clickhouse_database="fuzz", engine_parsing=False)
    yield running
    running.stop()


_CONTENT_TYPES = {Encoding.PROTOBUF: "application/x-protobuf", Encoding.JSON: "application/json"}


def _post(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, f"POST {path}: {response.status_code} {response.text[:300]}"
    assert response.status_code in (200, 201) or 400 <= response.status_code < 500
    return response


@pytest.mark.parametrize("path", ["fuzz_server", "fuzz_python_server"], ids=["engine", "python"])
@fuzz_settings(30)
@given(data=st.data())
def test_the_server_answers_fuzzed_otlp_with_success_or_4xx(
    path: str, request: pytest.FixtureRequest, data: st.DataObject
) -> None:
    fuzz_server: Server = request.getfixturevalue(path)
    chooser = DrawChooser(data)
    signal = chooser.pick(SIGNALS)
    body, encoding, content_encoding = otlp_body(chooser, signal)
    headers = {"Content-Type": _CONTENT_TYPES[encoding]}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    with httpx.Client(base_url=fuzz_server.url(), timeout=60) as client:
        _post(client, f"/v1/{signal.value}", body, headers)
        assert client.get("/healthz").status_code == 200


@fuzz_settings(25)
@given(data=st.data())
def test_the_server_answers_fuzzed_webhooks_with_success_or_4xx(fuzz_server: Server, data: st.DataObject) -> None:
    chooser = DrawChooser(data)
    source = chooser.pick(tuple(WEBHOOKS))
    body, headers = webhook_delivery(chooser, source)
    # HTTP carries only visible ASCII in header values (the client refuses the rest before sending).
    headers = {name: value for name, value in headers.items() if value.isascii() and value.isprintable()}
    with httpx.Client(base_url=fuzz_server.url(), timeout=60) as client:
        _post(client, f"/api/v1/webhooks/{source}", body, {**headers, "Content-Type": "application/json"})
        assert client.get("/healthz").status_code == 200


# --- Crashes the fuzzing found, each fixed in its own commit ---------------------------------------------------


@pytest.mark.parametrize(
    "text", ["9" * 30 + "d", "99999999999999w", "999999d", "3000000w"], ids=["digits", "weeks", "days", "years"]
)
def test_a_duration_past_what_a_time_holds_is_a_400(text: str) -> None:
    with pytest.raises(BadRequest, match=r"duration|before the year 1"):
        parse_time_or_ago(text, field="since", now=NOW)
    with pytest.raises(BadRequest):
        parse_window(text, None, default=timedelta(hours=1), longest=timedelta(days=90), now=NOW)


def test_an_instant_past_the_year_9999_in_utc_is_a_400() -> None:
    with pytest.raises(BadRequest, match="past the year 9999"):
        parse_instant("9999-12-31T23:59:59-01:00", field="until", now=NOW)


def test_an_overlong_duration_is_a_400() -> None:
    with pytest.raises(BadRequest, match="at most 999999999 days"):
        parse_duration("9" * 30 + "s")


def _refused(signal: Signal, body: bytes, encoding: Encoding = Encoding.JSON) -> CorrelatorError:
    with pytest.raises(CorrelatorError) as caught:
        decode_request(signal, body, encoding)
    assert caught.value.status_code == 400
    return caught.value


def test_a_json_integer_of_more_digits_than_python_converts_is_a_400() -> None:
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": ' + b"1" * 5000 + b"}]}]}]}"
    assert "not valid JSON" in _refused(Signal.TRACES, body).message


def test_a_json_integer_too_large_for_a_double_field_is_a_400() -> None:
    value = b'{"doubleValue": 1' + b"0" * 400 + b"}"
    body = b'{"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": ' + value + b"}]}}]}"
    assert "not an OTLP JSON" in _refused(Signal.TRACES, body).message


def _nested_arrays(arrays: int) -> bytes:
    """A trace request whose resource attribute nests `arrays` arrays: its messages are 4 + 2 * arrays deep."""
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(arrays):
        value = {"arrayValue": {"values": [value]}}
    span = {"traceId": "01" * 16, "spanId": "01" * 8, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    resource = {"attributes": [{"key": "deep", "value": value}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}).encode()


def test_json_nested_deeper_than_protobuf_decodes_is_a_400_like_the_protobuf() -> None:
    # The engine path queues the protobuf serialization of a JSON body and re-parses it when it falls back to
    # the Python mapping; a body nested past protobuf's limit failed there: a 503 for every request of the batch.
    deepest = decode_request(Signal.TRACES, _nested_arrays(48), Encoding.JSON)  # messages 100 deep
    assert decode_request(Signal.TRACES, deepest.SerializeToString(), Encoding.PROTOBUF) == deepest
    assert "nested more than 100 deep" in _refused(Signal.TRACES, _nested_arrays(49)).message
    too_deep = copy.deepcopy(deepest)
    innermost = too_deep.resource_spans[0].resource.attributes[0].value
    while innermost.HasField("array_value"):
        innermost = innermost.array_value.values[0]
    innermost.array_value.values.add().string_value = "x"
    _refused(Signal.TRACES, too_deep.SerializeToString(), Encoding.PROTOBUF)


def _post_protobuf(server: Server, signal: str, message: Message) -> httpx.Response:
    headers = {"Content-Type": "application/x-protobuf"}
    return httpx.post(f"{server.url()}/v1/{signal}", content=message.SerializeToString(), headers=headers, timeout=60)


def test_nanosecond_times_past_2_63_are_stored_wrapped_on_both_ingest_paths(
    any_path_server: Server, service_name: str
) -> None:
    # The exporter writes int64(ns) (and so does the engine path); the Python mapping sent the unsigned value,
    # which does not fit a DateTime64(9): the insert failed and the whole batch got a 503.
    late = span(start=2**64 - 2, duration_ns=1)
    late.events.add(time_unix_nano=2**63, name="wrapped")
    assert _post_protobuf(any_path_server, "traces", traces_request(service_name, [late])).status_code == 200
    record = LogRecord(time_unix_nano=2**64 - 1, body=any_value("late"))
    assert _post_protobuf(any_path_server, "logs", logs_request(service_name, [record])).status_code == 200
    spans = query(
        any_path_server,
        "SELECT toUnixTimestamp64Nano(Timestamp), arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Duration"
        " FROM otel.otel_traces WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert spans == [(-2, [-(2**63)], 1)]
    logs = query(
        any_path_server,
        "SELECT toUnixTimestamp64Nano(Timestamp) FROM otel.otel_logs WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert logs == [(-1,)]


def _metrics_request(service: str, time_ns: int, exemplar_ns: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values({"service.name": service}))
    metrics = resource_metrics.scope_metrics.add().metrics
    gauge = metrics.add(name="late.gauge").gauge.data_points.add(time_unix_nano=time_ns, as_int=1)
    gauge.exemplars.add(time_unix_nano=exemplar_ns, as_double=1.0)
    metrics.add(name="late.summary").summary.data_points.add(time_unix_nano=time_ns, count=1)
    return request


def test_metric_points_past_2106_are_rejected_not_a_failed_batch(any_path_server: Server, service_name: str) -> None:
    # TimeUnix is a DateTime (UInt32 seconds): such a point failed the insert and the whole batch got a 503. The
    # engine path leaves these points to the Python mapping, which now rejects them (partial success).
    in_range = _metrics_request(service_name, T0, T0)
    late = _metrics_request(service_name, 2**32 * 10**9, T0)
    late_exemplar = _metrics_request(service_name, T0, 2**64 - 1)
    late_exemplar.resource_metrics[0].scope_metrics[0].metrics.pop()  # the summary has no exemplars
    for request, rejected in ((in_range, 0), (late, 2), (late_exemplar, 1)):
        response = _post_protobuf(any_path_server, "metrics", request)
        assert response.status_code == 200
        answer = ExportMetricsServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_data_points == rejected
        if rejected:
            assert "past 2106-02-07" in answer.partial_success.error_message
    for table in ("otel_metrics_gauge", "otel_metrics_summary"):
        rows = query(
            any_path_server, f"SELECT count() FROM otel.{table} WHERE ServiceName = {{s:String}}", s=service_name
        )
        assert rows == [(1,)]


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("source", sorted(WEBHOOKS))
def test_a_webhook_body_nested_past_the_recursion_limit_is_a_400(source: str) -> None:
    with pytest.raises(UndecodableBody, match="not valid JSON"):
        WEBHOOKS[source](DEEP_JSON, {"x-github-event": "deployment"}, now=NOW)


def test_a_github_payload_string_nested_past_the_recursion_limit_is_ignored_like_any_bad_payload() -> None:
    document = json.loads((FIXTURES / "github_deployment.json").read_text())
    document["deployment"]["payload"] = DEEP_JSON.decode()
    delivery = parse_github(json.dumps(document).encode(), {"x-github-event": "deployment"}, now=NOW)
    assert delivery.deploys[0].service == document["repository"]["name"]


def test_a_webhook_string_with_a_lone_surrogate_is_a_400_and_a_pair_is_kept() -> None:
    # Python decodes "\ud800" into a str that no UTF-8 encoder takes: the store's insert (and Alertmanager's
    # fingerprint of the labels) raised UnicodeEncodeError, a 500.
    sample = (FIXTURES / "argocd_deployed.json").read_text()
    lone = sample.replace('"service": "checkout"', '"service": "check\\ud800out"').encode()
    with pytest.raises(UndecodableBody, match="lone surrogate"):
        WEBHOOKS["argocd"](lone, {}, now=NOW)
    paired = sample.replace('"service": "checkout"', '"service": "check\\ud83d\\ude00out"').encode()
    assert WEBHOOKS["argocd"](paired, {}, now=NOW).deploys[0].service == "check\U0001f600out"
    alert = json.loads((FIXTURES / "alertmanager_v4.json").read_text())
    del alert["alerts"][0]["fingerprint"]
    alert["alerts"][0]["labels"]["pod"] = "\ud800"
    with pytest.raises(UndecodableBody, match="lone surrogate"):
        WEBHOOKS["alertmanager"](json.dumps(alert).encode(), {}, now=NOW)


def test_a_github_payload_string_with_a_lone_surrogate_is_ignored_like_any_bad_payload() -> None:
    document = json.loads((FIXTURES / "github_deployment.json").read_text())
    document["deployment"]["payload"] = json.dumps({"service": "pay\ud800ments"})
    delivery = parse_github(json.dumps(document).encode(), {"x-github-event": "deployment"}, now=NOW)
    assert delivery.deploys[0].service == document["repository"]["name"]


@pytest.mark.parametrize(
    "kind", ["\ud800", "Server\udc80", "\u00b2"], ids=["surrogate", "trailing-surrogate", "superscript"]
)
def test_a_json_enum_that_is_no_ascii_name_is_a_400(kind: str) -> None:
    # The long run found this: upb raised SystemError looking up a lone surrogate among the enum's names.
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": kind}]}]}]}).encode()
    assert "not an OTLP JSON" in _refused(Signal.TRACES, body).message
