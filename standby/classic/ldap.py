"""`zmrestoreldap`: the directory (the LDAP stand-in) back from a session's `sys/ldap.xml`.

`-lbs` lists the sessions that hold a directory dump; `-lb LABEL` restores the whole directory
(domains, classes of service, configuration attributes and every account) from it, or with `-a`
only those accounts (and the domains and classes of service they need). Entries in the dump
replace those with the same id or address; entries the dump does not name are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from standby.classic import labels, xmlfiles
from standby.classic.target import SessionInfo, Target
from standby.errors import NotFound
from standby.store.directory import Directory

DUMP = "sys/ldap.xml"


def sessions(target: Target) -> list[SessionInfo]:
    """Finished sessions holding a directory dump, oldest first."""
    return [s for s in target.sessions() if s.finished and (s.path / DUMP).is_file()]


def restore(target: Target, directory: Directory, label: str,
            accounts: Sequence[str] | None = None) -> int:
    """Load the directory dump of session `label`; returns the number of accounts loaded."""
    target.check_usable(create=False)
    with_dump = sessions(target)
    lb = labels.resolve(label, [s.label for s in with_dump] or target.labels())
    info = next((s for s in with_dump if s.label == lb), None)
    if info is None:
        raise NotFound(f"session {lb} holds no directory dump ({DUMP})",
                       hint="`zmrestoreldap -lbs` lists the sessions that do")
    p = info.path / DUMP
    dump = xmlfiles.directory_from_xml(xmlfiles.read_xml(p, root="directory"), where=str(p))
    only = None
    if accounts:
        known = {a["email"] for a in dump["accounts"]}
        wanted = {a.lower() for a in accounts}
        missing = sorted(wanted - known)
        if missing:
            raise NotFound(f"session {lb} has no directory entry for {', '.join(missing)}")
        only = wanted
    return directory.load(dump, only=only)
