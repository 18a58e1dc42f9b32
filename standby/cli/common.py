"""What every command shares: the context built by the root callback, output, error handling.

The root callback records `--config`, `--log-format` and `--log-level`; a command that needs
settings calls `settings(ctx, overrides)`, which resolves them once (file, environment) into the
frozen `Settings` and merges the command's own flags into it as dotted keys, validated like the
same keys in the file. `configure_logging` is the one place structlog is configured: flags, else
the `[log]` section (with `STANDBY_LOG_*` applied), else the command's default. `run(app)` is the
edge where a `StandbyError` becomes a message on stderr and the exit code it carries.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from standby import log as slog
from standby import settings as settings_mod
from standby.errors import ConfigError, StandbyError, UsageError
from standby.settings import Settings


@dataclass
class Context:
    config: Path | None = None
    log_format: str | None = None  # the flags; None: from the settings
    log_level: str | None = None
    default_log_level: str = "info"
    _settings: Settings | None = field(default=None, repr=False)


def ctx_obj(ctx: typer.Context) -> Context:
    root = ctx.find_root()
    if not isinstance(root.obj, Context):
        root.obj = Context()
    return root.obj


def configure_logging(c: Context, s: Settings | None = None) -> None:
    """Configure structlog from the flags, else the settings' `[log]` (file and environment),
    else the environment alone (a command without a configuration), else the default."""
    base = s.log if s is not None else settings_mod.log_from_env(c.default_log_level)
    slog.configure(c.log_format or base.format, c.log_level or base.level)


def settings(ctx: typer.Context, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings for this command: resolved once, with `overrides` (dotted keys; None
    values mean "flag not given") merged in and validated."""
    c = ctx_obj(ctx)
    if c._settings is None:
        c._settings = settings_mod.load(c.config)
        configure_logging(c, c._settings)
    if overrides:
        try:
            return settings_mod.with_overrides(c._settings, overrides)
        except ConfigError as e:
            raise UsageError(e.message, hint="a command-line flag gave this value") from e
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


def run(app: typer.Typer, argv: list[str] | None = None, prog: str | None = None, *,
        default_log_level: str = "info") -> None:
    """Run a typer app; translate StandbyError into a message and its exit code."""
    try:
        configure_logging(Context(default_log_level=default_log_level))
        app(args=argv, prog_name=prog, obj=Context(default_log_level=default_log_level))
    except StandbyError as e:
        sys.exit(fail(e))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
