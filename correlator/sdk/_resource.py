"""Who is sending: the service's resource attributes, resolved as argument > environment > default, purely."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as sdk_version

SERVICE_NAME = "service.name"
SERVICE_NAMESPACE = "service.namespace"
SERVICE_VERSION = "service.version"
ENVIRONMENT = "deployment.environment.name"
DEPLOYMENT_ID = "deployment.id"
REVISION = "vcs.ref.head.revision"

# The spec's default service name; the environment defaults as the correlator's API does (API.md: deploys).
DEFAULTS: Mapping[str, str] = {SERVICE_NAME: "unknown_service", ENVIRONMENT: "production"}

# What a platform sets on its own (Argo CD build environment, Kubernetes downward API): the weakest evidence.
PLATFORM_VARIABLES: Mapping[str, str] = {
    "ARGOCD_APP_NAME": SERVICE_NAME,
    "ARGOCD_APP_REVISION": REVISION,
    "POD_NAME": "k8s.pod.name",
    "POD_NAMESPACE": "k8s.namespace.name",
    "NODE_NAME": "k8s.node.name",
}

# Our own variables, one per attribute, for deploy tooling that finds composing OTEL_RESOURCE_ATTRIBUTES awkward.
CORRELATOR_VARIABLES: Mapping[str, str] = {
    "CORRELATOR_SERVICE_NAME": SERVICE_NAME,
    "CORRELATOR_SERVICE_NAMESPACE": SERVICE_NAMESPACE,
    "CORRELATOR_SERVICE_VERSION": SERVICE_VERSION,
    "CORRELATOR_ENVIRONMENT": ENVIRONMENT,
    "CORRELATOR_DEPLOYMENT_ID": DEPLOYMENT_ID,
    "CORRELATOR_REVISION": REVISION,
}


@dataclass(frozen=True)
class ServiceIdentity:
    """What the caller said about the service; None (or '') leaves an attribute to the environment or the default."""

    service_name: str | None = None
    service_namespace: str | None = None
    service_version: str | None = None
    environment: str | None = None
    deployment_id: str | None = None
    revision: str | None = None

    def attributes(self) -> dict[str, str]:
        """The attributes the caller gave, by their OpenTelemetry names."""
        names = {
            "service_name": SERVICE_NAME,
            "service_namespace": SERVICE_NAMESPACE,
            "service_version": SERVICE_VERSION,
            "environment": ENVIRONMENT,
            "deployment_id": DEPLOYMENT_ID,
            "revision": REVISION,
        }
        given = {names[field.name]: getattr(self, field.name) for field in fields(self)}
        return {key: value for key, value in given.items() if value}


def parse_resource_attributes(value: str, variable: str = "OTEL_RESOURCE_ATTRIBUTES") -> dict[str, str]:
    """Parse `key=value,key=value` (values percent-encoded, as the spec says); a malformed item is a ValueError."""
    attributes: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue  # a trailing or doubled comma carries nothing and is common in templated values
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{variable}: expected items like 'key=value', got {item.strip()!r}")
        attributes[key.strip()] = unquote(raw.strip())
    return attributes


def resource_attributes(identity: ServiceIdentity, environ: Mapping[str, str]) -> dict[str, str]:
    """The resource attributes, each from its strongest source; the one place that states the precedence."""

    def from_variables(variables: Mapping[str, str]) -> dict[str, str]:
        # An empty variable counts as unset: manifests often render a missing value as ''.
        return {key: environ[name] for name, key in variables.items() if environ.get(name)}

    layers = [  # weakest first; each layer overrides the ones before it
        DEFAULTS,
        from_variables(PLATFORM_VARIABLES),
        from_variables(CORRELATOR_VARIABLES),
        parse_resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")),
        from_variables({"OTEL_SERVICE_NAME": SERVICE_NAME}),
        identity.attributes(),
    ]
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def build_resource(identity: ServiceIdentity, environ: Mapping[str, str]) -> Resource:
    """The SDK Resource for these attributes, with the telemetry.sdk.* attributes every SDK resource carries."""
    sdk_attributes = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
    }
    return Resource({**sdk_attributes, **resource_attributes(identity, environ)})
