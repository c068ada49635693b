"""Every webhook parser by the source name of its route, `POST /api/v1/webhooks/{source}`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from correlator.events.alertmanager import parse_alertmanager
from correlator.events.argocd import parse_argocd
from correlator.events.fields import Body
from correlator.events.flux import parse_flux
from correlator.events.github import parse_github
from correlator.events.gitlab import parse_gitlab
from correlator.events.grafana import parse_grafana
from correlator.events.options import WebhookOptions
from correlator.events.pagerduty import parse_pagerduty
from correlator.events.records import Delivery


class WebhookParser(Protocol):
    """What every parser is: a body (raw or parsed) and lower-case headers in, a delivery out."""

    def __call__(
        self, body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = ...
    ) -> Delivery: ...


DEPLOY_WEBHOOKS: Mapping[str, WebhookParser] = {
    "argocd": parse_argocd,
    "github": parse_github,
    "gitlab": parse_gitlab,
    "flux": parse_flux,
}
ALERT_WEBHOOKS: Mapping[str, WebhookParser] = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
    "pagerduty": parse_pagerduty,
}
WEBHOOKS: Mapping[str, WebhookParser] = {**DEPLOY_WEBHOOKS, **ALERT_WEBHOOKS}
