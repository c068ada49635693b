"""`python -m correlator` is the `correlator` command."""

from correlator.cli.main import app

app()
