"""`localconfig.xml`: the server's local keys, as `zmlocalconfig` shows and edits them.

The file lives at `<state_dir>/conf/localconfig.xml` (Zimbra's `/opt/zimbra/conf`), in Zimbra's
format:

    <localconfig>
      <key name="backup_archived_redolog_keep_time">
        <value>3600</value>
      </key>
    </localconfig>

Keys the backup tools read are declared in `KEYS` with their defaults and checks; other keys are
kept as given, as Zimbra keeps them. `parse(render(d)) == d` (Hypothesis-tested). Backups copy the
file into `sys/`; `zmrestore -sys` puts it back as `localconfig.xml.restore` beside the live one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from standby.classic import xmlfiles
from standby.errors import FormatError, UsageError

FILE = "localconfig.xml"
RESTORED = "localconfig.xml.restore"
_KEY_RX = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")


def _seconds(v: str) -> str:
    if not v.strip().isdigit():
        raise UsageError(f"{v!r} is not a number of seconds")
    return str(int(v))


def _copies(v: str) -> str:
    if not v.strip().isdigit():
        raise UsageError(f"{v!r} is not a number of copies (0 turns the dump off)")
    return str(int(v))


def _text(v: str) -> str:
    if any(c in v for c in "\r\n\0"):
        raise UsageError("a localconfig value may not contain line breaks")
    return v


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    check: Callable[[str], str]
    help: str
    secret: bool = False


KEYS: dict[str, Key] = {k.name: k for k in (
    Key("backup_archived_redolog_keep_time", "3600", _seconds,
        "seconds an archived redo log stays on the server after an incremental copied it"),
    Key("mysql_backup_retention", "0", _copies,
        "how many gzipped database dumps backups keep (0: no dump)"),
    Key("zimbra_server_hostname", "", _text, "this server's name (default: the host name)"),
    Key("zimbra_ldap_password", "", _text, "the directory password", secret=True),
)}


def path(state_dir: Path) -> Path:
    return state_dir / "conf" / FILE


def check(name: str, value: str) -> tuple[str, str]:
    if not _KEY_RX.match(name):
        raise UsageError(f"{name!r} is not a localconfig key (letters, digits, '_', '.', '-')")
    k = KEYS.get(name)
    return name, (k.check(value) if k else _text(value))


def render(values: Mapping[str, str]) -> bytes:
    root = ET.Element("localconfig")
    for name in sorted(values):
        key = ET.SubElement(root, "key", {"name": name})
        ET.SubElement(key, "value").text = values[name]
    return xmlfiles.to_bytes(root)


def parse(data: bytes, *, where: str = FILE) -> dict[str, str]:
    root = xmlfiles.parse_bytes(data, where=where)
    if root.tag != "localconfig":
        raise FormatError(f"{where}: expected a <localconfig> document")
    out = {}
    for key in root.iter("key"):
        name = key.get("name")
        if not name:
            raise FormatError(f"{where}: a <key> has no name")
        v = key.find("value")
        out[name] = (v.text or "") if v is not None else ""
    return out


def load(state_dir: Path) -> dict[str, str]:
    """The keys set in the file (none if there is no file yet)."""
    p = path(state_dir)
    try:
        return parse(p.read_bytes(), where=str(p))
    except FileNotFoundError:
        return {}


def effective(values: Mapping[str, str], *, hostname: str) -> dict[str, str]:
    out = {k.name: k.default for k in KEYS.values()}
    out["zimbra_server_hostname"] = hostname
    out.update(values)
    return out


def save(state_dir: Path, values: Mapping[str, str]) -> None:
    p = path(state_dir)
    p.parent.mkdir(parents=True, exist_ok=True)
    xmlfiles.write_atomic(p, render(values))


def edit(state_dir: Path, assignments: list[str]) -> dict[str, str]:
    """`zmlocalconfig -e key=value ...`: check every assignment first, then write once."""
    values = load(state_dir)
    changed = {}
    for a in assignments:
        name, sep, value = a.partition("=")
        if not sep:
            raise UsageError(f"{a!r}: write key=value")
        name, value = check(name.strip(), value)
        changed[name] = value
    values.update(changed)
    save(state_dir, values)
    return changed
