"""What every command shares: the context built by the root callback, output, error handling.

The root callback records `--config`, `--log-format` and `--log-level`; a command that needs
settings calls `settings(ctx)`, which resolves them once (file, environment, flags) into the
frozen `Settings`. `run(app)` is the edge where a `StandbyError` becomes a message on stderr and
the exit code it carries.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from standby import log as slog
from standby import settings as settings_mod
from standby.errors import StandbyError
from standby.settings import Settings


@dataclass
class Context:
    config: Path | None = None
    log_format: str = "auto"
    log_level: str = "info"
    _settings: Settings | None = field(default=None, repr=False)


def ctx_obj(ctx: typer.Context) -> Context:
    root = ctx.find_root()
    if not isinstance(root.obj, Context):
        root.obj = Context()
    return root.obj


def settings(ctx: typer.Context) -> Settings:
    c = ctx_obj(ctx)
    if c._settings is None:
        s = settings_mod.load(c.config)
        assert s is not None
        c._settings = s
        if c.log_format == "auto" and s.log.format != "auto":
            slog.configure(s.log.format, c.log_level)
    return c._settings


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def emit(text: str) -> None:
    sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    sys.stdout.flush()


def fail(e: StandbyError) -> int:
    msg = f"error: {e.message}"
    if e.hint:
        msg += f"\n  hint: {e.hint}"
    sys.stderr.write(msg + "\n")
    return e.exit_code


def run(app: typer.Typer, argv: list[str] | None = None, prog: str | None = None) -> None:
    """Run a typer app; translate StandbyError into a message and its exit code."""
    try:
        app(args=argv, prog_name=prog)
    except StandbyError as e:
        sys.exit(fail(e))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
