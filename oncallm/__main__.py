"""`python -m oncallm` runs the CLI."""

from oncallm.cli import app

app()
