"""What the settings tell the webhook parsers: the service-name map and the labels that name an alert's service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# API.md, Incidents: the default of CORRELATOR_ALERT_SERVICE_LABELS.
DEFAULT_SERVICE_LABELS: tuple[str, ...] = ("service", "service_name", "app", "job")


@dataclass(frozen=True)
class WebhookOptions:
    """Settings every parser takes: names to service names (CORRELATOR_SERVICE_MAP), alert service labels."""

    service_map: Mapping[str, str] = field(default_factory=dict)
    service_labels: tuple[str, ...] = DEFAULT_SERVICE_LABELS

    def service_name(self, name: str) -> str:
        """The service a repository, application, object or alert label names (itself when not mapped)."""
        return self.service_map.get(name, name)


DEFAULT_OPTIONS = WebhookOptions()


def parse_service_map(spec: str) -> dict[str, str]:
    """Parse `name=service,name=service` (CORRELATOR_SERVICE_MAP); raises ValueError on a malformed item."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, service = (part.strip() for part in item.partition("="))
        if not sep or not name or not service:
            raise ValueError(f"expected CORRELATOR_SERVICE_MAP items like 'shop-checkout=checkout', got {item!r}")
        mapping[name] = service
    return mapping


def parse_service_labels(spec: str) -> tuple[str, ...]:
    """Parse `service,service_name,app,job` (CORRELATOR_ALERT_SERVICE_LABELS); empty means the default."""
    labels = tuple(filter(None, (part.strip() for part in spec.split(","))))
    return labels or DEFAULT_SERVICE_LABELS
