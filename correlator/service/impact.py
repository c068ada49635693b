"""Deploy impact over the store: the windows around a deploy, cut at its neighbours, and the verdict."""

from __future__ import annotations

from datetime import datetime

from correlator.correlate.impact import Impact, ImpactRules, deploy_impact, impact_windows
from correlator.model import Deploy
from correlator.store import Store
from correlator.store import impact_queries as iq
from correlator.store import records as store_records

# Durations kept per window for the rank test: enough for its power, bounded for its cost.
LATENCY_SAMPLE = 2000


def impact_of(store: Store, deploy: Deploy, rules: ImpactRules, now: datetime) -> Impact:
    """What a deploy did to its service, compared with equal windows before and after its start."""
    others = [
        d
        for d in store_records.deploys_of(store, deploy.service, deploy.environment)
        if d.deploy_id != deploy.deploy_id
    ]
    previous = max((d.started_at for d in others if d.started_at < deploy.started_at), default=None)
    following = min((d.started_at for d in others if d.started_at > deploy.started_at), default=None)
    windows = impact_windows(deploy.started_at, previous, following, now, rules)
    since, split, until = windows
    scope = (deploy.service, deploy.environment, since, split, until)
    return deploy_impact(
        iq.request_sides(store, *scope, sample=LATENCY_SAMPLE),
        iq.error_types(store, *scope),
        iq.callers(store, *scope),
        windows,
        deploy.service,
        rules,
    )
