"""Shared fixtures: one in-process server per test session on its own data directory (chDB opens one per process)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from correlator.api.server import Server
from correlator.settings import Settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test session's embedded store; every in-process server of the session shares it."""
    return tmp_path_factory.mktemp("store") / "data"


def start_server(data_dir: Path, **overrides: Any) -> Server:
    """A server on the session's store with free ports; overrides change any setting."""
    values: dict[str, Any] = {
        "clickhouse_dsn": f"chdb://{data_dir}",
        "http_port": free_port(),
        "otlp_http_port": free_port(),
        "otlp_grpc_port": free_port(),
        # Every batch goes to the engine-side path, however small, so the tests exercise it.
        "engine_parsing_min_records": 0,
        # This process holds the whole test session besides its servers, so its resident size says nothing of a
        # server's: the memory limit is tested with its own settings (tests/test_memory_limit.py).
        "memory_limit_mib": 0,
    }
    values.update(overrides)
    return Server(Settings(**values), log_level="warning").start()


@pytest.fixture(scope="session")
def server(data_dir: Path) -> Iterator[Server]:
    """The session's server, with auth off."""
    running = start_server(data_dir)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def python_path_server(data_dir: Path) -> Iterator[Server]:
    """A server that maps every body in Python (the path of small batches, fallbacks and server DSNs)."""
    running = start_server(data_dir, engine_parsing=False)
    yield running
    running.stop()


@pytest.fixture(params=["engine", "python"])
def any_path_server(request: pytest.FixtureRequest) -> Server:
    """Each ingest path in turn: the same assertions must hold for both."""
    name = "server" if request.param == "engine" else "python_path_server"
    running: Server = request.getfixturevalue(name)
    return running


@pytest.fixture
def service_name() -> str:
    """A service name no other test uses, so each test reads only its own rows."""
    return f"svc-{uuid.uuid4().hex[:10]}"


def query(server: Server, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    """Rows from the server's own store (the test shares the engine with the app)."""
    assert server.state is not None
    return server.state.store.rows(sql, parameters)
