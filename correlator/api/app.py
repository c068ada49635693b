"""The FastAPI app: OTLP/HTTP receivers, health and readiness, /metrics, and the /api routes."""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from correlator import __version__
from correlator.api import deploys, incidents, otlp_http, reports, services, topology, traces, webhooks
from correlator.api.deps import api_errors, app_state, require_token
from correlator.api.state import AppState
from correlator.errors import BadRequest, CorrelatorError
from correlator.service import store_status

# What every /api route may answer besides its own statuses; OTLP and the probes have their own (or none).
API_ERRORS = api_errors(
    {
        400: "a parameter or the body is not valid",
        401: "the bearer token (or the webhook's proof) is missing or not valid",
        403: "the token's scope does not allow this route (a read token on a write)",
    }
)


class Readiness(BaseModel):
    """Whether the store answers with every migration applied, and why not."""

    status: Literal["ready", "not_ready"]
    detail: str


def _error_response(error: CorrelatorError) -> JSONResponse:
    headers = {}
    if error.status_code in (429, 503):
        headers["Retry-After"] = str(getattr(error, "retry_after_s", 1))
    return JSONResponse(
        {"error": {"type": error.error_type, "message": error.message}},
        status_code=error.status_code,
        headers=headers,
    )


class TableRowsOut(BaseModel):
    table: str
    rows: int


class StoreStatusOut(BaseModel):
    """What the store holds: its DSN (no password), schema version and rows per table."""

    dsn: str
    database: str
    schema_version: int
    tables: list[TableRowsOut]


def create_app(state: AppState) -> FastAPI:
    """The app over a built state; the server (or a test) owns the state's lifecycle."""
    app = FastAPI(
        title="correlator",
        version=__version__,
        description="Links logs, metrics and traces by trace id, service and deploy id. See API.md.",
    )
    app.state.correlator = state

    @app.exception_handler(CorrelatorError)
    async def _correlator_error(request: Request, error: CorrelatorError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and methods get the same error shape as everything else.
        kinds = {404: "not_found", 405: "method_not_allowed"}
        body = {"error": {"type": kinds.get(error.status_code, "http_error"), "message": str(error.detail)}}
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI decodes a JSON body before the route's dependencies run: check the token first, so a caller
        # without the right one gets 401 or 403 (API.md, Auth) and learns nothing about its body.
        route = request.scope.get("route")
        if any(getattr(d, "dependency", None) is require_token for d in getattr(route, "dependencies", ())):
            try:
                await require_token(request)
            except CorrelatorError as refused:
                return _error_response(refused)
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors())
        return _error_response(BadRequest(problems or "the request is not valid"))

    app.include_router(otlp_http.router)
    for router in (deploys, incidents, webhooks, services, traces, topology, reports):
        app.include_router(router.router, responses=API_ERRORS)

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="The store answers and every migration is applied",
        response_model=Readiness,
        responses={
            503: {"model": Readiness, "description": "not ready: the store does not answer or lacks migrations"}
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        ready, detail = await anyio.to_thread.run_sync(store_status.readiness, app_state(request).store)
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "detail": detail}, status_code=200 if ready else 503
        )

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="The correlator's own metrics, Prometheus text format",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        # The headline gauges read the store: not on the event loop.
        text = await anyio.to_thread.run_sync(generate_latest, app_state(request).metrics.registry)
        return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/store",
        tags=["store"],
        summary="What the store holds: schema version and rows per table",
        dependencies=[Depends(require_token)],
        responses=API_ERRORS,
    )
    async def store_info(request: Request) -> StoreStatusOut:
        info: Any = await anyio.to_thread.run_sync(store_status.describe, app_state(request).store)
        return StoreStatusOut(
            dsn=info.dsn,
            database=info.database,
            schema_version=info.schema_version,
            tables=[TableRowsOut(table=t.table, rows=t.rows) for t in info.tables],
        )

    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        # Validation errors are 400 in the /api error shape (above): FastAPI's 422 is never answered.
        if app.openapi_schema is None:
            document = generate_openapi()
            for item in document["paths"].values():
                for operation in item.values():
                    operation["responses"].pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                document.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or generate_openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    return app
