"""`standby bench ...`: measured figures (speed is measured here, never asserted in tests)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: print measured figures; JSON on the last line with --json.",
                  no_args_is_help=True)
