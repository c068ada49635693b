"""The correlator: links logs, metrics and traces by trace id, service and deploy id."""

__version__ = "0.1.0"
