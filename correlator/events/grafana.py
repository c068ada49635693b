"""Grafana unified alerting webhook notifications to alert events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from correlator.errors import BadRequest
from correlator.events.alertmanager import group_alerts
from correlator.events.fields import Body, Fields, load_object
from correlator.events.options import DEFAULT_OPTIONS, WebhookOptions
from correlator.events.records import Delivery

# The most specific link first: the panel that shows the alert, its dashboard, then the alert rule.
_URL_KEYS = ("panelURL", "dashboardURL", "generatorURL")


def parse_grafana(
    body: Body, headers: Mapping[str, str], *, now: datetime, options: WebhookOptions = DEFAULT_OPTIONS
) -> Delivery:
    """A Grafana unified alerting notification: one alert event per alert, like Alertmanager's."""
    root = Fields(load_object(body, source="grafana"), source="grafana")
    if "alerts" not in root.data and "evalMatches" in root.data:
        raise BadRequest("grafana: this is a legacy alerting notification (evalMatches); use unified alerting")
    return Delivery(None, alerts=group_alerts(root, "grafana", _URL_KEYS, now=now, options=options))
