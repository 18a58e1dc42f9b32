"""Where schedules live: a crontab (through the `crontab` program, or a plain file) and a systemd
unit directory — the two side-effect interfaces and their real implementations.

Owns every read and write of schedule state; the formats are `crontab` and `systemd`.

Invariants:

- a file is replaced whole (temp file + fsync + rename, keeping its mode) or not at all.
- a unit directory is only read, written and deleted in for `standby-*.service`/`.timer`
  files; nothing else in it is touched.
- `crontab` runs through `standby._process` (`crontab -l` / `crontab -`), never a shell; "no
  crontab for USER" reads as an empty crontab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from standby import _process
from standby._process import Command
from standby.errors import CommandFailed, CommandNotFound, UsageError, VolumeError
from standby.fsutil import write_atomic
from standby.schedule.systemd import UnitChange


class CrontabStore(Protocol):
    """One crontab's whole text."""

    def read(self) -> str: ...

    def write(self, text: str) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class UserCrontab:
    """A user's crontab through the `crontab` program (the current user's by default)."""

    user: str | None = None
    program: str = "crontab"

    def _cmd(self, *args: str) -> Command:
        return Command.of(self.program, *(("-u", self.user) if self.user else ()), *args,
                          timeout=60)

    def list_command(self) -> Command:
        return self._cmd("-l")

    def install_command(self) -> Command:
        return self._cmd("-")

    def read(self) -> str:
        try:
            result = _process.run(self.list_command(), check=False)
        except CommandNotFound as e:
            raise CommandNotFound(e.message, hint="apt-get install cron; or write a file with "
                                  "--crontab-file, or systemd timers with --systemd") from e
        if result.returncode == 0:
            return result.text
        err = result.stderr.decode("utf-8", "replace")
        if "no crontab for" in err.lower():
            return ""
        raise CommandFailed(self.list_command().argv, result.returncode, err)

    def write(self, text: str) -> None:
        _process.run(self.install_command(), input=text.encode())

    def describe(self) -> str:
        return f"the crontab of {self.user}" if self.user else "the user's crontab"


@dataclass(frozen=True)
class CrontabFile:
    """A crontab kept in a plain file (tests, /etc/cron.d-style files). Written atomically."""

    path: Path

    def read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""
        except OSError as e:
            raise VolumeError(f"cannot read {self.path}: {e.strerror}") from e

    def write(self, text: str) -> None:
        write_atomic(self.path, text)

    def describe(self) -> str:
        return str(self.path)


class UnitStore(Protocol):
    """standby's unit files in one directory, by name."""

    def read_all(self) -> dict[str, str]: ...

    def apply(self, change: UnitChange) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class UnitDir:
    """A systemd unit directory; only `standby-*` files are read, written or deleted."""

    path: Path

    def read_all(self) -> dict[str, str]:
        if not self.path.is_dir():
            return {}
        return {p.name: p.read_text() for p in sorted(self.path.glob("standby-*"))
                if p.suffix in (".service", ".timer") and p.is_file()}

    def apply(self, change: UnitChange) -> None:
        if not self.path.is_dir():
            raise VolumeError(f"unit directory {self.path} does not exist")
        for name in (*change.write, *change.delete):
            if not name.startswith("standby-") or "/" in name:
                raise UsageError(f"unit {name!r} is not one of standby's")
        for name, text in change.write.items():
            write_atomic(self.path / name, text)
        for name in change.delete:
            (self.path / name).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.path)


