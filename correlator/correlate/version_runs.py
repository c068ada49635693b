"""Runs of versions from per-minute telemetry, and the implicit deploys they stand for."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from correlator.model import Deploy, VersionMinute, VersionRun

RunKey = tuple[str, str]  # (version, deployment_id)


def version_runs(
    minutes: Iterable[VersionMinute], *, min_gap: timedelta, before: Sequence[VersionRun] = ()
) -> list[VersionRun]:
    """Group one service's minutes into runs per (environment, version, deployment.id), oldest first.

    A version seen again starts a new run only when another version was seen after its last sighting and it
    was absent for at least `min_gap`: a rolling update or a canary, where old and new interleave for a few
    minutes, stays one run each; a return after the new version took over is a new run (a rollback).

    `before` resumes an earlier result: the runs of every minute first seen before a time, when `minutes` are
    those first seen from that time on; the result is the same as from all the minutes at once.
    """
    runs: list[VersionRun] = []
    by_env: dict[str, list[VersionMinute]] = {}
    earlier: dict[str, list[VersionRun]] = {}
    for minute in minutes:
        by_env.setdefault(minute.environment, []).append(minute)
    for run in before:
        by_env.setdefault(run.environment, [])
        earlier.setdefault(run.environment, []).append(run)
    for env, env_minutes in by_env.items():
        open_runs: dict[RunKey, VersionRun] = {}
        latest_sighting: dict[RunKey, datetime] = {}
        for run in sorted(earlier.get(env, ()), key=lambda r: r.first_seen):
            key = (run.version, run.deployment_id)
            if key in open_runs:
                runs.append(open_runs[key])
            open_runs[key] = run
            latest_sighting[key] = run.last_seen
        for minute in sorted(env_minutes, key=lambda m: (m.first_seen, m.version, m.deployment_id)):
            key = (minute.version, minute.deployment_id)
            current = open_runs.get(key)
            others_since = max((seen for k, seen in latest_sighting.items() if k != key), default=None)
            replaced = (
                current is not None
                and others_since is not None
                and others_since > current.last_seen
                and minute.first_seen - current.last_seen >= min_gap
            )
            if current is None or replaced:
                if current is not None:
                    runs.append(current)
                open_runs[key] = VersionRun(
                    minute.service,
                    minute.environment,
                    minute.version,
                    minute.deployment_id,
                    minute.revision,
                    minute.first_seen,
                    minute.last_seen,
                    minute.records,
                )
            else:
                open_runs[key] = dataclasses.replace(
                    current,
                    last_seen=max(current.last_seen, minute.last_seen),
                    records=current.records + minute.records,
                    revision=minute.revision or current.revision,
                )
            latest_sighting[key] = max(latest_sighting.get(key, minute.last_seen), minute.last_seen)
        runs.extend(open_runs.values())
    return sorted(runs, key=lambda r: (r.environment, r.first_seen, r.version))


def telemetry_deploy_id(run: VersionRun) -> str:
    """The run's deployment.id when it has one, else an id derived from what identifies the run (API.md, Ids)."""
    if run.deployment_id:
        return run.deployment_id
    digest = hashlib.sha256(
        "\x1f".join((run.service, run.environment, run.version, run.first_seen.isoformat())).encode()
    ).hexdigest()
    return f"tel-{digest[:16]}"


def covering_deploy(run: VersionRun, explicit: Sequence[Deploy], *, before: timedelta, after: timedelta) -> str | None:
    """The explicit deploy that already stands for this run: same deployment.id, else the same version or
    revision started between `before` ahead of and `after` past the first sighting (the nearest wins)."""
    for deploy in explicit:
        if run.deployment_id and deploy.deploy_id == run.deployment_id:
            return deploy.deploy_id
    candidates = [
        deploy
        for deploy in explicit
        if deploy.service == run.service
        and deploy.environment == run.environment
        and (deploy.version == (run.version or None) or (run.revision and deploy.revision == run.revision))
        and run.first_seen - before <= deploy.started_at <= run.first_seen + after
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda d: abs((d.started_at - run.first_seen).total_seconds())).deploy_id


def implicit_deploy(run: VersionRun, *, now: datetime) -> Deploy:
    """The deploy a run of telemetry stands for when no explicit event covers it."""
    return Deploy(
        deploy_id=telemetry_deploy_id(run),
        service=run.service,
        environment=run.environment,
        # A run known only by its deployment.id still needs a version to show: the id says what it is.
        version=run.version or run.deployment_id,
        started_at=run.first_seen,
        source="telemetry",
        reported_status="succeeded",
        status="succeeded",
        revision=run.revision or None,
        created_at=now,
    )
