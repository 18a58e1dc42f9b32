"""`standby`: the root command and its verb groups."""

from __future__ import annotations

from typing import Annotated

import typer

from standby import __version__
from standby.cli import common
from standby.cli.bench import app as bench_app
from standby.cli.classic import app as classic_app
from standby.cli.drill import drill_command
from standby.cli.index import app as index_app
from standby.cli.redolog import app as redolog_app
from standby.cli.replay import replay_command
from standby.cli.schedule import app as schedule_app
from standby.cli.snapshot import app as snapshot_app
from standby.cli.status import metrics_command, status_command
from standby.cli.store import app as store_app
from standby.cli.stream import stream_command
from standby.cli.target import app as target_app
from standby.cli.transfer import prune_command, pull_command, ship_command, verify_command

app = typer.Typer(
    name="standby",
    help="Warm standby for a Zimbra-style mailbox server: staggered storage snapshots of its "
         "four volumes, shipping, and point-in-time redo-log replay.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        common.emit(f"standby {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: common.ConfigOpt = None,
    log_format: Annotated[str | None, typer.Option(
        help="auto (console on a TTY, else JSON), console or json. Default: log.format, "
        "$STANDBY_LOG_FORMAT, auto.")] = None,
    log_level: Annotated[str | None, typer.Option(
        help="debug, info, warning or error. Default: log.level, $STANDBY_LOG_LEVEL, info.")]
    = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    # `config` is recorded by its option's callback. Declared here too (the shared option
    # type), so that the app run by typer alone, as tests do, still takes it.
    c = common.ctx_obj(ctx)
    c.log_format, c.log_level = log_format, log_level
    common.configure_logging(c)


app.add_typer(store_app, name="store")
app.add_typer(redolog_app, name="redolog")
app.add_typer(bench_app, name="bench")
app.command("replay")(replay_command)
app.command("drill")(drill_command)
app.add_typer(snapshot_app, name="snapshot")
app.add_typer(schedule_app, name="schedule")
app.add_typer(index_app, name="index")
app.add_typer(classic_app, name="classic")
app.add_typer(target_app, name="target")
app.command("ship")(ship_command)
app.command("pull")(pull_command)
app.command("verify")(verify_command)
app.command("prune")(prune_command)
app.command("status")(status_command)
app.command("metrics")(metrics_command)
app.command("stream")(stream_command)


def main() -> None:
    import sys

    from standby.cli.replay import expand_multi

    common.run(app, argv=expand_multi(sys.argv[1:]), prog="standby")
