"""The `correlator` command: serve and migrate open the store; every other command is an HTTP client."""
