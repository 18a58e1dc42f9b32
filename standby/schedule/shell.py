"""/bin/sh words: the command line a crontab entry hands to /bin/sh, and reading it back.

Owns quoting for /bin/sh (not for cron, whose `%` and `\\` escapes are `crontab`'s business).

Invariants:

- `sh_split_and(sh_join(a) + " && " + sh_join(b)) == [a, b]` for all argv that hold no newline
  or NUL: /bin/sh runs exactly those words (Hypothesis-tested through a real /bin/sh).
- A first word that sh would read as a keyword or an assignment is quoted, so the command is
  always a plain command.
- Reading back accepts only what `sh_join` writes: any other unquoted shell syntax is a
  FormatError, because it could not be shown or re-rendered faithfully.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from standby.errors import FormatError

_SAFE = re.compile(r"[\w@%+=:,./-]+\Z", re.ASCII)  # what shlex.join leaves unquoted
_RESERVED = {"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if",
             "in", "then", "until", "while"}


def sh_join(argv: Sequence[str]) -> str:
    """shlex.join, but a first word that sh would read as a keyword or `VAR=value` is quoted."""
    words = [shlex.quote(w) for w in argv]
    first = argv[0]
    if _SAFE.match(first) and (first in _RESERVED or re.match(r"[A-Za-z_]\w*=", first)):
        words[0] = f"'{first}'"
    return " ".join(words)


def sh_split_and(command: str, *, where: str) -> list[tuple[str, ...]]:
    """Split the commands of `a && b` into argv tuples, reading quotes as /bin/sh does.

    Only what `sh_join` writes is accepted: any other unquoted shell syntax (redirections,
    pipes, `;`, `$`, globs, comments, assignments) raises FormatError, because standby could
    not show or re-render it faithfully.
    """
    commands: list[list[str]] = [[]]
    word: list[str] | None = None  # None: between words
    bare = ""  # the word's unquoted beginning: `VAR=` there makes it an assignment
    all_bare = True
    i, n = 0, len(command)

    def finish() -> None:
        nonlocal word, bare, all_bare
        if word is not None:
            w = "".join(word)
            if not commands[-1] and ((all_bare and w in _RESERVED)
                                     or re.match(r"[A-Za-z_]\w*=", bare)):
                raise FormatError(f"{where}: {w!r} is shell syntax, not a command")
            commands[-1].append(w)
        word, bare, all_bare = None, "", True

    def add(text: str, quoted: bool) -> None:
        nonlocal word, bare, all_bare
        if word is None:
            word = []
        if quoted:
            all_bare = False
        elif all_bare:
            bare += text
        word.append(text)

    while i < n:
        c = command[i]
        if c in " \t":
            finish()
        elif c == "'":
            j = command.find("'", i + 1)
            if j < 0:
                raise FormatError(f"{where}: unterminated single quote")
            add(command[i + 1:j], True)
            i = j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and command[j] != '"':
                if command[j] == "\\" and j + 1 < n and command[j + 1] in '\\"$`':
                    j += 1
                elif command[j] in "$`":
                    raise FormatError(f"{where}: expansion inside double quotes")
                buf.append(command[j])
                j += 1
            if j >= n:
                raise FormatError(f"{where}: unterminated double quote")
            add("".join(buf), True)
            i = j
        elif c == "\\" and i + 1 < n:
            add(command[i + 1], True)
            i += 1
        elif command.startswith("&&", i):
            finish()
            if not commands[-1]:
                raise FormatError(f"{where}: '&&' without a command before it")
            commands.append([])
            i += 1
        elif _SAFE.match(c):
            add(c, False)
        else:
            raise FormatError(f"{where}: unquoted shell syntax {c!r}",
                              hint="standby manages plain commands; run "
                                   "`standby schedule install` to rewrite its block")
        i += 1
    finish()
    if not commands[-1]:
        raise FormatError(f"{where}: no command" if len(commands) == 1 else
                          f"{where}: '&&' without a command after it")
    if len(commands) > 2:
        raise FormatError(f"{where}: more than one '&&'; an entry has one follow-up")
    return [tuple(c) for c in commands]
