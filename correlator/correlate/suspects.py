"""The suspect deploys of an incident: candidates by time and topology, scored with evidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from correlator.correlate.impact import Impact
from correlator.model import Deploy, Edge, ErrorCount


@dataclass(frozen=True)
class SuspectRules:
    """Which deploys are candidates and how they are weighed (API.md, Default methods; docs/correlation.md)."""

    lookback: timedelta = timedelta(hours=2)
    grace: timedelta = timedelta(minutes=5)
    # A new error type counts against a deploy only when it first appeared this soon after the deploy started.
    new_error_delay: timedelta = timedelta(minutes=10)
    weight_verdict: float = 0.40
    weight_time: float = 0.25
    weight_relation: float = 0.15
    weight_new_errors: float = 0.20


VERDICT_SCORE = {"regression": 1.0, "insufficient_data": 0.2, "healthy": 0.0}
RELATION_SCORE = {"same_service": 1.0, "downstream": 0.8, "upstream": 0.5}


@dataclass(frozen=True)
class Candidate:
    """A deploy that may have caused the incident, with what is known of it."""

    deploy: Deploy
    relation: str
    impact: Impact
    # The incident service's error types that appeared after this deploy and are failing in the incident.
    new_errors: tuple[ErrorCount, ...]


@dataclass(frozen=True)
class Suspect:
    """A scored candidate (API.md, Suspect); 0.5 or more means the evidence points at it."""

    deploy_id: str
    service: str
    version: str
    started_at: datetime
    score: float
    relation: str
    evidence: tuple[str, ...]


def relations(service: str, edges: Iterable[Edge]) -> dict[str, str]:
    """The services related to the incident's: itself, what it calls directly or not, its direct callers."""
    calls: dict[str, set[str]] = {}
    callers: set[str] = set()
    for edge in edges:
        calls.setdefault(edge.source, set()).add(edge.destination)
        if edge.destination == service and edge.source != service:
            callers.add(edge.source)
    related = {caller: "upstream" for caller in callers}
    frontier, seen = [service], {service}
    while frontier:
        for callee in calls.get(frontier.pop(), set()):
            if callee not in seen:
                seen.add(callee)
                frontier.append(callee)
                related[callee] = "downstream"
    related[service] = "same_service"
    return related


def candidate_window(anchor: datetime, rules: SuspectRules) -> tuple[datetime, datetime]:
    """Deploys started in [anchor - lookback, anchor + grace] are candidates (rollouts are gradual)."""
    return anchor - rules.lookback, anchor + rules.grace


def _minutes(delta: timedelta) -> str:
    minutes = abs(delta.total_seconds()) / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{abs(delta.total_seconds()):.0f} s"


def _time_score(started: datetime, anchor: datetime, rules: SuspectRules) -> float:
    if started <= anchor:
        return max(0.0, 1 - (anchor - started) / rules.lookback)
    # Started after the impact began: possible only for a gradual rollout, so it weighs less.
    return 0.8 * max(0.0, 1 - (started - anchor) / rules.grace)


def score_suspects(
    service: str, candidates: Sequence[Candidate], anchor: datetime, anchor_is_impact: bool, rules: SuspectRules
) -> list[Suspect]:
    """Score every candidate, best first; the evidence says why, in sentences."""
    suspects: list[Suspect] = []
    what = "the impact began" if anchor_is_impact else "the incident opened"
    for c in candidates:
        d = c.deploy
        time_score = _time_score(d.started_at, anchor, rules)
        score = (
            rules.weight_verdict * VERDICT_SCORE.get(c.impact.verdict, 0.0)
            + rules.weight_time * time_score
            + rules.weight_relation * RELATION_SCORE.get(c.relation, 0.0)
            + rules.weight_new_errors * (1.0 if c.new_errors else 0.0)
        )
        when = "before" if d.started_at <= anchor else "after"
        evidence = [f"{d.service} {d.version} started {_minutes(d.started_at - anchor)} {when} {what}"]
        if c.relation == "downstream":
            evidence.append(f"{service} depends on {d.service} (directly or through other services)")
        elif c.relation == "upstream":
            evidence.append(f"{d.service} calls {service}")
        if c.impact.verdict == "regression":
            evidence.append(f"the deploy made {d.service} worse:")
            evidence.extend(f"  {line}" for line in c.impact.evidence if "no significant" not in line)
        elif c.impact.verdict == "healthy":
            evidence.append(f"{d.service} stayed healthy after the deploy")
        else:
            evidence.append(f"too little traffic around the deploy to judge it ({c.impact.evidence[0]})")
        for error in c.new_errors[:3]:
            evidence.append(
                f"{service} fails with {error.type}: {error.message} ({error.count} times), not seen before it"
            )
        suspects.append(
            Suspect(d.deploy_id, d.service, d.version, d.started_at, round(score, 3), c.relation, tuple(evidence))
        )
    return sorted(suspects, key=lambda s: (-s.score, s.started_at, s.deploy_id))
