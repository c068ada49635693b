"""`correlator demo`: the replay finds the bad deploy, prints health and MTTR, and tells the same story per seed."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.api.server import Server
from tests.conftest import start_server
from tests.processes import correlator_command

WIDE = {**os.environ, "COLUMNS": "250"}


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        correlator_command("demo", "--exit", *args), capture_output=True, text=True, env=WIDE, timeout=300
    )


def test_the_demo_on_its_own_store_finds_the_bad_deploy_and_replays_the_same_story() -> None:
    first = run_demo("--seed", "11")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert re.search(
        r"Top suspect: payments 2\.3\.0 \(dep-[0-9a-f]{16}\), score (0\.[5-9]\d|1\.00), downstream", out
    ), out
    assert "checkout depends on payments" in out
    assert "new error after the deploy: TypeError" in out
    assert "20 min to resolve" in out
    assert "MTTR over 30 days: 1 incident(s), mean time to resolve 20.0 min" in out
    for service in ("checkout", "inventory", "payments", "search", "web"):
        assert service in out
    assert "correlator incidents show inc-" in out
    assert "100/100 min" in first.stderr  # the progress bar ran to the end
    again = run_demo("--seed", "11")
    trace_line = re.compile(r"correlator trace ([0-9a-f]{32})")
    assert trace_line.findall(again.stdout) == trace_line.findall(out) != []


@pytest.fixture
def default_server(data_dir: Path) -> Iterator[Server]:
    """A server with the default ingest settings (the session's sends even small batches to the engine path,
    whose fixed cost per insert would make the demo's hundreds of small requests slow)."""
    running = start_server(data_dir, engine_parsing_min_records=8192)
    yield running
    running.stop()


def test_the_demo_replays_into_a_running_correlator(default_server: Server) -> None:
    result = run_demo("--url", default_server.url())
    assert result.returncode == 0, result.stderr
    assert "Top suspect: payments 2.3.0" in result.stdout
    assert f"--url {default_server.url()}" in result.stdout
