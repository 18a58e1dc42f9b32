"""The one error tree of standby, and the exit code each kind of failure maps to.

Library code raises a subclass of `StandbyError` with a message a person can act on: what was
wrong and what to do about it. Backends translate foreign exceptions (pymysql, botocore, a failed
`zfs` command) into these at their edge. The CLI catches `StandbyError` once, logs it, and exits
with `exit_code`.

Exit codes (also listed in README.md):

    0   success
    1   generic failure; for zmredodump and zmplayredo, Zimbra's "some records had errors"
    2   bad command-line usage or an argument value that does not parse (e.g. a time)
    3   bad configuration (unknown key, wrong type, missing value)
    4   a volume or path that does not exist, is not a directory, or is not writable
    5   conflict with running state: the store is already running, or must be stopped first
    6   a redo log or other data file that is corrupt, truncated or of a newer version
    7   an external service or command failed (MariaDB, zfs, btrfs, S3, EC2)
    8   integrity check failed: bad signature, checksum or digest mismatch
    9   a requested object does not exist (snapshot, set, label, mailbox)
    130 interrupted
"""

from __future__ import annotations


class StandbyError(Exception):
    """Base of every error standby reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt whole in another process (a classic worker's error reaches its parent):
        # its subclass, message, hint and any exit code set on it.
        return (_rebuilt, (type(self), self.message, dict(self.__dict__)))


def _rebuilt(cls: type[StandbyError], message: str, state: dict[str, object]) -> StandbyError:
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    e.__dict__.update(state)
    return e


class UsageError(StandbyError):
    """An argument value is malformed or arguments contradict each other."""

    exit_code = 2


class ConfigError(StandbyError):
    """The configuration file or environment is invalid."""

    exit_code = 3


class VolumeError(StandbyError):
    """A configured volume or path is missing, of the wrong kind, or not writable."""

    exit_code = 4


class StateConflict(StandbyError):
    """The requested action conflicts with what is running (or not running) now."""

    exit_code = 5


class FormatError(StandbyError):
    """A data file (redo log, manifest, dump) is corrupt, truncated or of an unknown version."""

    exit_code = 6


class UnsupportedVersion(FormatError):
    """A redo log or record was written by a newer format version than this reader knows."""


class ServiceError(StandbyError):
    """An external service or command failed."""

    exit_code = 7


class CommandFailed(ServiceError):
    """A subprocess exited non-zero; carries its argv and stderr for the log."""

    def __init__(self, argv: tuple[str, ...], returncode: int, stderr: str) -> None:
        tail = stderr.strip().splitlines()[-3:] if stderr else []
        detail = "; ".join(tail) if tail else "no error output"
        super().__init__(f"command {argv[0]!r} failed with exit code {returncode}: {detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class CommandNotFound(ServiceError):
    """A required program is not installed or not on PATH."""


class IntegrityError(StandbyError):
    """A signature, checksum or digest did not match."""

    exit_code = 8


class NotFound(StandbyError):
    """A named object (snapshot, set, label, mailbox, file) does not exist."""

    exit_code = 9


class Interrupted(StandbyError):
    """The user interrupted a long-running action."""

    exit_code = 130
