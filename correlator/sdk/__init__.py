"""Telemetry for the services the correlator watches; imports nothing else of the correlator (docs/sdk.md)."""

from correlator.sdk._configure import Telemetry, configure
from correlator.sdk._instrument import instrument_app
from correlator.sdk._resource import ServiceIdentity, build_resource, parse_resource_attributes, resource_attributes

__all__ = [
    "ServiceIdentity",
    "Telemetry",
    "build_resource",
    "configure",
    "instrument_app",
    "parse_resource_attributes",
    "resource_attributes",
]
