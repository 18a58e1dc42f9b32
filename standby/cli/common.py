"""What every command shares: the context built by the root callback, output, error handling.

The root callback records `--log-format` and `--log-level`; `-c/--config` is recorded by its
option (`ConfigOpt`), which `command(app)` gives every group and command of an app, so it is
accepted before or after any sub-command (a later one wins). A command that needs settings calls
`settings(ctx, overrides)`, which resolves them once (file, environment) into the frozen
`Settings` and merges the command's own flags into it as dotted keys, validated like the same
keys in the file. `configure_logging` is the one place structlog is configured: flags, else the
`[log]` section (with `STANDBY_LOG_*` applied), else the command's default. `command(app)` also
switches every command to click's plain help formatter, which re-wraps docstrings by paragraph
and prints no type placeholder for flags. `run(app)` is the edge where a `StandbyError` becomes
a message on stderr and the exit code it carries.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

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


CONFIG_HELP = ("Config file, before or after the sub-command. Default: $STANDBY_CONFIG, "
               "./standby.toml, /etc/standby/standby.toml.")


def remember_config(ctx: typer.Context, value: Path | None) -> Path | None:
    if value is not None:
        ctx_obj(ctx).config = Path(value)
    return value


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE", help=CONFIG_HELP, callback=remember_config)]


def _config_option() -> Any:
    """A fresh click parameter for `ConfigOpt`, as typer builds it (one per command: click keeps
    per-command state in its parameters)."""
    probe = typer.Typer(add_completion=False)

    @probe.command()
    def _probe(config: ConfigOpt = None) -> None:
        """Only here to have typer build the option."""

    (param,) = typer.main.get_command(probe).params
    param.expose_value = False  # the callback records it; command functions do not take it
    return param


Command = TyperCommand | TyperGroup


def command(app: typer.Typer) -> Command:
    """The click command of `app`, every (sub-)command of it with `-c/--config` and plain help."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperCommand | TyperGroup)
    for _path, cmd in walk(root):
        cmd.rich_markup_mode = None
        if not any("--config" in p.opts for p in cmd.params):
            cmd.params.append(_config_option())
    return root


def walk(cmd: Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    """(sub-command names from the root, command) for `cmd` and every command under it."""
    out: list[tuple[tuple[str, ...], Command]] = [(path, cmd)]
    if isinstance(cmd, TyperGroup):
        for name, sub in cmd.commands.items():
            assert isinstance(sub, TyperCommand | TyperGroup)
            out += walk(sub, (*path, name))
    return out


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
        command(app)(args=argv, prog_name=prog,
                     obj=Context(default_log_level=default_log_level))
    except StandbyError as e:
        sys.exit(fail(e))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
