"""`correlator demo`: a simulated shop, replayed through the real OpenTelemetry SDK into a running correlator."""
