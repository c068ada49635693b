"""ClickHouse clients from a DSN (embedded chDB or a server), one place that translates driver errors."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError

from correlator.errors import BadRequest, StoreLocked, StoreUnavailable
from correlator.store.identifiers import quote_identifier
from correlator.store.native_insert import (
    NativeInsertResult,
    PreparedInsert,
    open_stage_database,
    prepare_logs,
    prepare_traces,
)
from correlator.store.native_metrics import prepare_metrics

# Store sessions run in UTC so that DateTime values read and written mean the same instant everywhere.
SESSION_SETTINGS = {"session_timezone": "UTC"}


@dataclass(frozen=True)
class StoreConfig:
    """Where the store lives: a DSN (`chdb:///abs/dir` or `http(s)://user:pass@host:port/db`) and a database."""

    dsn: str
    database: str = "otel"

    @property
    def embedded_dir(self) -> Path | None:
        """The data directory of an embedded (chDB) store, None for a server."""
        if not self.dsn.startswith("chdb://"):
            return None
        path = self.dsn.removeprefix("chdb://")
        if not path.startswith("/"):
            raise BadRequest(f"expected an absolute path in the DSN like chdb:///var/lib/correlator, got {self.dsn!r}")
        return Path(path)

    def describe(self) -> str:
        """The DSN without its password, for logs and messages."""
        if self.embedded_dir is not None:
            return self.dsn
        parts = urlsplit(self.dsn)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def lock_holder(data_dir: Path) -> int | None:
    """The PID holding an embedded data directory, or None when it is free (or not yet created).

    chDB locks `<dir>/status` with flock and writes its PID into it; a second opener gets an obscure
    engine error, so we look first and say plainly who holds it.
    """
    status = data_dir / "status"
    if not status.exists():
        return None
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = status.read_text(errors="replace")
            match = re.search(r"PID:\s*(\d+)", text)
            return int(match.group(1)) if match else -1
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def ingest_workdir_root(data_dir: Path) -> Path:
    """Where the engine-side ingest of an embedded store writes request bodies for the engine to read: beside the
    data directory, one folder per process (`<pid>-...`), so that what a killed process left is cleared by the
    next opener of the store instead of piling up in /tmp."""
    return data_dir.with_name(data_dir.name + "-ingest")


def _workdir_prefix() -> str:
    """This process's folders under ingest_workdir_root start with its pid."""
    return str(os.getpid()) + "-"


def _clear_left_workdirs(data_dir: Path) -> None:
    # The caller holds the store: no other process writes there, and this process's own folders stay.
    root = ingest_workdir_root(data_dir)
    if root.is_dir():
        for left in root.iterdir():
            if not left.name.startswith(_workdir_prefix()):
                shutil.rmtree(left, ignore_errors=True)


# Writing calls per embedded data directory, for Store.writes (one engine per process holds a directory).
_WRITES: dict[Path, int] = {}
_WRITES_LOCK = threading.Lock()


class Store:
    """A handle on the ClickHouse store; each thread gets its own client (chDB serializes calls per client)."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._workdir: Path | None = None
        self._workdir_lock = threading.Lock()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        # Parsed from the DSN once: every write consults it (Store.writes).
        self._data_dir = data_dir = config.embedded_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            holder = lock_holder(data_dir)
            # This process's own engine holds the lock: chDB hands out more clients of it, which is fine.
            if holder is not None and holder != os.getpid():
                raise StoreLocked(str(data_dir), holder if holder > 0 else None)
        client = self._client()  # open now, so that a bad DSN or a held store fails at start, not on first use
        if data_dir is not None:
            _clear_left_workdirs(data_dir)
            with self._translate("opening the database of staged batches"):
                open_stage_database(client)

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                client = clickhouse_connect.get_client(dsn=self.config.dsn, settings=SESSION_SETTINGS)
            except ClickHouseError as e:
                data_dir = self._data_dir
                if data_dir is not None and (holder := lock_holder(data_dir)) is not None:
                    raise StoreLocked(str(data_dir), holder if holder > 0 else None) from e
                raise StoreUnavailable(f"cannot open the store {self.config.describe()}: {e}") from e
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClickHouseError as e:
            raise StoreUnavailable(f"{what} failed on {self.config.describe()}: {e}") from e

    def table(self, name: str) -> str:
        """A table of the store's database, quoted for SQL."""
        return f"{quote_identifier(self.config.database)}.{quote_identifier(name)}"

    def sql(self, template: str, **tables: str) -> str:
        """A query with each `$name` placeholder replaced by a quoted table of the store's database.

        Table names cannot be bound parameters; values always are (`{name:Type}`), so a template may hold
        braces freely and is never passed through str.format.
        """
        for placeholder, table in tables.items():
            template = template.replace(f"${placeholder}", self.table(table))
        return template

    @property
    def writes(self) -> int | None:
        """How many writing calls went to this store from this process; None for a server, which other processes
        may write to.

        An embedded store is this process's alone (chDB's lock), so an unchanged count means unchanged data:
        readers that derive state from the data can skip work. Handles on the same directory share the count.
        """
        if self._data_dir is None:
            return None
        with _WRITES_LOCK:
            return _WRITES.get(self._data_dir, 0)

    def _wrote(self) -> None:
        # Counted after the write returned: whoever reads the count next can see the rows.
        if self._data_dir is not None:
            with _WRITES_LOCK:
                _WRITES[self._data_dir] = _WRITES.get(self._data_dir, 0) + 1

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""
        try:
            with self._translate("a statement"):
                return self._client().command(sql, parameters=dict(parameters or {}))
        finally:
            self._wrote()

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        with self._translate("a query"):
            return list(self._client().query(sql, parameters=dict(parameters or {})).result_rows)

    def insert_columns(self, table: str, column_names: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
        """Insert one columnar block into a table of the store's database."""
        try:
            with self._translate(f"an insert into {table}"):
                self._client().insert(
                    table,
                    list(columns),
                    column_names=list(column_names),
                    database=self.config.database,
                    column_oriented=True,
                )
        finally:
            self._wrote()

    @property
    def parses_otlp(self) -> bool:
        """True when the engine can parse OTLP bodies itself (it reads them from local files: embedded only)."""
        return self._data_dir is not None

    def insert_otlp(
        self, signal: str, bodies: Sequence[bytes], tables: Mapping[str, str] | None = None
    ) -> NativeInsertResult:
        """Let the engine parse and flatten OTLP request bodies (`traces`, `logs` or `metrics`) into the store.

        `tables` overrides target tables by record type: `traces` / `logs` for those signals, the metric
        types (`gauge`, `sum`, ...) for metrics; the rest go to the exporter's tables. Bodies the engine
        cannot render exactly as the exporter would are left out and named in `fallback`. Trace and logs
        bodies must have been decoded once by the protobuf runtime (upb), as the ingest path does: it refuses
        invalid UTF-8 in strings, so the engine does not check that again.
        """
        return self.run_prepared(self.prepare_otlp(signal, bodies, tables))

    def prepare_otlp(
        self, signal: str, bodies: Sequence[bytes], tables: Mapping[str, str] | None = None
    ) -> PreparedInsert:
        """The first half of insert_otlp: parse and check the bodies in the engine; nothing is written yet.

        Pass the result to run_prepared (from any thread) to write it, or to discard_prepared to drop it.
        """
        if self._data_dir is None:
            raise BadRequest("only an embedded store parses OTLP bodies itself (it reads them from local files)")
        if signal not in ("traces", "logs", "metrics"):
            raise BadRequest(f"the engine cannot parse {signal!r} bodies")
        workdir = self.ingest_workdir()
        client, database, names = self._client(), self.config.database, dict(tables or {})
        with self._translate(f"parsing {signal} bodies in the engine"):
            if signal == "metrics":
                return prepare_metrics(client, database, bodies, workdir, tables=names)
            if signal == "logs":
                return prepare_logs(client, database, bodies, workdir, table=names.get(signal, "otel_logs"))
            return prepare_traces(client, database, bodies, workdir, table=names.get(signal, "otel_traces"))

    def ingest_workdir(self) -> Path:
        """This process's folder beside the embedded data directory (created on first use): files handed to the
        engine go there, and close() removes it, as the next opener of the store does after a crash."""
        data_dir = self._data_dir
        if data_dir is None:
            raise BadRequest("only an embedded store has an ingest folder")
        with self._workdir_lock:
            if self._workdir is None:
                root = ingest_workdir_root(data_dir)
                root.mkdir(parents=True, exist_ok=True)
                self._workdir = Path(tempfile.mkdtemp(prefix=_workdir_prefix(), dir=root))
            return self._workdir

    def run_prepared(self, prepared: PreparedInsert) -> NativeInsertResult:
        """Write a prepared engine-side insert (prepare_otlp) and drop its staged bodies."""
        try:
            with self._translate("an engine-side insert"):
                return prepared.run(self._client())
        finally:
            self._wrote()

    def discard_prepared(self, prepared: PreparedInsert) -> None:
        """Drop a prepared insert's staged bodies without writing them."""
        with self._translate("dropping a staged batch"):
            prepared.discard(self._client())

    def close(self) -> None:
        """Close every client this store opened; the embedded engine lets go of its directory."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._local = threading.local()
