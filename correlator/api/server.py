"""`correlator serve`: one process, one store; the API and OTLP/HTTP on their ports, OTLP/gRPC on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import tempfile
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from correlator.api.app import create_app
from correlator.api.otlp_grpc import build_grpc_server
from correlator.api.state import AppState, build_state
from correlator.settings import Settings

# How much of a request line and headers the HTTP parser (h11) buffers while they arrive. Its default, 16 KiB,
# refused a long URL only when TCP happened to deliver it in pieces (a plain-text 400, often a connection reset),
# so the same request got the API's answer or not by chance; every URL up to this size is now read whole.
MAX_REQUEST_HEAD_BYTES = 256 * 1024

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn, minus re-raising SIGTERM/SIGINT after its graceful stop: we still have to flush and close."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def _listen(bind: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    # Name TCP explicitly: asyncio switches Nagle's algorithm off (TCP_NODELAY) only on sockets whose protocol it
    # sees as TCP; without it every answer on a kept-alive connection waited ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {bind}:{port}: {e.strerror}") from e
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Server:
    """The running parts of `correlator serve`; ports are known once start() returned."""

    settings: Settings
    log_level: str = "info"
    state: AppState | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _uvicorn: _Uvicorn | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _grpc: Any = None
    _thread: threading.Thread | None = None
    _started: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def _open(self) -> None:
        settings = self.settings
        self.state = build_state(settings)
        http = _listen(settings.bind, settings.http_port)
        self._sockets = [http]
        self.ports["http"] = http.getsockname()[1]
        if settings.otlp_http_port and settings.otlp_http_port != settings.http_port:
            otlp = _listen(settings.bind, settings.otlp_http_port)
            self._sockets.append(otlp)
            self.ports["otlp_http"] = otlp.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            log_level=self.log_level,
            lifespan="off",
            timeout_graceful_shutdown=30,
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        )
        self._uvicorn = _Uvicorn(config)

    async def _serve(self) -> None:
        assert self.state is not None
        assert self._uvicorn is not None
        if self.settings.otlp_grpc_port:
            self._grpc, bound = build_grpc_server(self.state, self.settings.bind, self.settings.otlp_grpc_port)
            if not bound:
                raise OSError(f"cannot listen on {self.settings.bind}:{self.settings.otlp_grpc_port} for OTLP/gRPC")
            self.ports["otlp_grpc"] = bound
            await self._grpc.start()
        serving = asyncio.create_task(self._uvicorn.serve(sockets=self._sockets))
        while not self._uvicorn.started and not serving.done():
            await asyncio.sleep(0.01)
        self._started.set()
        try:
            await serving
        finally:
            if self._grpc is not None:
                await self._grpc.stop(grace=10)

    def run(self) -> None:
        """Serve in the foreground until SIGINT or SIGTERM, then flush queued records and close the store."""
        self._open()
        assert self.state is not None
        tempdir = tempfile.tempdir
        if self.state.store.config.embedded_dir is not None:
            # clickhouse-connect's chDB backend passes each Python-path insert through a temporary file, unlinked
            # once read: in the store's ingest folder, what a killed server leaves is cleared by the next opener
            # of the store instead of piling up in /tmp.
            tempfile.tempdir = str(self.state.store.ingest_workdir())
        try:
            asyncio.run(self._serve())
        finally:
            self._close()
            tempfile.tempdir = tempdir

    def _close(self) -> None:
        for sock in self._sockets:
            sock.close()
        if self.state is not None:
            self.state.close()
            self.state = None

    def start(self) -> Server:
        """Serve on a background thread (tests, the demo); returns once listening."""
        self._open()

        def target() -> None:
            try:
                asyncio.run(self._serve())
            except BaseException as e:
                self._error = e
                self._started.set()
                raise

        self._thread = threading.Thread(target=target, name="correlator-server", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            self._close()
            raise RuntimeError(f"the server did not start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop a server started with start(): finish requests, flush, close the store."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(60)
        self._close()

    def url(self, port: str = "http") -> str:
        host = self.settings.bind
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.ports[port]}"
