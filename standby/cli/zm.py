"""The Zimbra-named entry points (`zmredodump`, and those later features add)."""

from __future__ import annotations

import typer

from standby.cli import common
from standby.cli.redolog import dump as dump_cmd
from standby.cli.replay import replay_command

redodump_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False,
    help="zmredodump [options] <redolog file/directory> [...]. Multiple log files/directories "
         "can be specified; a directory is read as a redolog directory: its archived logs (in "
         "archive/ or directly under it), then redo.log, in ascending redolog sequence order.",
    context_settings={"help_option_names": ["-h", "--help"]})
redodump_app.command()(dump_cmd)


def zmredodump() -> None:
    common.run(redodump_app, prog="zmredodump", default_log_level="warning")


playredo_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False,
    help="zmplayredo: replay redo logs onto the store's volumes.",
    context_settings={"help_option_names": ["-h", "--help"]})
playredo_app.command()(replay_command)


def zmplayredo() -> None:
    import sys

    from standby.cli.replay import expand_multi

    common.run(playredo_app, argv=expand_multi(sys.argv[1:]), prog="zmplayredo",
               default_log_level="warning")
