"""Incident analysis: impact start, suspects, affected services, exemplars, top errors; stored, then frozen."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from correlator.correlate.impact import ImpactRules
from correlator.correlate.impact_start import ChangePointRules, impact_start
from correlator.correlate.suspects import (
    Candidate,
    Suspect,
    SuspectRules,
    candidate_window,
    relations,
    score_suspects,
)
from correlator.model import Deploy, ErrorCount, Incident, IncidentAnalysis
from correlator.service.clock import Now, utc_now
from correlator.service.impact import impact_of
from correlator.service.incidents import ACTIVE_STATES, Incidents, IncidentView
from correlator.service.topology import service_topology
from correlator.store import Store
from correlator.store import analysis_queries as aq
from correlator.store import health_queries as hq
from correlator.store import impact_queries as iq
from correlator.store import records as store_records
from correlator.store.records import DeployFilter, IncidentFilter

# API.md: refreshed while open and for 10 minutes after resolution, then frozen.
FREEZE_AFTER = timedelta(minutes=10)
SCAN_BEFORE_OPEN = timedelta(hours=2)
# Reads within this long of the last computation reuse it.
REFRESH_EVERY = timedelta(seconds=15)
# The background pass recomputes an active incident's analysis once it is older than this share of the incident's
# age (and than REFRESH_EVERY): every 15 s in its first 15 minutes, every minute at one hour, ten at ten hours.
BACKGROUND_AGE_SHARE = 1 / 60
# Failing callers are read again from this long before the last computation (spans arrive late), then added to
# the callers it found.
CALLS_SLACK = timedelta(minutes=10)
# The incident's own failing requests looked at when there is no impact start: the half hour before it opened.
DEFAULT_IMPACT = timedelta(minutes=30)
# Relations come from the topology up to the incident's end, but at most this long after the impact start: an
# incident left open for days would otherwise read days of calls on every refresh.
RELATIONS_AFTER = timedelta(hours=1)
CAUSE_THRESHOLD = 0.5


def suspect_json(suspect: Suspect) -> dict[str, object]:
    """A suspect as stored and served."""
    return {
        "deploy_id": suspect.deploy_id,
        "service": suspect.service,
        "version": suspect.version,
        "started_at": suspect.started_at.isoformat(),
        "score": suspect.score,
        "relation": suspect.relation,
        "evidence": list(suspect.evidence),
    }


def cause_of(incident: Incident, analysis: IncidentAnalysis | None) -> str | None:
    """The hand-named cause, else the top suspect when its score is 0.5 or more (API.md, IncidentSummary)."""
    if incident.cause_deploy_id:
        return incident.cause_deploy_id
    if analysis and analysis.top_suspect_score is not None and analysis.top_suspect_score >= CAUSE_THRESHOLD:
        return analysis.top_suspect_deploy_id
    return None


@dataclass(frozen=True)
class AnalysedIncident:
    """An incident with its analysis (None until first computed) and, for one incident's view, its timeline."""

    incident: Incident
    analysis: IncidentAnalysis | None
    view: IncidentView | None = None


class IncidentAnalyses:
    """Computes, stores and serves incident analyses; a frozen one is never recomputed."""

    def __init__(
        self,
        store: Store,
        incidents: Incidents,
        suspect_rules: SuspectRules | None = None,
        impact_rules: ImpactRules | None = None,
        change_rules: ChangePointRules | None = None,
        now: Now = utc_now,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._suspect_rules = suspect_rules or SuspectRules()
        self._impact_rules = impact_rules or ImpactRules()
        self._change_rules = change_rules or ChangePointRules()
        self._now = now
        self._lock = threading.Lock()

    def detail(self, incident_id: str) -> AnalysedIncident:
        """One incident with its timeline and its analysis, recomputed first unless frozen or fresh."""
        view = self._incidents.get(incident_id)
        analysis = self.current(view.incident)
        return AnalysedIncident(with_analysis(view.incident, analysis), analysis, view)

    def summaries(self, wanted: IncidentFilter) -> list[AnalysedIncident]:
        """Incidents matching a filter with their stored analyses (not recomputed: lists stay cheap)."""
        incidents = self._incidents.list(wanted)
        stored = self.stored([i.incident_id for i in incidents])
        return [
            AnalysedIncident(with_analysis(i, stored.get(i.incident_id)), stored.get(i.incident_id)) for i in incidents
        ]

    def stored(self, incident_ids: list[str]) -> dict[str, IncidentAnalysis]:
        """Stored analyses, as they are (lists and reports read these)."""
        return aq.read_analyses(self._store, incident_ids)

    def current(self, incident: Incident) -> IncidentAnalysis:
        """The incident's analysis, recomputed first unless frozen or fresh."""
        stored = aq.read_analyses(self._store, [incident.incident_id]).get(incident.incident_id)
        now = self._now()
        if stored is not None and (stored.frozen or now - stored.computed_at < REFRESH_EVERY):
            return stored
        return self._recompute(incident, now, stored)

    def _recompute(self, incident: Incident, now: datetime, earlier: IncidentAnalysis | None) -> IncidentAnalysis:
        with self._lock:
            analysis = self._compute(incident, now, earlier)
            aq.write_analysis(self._store, analysis)
            return analysis

    def refresh(self) -> int:
        """Recompute the analyses not yet frozen: active incidents (less often as they age: BACKGROUND_AGE_SHARE)
        and those resolved in the last 10 minutes. Returns how many were recomputed."""
        now = self._now()
        incidents = store_records.list_incidents(
            self._store, IncidentFilter(now - FREEZE_AFTER, now, statuses=ACTIVE_STATES, window=False, limit=1000)
        )
        recent = IncidentFilter(now - timedelta(days=90), now + timedelta(days=1), statuses=("resolved",), limit=1000)
        incidents += [
            i
            for i in store_records.list_incidents(self._store, recent)
            if i.resolved_at is not None and now - i.resolved_at < FREEZE_AFTER
        ]
        stored = self.stored([i.incident_id for i in incidents])
        recomputed = 0
        for incident in incidents:
            earlier = stored.get(incident.incident_id)
            if _due(incident, earlier, now):
                self._recompute(incident, now, earlier)
                recomputed += 1
        return recomputed

    def _compute(self, incident: Incident, now: datetime, earlier: IncidentAnalysis | None) -> IncidentAnalysis:
        store, service, opened = self._store, incident.service, incident.opened_at
        found = impact_start(aq.minutes(store, service, opened - SCAN_BEFORE_OPEN, opened), self._change_rules)
        anchor = found.at or opened
        end = incident.resolved_at or now
        impact_since = found.at or opened - DEFAULT_IMPACT
        since, until = candidate_window(anchor, self._suspect_rules)
        relations_until = max(until, min(end, anchor + RELATIONS_AFTER))
        related = relations(service, service_topology(store, since, relations_until, now).edges)
        deploys = [
            d
            for d in store_records.list_deploys(
                store, DeployFilter(since, until + timedelta(microseconds=1), limit=1000)
            )
            if d.service in related and d.status != "failed"
        ]
        failing = hq.top_errors(store, [service], impact_since, end, per_service=20)
        failing_types = {(t, m) for t, m in failing.select("type", "message").iter_rows()}
        candidates = [
            Candidate(
                d,
                related[d.service],
                impact_of(store, d, self._impact_rules, now),
                self._new_errors(d, service, failing_types, end),
            )
            for d in deploys
        ]
        suspects = score_suspects(service, candidates, anchor, found.at is not None, self._suspect_rules)
        affected = [service, *self._failing_callers(service, impact_since, end, found.at, earlier)]
        top = suspects[0] if suspects else None
        frozen = incident.resolved_at is not None and now - incident.resolved_at >= FREEZE_AFTER
        return IncidentAnalysis(
            incident_id=incident.incident_id,
            service=service,
            impact_started_at=found.at,
            impact_signal=found.signal,
            suspects=[suspect_json(s) for s in suspects],
            top_suspect_deploy_id=top.deploy_id if top else None,
            top_suspect_score=top.score if top else None,
            affected_services=list(dict.fromkeys(affected)),
            exemplar_trace_ids=aq.failing_traces(store, service, impact_since, end),
            top_errors=[
                {"type": t, "message": m, "count": int(n)}
                for t, m, n in failing.head(5).select("type", "message", "count").iter_rows()
            ],
            computed_at=now,
            frozen=frozen,
        )

    def _failing_callers(
        self,
        service: str,
        impact_since: datetime,
        end: datetime,
        impact_at: datetime | None,
        earlier: IncidentAnalysis | None,
    ) -> list[str]:
        """Callers whose calls into the service failed from the impact start on. While the impact start stays
        what the last computation found, only the calls from CALLS_SLACK before that computation are read and their
        callers added to the ones it found: an incident left open for days does not read days of calls on every
        refresh."""
        if (
            earlier is None
            or earlier.service != service
            or earlier.impact_started_at != impact_at
            or earlier.computed_at - CALLS_SLACK <= impact_since
        ):
            return aq.failing_callers(self._store, [service], impact_since, end)
        found = aq.failing_callers(self._store, [service], earlier.computed_at - CALLS_SLACK, end)
        return list(dict.fromkeys([*earlier.affected_services[1:], *found]))

    def _new_errors(
        self, deploy: Deploy, service: str, failing: set[tuple[str, str]], end: datetime
    ) -> tuple[ErrorCount, ...]:
        """The incident service's failing error types that first appeared soon after this deploy started.

        Only soon after (`SuspectRules.new_error_delay`): an error type that turns up twenty minutes after a
        deploy says little about that deploy.
        """
        window, start = self._impact_rules.window, deploy.started_at
        errors = iq.error_types(
            self._store, service, deploy.environment, start - window, start, min(end, start + window)
        )
        before = {(t, m) for side, t, m in errors.select("side", "type", "message").iter_rows() if side == "before"}
        delay = self._suspect_rules.new_error_delay
        return tuple(
            ErrorCount(t, m, int(n))
            for side, t, m, n, first in errors.select("side", "type", "message", "count", "first_seen").iter_rows()
            if side == "after" and (t, m) not in before and (t, m) in failing and first - start <= delay
        )


def _due(incident: Incident, analysis: IncidentAnalysis | None, now: datetime) -> bool:
    """Whether the background pass recomputes an analysis (reads keep recomputing every REFRESH_EVERY)."""
    if analysis is None:
        return True
    if analysis.frozen:
        return False
    every = REFRESH_EVERY
    if incident.resolved_at is None:
        every = max(every, (now - incident.opened_at) * BACKGROUND_AGE_SHARE)
    return now - analysis.computed_at >= every


def with_analysis(incident: Incident, analysis: IncidentAnalysis | None) -> Incident:
    """The incident with its cause filled from the analysis (hand-named first)."""
    return dataclasses.replace(incident, cause_deploy_id=cause_of(incident, analysis))
