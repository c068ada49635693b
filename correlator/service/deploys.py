"""Deploys: record explicit events (merging re-posts), find implicit ones in telemetry, keep the chain linked."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from correlator.correlate.deploy_chain import link_deploys
from correlator.correlate.impact import Impact, ImpactRules
from correlator.correlate.version_runs import covering_deploy, implicit_deploy, version_runs
from correlator.errors import BadRequest, NotFound
from correlator.events.records import DeployEvent
from correlator.model import Deploy, VersionRun
from correlator.service.clock import Now, VersionStamps, utc_now
from correlator.service.impact import impact_of
from correlator.store import Store
from correlator.store import records as store_records
from correlator.store.records import DeployFilter, Pair

DEFAULT_ENVIRONMENT = "production"
# Look back a little past the previous reconcile: insertion stamps of concurrent inserts may interleave.
RECONCILE_OVERLAP = timedelta(seconds=5)
# A pass resumes a pair's runs from a checkpoint this far behind its latest minute: telemetry arriving later than
# that for an earlier minute makes that pair read all its minutes again.
CHECKPOINT_LAG = timedelta(hours=1)


@dataclass(frozen=True)
class _Checkpoint:
    """The runs of one (service, environment) from every minute first seen before `at`."""

    at: datetime
    runs: list[VersionRun]


@dataclass(frozen=True)
class ImplicitDeployRules:
    """How telemetry becomes deploys: when a returning version is a new run, and how near an explicit
    event must start to cover a run (API.md leaves these to us; docs/deploys.md states them)."""

    rollback_min_gap: timedelta = timedelta(minutes=5)
    cover_before: timedelta = timedelta(hours=2)
    cover_after: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class RecordedDeploy:
    """The outcome of recording a deploy event: its id, and whether it created the record."""

    deploy_id: str
    created: bool


def derived_deploy_id(
    service: str, environment: str, version: str, revision: str | None, started: datetime | None
) -> str:
    """The id of a deploy posted without one, so a retried step or started-then-succeeded lands on one record."""
    parts = (service, environment, version, revision or "", started.isoformat() if started else "")
    return "dep-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _merge(existing: Deploy, event: DeployEvent) -> Deploy:
    """Non-null fields of the later event win; attributes merge key by key."""
    return dataclasses.replace(
        existing,
        version=event.version or existing.version,
        revision=event.revision or existing.revision,
        commit_time=event.commit_time or existing.commit_time,
        reported_status=event.status or existing.reported_status,
        started_at=event.started_at or existing.started_at,
        finished_at=event.finished_at or existing.finished_at,
        source=event.source,
        url=event.url or existing.url,
        attributes={**existing.attributes, **event.attributes},
    )


class Deploys:
    """The deploys use case; one lock serialises read-modify-write of a (service, environment) chain."""

    def __init__(
        self,
        store: Store,
        rules: ImplicitDeployRules | None = None,
        impact_rules: ImpactRules | None = None,
        now: Now = utc_now,
    ) -> None:
        self._store = store
        self._rules = rules or ImplicitDeployRules()
        self._impact_rules = impact_rules or ImpactRules()
        self._now = now
        self._stamps = VersionStamps(now)
        self._lock = threading.RLock()
        self._reconciled_until = datetime(2000, 1, 1, tzinfo=UTC)
        self._reconciled_writes: int | None = None
        # Per (service, environment): where the next pass resumes its runs, and the run links the last one wrote.
        self._checkpoints: dict[tuple[str, str], _Checkpoint] = {}
        self._written_links: dict[tuple[str, str], set[tuple[VersionRun, str]]] = {}

    def record(self, event: DeployEvent) -> RecordedDeploy:
        """Store a deploy event: create it, or merge it into the deploy with the same id."""
        if not event.service or not event.version:
            raise BadRequest("a deploy needs a service and a version")
        environment = event.environment or DEFAULT_ENVIRONMENT
        deploy_id = event.deploy_id or derived_deploy_id(
            event.service, environment, event.version, event.revision, event.started_at
        )
        with self._lock:
            existing = store_records.get_deploy(self._store, deploy_id)
            if existing is not None and existing.source == "telemetry":
                existing = None  # an explicit event under a telemetry id takes the record over
            now = self._now()
            if existing is None:
                deploy = Deploy(
                    deploy_id=deploy_id,
                    service=event.service,
                    environment=environment,
                    version=event.version,
                    # A platform that reports only the end (a GitLab success) started no later than that.
                    started_at=event.started_at or event.finished_at or now,
                    source=event.source,
                    reported_status=event.status or "succeeded",
                    status=event.status or "succeeded",
                    revision=event.revision,
                    commit_time=event.commit_time,
                    finished_at=event.finished_at,
                    url=event.url,
                    attributes=dict(event.attributes),
                    created_at=now,
                )
            else:
                deploy = _merge(existing, event)
            store_records.write_deploys(self._store, [deploy], updated_at=self._stamps.next())
            self._reconcile_pairs([(deploy.service, deploy.environment, None)])
        return RecordedDeploy(deploy_id, created=existing is None)

    def detail(self, deploy_id: str) -> tuple[Deploy, Impact]:
        """One deploy with its impact; 404 when unknown."""
        deploy = self.get(deploy_id)
        return deploy, impact_of(self._store, deploy, self._impact_rules, self._now())

    def get(self, deploy_id: str) -> Deploy:
        """One deploy by id; 404 when unknown."""
        self.reconcile()
        deploy = store_records.get_deploy(self._store, deploy_id)
        if deploy is None:
            raise NotFound(f"no deploy with id {deploy_id!r}")
        return deploy

    def list(self, wanted: DeployFilter) -> list[Deploy]:
        """Deploys started in a window, newest first."""
        self.reconcile()
        return store_records.list_deploys(self._store, wanted)

    def reconcile(self) -> int:
        """Turn telemetry that arrived since the last call into implicit deploys; returns the pairs looked at.

        Nothing to do when the store (an embedded one, which only this process writes) took no write since the
        last call began: the reads that reconcile first then cost nothing.
        """
        with self._lock:
            writes = self._store.writes
            if writes is not None and writes == self._reconciled_writes:
                return 0
            checked_at = self._now()
            changes = store_records.services_with_new_versions(self._store, self._reconciled_until - RECONCILE_OVERLAP)
            self._reconcile_pairs(changes)
            self._reconciled_until = checked_at
            self._reconciled_writes = writes
            return len(changes)

    def _runs_of(self, changes: Sequence[tuple[str, str, datetime | None]]) -> dict[Pair, Sequence[VersionRun]]:
        """Each pair's runs: from every minute the first time (or after a change older than its checkpoint), then
        from the checkpoint of the last pass and the minutes since, so a pass costs what arrived, not what is
        retained. `changes`: (service, environment, earliest minute changed since the last pass, None for any)."""
        origin = _Checkpoint(store_records.EPOCH, [])  # before every minute
        resumed: dict[Pair, _Checkpoint] = {}
        for service, environment, changed_from in changes:
            checkpoint = self._checkpoints.get((service, environment))
            if checkpoint is not None and changed_from is not None and changed_from >= checkpoint.at:
                resumed[(service, environment)] = checkpoint
        # Two reads: one of every minute of the pairs without a checkpoint, one of the minutes since for the rest.
        anew = {(s, e): origin.at for s, e, _ in changes if (s, e) not in resumed}
        minutes = store_records.version_minutes(self._store, anew)
        minutes |= store_records.version_minutes(self._store, {pair: c.at for pair, c in resumed.items()})
        min_gap = self._rules.rollback_min_gap
        runs: dict[Pair, Sequence[VersionRun]] = {}
        for pair, found in minutes.items():
            checkpoint = resumed.get(pair, origin)
            runs[pair] = version_runs(found, min_gap=min_gap, before=checkpoint.runs)
            if found:
                at = max(checkpoint.at, max(minute.first_seen for minute in found) - CHECKPOINT_LAG)
                settled = [minute for minute in found if minute.first_seen < at]
                self._checkpoints[pair] = _Checkpoint(
                    at, version_runs(settled, min_gap=min_gap, before=checkpoint.runs)
                )
        return runs

    def _reconcile_pairs(self, changes: Sequence[tuple[str, str, datetime | None]]) -> None:
        """Rebuild (service, environment) pairs: runs from telemetry, implicit deploys, then the linked chains;
        one read of deploys and one write of each kind for all of them."""
        if not changes:
            return
        runs = self._runs_of(changes)
        stored_by_pair = store_records.deploys_of_pairs(self._store, list(runs))
        now = self._now()
        stale: list[Deploy] = []
        changed: list[Deploy] = []
        new_links: list[tuple[VersionRun, str]] = []
        links_by_pair: dict[Pair, set[tuple[VersionRun, str]]] = {}
        for pair, pair_runs in runs.items():
            stored = stored_by_pair[pair]
            explicit = [d for d in stored if d.source != "telemetry"]
            stored_implicit = {d.deploy_id: d for d in stored if d.source == "telemetry"}
            wanted_implicit: dict[str, Deploy] = {}
            run_links: list[tuple[VersionRun, str]] = []
            for run in pair_runs:
                cover = covering_deploy(run, explicit, before=self._rules.cover_before, after=self._rules.cover_after)
                if cover is not None:
                    run_links.append((run, cover))
                    continue
                deploy = implicit_deploy(run, now=now)
                if deploy.deploy_id not in wanted_implicit:
                    previous = stored_implicit.get(deploy.deploy_id)
                    created = previous.created_at if previous is not None else now
                    wanted_implicit[deploy.deploy_id] = dataclasses.replace(deploy, created_at=created)
                run_links.append((run, deploy.deploy_id))
            stale += [d for deploy_id, d in stored_implicit.items() if deploy_id not in wanted_implicit]
            stored_by_id = {d.deploy_id: d for d in stored}
            chain = link_deploys([*explicit, *wanted_implicit.values()])
            changed += [d for d in chain if stored_by_id.get(d.deploy_id) != d]
            written = self._written_links.get(pair, set())
            new_links += [link for link in run_links if link not in written]
            links_by_pair[pair] = set(run_links)
        stamp = self._stamps.next()
        store_records.write_deploys(self._store, stale, updated_at=stamp, deleted=True)
        store_records.write_deploys(self._store, changed, updated_at=stamp)
        store_records.write_version_runs(self._store, new_links, updated_at=stamp)
        self._written_links.update(links_by_pair)  # once written: a failed write is tried again next pass
