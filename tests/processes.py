"""`correlator` as a separate process on its own data directory, for lock, restart and signal tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port


@dataclass
class ServeProcess:
    """A running `correlator serve` child process."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Signal the process and wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def correlator_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "correlator", *args]


def spawn_serve(data_dir: Path, *extra: str, env: dict[str, str] | None = None, wait: bool = True) -> ServeProcess:
    """Start `correlator serve` on data_dir with free ports; wait until /readyz answers."""
    port = free_port()
    log_path = data_dir.parent / f"serve-{port}.log"
    args = correlator_command(
        "serve", "--dsn", f"chdb://{data_dir}", "--port", str(port), "--otlp-http-port", "0", "--otlp-grpc-port", "0",
        "--log-level", "warning", *extra,
    )  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    child = ServeProcess(process, data_dir, port, log_path)
    if wait:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"correlator serve exited with {process.returncode}:\n{child.log()}")
            try:
                if httpx.get(child.url + "/readyz", timeout=2).status_code == 200:
                    return child
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        child.stop(signal.SIGKILL)
        raise RuntimeError(f"correlator serve did not become ready:\n{child.log()}")
    return child


def stored_rows(child: ServeProcess, table: str) -> int:
    """Rows of one table, through the running server's /api/v1/store."""
    tables = httpx.get(child.url + "/api/v1/store", timeout=10).json()["tables"]
    return next(int(t["rows"]) for t in tables if t["table"] == table)
