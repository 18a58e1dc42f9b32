"""`zmprov` for what the guide uses it for: the backup attributes and account and domain status.

    zmprov mcf|modifyConfig ATTR VALUE [ATTR VALUE ...]         the global configuration
    zmprov ms|modifyServer SERVER ATTR VALUE [ATTR VALUE ...]  one server (overrides global)
    zmprov gcf|getConfig [ATTR ...]                             what is set globally
    zmprov gs|getServer SERVER [ATTR ...]                      a server's effective values
    zmprov ma|modifyAccount ACCOUNT zimbraAccountStatus STATUS
    zmprov md|modifyDomain DOMAIN zimbraDomainStatus STATUS

`parse` turns the words into a frozen `Command` (pure, so every malformed line is refused before
anything is written); `execute` applies it to the directory and returns the lines to print, as
`ATTR: VALUE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from standby.classic import attrs
from standby.errors import UsageError
from standby.store.directory import Directory

VERBS = {"mcf": "mcf", "modifyconfig": "mcf", "ms": "ms", "modifyserver": "ms",
         "gcf": "gcf", "getconfig": "gcf", "gs": "gs", "getserver": "gs",
         "ma": "ma", "modifyaccount": "ma", "md": "md", "modifydomain": "md"}
USAGE = ("zmprov mcf ATTR VALUE ... | ms SERVER ATTR VALUE ... | gcf [ATTR ...] | "
         "gs SERVER [ATTR ...] | ma ACCOUNT zimbraAccountStatus STATUS | "
         "md DOMAIN zimbraDomainStatus STATUS")


@dataclass(frozen=True)
class Command:
    verb: str
    target: str | None  # server, account or domain
    args: tuple[str, ...]


def parse(words: Sequence[str]) -> Command:
    if not words:
        raise UsageError("zmprov needs a command", hint=USAGE)
    verb = VERBS.get(words[0].lower())
    if verb is None:
        raise UsageError(f"zmprov: {words[0]!r} is not a command this zmprov knows",
                         hint=USAGE)
    rest = tuple(words[1:])
    if verb in ("ms", "gs", "ma", "md"):
        if not rest:
            raise UsageError(f"zmprov {verb} needs a {'server' if verb in ('ms', 'gs') else 'name'}",
                             hint=USAGE)
        target, rest = rest[0], rest[1:]
    else:
        target = None
    if verb in ("mcf", "ms"):
        attrs.plan_changes({}, rest)  # refuse a malformed line before anything is written
    elif verb in ("gcf", "gs"):
        for name in rest:
            attrs.spec(name)
    else:
        want = "zimbraAccountStatus" if verb == "ma" else "zimbraDomainStatus"
        if len(rest) != 2 or rest[0].lower() != want.lower():
            raise UsageError(f"zmprov {verb}: this zmprov changes {want} only",
                             hint=f"zmprov {verb} {target} {want} maintenance|active")
        allowed = attrs.ACCOUNT_STATUSES if verb == "ma" else attrs.DOMAIN_STATUSES
        rest = (want, attrs.check_status(rest[1], allowed, want))
    return Command(verb, target, rest)


def _show(values: dict[str, tuple[str, ...]], names: Sequence[str]) -> list[str]:
    wanted = [attrs.spec(n).name for n in names] if names else sorted(values)
    return [f"{n}: {v}" for n in wanted for v in values.get(n, ())]


def execute(directory: Directory, cmd: Command) -> list[str]:
    if cmd.verb in ("mcf", "ms"):
        scope = attrs.GLOBAL if cmd.verb == "mcf" else attrs.server_scope(cmd.target or "")
        for name, values in attrs.plan_changes(directory.attrs(scope), cmd.args).items():
            directory.set_attr(scope, name, values)
        return []
    if cmd.verb == "gcf":
        current = {k: tuple(v) for k, v in directory.attrs(attrs.GLOBAL).items()}
        return _show(current, cmd.args)
    if cmd.verb == "gs":
        eff = attrs.effective(directory.attrs(attrs.GLOBAL),
                              directory.attrs(attrs.server_scope(cmd.target or "")))
        return [f"# name {cmd.target}", *_show(eff, cmd.args)]
    assert cmd.target is not None
    if cmd.verb == "ma":
        directory.set_status(cmd.target, cmd.args[1])
    else:
        directory.set_domain_status(cmd.target, cmd.args[1])
    return []
