"""The HTTP API and the OTLP receivers: thin routes over the service layer."""
