"""OTLP/HTTP: POST /v1/traces, /v1/logs and /v1/metrics, protobuf or JSON, plain or gzip."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response

from correlator.api.state import AppState
from correlator.errors import CorrelatorError, PayloadTooLarge
from correlator.otlp.decode import Encoding, Signal, parse_content_type, status_body, success_response

router = APIRouter(tags=["otlp"])
# Status codes of google.rpc.Code used in error bodies.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 503: 14}

# Bodies are encoded like the request: protobuf bytes, or OTLP JSON.
_PROTOBUF = {"schema": {"type": "string", "format": "binary"}}
_STATUS_JSON = {
    "schema": {
        "type": "object",
        "description": "a google.rpc.Status",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "array"}},
    }
}


def _status(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/x-protobuf": _PROTOBUF, "application/json": _STATUS_JSON},
    }


_OTLP_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": _PROTOBUF,
            "application/json": {"schema": {"type": "object", "description": "OTLP JSON"}},
        },
    }
}
_OTLP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "stored; partialSuccess counts the records rejected",
        "content": {
            "application/x-protobuf": _PROTOBUF,
            "application/json": {"schema": {"type": "object", "properties": {"partialSuccess": {"type": "object"}}}},
        },
    },
    400: _status("the body cannot be decoded"),
    401: _status("the bearer token is missing or not valid"),
    403: _status("the token's scope does not allow writes"),
    413: _status("the body is over the size limit (after decompression)"),
    415: _status("another content type or content encoding"),
    503: _status("the write queue is full; retry after Retry-After seconds"),
}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is more than {limit} bytes; the limit is {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _client_left_first(request: Request, work: asyncio.Future[Any]) -> bool:
    """Wait for `work`; if the client disconnects first, cancel it and say so."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if work.done():
        return False
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, CorrelatorError):
        await work
    return True


def otlp_error_response(error: CorrelatorError, encoding: Encoding) -> Response:
    """A google.rpc.Status body, encoded like the request, with Retry-After where the client should retry."""
    headers = {}
    retry_after = getattr(error, "retry_after_s", None)
    if error.status_code in (429, 503):
        headers["Retry-After"] = str(retry_after or 1)
    return Response(
        status_body(_RPC_CODES.get(error.status_code, 13), error.message, encoding),
        status_code=error.status_code,
        media_type=encoding.value,
        headers=headers,
    )


async def _export(request: Request, signal: Signal) -> Response:
    state: AppState = request.app.state.correlator
    header = request.headers.get("content-type")
    encoding = Encoding.JSON if header and "json" in header.lower() else Encoding.PROTOBUF
    try:
        state.auth.check(request.headers.get("authorization"), "write")
        encoding = parse_content_type(header)
        state.ingest.check_room()  # before the body: a refused request costs no memory
        body = await _read_body(request, state.ingest.max_body_bytes)
        export = asyncio.ensure_future(
            state.ingest.export_body(signal, body, encoding, request.headers.get("content-encoding"))
        )
        if await _client_left_first(request, export):
            # An exporter past its deadline closed the connection: its records are withdrawn unless the writer
            # had them already (counted as rejected, reason `withdrawn`), and no one is left to answer.
            return Response(status_code=499)
        result = export.result()
    except CorrelatorError as e:
        state.ingest.count_rejected_request(signal, e.error_type)
        return otlp_error_response(e, encoding)
    return Response(
        success_response(signal, result.rejected, result.error_message, encoding), media_type=encoding.value
    )


_DESCRIPTION = (
    "Body: an OTLP Export{signal}ServiceRequest as application/x-protobuf or application/json (OTLP JSON: hex ids, "
    "integer enums), optionally gzip. 200 once stored (partial_success counts rejected records), 400 undecodable, "
    "413 too large, 415 unsupported content type, 503 with Retry-After when the write queue is full."
)


@router.post(
    "/v1/traces",
    responses=_OTLP_RESPONSES,
    openapi_extra=_OTLP_OPENAPI,
    summary="OTLP/HTTP traces",
    description=_DESCRIPTION.format(signal="Trace"),
)
async def export_traces(request: Request) -> Response:
    return await _export(request, Signal.TRACES)


@router.post(
    "/v1/logs",
    responses=_OTLP_RESPONSES,
    openapi_extra=_OTLP_OPENAPI,
    summary="OTLP/HTTP logs",
    description=_DESCRIPTION.format(signal="Logs"),
)
async def export_logs(request: Request) -> Response:
    return await _export(request, Signal.LOGS)


@router.post(
    "/v1/metrics",
    responses=_OTLP_RESPONSES,
    openapi_extra=_OTLP_OPENAPI,
    summary="OTLP/HTTP metrics",
    description=_DESCRIPTION.format(signal="Metrics"),
)
async def export_metrics(request: Request) -> Response:
    return await _export(request, Signal.METRICS)
