"""The backup attributes `zmprov` sets, as the guide sets them, and what they resolve to.

`zmprov mcf ATTR VALUE` sets an attribute globally, `zmprov ms SERVER ATTR VALUE` for one server;
a server's value overrides the global one, which overrides the default. The attributes live in
the directory (scope `global` or `server:<name>`). Each attribute is declared once in `ATTRS`
with its default and its check; a value is normalised (`true` -> `TRUE`, `auto-grouped` ->
`Auto-Grouped`) before it is stored, so what `zmprov gcf` prints is what the tools use.
`zmprov` changes are planned by the pure `plan_changes` (`+ATTR` adds a value to a multi-valued
attribute, `-ATTR` removes one), then written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from standby.classic import labels
from standby.classic.labels import MinFree
from standby.errors import UsageError

GLOBAL = "global"
MODES = ("Standard", "Auto-Grouped")
ACCOUNT_STATUSES = ("active", "maintenance", "locked", "closed")
DOMAIN_STATUSES = ("active", "maintenance", "locked", "closed", "suspended")


def server_scope(name: str) -> str:
    return f"server:{name}"


def _bool(v: str) -> str:
    u = v.strip().upper()
    if u not in ("TRUE", "FALSE"):
        raise UsageError(f"{v!r} is not TRUE or FALSE")
    return u


def _mode(v: str) -> str:
    for m in MODES:
        if v.strip().lower() == m.lower():
            return m
    raise UsageError(f"{v!r} is not a backup mode", hint="Standard or Auto-Grouped")


def _interval(v: str) -> str:
    labels.parse_interval(v)
    return v.strip().lower()


def _count(v: str) -> str:
    if not v.strip().isdigit() or int(v) < 1:
        raise UsageError(f"{v!r} is not a whole number of at least 1")
    return str(int(v))


def _port(v: str) -> str:
    if not v.strip().isdigit() or not 0 < int(v) < 65536:
        raise UsageError(f"{v!r} is not a port number (1-65535)")
    return str(int(v))


def _min_free(v: str) -> str:
    labels.parse_min_free(v)
    return v.strip()


_EMAIL_RX = re.compile(r"[^@\s]+@[^@\s]+\Z")


def _email(v: str) -> str:
    if not _EMAIL_RX.match(v.strip()):
        raise UsageError(f"{v!r} is not an email address")
    return v.strip()


def _text(v: str) -> str:
    if any(c in v for c in "\r\n\0"):
        raise UsageError(f"{v!r} may not contain line breaks")
    return v


@dataclass(frozen=True)
class AttrSpec:
    name: str
    default: tuple[str, ...]
    check: Callable[[str], str]
    help: str
    multi: bool = False


ATTRS: dict[str, AttrSpec] = {a.name: a for a in (
    AttrSpec("zimbraBackupMode", ("Standard",), _mode, "Standard or Auto-Grouped"),
    AttrSpec("zimbraBackupAutoGroupedInterval", ("1d",), _interval,
             "how often one group is backed up: xd or xw"),
    AttrSpec("zimbraBackupAutoGroupedNumGroups", ("7",), _count,
             "the number of groups mailboxes are spread over"),
    AttrSpec("zimbraBackupAutoGroupedThrottled", ("FALSE",), _bool,
             "limit each auto-grouped session to T/N mailboxes"),
    AttrSpec("zimbraBackupMinFreeSpace", ("0",), _min_free,
             "free space a session needs on the target (25%, 300MB; 0 is off)"),
    AttrSpec("zimbraBackupSkipSearchIndex", ("FALSE",), _bool, "do not back up search indexes"),
    AttrSpec("zimbraBackupSkipBlobs", ("FALSE",), _bool, "do not back up blobs"),
    AttrSpec("zimbraBackupSkipHsmBlobs", ("FALSE",), _bool,
             "do not back up blobs on HSM (secondary) volumes"),
    AttrSpec("zimbraBackupReportEmailRecipients", (), _email,
             "who receives the backup report", multi=True),
    AttrSpec("zimbraBackupReportEmailSender", (), _email, "the report's From address"),
    AttrSpec("zimbraBackupReportEmailSubjectPrefix", ("ZCS Backup Report",), _text,
             "the report's subject prefix"),
    AttrSpec("zimbraBackupTarget", (), _text, "the default backup target"),
    AttrSpec("zimbraSmtpHostname", ("localhost",), _text, "the SMTP server reports go to"),
    AttrSpec("zimbraSmtpPort", ("25",), _port, "its port"),
)}


def spec(name: str) -> AttrSpec:
    s = ATTRS.get(name)
    if s is None:
        for known in ATTRS:  # attribute names are case-insensitive in LDAP
            if known.lower() == name.lower():
                return ATTRS[known]
        raise UsageError(f"unknown attribute {name!r}",
                         hint="backup attributes: " + ", ".join(ATTRS))
    return s


def normalise(name: str, value: str) -> tuple[str, str]:
    """(canonical name, canonical value) or UsageError naming both."""
    s = spec(name)
    try:
        return s.name, s.check(value)
    except UsageError as e:
        raise UsageError(f"{s.name}: {e.message}", hint=e.hint or s.help) from None


def plan_changes(current: Mapping[str, Sequence[str]],
                 args: Sequence[str]) -> dict[str, list[str]]:
    """The new values of each attribute `zmprov mcf/ms ATTR VALUE [ATTR VALUE ...]` changes.

    `ATTR VALUE` replaces (an empty VALUE removes the attribute; several `ATTR` pairs of a
    multi-valued attribute set all of them), `+ATTR VALUE` adds, `-ATTR VALUE` removes one value.
    """
    if not args or len(args) % 2:
        raise UsageError("give attributes and values in pairs: ATTR VALUE [ATTR VALUE ...]")
    out: dict[str, list[str]] = {}
    replaced: set[str] = set()
    for i in range(0, len(args), 2):
        raw, value = args[i], args[i + 1]
        op = raw[0] if raw[:1] in "+-" else ""
        name = spec(raw[len(op):]).name
        values = out.get(name, list(current.get(name, ())))
        if op == "-":
            values = [v for v in values if v != value]
        else:
            _, value = normalise(name, value) if value != "" else (name, "")
            if op == "+" and not ATTRS[name].multi:
                raise UsageError(f"{name} holds one value; set it without '+'")
            if op == "+":
                values = values + [value] if value not in values else values
            elif name in replaced and ATTRS[name].multi:
                values = values + [value] if value else values
            else:
                values = [value] if value else []
            replaced.add(name)
        out[name] = values
    return out


def effective(global_attrs: Mapping[str, Sequence[str]],
              server_attrs: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Every backup attribute's values: the server's, else the global, else the default."""
    out = {}
    for name, s in ATTRS.items():
        if server_attrs.get(name):
            out[name] = tuple(server_attrs[name])
        elif global_attrs.get(name):
            out[name] = tuple(global_attrs[name])
        else:
            out[name] = s.default
    return out


@dataclass(frozen=True)
class BackupConfig:
    """The backup attributes resolved for one server."""

    mode: str = "Standard"
    interval_ms: int = labels.DAY_MS
    groups: int = 7
    throttled: bool = False
    min_free: MinFree = MinFree()
    skip_search_index: bool = False
    skip_blobs: bool = False
    skip_hsm_blobs: bool = False
    recipients: tuple[str, ...] = ()
    sender: str | None = None
    subject_prefix: str = "ZCS Backup Report"
    target: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 25

    @property
    def auto_grouped(self) -> bool:
        return self.mode == "Auto-Grouped"


def backup_config(global_attrs: Mapping[str, Sequence[str]],
                  server_attrs: Mapping[str, Sequence[str]]) -> BackupConfig:
    e = effective(global_attrs, server_attrs)

    def one(name: str) -> str | None:
        v = e[name]
        return v[0] if v else None

    def flag(name: str) -> bool:
        return one(name) == "TRUE"

    return BackupConfig(
        mode=one("zimbraBackupMode") or "Standard",
        interval_ms=labels.parse_interval(one("zimbraBackupAutoGroupedInterval") or "1d"),
        groups=int(one("zimbraBackupAutoGroupedNumGroups") or 7),
        throttled=flag("zimbraBackupAutoGroupedThrottled"),
        min_free=labels.parse_min_free(one("zimbraBackupMinFreeSpace") or "0"),
        skip_search_index=flag("zimbraBackupSkipSearchIndex"),
        skip_blobs=flag("zimbraBackupSkipBlobs"),
        skip_hsm_blobs=flag("zimbraBackupSkipHsmBlobs"),
        recipients=e["zimbraBackupReportEmailRecipients"],
        sender=one("zimbraBackupReportEmailSender"),
        subject_prefix=one("zimbraBackupReportEmailSubjectPrefix") or "ZCS Backup Report",
        target=one("zimbraBackupTarget"),
        smtp_host=one("zimbraSmtpHostname") or "localhost",
        smtp_port=int(one("zimbraSmtpPort") or 25),
    )


def check_status(value: str, allowed: Sequence[str], what: str) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise UsageError(f"{value!r} is not a {what}", hint="one of " + ", ".join(allowed))
    return v
