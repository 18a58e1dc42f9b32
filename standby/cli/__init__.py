"""The command line: one typer app per verb group, joined in `main`, plus the zm* entry points."""
