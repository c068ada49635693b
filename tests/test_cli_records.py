"""`correlator deploys ...` and `correlator incidents ...` as HTTP clients of a running server: tables for
people, JSON for scripts, exit 1 with the server's message on errors."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from correlator.api.server import Server
from tests.processes import correlator_command


def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, as a person would have: rich wraps tables to 80 columns when it cannot tell.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        correlator_command(*args, "--url", server.url()), capture_output=True, text=True, timeout=60, env=env
    )


def run_json(server: Server, *args: str) -> Any:
    result = run(server, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ci_records_a_deploy_and_lists_it(server: Server, service_name: str) -> None:
    recorded = run(
        server, "deploys", "record", "--service", service_name, "--version", "4.2.0", "--revision", "a1b2c3d",
        "--environment", "staging", "--started-at", "2026-11-20T10:00:00Z", "--status", "succeeded",
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    deploy_id = recorded.stdout.strip()
    # Re-running the CI step lands on the same record.
    again = run(
        server, "deploys", "record", "--service", service_name, "--version", "4.2.0", "--revision", "a1b2c3d",
        "--environment", "staging", "--started-at", "2026-11-20T10:00:00Z", "--json",
    )  # fmt: skip
    assert json.loads(again.stdout) == {"deploy_id": deploy_id, "created": False}

    listed = run_json(server, "deploys", "list", "--service", service_name, "--since", "30d")
    assert [(d["deploy_id"], d["version"], d["environment"]) for d in listed["deploys"]] == [
        (deploy_id, "4.2.0", "staging")
    ]
    table = run(server, "deploys", "list", "--service", service_name)
    assert table.returncode == 0
    assert "4.2.0" in table.stdout
    assert service_name in table.stdout
    shown = run(server, "deploys", "show", deploy_id)
    assert shown.returncode == 0
    assert "a1b2c3d" in shown.stdout


def test_an_incident_is_declared_worked_and_shown(server: Server, service_name: str) -> None:
    declared = run(
        server, "incidents", "declare", "--title", "cart is slow", "--service", service_name,
        "--severity", "warning", "--opened-at", "2026-11-25T09:00:00Z",
    )  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    incident_id = declared.stdout.strip()
    ack = run_json(server, "incidents", "ack", incident_id, "--at", "2026-11-25T09:05:00Z")
    assert ack["status"] == "acknowledged"
    assert run(server, "incidents", "note", incident_id, "cache hit ratio dropped").returncode == 0
    assert run(server, "incidents", "mitigate", incident_id, "--at", "2026-11-25T09:20:00Z").returncode == 0
    resolved = run_json(server, "incidents", "resolve", incident_id, "--at", "2026-11-25T09:30:00Z")
    assert resolved["time_to_resolve_s"] == 30 * 60

    shown = run(server, "incidents", "show", incident_id)
    assert shown.returncode == 0
    assert "cache hit ratio dropped" in shown.stdout
    assert "resolved by hand" in shown.stdout
    listed = run_json(server, "incidents", "list", "--service", service_name, "--status", "resolved")
    assert [i["incident_id"] for i in listed["incidents"]] == [incident_id]


def test_errors_exit_1_with_the_servers_message(server: Server, service_name: str) -> None:
    incident_id = run(server, "incidents", "declare", "--title", "t", "--service", service_name).stdout.strip()
    assert run(server, "incidents", "resolve", incident_id).returncode == 0
    refused = run(server, "incidents", "ack", incident_id)
    assert refused.returncode == 1
    assert "cannot acknowledge" in refused.stderr
    assert "409" in refused.stderr
    assert refused.stdout == ""
    missing = run(server, "deploys", "show", "no-such-deploy")
    assert missing.returncode == 1
    assert "no deploy with id 'no-such-deploy'" in missing.stderr
    bad_time = run(server, "deploys", "record", "--service", "s", "--version", "1", "--started-at", "soon")
    assert bad_time.returncode == 1
    assert "started_at" in bad_time.stderr
