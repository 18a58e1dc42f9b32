"""structlog, configured once for the process.

Logs go to stderr; results go to stdout. On a TTY the console renderer is used, otherwise one JSON
object per line (or as forced with `--log-format console|json`). Modules call
`standby.log.get(__name__)` and bind context (`volume`, `snapshot`, `set_id`, `mailbox`), emitting
one event per step.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}

_configured = False


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (not when logging was configured), so
    redirected or captured stderr (tests, CliRunner) never leaves a logger on a closed file."""

    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """Configure structlog for this process. Later calls reconfigure (tests, subcommands)."""
    global _configured
    stream = stream or _Stderr()
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    if fmt not in ("console", "json"):
        from standby.errors import UsageError

        raise UsageError(f"--log-format: {fmt!r} is not one of auto, console, json")
    lvl = _LEVELS.get(level.lower())
    if lvl is None:
        from standby.errors import UsageError

        raise UsageError(f"--log-level: {level!r} is not one of {', '.join(_LEVELS)}")
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get(name: str | None = None, **context: Any) -> Any:
    """A bound logger; configures a default (auto, info) on first use if nobody has."""
    if not _configured:
        configure()
    log = structlog.get_logger(name) if name else structlog.get_logger()
    return log.bind(**context) if context else log
