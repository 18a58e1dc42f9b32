"""Zimbra's purge of old messages (PurgeOldMessages) as one pure function of a mailbox's rows.

PurgeOldMessages carries no ids: its `redo()` calls `Mailbox.purgeMessages` again, which looks
at the mailbox as it is at that change, with the op's timestamp as "now" and the account's
lifetimes as the directory holds them then. So the live store, the naive engine and the fast
engine each load the rows the purge reads and call `victims` on them: the same rows, lifetimes
and timestamp give the same ids, and a replay deletes what the primary deleted as long as the
directory holds the lifetimes the primary had (Zimbra's LDAP at a standby, likewise).

`victims` follows `Mailbox.purgeMessages`, `Folder.purgeMessages` and `DbMailItem.getLeafNodes`;
each rule is a query over what the rules before it left, in Zimbra's order:

1. zimbraMailMessageLifetime (below 31 days, taken as 31 days): messages in every folder whose
   `date` is older;
2. Trash (the smaller non-zero of zimbraMailTrashLifetime and zimbraPrefTrashLifetime): items in
   Trash and below by `change_date` (zimbraMailPurgeUseChangeDateForTrash, default TRUE), leaving
   out subfolders changed since (not their subfolders); then each of those subfolders holding no
   item any more and unchanged since is deleted, with everything under it;
3. Junk (zimbraMailSpamLifetime, zimbraPrefJunkLifetime, zimbraMailPurgeUseChangeDateForSpam);
4. and 5. zimbraPrefInboxReadLifetime / zimbraPrefInboxUnreadLifetime: read / unread items of
   Inbox and below, by `date`;
6. zimbraPrefSentLifetime: Sent and below.
Rules 2-6 take items of every type but folders, searches, mountpoints, tags and conversations.
Each takes at most `batch` items (zimbraMailPurgeBatchSize), oldest first; Zimbra's `ORDER BY
date LIMIT n` leaves ties to the database, here the item id breaks them. Not modeled: the
dumpster (off, Zimbra's default), file versions, folder and tag retention policies (set by ops
outside the store), conversations, and the tombstone purge (sync tracking is off).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from standby.redolog.ops import (
    TYPE_CONVERSATION,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    TYPE_MOUNTPOINT,
    TYPE_SEARCH,
    TYPE_TAG,
)

INBOX, TRASH, JUNK, SENT = 2, 3, 4, 5
DAY_MS = 86_400_000
MONTH_MS = 31 * DAY_MS  # Constants.MILLIS_PER_MONTH: the least global lifetime Zimbra accepts
BATCH = 1000  # zimbraMailPurgeBatchSize's global default
NON_SEARCHABLE = frozenset({TYPE_FOLDER, TYPE_SEARCH, TYPE_MOUNTPOINT, TYPE_TAG,
                            TYPE_CONVERSATION})

# Attribute -> (Lifetimes field, default COS value), as zimbra-attrs.xml declares them.
DURATIONS: dict[str, tuple[str, str]] = {
    "zimbraMailMessageLifetime": ("message", "0"),
    "zimbraMailTrashLifetime": ("trash", "30d"),
    "zimbraMailSpamLifetime": ("spam", "30d"),
    "zimbraPrefTrashLifetime": ("pref_trash", "0"),
    "zimbraPrefJunkLifetime": ("pref_junk", "0"),
    "zimbraPrefInboxReadLifetime": ("inbox_read", "0"),
    "zimbraPrefInboxUnreadLifetime": ("inbox_unread", "0"),
    "zimbraPrefSentLifetime": ("sent", "0"),
}
FLAGS: dict[str, tuple[str, bool]] = {
    "zimbraMailPurgeUseChangeDateForTrash": ("trash_by_change", True),
    "zimbraMailPurgeUseChangeDateForSpam": ("spam_by_change", True),
}
ATTRS = frozenset(DURATIONS) | frozenset(FLAGS)

_DURATION = re.compile(r"([0-9]+)(d|h|ms|m|s)?")
_UNIT_MS = {"d": DAY_MS, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1, "": 1000}


def duration_ms(text: str | None, default: int) -> int:
    """`DateUtil.getTimeInterval(text, default)`: digits and a unit (d, h, m, s, ms; none means
    seconds), else the default."""
    m = _DURATION.fullmatch(text or "")
    if m is None:
        return default
    return int(m.group(1)) * _UNIT_MS[m.group(2) or ""]


@dataclass(frozen=True)
class Lifetimes:
    """An account's purge settings, in milliseconds (0: never)."""

    message: int = 0
    trash: int = 30 * DAY_MS
    spam: int = 30 * DAY_MS
    pref_trash: int = 0
    pref_junk: int = 0
    inbox_read: int = 0
    inbox_unread: int = 0
    sent: int = 0
    trash_by_change: bool = True
    spam_by_change: bool = True

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, str]) -> Lifetimes:
        """From an account's effective attributes (account over COS); a missing or invalid
        value takes the default COS value, as Zimbra's getters do."""
        kw: dict[str, Any] = {}
        for attr, (name, default) in DURATIONS.items():
            kw[name] = duration_ms(attrs.get(attr), duration_ms(default, 0))
        for attr, (name, on) in FLAGS.items():
            v = attrs.get(attr)
            kw[name] = on if v is None else v.upper() == "TRUE"
        return cls(**kw)

    def rules(self) -> list[Rule]:
        """The purge's queries in Zimbra's order (lifetimes of 0 left out)."""
        out = []
        if self.message > 0:
            out.append(Rule(None, max(self.message, MONTH_MS), None, False, False))
        for root, lifetime, by_change, empty in (
                (TRASH, _pick(self.trash, self.pref_trash), self.trash_by_change, True),
                (JUNK, _pick(self.spam, self.pref_junk), self.spam_by_change, False)):
            if lifetime > 0:
                out.append(Rule(root, lifetime, None, by_change, empty))
        for root, lifetime, unread in ((INBOX, self.inbox_read, False),
                                       (INBOX, self.inbox_unread, True),
                                       (SENT, self.sent, None)):
            if lifetime > 0:
                out.append(Rule(root, lifetime, unread, False, False))
        return out


def _pick(system: int, user: int) -> int:
    """Mailbox.pickTimeout: the smaller of two lifetimes, a zero one not counting."""
    if system == 0:
        return user
    if user == 0:
        return system
    return min(system, user)


@dataclass(frozen=True)
class Rule:
    """One `Folder.purgeMessages` call: items below `root` (None: messages anywhere) older than
    `lifetime`, optionally only (un)read, by change date or date, then empty subfolders."""

    root: int | None
    lifetime: int
    unread: bool | None
    by_change: bool
    delete_empty: bool


class RetentionSource(Protocol):
    """Where an account's lifetimes come from (the directory, or a snapshot of it)."""

    def lifetimes(self, account_id: str | None) -> Lifetimes: ...


@dataclass(frozen=True)
class Retention:
    """A snapshot of the directory's lifetimes: picklable, for replay worker processes."""

    default: Lifetimes = Lifetimes()
    accounts: Mapping[str, Lifetimes] = field(default_factory=dict)

    def lifetimes(self, account_id: str | None) -> Lifetimes:
        return self.accounts.get(account_id or "", self.default)


@dataclass(frozen=True)
class Item:
    """The columns of a `mail_item` row the purge reads (dates in seconds)."""

    id: int
    type: int
    folder_id: int
    date: int
    change_date: int
    unread: int | None


def scope(lt: Lifetimes) -> tuple[frozenset[int], bool]:
    """What a purge reads: the system folders whose hierarchies it looks into, and whether it
    needs every message of the mailbox (the global lifetime)."""
    rules = lt.rules()
    return (frozenset(r.root for r in rules if r.root is not None),
            any(r.root is None for r in rules))


def hierarchy(folders: Mapping[int, int], root: int) -> list[int]:
    """`Folder.getSubfolderHierarchy`: the folder, then its subfolders depth-first (by id)."""
    children: dict[int, list[int]] = {}
    for fid, parent in folders.items():
        if fid != parent:
            children.setdefault(parent, []).append(fid)
    out: list[int] = []
    stack = [root] if root in folders else []
    while stack:
        f = stack.pop()
        out.append(f)
        stack.extend(sorted(children.get(f, ()), reverse=True))
    return out


def subtree(folders: Mapping[int, int], root: int) -> set[int]:
    return set(hierarchy(folders, root))


def _ms(seconds: int | None) -> int:
    """A folder's date as `MailItem.getChangeDate()`/`getDate()` give it (NULL reads as 0)."""
    return (seconds or 0) * 1000


def victims(rows: Iterable[Item], lt: Lifetimes, now_ms: int, batch: int = BATCH) -> list[int]:
    """The ids the purge at `now_ms` deletes (items and folders), sorted. `rows` must hold
    every folder of the mailbox and every item of the hierarchies `scope` names (every message
    too if it says so); other rows may be there as well."""
    items = {r.id: r for r in rows}
    folders = {i: r.folder_id for i, r in items.items() if r.type == TYPE_FOLDER}
    gone: set[int] = set()
    for rule in lt.rules():
        before = now_ms - rule.lifetime
        if before <= 0 or before >= now_ms:
            continue
        cutoff = before // 1000
        col = "change_date" if rule.by_change else "date"
        if rule.root is None:
            places: list[int] | None = None
        else:
            places = hierarchy(folders, rule.root)
            if rule.by_change:  # a subfolder changed since (moved to Trash lately) is spared
                places = places[:1] + [f for f in places[1:] if _ms(items[f].change_date)
                                       < before]
        inside = None if places is None else set(places)
        # SQL's `col < ?`: a NULL date is never older.
        found = sorted((v, r.id) for r in items.values()
                       if r.id not in gone and (v := getattr(r, col)) is not None and v < cutoff
                       and (r.type == TYPE_MESSAGE if inside is None else
                            r.type not in NON_SEARCHABLE and r.folder_id in inside)
                       and (rule.unread is None or r.unread == int(rule.unread)))
        gone.update(i for _, i in found[:batch])
        if rule.delete_empty and places:
            for f in reversed(places[1:]):
                if f in gone:
                    continue
                if any(r.folder_id == f and r.type not in NON_SEARCHABLE and r.id not in gone
                       for r in items.values()):
                    continue
                if _ms(getattr(items[f], col)) < before:
                    tree = subtree(folders, f)
                    gone.update(i for i, r in items.items()
                                if i in tree or r.folder_id in tree)
    return sorted(gone)
