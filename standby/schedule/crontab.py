"""Crontab text: a schedule as a marked block of cron lines, and the blocks read back.

Owns the crontab format only (pure functions on text); where a crontab lives is `stores`.

Invariants:

- install and remove change only the lines from `# BEGIN standby <owner>` to
  `# END standby <owner>`; every other line of the crontab is kept as it was, in place. The
  block holds no variable assignments (`MAILTO=`, `PATH=`): in a crontab they would leak into
  the user's lines after it. Commands use absolute paths instead.
- `crontab_schedules(render_block(s)) == [s]` for every schedule `render_block` accepts
  (Hypothesis-tested).
- a rendered line makes cron run exactly `argv`, then `then` if `argv` succeeded (`&&`): words
  are quoted for /bin/sh, then `\\` and `%` escaped for cron. A long-running entry is refused:
  cron starts jobs, it does not keep one running.
- broken markers (a block without its END, one inside another, an owner twice) stop every
  install and remove with a FormatError naming the line, rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from standby.errors import FormatError, UsageError
from standby.schedule.model import BEGIN, END, Schedule, ScheduleEntry
from standby.schedule.shell import sh_split_and


def cron_escape(command: str) -> str:
    """Escape a /bin/sh command for a crontab line.

    Vixie cron and its descendants (Debian's cron, cronie) read `\\%` as `%`, `\\\\` as `\\`,
    and an unescaped `%` as the end of the command (the rest becomes standard input). So every
    backslash is doubled and every `%` escaped.
    """
    return command.replace("\\", "\\\\").replace("%", "\\%")


def cron_unescape(command: str, *, where: str) -> str:
    """What cron hands to /bin/sh for a crontab command (do_command.c's translation)."""
    out: list[str] = []
    escaped = False
    for c in command:
        if escaped:
            escaped = False
            if c in "%\\":
                out[-1] = c  # the pair becomes the character; the backslash goes
                continue
        elif c == "\\":
            escaped = True
        elif c == "%":
            raise FormatError(f"{where}: unescaped '%' (cron would make the rest standard input)")
        out.append(c)
    return "".join(out)


def render_block(schedule: Schedule) -> str:
    """The schedule as crontab lines, between its BEGIN and END markers."""
    lines = [BEGIN + schedule.owner,
             "# Written by standby; this block is replaced on every install."]
    for e in schedule.entries:
        if e.cron is None:
            raise UsageError(f"schedule {schedule.owner!r}: entry {e.name!r} runs all the time, "
                             "and cron only starts jobs at set times",
                             hint="install it as a systemd unit (--systemd)")
        lines += [f"# entry: {e.name}", f"{e.cron} {cron_escape(e.command())}"]
    lines.append(END + schedule.owner)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Block:
    owner: str
    start: int  # line index of BEGIN
    end: int  # line index of END


def _blocks(lines: Sequence[str]) -> list[_Block]:
    found: list[_Block] = []
    open_owner, open_at = None, -1
    for i, raw in enumerate(lines):
        line = raw.strip(" \t")
        if line.startswith(BEGIN):
            if open_owner is not None:
                raise FormatError(f"crontab line {i + 1}: a standby block starts inside the "
                                  f"block {open_owner!r} opened on line {open_at + 1}")
            open_owner, open_at = line[len(BEGIN):].strip(" \t"), i
        elif line.startswith(END):
            owner = line[len(END):].strip(" \t")
            if owner != open_owner:
                raise FormatError(f"crontab line {i + 1}: end of standby block {owner!r} "
                                  "without its BEGIN line",
                                  hint="fix the markers with `crontab -e`")
            if any(b.owner == owner for b in found):
                raise FormatError(f"crontab: two standby blocks for {owner!r}")
            found.append(_Block(owner, open_at, i))
            open_owner = None
    if open_owner is not None:
        raise FormatError(f"crontab line {open_at + 1}: standby block {open_owner!r} has no "
                          "END line", hint="fix the markers with `crontab -e`")
    return found


def _parse_entries(owner: str, lines: Sequence[str], first_line: int) -> Schedule:
    entries: list[ScheduleEntry] = []
    name = "custom"
    for k, raw in enumerate(lines):
        where = f"crontab line {first_line + k + 1}"
        line = raw.strip(" \t")
        if line.startswith("# entry:"):
            name = line[len("# entry:"):].strip(" \t")
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(@[^ \t]+|(?:[^ \t]+[ \t]+){4}[^ \t]+)[ \t]+([^ \t].*)\Z", line,
                     re.DOTALL)
        if not m:
            raise FormatError(f"{where}: not a cron line: {line!r}")
        try:
            cmds = sh_split_and(cron_unescape(m.group(2), where=where), where=where)
            entries.append(ScheduleEntry(name, m.group(1), cmds[0],
                                         cmds[1] if len(cmds) > 1 else ()))
        except UsageError as e:
            raise FormatError(f"{where}: {e.message}", hint=e.hint) from e
        name = "custom"
    return Schedule(owner, tuple(entries))


def split_lines(text: str, *, keepends: bool = False) -> list[str]:
    """Split as cron does: at newlines only (str.splitlines also splits at \\x1e, \\u2028...)."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    elif keepends and parts:
        return [p + "\n" for p in parts[:-1]] + [parts[-1]]
    return [p + "\n" for p in parts] if keepends else parts


def crontab_schedules(text: str) -> list[Schedule]:
    """Every standby block in a crontab, in order."""
    lines = split_lines(text)
    return [_parse_entries(b.owner, lines[b.start + 1:b.end], b.start + 1)
            for b in _blocks(lines)]


def crontab_schedule(text: str, owner: str) -> Schedule | None:
    return next((s for s in crontab_schedules(text) if s.owner == owner), None)


def crontab_install(text: str, schedule: Schedule) -> str:
    """`text` with `schedule`'s block replaced in place, or appended if it has none."""
    lines = split_lines(text, keepends=True)
    block = split_lines(render_block(schedule), keepends=True)
    for b in _blocks([ln.rstrip("\n") for ln in lines]):
        if b.owner == schedule.owner:
            return "".join(lines[:b.start] + block + lines[b.end + 1:])
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # crontab needs a newline at the end of every line; ours must not join
    return "".join(lines + block)


def crontab_remove(text: str, owner: str) -> str:
    """`text` without `owner`'s block (unchanged if there is none)."""
    lines = split_lines(text, keepends=True)
    for b in _blocks([ln.rstrip("\n") for ln in lines]):
        if b.owner == owner:
            return "".join(lines[:b.start] + lines[b.end + 1:])
    return text
