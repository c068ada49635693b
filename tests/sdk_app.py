"""A small instrumented service for tests/test_sdk.py: one scenario per run, since OTel providers are process-global.

Run as `python -m tests.sdk_app SCENARIO '{configure keyword arguments as JSON}'`; it prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from opentelemetry import metrics, trace

from correlator.sdk import configure

log = logging.getLogger("shop")


def _ids(span: trace.Span) -> dict[str, str]:
    context = span.get_span_context()
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def _emit_one_of_each() -> dict[str, str]:
    """A span with a log record inside it, and a counter: what every scenario sends."""
    counter = metrics.get_meter("sdk-test").create_counter("sdk_test_orders")
    with trace.get_tracer("sdk-test").start_as_current_span("checkout") as span:
        log.info("order placed")
        counter.add(3)
    return _ids(span)


def emit(arguments: dict[str, Any]) -> dict[str, Any]:
    """Configure, send one of each signal, shut down."""
    telemetry = configure(**arguments)
    ids = _emit_one_of_each()
    telemetry.shutdown()
    return {**ids, "resource": dict(telemetry.resource.attributes), "instrumented": telemetry.instrumented}


def plain(arguments: dict[str, Any]) -> dict[str, Any]:
    """No configure() at all: what a service run under `opentelemetry-instrument` does; the SDK flushes at exit."""
    # As a real app would: the root logger's WARNING default would drop the INFO record.
    logging.basicConfig(level=logging.INFO)
    return _emit_one_of_each()


def twice(arguments: dict[str, Any]) -> dict[str, Any]:
    """Configure the same way twice, then differently, then shut down twice."""
    first = configure(**arguments)
    same = configure(**arguments)
    other = configure(**{**arguments, "service_version": "9.9.9"})
    ids = _emit_one_of_each()
    flushed = first.force_flush()
    handlers = len(logging.getLogger().handlers)
    first.shutdown()
    other.shutdown()
    return {
        **ids,
        "same_object": first is same is other,
        "global_is_first": trace.get_tracer_provider() is first.tracer_provider,
        "root_handlers": handlers,
        "root_handlers_after_shutdown": len(logging.getLogger().handlers),
        "flushed": flushed,
        "flush_after_shutdown": first.force_flush(),
        "version": first.resource.attributes["service.version"],
    }


def collector_down(arguments: dict[str, Any]) -> dict[str, Any]:
    """Send to an endpoint nobody listens on, as a service whose collector is down would; time the shutdown."""
    # The app's own console logging, where the exporters' failures must show up.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    started = time.monotonic()
    telemetry = configure(**arguments)
    ids = _emit_one_of_each()
    flushed = telemetry.force_flush(timeout_s=5)
    telemetry.shutdown()
    return {**ids, "flushed": flushed, "seconds": time.monotonic() - started}


def web(arguments: dict[str, Any]) -> dict[str, Any]:
    """A FastAPI app made before configure(), called through httpx and requests."""
    import fastapi
    import httpx
    import requests
    import uvicorn

    app = fastapi.FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: str) -> dict[str, str]:
        log.info("serving order %s", order_id)
        return {"order": order_id}

    port = arguments.pop("port")
    telemetry = configure(**arguments, app=app)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    statuses = [httpx.get(f"{base}/orders/1").status_code, requests.get(f"{base}/orders/2", timeout=10).status_code]
    server.should_exit = True
    thread.join(10)
    telemetry.shutdown()
    return {"statuses": statuses, "instrumented": telemetry.instrumented}


SCENARIOS = {"emit": emit, "plain": plain, "twice": twice, "collector_down": collector_down, "web": web}

if __name__ == "__main__":
    scenario, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    print(json.dumps(SCENARIOS[scenario](json.loads(raw))))
