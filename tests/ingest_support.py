"""What the write-path tests share: trace bodies and mapped rows with distinct span ids, span counts per service,
and concurrent posts until the server refuses some."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from correlator.api.server import Server
from correlator.otlp.decode import Signal
from correlator.otlp.mappers import MAPPERS
from correlator.otlp.rows import Mapped
from tests.conftest import query
from tests.factories import span, traces_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def count_spans(server: Server, service: str) -> int:
    return int(query(server, "SELECT count() FROM otel.otel_traces WHERE ServiceName = {s:String}", s=service)[0][0])


def traces_body(service: str, index: int, size: int = 800) -> bytes:
    """`size` spans of `service`, with span ids no other `index` uses."""
    spans = [span(span_id=(index * 100_000 + i + 1).to_bytes(8, "big"), attributes={"i": i}) for i in range(size)]
    return traces_request(service, spans).SerializeToString()


def mapped_traces(service: str, index: int, size: int) -> Mapped:
    """The same spans mapped in Python, as the writer's submit_rows takes them."""
    spans = [span(span_id=(index * 100_000 + i + 1).to_bytes(8, "big")) for i in range(size)]
    return MAPPERS[Signal.TRACES](traces_request(service, spans))


def post_until_refused(client: httpx.Client, server: Server, service: str) -> tuple[int, list[httpx.Response]]:
    """Rounds of six concurrent 800-span requests until one is refused (at most 20 rounds): the spans
    acknowledged, and the refused answers."""
    acknowledged, refused = 0, []
    for round_ in range(20):
        bodies = [traces_body(service, round_ * 10 + i) for i in range(6)]
        with ThreadPoolExecutor(6) as pool:
            responses = list(
                pool.map(lambda b: client.post(server.url() + "/v1/traces", content=b, headers=PROTOBUF), bodies)
            )
        acknowledged += 800 * sum(r.status_code == 200 for r in responses)
        refused += [r for r in responses if r.status_code != 200]
        if refused:
            break
    return acknowledged, refused
