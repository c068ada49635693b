"""One process per embedded store: plain refusals naming the holder; durability across SIGTERM, SIGKILL, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from correlator.settings import Settings
from correlator.store.client import ingest_workdir_root
from correlator.store.migrate import LATEST_VERSION
from correlator.store.native_insert import STAGE_DATABASE, open_stage_database
from tests.conftest import free_port, query
from tests.factories import span, traces_request
from tests.processes import correlator_command, spawn_serve, stored_rows

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _batch(index: int, size: int = 200) -> bytes:
    spans = [span(span_id=(index * 10_000 + i + 1).to_bytes(8, "big"), name=f"op-{i % 7}") for i in range(size)]
    return traces_request("durable", spans).SerializeToString()


def test_second_opener_is_told_which_pid_holds_the_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    holder = spawn_serve(data_dir)
    try:
        migrate = subprocess.run(
            correlator_command("migrate", "--dsn", f"chdb://{data_dir}"), capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 1
        assert f"is in use by process {holder.process.pid}" in migrate.stderr
        assert "Traceback" not in migrate.stderr
        second = spawn_serve(data_dir, wait=False)
        assert second.process.wait(120) == 1
        assert f"is in use by process {holder.process.pid}" in second.log()
        # The holder is unharmed.
        assert httpx.get(holder.url + "/readyz").status_code == 200
    finally:
        holder.stop()


def test_migrate_applies_once_and_dry_run_prints_sql(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'data'}"
    first = subprocess.run(correlator_command("migrate", "--dsn", dsn), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"applied migrations {list(range(1, LATEST_VERSION + 1))}" in first.stderr
    again = subprocess.run(correlator_command("migrate", "--dsn", dsn), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert "up to date" in again.stderr
    dry = subprocess.run(correlator_command("migrate", "--dry-run"), capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0
    assert "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces`" in dry.stdout
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_mv`" in dry.stdout


def test_acknowledged_records_survive_sigterm_sigkill_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    child = spawn_serve(data_dir)
    acknowledged = 0

    def send(index: int) -> int:
        try:
            response = httpx.post(child.url + "/v1/traces", content=_batch(index), headers=PROTOBUF, timeout=60)
        except httpx.HTTPError:
            return 0
        return 200 if response.status_code == 200 else 0

    # SIGTERM while requests are in flight: every acknowledged request must be stored (the writer flushes).
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, i) for i in range(40)]
        futures[5].result()
        assert child.stop(signal.SIGTERM) == 0
        acknowledged += sum(1 for f in futures if f.result() == 200) * 200
    assert acknowledged > 0

    # Every batch through the engine from here on, which reads the bodies from files beside the store.
    engine_path = {"CORRELATOR_ENGINE_PARSING_MIN_RECORDS": "0"}
    child = spawn_serve(data_dir, env=engine_path)
    assert stored_rows(child, "otel_traces") >= acknowledged
    stored_before_kill = stored_rows(child, "otel_traces")
    # SIGKILL right after acknowledgements: nothing acknowledged may be lost.
    for i in range(100, 110):
        assert send(i) == 200
    killed = child.process.pid
    child.stop(signal.SIGKILL)
    # The killed server's folder of bodies for the engine stays behind it (a clean stop removes its own)...
    workdirs = ingest_workdir_root(data_dir)
    assert [p.name.split("-")[0] for p in workdirs.iterdir()] == [str(killed)]

    child = spawn_serve(data_dir, env=engine_path)
    try:
        assert stored_rows(child, "otel_traces") == stored_before_kill + 10 * 200
        # ...until the next opener of the store clears it.
        assert all(not p.name.startswith(f"{killed}-") for p in workdirs.iterdir())
    finally:
        child.stop()
    assert list(workdirs.iterdir()) == []


def test_the_next_opener_drops_the_batches_a_killed_process_left_staged(server: Server) -> None:
    # A process killed between parsing a batch and writing it leaves the staged table behind; it is named after
    # that process's pid. Opening the store drops every other process's (the opener holds the store).
    assert server.state is not None
    store = server.state.store
    left, mine = "_otlp_stage_1_left", f"_otlp_stage_{os.getpid()}_mine"
    for name in (left, mine):
        store.command(f"CREATE TABLE {STAGE_DATABASE}.{name} (x UInt8) ENGINE = Memory")
    try:
        open_stage_database(store._client())
        tables = query(server, "SELECT name FROM system.tables WHERE database = {db:String}", db=STAGE_DATABASE)
        assert tables == [(mine,)]
    finally:
        store.command(f"DROP TABLE IF EXISTS {STAGE_DATABASE}.{mine} SYNC")


def test_serve_makes_its_temporary_files_in_the_ingest_folder(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # clickhouse-connect's chDB backend passes each Python-path insert through a temporary file it unlinks once
    # read: a server killed meanwhile leaves it behind. Under `serve` (Server.run) it is made in this process's
    # ingest folder, which the next opener of the store clears (test_acknowledged_records_survive_...), not in /tmp.
    made: list[Path] = []
    serving = threading.Event()  # before it, other servers of the session may still make theirs in /tmp
    real = tempfile.NamedTemporaryFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        handle = real(*args, **kwargs)
        if serving.is_set():
            made.append(Path(handle.name))
        return handle

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", spy)
    before = tempfile.tempdir
    settings = Settings(
        clickhouse_dsn=f"chdb://{data_dir}",
        http_port=free_port(),
        otlp_http_port=0,
        otlp_grpc_port=0,
        engine_parsing=False,
        memory_limit_mib=0,
    )
    server = Server(settings, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server._started.wait(60)
        serving.set()
        response = httpx.post(server.url() + "/v1/traces", content=_batch(900), headers=PROTOBUF, timeout=60)
        assert response.status_code == 200, response.text
    finally:
        serving.clear()
        assert server._uvicorn is not None
        server._uvicorn.should_exit = True
        thread.join(60)
    assert made, "the Python-path insert made no temporary file"
    root = ingest_workdir_root(data_dir).resolve()
    assert all(path.resolve().is_relative_to(root) for path in made), made
    # Stopped: the folder is gone with what was in it, and the process's temporary directory is back.
    assert not any(path.parent.exists() for path in made)
    assert tempfile.tempdir == before
