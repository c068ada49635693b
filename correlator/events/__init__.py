"""Webhook payloads and API bodies to deploy and alert records: pure functions, no I/O."""
