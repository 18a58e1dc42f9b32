"""What every command shares: the context built by the root callback, output, error handling.

The root callback records `--log-format` and `--log-level`; `-c/--config` is recorded by the
option itself, which `command(app)` gives every group and command of an app, so it is accepted
before or after any sub-command (a later one wins). A command that needs settings calls
`settings(ctx)`, which resolves them once (file, environment, flags) into the frozen `Settings`.
`command(app)` also switches every command to click's plain help formatter, which re-wraps
docstrings by paragraph and prints no type placeholder for flags. `run(app)` is the edge where a
`StandbyError` becomes a message on stderr and the exit code it carries.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

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


CONFIG_HELP = ("Config file, before or after the sub-command. Default: $STANDBY_CONFIG, "
               "./standby.toml, /etc/standby/standby.toml.")


def _remember_config(ctx: typer.Context, value: Path | None) -> Path | None:
    if value is not None:
        ctx_obj(ctx).config = Path(value)
    return value


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE", help=CONFIG_HELP, callback=_remember_config)]


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


def run(app: typer.Typer, argv: list[str] | None = None, prog: str | None = None) -> None:
    """Run a typer app; translate StandbyError into a message and its exit code."""
    try:
        command(app)(args=argv, prog_name=prog)
    except StandbyError as e:
        sys.exit(fail(e))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
