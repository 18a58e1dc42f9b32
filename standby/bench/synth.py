"""Synthetic redo logs: loadgen's default mix written straight to a redo log by the redo writer.

For logs too large to produce through a live primary (a million ops), this generator keeps the
store's rules in memory — item ids and change numbers per mailbox, system folders, tags by name,
only existing items touched, StoreIncomingBlob + LINK CreateMessage for shared deliveries — and
writes exactly the records the store would write for the same actions, with MIME bodies from
`MessageFactory` (a pool of distinct messages, drawn at random). Replaying such a log must give a
consistent store; the benchmark checks the fast engine against the naive one on it.

The log spans minutes, not days: its purges (PurgeOldMessages carries no ids) find nothing old
enough under Zimbra's default lifetimes, so the generator's view of each mailbox stays right
for a replay into a store whose directory holds those defaults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from standby.redolog.ops import (
    BODY_INLINE,
    BODY_LINK,
    FLAG_DRAFT,
    FLAG_FROM_ME,
    FLAG_UNREAD,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    AlterItemTag,
    CopyItem,
    CreateContact,
    CreateFolder,
    CreateMailbox,
    CreateMessage,
    CreateTag,
    DeleteConfig,
    DeleteItem,
    EmptyFolder,
    IndexItem,
    ModifyContact,
    MoveItem,
    PurgeOldMessages,
    RenameFolder,
    RenameTag,
    SaveDraft,
    SetConfig,
    SetItemTags,
    ColorItem,
    CreateSavedSearch,
    DateItem,
    ModifySavedSearch,
    RenameItem,
    SetCustomData,
    SetImapUid,
    StoreIncomingBlob,
    contact_fields,
    hashmap_ordered,
)
from standby.errors import UsageError
from standby.redolog import metadata
from standby.redolog.record import MAILBOX_ALL, Op, Record
from standby.redolog.writer import RedoLogWriter, TxnIds, WriterConfig
from standby.store import blobs as blobmod
from standby.store.loadgen import CORE_MIX, DEFAULT_MIX
from standby.store.messages import MessageFactory

TRASH, INBOX, USER_ROOT, CONTACTS, SENT, DRAFTS, EMAILED = 3, 2, 1, 7, 5, 6, 13
# The mixes a synthetic log can follow: loadgen's, or its core alone (the ops the store wrote
# before Zimbra's other mail ops joined the mix; benchmarks compare older code on it).
MIXES: dict[str, dict[str, float]] = {"default": DEFAULT_MIX, "core": CORE_MIX}


@dataclass(eq=False)
class _Box:
    mailbox_id: int
    email: str
    account_id: str
    last_change: int = 1
    last_id: int = 256
    messages: dict[int, int] = field(default_factory=dict)
    folders: dict[int, tuple[int, str]] = field(default_factory=dict)  # user folders
    tags: dict[int, str] = field(default_factory=dict)
    contacts: list[int] = field(default_factory=list)
    searches: list[int] = field(default_factory=list)
    drafts: dict[int, int] = field(default_factory=dict)  # draft -> its body in the pool
    trashed: set[int] = field(default_factory=set)  # user folders moved into Trash
    devices: int = 0


@dataclass
class SynthResult:
    ops: int = 0
    records: int = 0
    bytes: int = 0
    files: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


class Synth:
    def __init__(self, writer: RedoLogWriter, *, accounts: int, seed: int, start_ms: int,
                 step_ms: float = 2.0, pool_size: int = 2000, domain: str = "example.com",
                 mix: dict[str, float] | None = None) -> None:
        self.w = writer
        self.rng = random.Random(f"{seed}:synth")
        self.now = float(start_ms)
        self.step = step_ms
        self.txn = TxnIds(start_s=start_ms // 1000)
        emails = [f"user{i:05d}@{domain}" for i in range(1, accounts + 1)]
        self.factory = MessageFactory(random.Random(f"{seed}:bodies"), emails)
        self.pool = [self.factory.message(sender=self.rng.choice(emails), recipients=[e],
                                          date_ms=start_ms) for e in
                     (self.rng.choice(emails) for _ in range(pool_size))]
        self.digests = [blobmod.digest(m) for m in self.pool]
        self.boxes = [_Box(i + 1, e, "%032x" % self.rng.getrandbits(128))
                      for i, e in enumerate(emails)]
        mix = dict(mix or DEFAULT_MIX)
        mix.pop("search", None)  # a search writes nothing
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.result = SynthResult()

    # -- writing ----------------------------------------------------------------------------
    def _tick(self) -> int:
        self.now += self.rng.expovariate(1.0 / self.step)
        return int(self.now)

    def _log(self, box: _Box | None, op: Op, *, mailbox_id: int | None = None,
             change: int | None = None) -> None:
        t, c = self.txn.next()
        ts = self._tick()
        if box is not None:
            box.last_change += 1
            change = box.last_change
            mailbox_id = box.mailbox_id
        rec = Record(op, ts, t, c, mailbox_id if mailbox_id is not None else MAILBOX_ALL,
                     change if change is not None else -1)
        self.w.log(rec, sync=False)
        self.w.log_commit(rec, tstamp=ts + 1)
        self.result.ops += 1
        self.result.by_op[op.NAME] = self.result.by_op.get(op.NAME, 0) + 1

    def _new_id(self, box: _Box) -> int:
        box.last_id += 1
        return box.last_id

    # -- actions ----------------------------------------------------------------------------
    def create_mailboxes(self) -> None:
        for box in self.boxes:
            t, c = self.txn.next()
            ts = self._tick()
            rec = Record(CreateMailbox(box.account_id), ts, t, c, box.mailbox_id, 1)
            self.w.log(rec, sync=False)
            self.w.log_commit(rec, tstamp=ts + 1)
            self.result.ops += 1

    def step_once(self) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        box = self.rng.choice(self.boxes)
        getattr(self, "_" + kind)(box)

    def _deliver(self, box: _Box) -> None:
        i = self.rng.randrange(len(self.pool))
        raw, dig = self.pool[i], self.digests[i]
        folder = INBOX if self.rng.random() < 0.8 or not box.folders else \
            self.rng.choice(list(box.folders))
        mid = self._new_id(box)
        self._log(box, CreateMessage(box.email, int(self.now), False, dig, len(raw), mid, folder,
                                     flags=FLAG_UNREAD, body_type=BODY_INLINE, data=raw))
        box.messages[mid] = folder

    def _deliver_shared(self, box: _Box) -> None:
        others = self.rng.sample(self.boxes, min(len(self.boxes), self.rng.randint(2, 5)))
        rcpts = list(dict.fromkeys([box, *others]))
        if len(rcpts) < 2:
            return self._deliver(box)
        i = self.rng.randrange(len(self.pool))
        raw, dig = self.pool[i], self.digests[i]
        path = f"/opt/zimbra/store/incoming/synth-{self.result.ops}.msg"
        self._log(None, StoreIncomingBlob(tuple(b.mailbox_id for b in rcpts), dig, path,
                                          len(raw), raw), mailbox_id=MAILBOX_ALL)
        rcv = int(self.now)
        for b in rcpts:
            mid = self._new_id(b)
            self._log(b, CreateMessage(b.email, rcv, True, dig, len(raw), mid, INBOX,
                                       flags=FLAG_UNREAD, path=path, body_type=BODY_LINK))
            b.messages[mid] = INBOX

    def _pick(self, box: _Box, n: int) -> list[int] | None:
        if not box.messages:
            return None
        ids = list(box.messages)
        return sorted(self.rng.sample(ids, min(n, len(ids))))

    def _read(self, box: _Box) -> None:
        ids = self._pick(box, 1)
        if ids:
            self._log(box, AlterItemTag(TYPE_MESSAGE, "\\Unread", False, tuple(ids)))

    def _flag(self, box: _Box) -> None:
        ids = self._pick(box, self.rng.randint(1, 3))
        if ids:
            self._log(box, AlterItemTag(TYPE_MESSAGE, "\\Flagged", self.rng.random() < 0.7,
                                        tuple(ids)))

    def _tag(self, box: _Box) -> None:
        if not box.tags:
            return self._create_tag(box)
        ids = self._pick(box, self.rng.randint(1, 4))
        if ids:
            self._log(box, AlterItemTag(TYPE_MESSAGE, self.rng.choice(list(box.tags.values())),
                                        self.rng.random() < 0.75, tuple(ids)))

    def _set_tags(self, box: _Box) -> None:
        ids = self._pick(box, self.rng.randint(1, 3))
        if ids:
            names = self.rng.sample(list(box.tags.values()),
                                    min(len(box.tags), self.rng.randint(0, 2)))
            self._log(box, SetItemTags(TYPE_MESSAGE, self.rng.choice([0, 0x20, 0x200, 0x4]),
                                       tuple(names), tuple(ids)))
            for i in ids:  # the new flags have no \Draft: no longer a draft
                box.drafts.pop(i, None)

    def _move(self, box: _Box) -> None:
        if not box.folders:
            return self._create_folder(box)
        ids = self._pick(box, self.rng.randint(1, 5))
        if ids:
            dest = self.rng.choice(list(box.folders) + [INBOX])
            self._log(box, MoveItem(TYPE_MESSAGE, dest, tuple(ids)))
            for i in ids:
                box.messages[i] = dest

    def _trash(self, box: _Box) -> None:
        ids = self._pick(box, self.rng.randint(1, 3))
        if ids:
            self._log(box, MoveItem(TYPE_MESSAGE, TRASH, tuple(ids)))
            for i in ids:
                box.messages[i] = TRASH

    def _delete(self, box: _Box) -> None:
        ids = self._pick(box, self.rng.randint(1, 3))
        if ids:
            self._log(box, DeleteItem(TYPE_MESSAGE, tuple(ids)))
            for i in ids:
                box.messages.pop(i, None)
                box.drafts.pop(i, None)

    def _empty_trash(self, box: _Box) -> None:
        self._log(box, EmptyFolder(TRASH, True))
        gone = {TRASH} | box.trashed
        for i, f in list(box.messages.items()):
            if f in gone:
                del box.messages[i]
                box.drafts.pop(i, None)
        box.trashed.clear()

    def _create_folder(self, box: _Box) -> None:
        name = (self.factory.words(self.rng.randint(1, 2)).title()[:50] or "Folder") + \
            f" {box.last_id + 1}"
        fid = self._new_id(box)
        self._log(box, CreateFolder(name, USER_ROOT, 0, TYPE_MESSAGE, 0, 0, "", fid,
                                    f"{box.mailbox_id:08x}-0000-4000-8000-{fid:012x}",
                                    int(self.now)))
        box.folders[fid] = (USER_ROOT, name)

    def _rename_folder(self, box: _Box) -> None:
        if not box.folders:
            return self._create_folder(box)
        fid = self.rng.choice(list(box.folders))
        name = (self.factory.words(self.rng.randint(1, 3)).title()[:50] or "Renamed") + \
            f" {box.last_change + 1}"
        self._log(box, RenameFolder(fid, USER_ROOT, name))
        box.folders[fid] = (USER_ROOT, name)

    def _delete_folder(self, box: _Box) -> None:
        if not box.folders:
            return self._create_folder(box)
        fid = self.rng.choice(list(box.folders))
        self._log(box, DeleteItem(TYPE_FOLDER, (fid,)))
        del box.folders[fid]
        for i, f in list(box.messages.items()):
            if f == fid:
                del box.messages[i]
                box.drafts.pop(i, None)

    def _create_tag(self, box: _Box) -> None:
        name = (self.factory.words(1) or "tag")[:30] + f"{box.last_id + 1}"
        tid = self._new_id(box)
        self._log(box, CreateTag(tid, name, self.rng.randint(0, 9)))
        box.tags[tid] = name

    def _rename_tag(self, box: _Box) -> None:
        if not box.tags:
            return self._create_tag(box)
        tid = self.rng.choice(list(box.tags))
        name = (self.factory.words(1) or "tag")[:30] + f"r{box.last_change + 1}"
        self._log(box, RenameTag(tid, name))
        box.tags[tid] = name

    def _create_contact(self, box: _Box) -> None:
        attrs, vcard = self.factory.contact_vcard()
        cid = self._new_id(box)
        self._log(box, CreateContact(cid, CONTACTS, contact_fields(list(attrs.items())), None,
                                     vcard if self.rng.random() < 0.3 else b""))
        box.contacts.append(cid)

    def _modify_contact(self, box: _Box) -> None:
        if not box.contacts:
            return self._create_contact(box)
        attrs, vcard = self.factory.contact_vcard()
        self._log(box, ModifyContact(self.rng.choice(box.contacts),
                                     contact_fields(list(attrs.items())),
                                     vcard if self.rng.random() < 0.3 else b""))

    def _color(self, box: _Box) -> None:
        color = self.rng.choice([self.rng.randint(0, 9), 0x1000000 | self.rng.getrandbits(24)])
        if box.folders and self.rng.random() < 0.5:
            self._log(box, ColorItem(TYPE_FOLDER, color, (self.rng.choice(list(box.folders)),)))
        elif box.tags and self.rng.random() < 0.5:
            self._log(box, ColorItem(3, self.rng.randint(0, 9), (self.rng.choice(list(box.tags)),)))
        else:
            ids = self._pick(box, self.rng.randint(1, 3))
            if ids:
                self._log(box, ColorItem(TYPE_MESSAGE, color, tuple(ids)))

    def _set_custom_data(self, box: _Box) -> None:
        ids = self._pick(box, 1)
        if ids:
            data = {} if self.rng.random() < 0.2 else {"seen": str(self.rng.randrange(10**6))}
            self._log(box, SetCustomData(ids[0], TYPE_MESSAGE, self.rng.choice(["zimlet", "sync"]),
                                         metadata.to_string(data) if data else ""))

    def _set_date(self, box: _Box) -> None:
        ids = self._pick(box, 1)
        if ids:
            self._log(box, DateItem(ids[0], TYPE_MESSAGE,
                                    int(self.now) - self.rng.randint(0, 86_400_000 * 30)))

    def _reset_imap_uids(self, box: _Box) -> None:
        ids = self._pick(box, self.rng.randint(1, 4))
        if ids:
            self._log(box, SetImapUid(hashmap_ordered([(i, self._new_id(box)) for i in ids])))

    def _create_saved_search(self, box: _Box) -> None:
        sid = self._new_id(box)
        self._log(box, CreateSavedSearch(sid, f"{box.mailbox_id:08x}-0000-4000-9000-{sid:012x}",
                                         f"Search {sid}", self.rng.choice(
                                             ["is:unread", "is:flagged", "in:inbox"]),
                                         "message", "dateDesc", USER_ROOT, 0, 0))
        box.searches.append(sid)

    def _modify_saved_search(self, box: _Box) -> None:
        if not box.searches:
            return self._create_saved_search(box)
        self._log(box, ModifySavedSearch(self.rng.choice(box.searches), "is:unread in:inbox",
                                         "message", self.rng.choice(["dateDesc", "dateAsc"])))

    def _rename_saved_search(self, box: _Box) -> None:
        if not box.searches:
            return self._create_saved_search(box)
        sid = self.rng.choice(box.searches)
        self._log(box, RenameItem(sid, USER_ROOT, f"Search {sid} r{box.last_change + 1}", 2))

    def _copy(self, box: _Box) -> None:
        if box.contacts and self.rng.random() < 0.15:
            typ, ids = TYPE_CONTACT, [self.rng.choice(box.contacts)]
            dest = self.rng.choice([CONTACTS, EMAILED])
        else:
            picked = self._pick(box, self.rng.randint(1, 3))
            if not picked:
                return
            typ, ids, dest = TYPE_MESSAGE, picked, self.rng.choice(
                list(box.folders) + [INBOX, SENT])
        pairs = [(i, self._new_id(box)) for i in ids]
        self._log(box, CopyItem(typ, dest, tuple(
            (s, c, f"{box.mailbox_id:08x}-0000-4000-a000-{c:012x}")
            for s, c in hashmap_ordered(pairs))))
        for src, copy in pairs:
            if typ == TYPE_CONTACT:
                box.contacts.append(copy)
            else:
                box.messages[copy] = dest
                if src in box.drafts:  # a draft's copy is a draft too
                    box.drafts[copy] = box.drafts[src]

    def _body(self) -> int:
        return self.rng.randrange(len(self.pool))

    def _create_draft(self, box: _Box) -> None:
        i, did = self._body(), self._new_id(box)
        raw = self.pool[i]
        self._log(box, CreateMessage(":API:", int(self.now), False, self.digests[i], len(raw),
                                     did, DRAFTS, flags=FLAG_DRAFT | FLAG_FROM_ME, no_ical=True,
                                     body_type=BODY_INLINE, data=raw))
        box.messages[did] = DRAFTS
        box.drafts[did] = i

    def _save_draft(self, box: _Box) -> None:
        if not box.drafts:
            return self._create_draft(box)
        did, i = self.rng.choice(list(box.drafts)), self._body()
        raw = self.pool[i]
        self._log(box, SaveDraft(self._new_id(box), ":API:", int(self.now), False,
                                 self.digests[i], len(raw), did, -1, no_ical=True,
                                 body_type=BODY_INLINE, data=raw))
        box.drafts[did] = i

    def _send_draft(self, box: _Box) -> None:
        if not box.drafts:
            return self._create_draft(box)
        did = self.rng.choice(list(box.drafts))
        i, sent = box.drafts.pop(did), self._new_id(box)
        raw = self.pool[i]
        self._log(box, CreateMessage(box.email, int(self.now), False, self.digests[i],
                                     len(raw), sent, SENT, flags=FLAG_FROM_ME,
                                     body_type=BODY_INLINE, data=raw))
        self._log(box, DeleteItem(TYPE_MESSAGE, (did,)))
        box.messages.pop(did, None)
        box.messages[sent] = SENT

    def _trash_folder(self, box: _Box) -> None:
        if not box.folders:
            return self._create_folder(box)
        fid = self.rng.choice(list(box.folders))
        self._log(box, RenameFolder(fid, TRASH, f"Old {fid} {box.last_change + 1}"))
        del box.folders[fid]
        box.trashed.add(fid)

    def _set_config(self, box: _Box) -> None:
        section = self.rng.choice(["imap", "zimlets", "mobile"])
        if self.rng.random() < 0.3:
            if not box.devices or self.rng.random() < 0.5:
                box.devices += 1  # a new ActiveSync device
            section = f"dev{self.rng.randint(1, box.devices)}:" + self.rng.choice(
                ["Email", "Calendar", "Contacts"])
        config = "" if self.rng.random() < 0.1 else metadata.to_string(
            {"sync": str(self.rng.randrange(10**9)), "n": self.rng.randint(0, 99)})
        self._log(box, SetConfig(section, config))

    def _delete_config(self, box: _Box) -> None:
        if not box.devices:
            return self._set_config(box)
        self._log(box, DeleteConfig(f"dev{self.rng.randint(1, box.devices)}%"))

    def _purge(self, box: _Box) -> None:
        self._log(box, PurgeOldMessages())

    def _index_item(self, box: _Box) -> None:
        ids = self._pick(box, 1)
        if ids:
            self._log(box, IndexItem(ids[0], TYPE_MESSAGE))


def write_log(redolog_dir: Path, *, ops: int, accounts: int = 200, seed: int = 1,
              start_ms: int = 1_700_000_000_000, server_id: str = "synthetic",
              rollover_mb: int = 100, mix: str = "default",
              progress: Callable[[int], None] | None = None) -> SynthResult:
    """Write about `ops` committed ops (plus the accounts' CreateMailbox) into `redolog_dir`,
    following the mix `MIXES[mix]`."""
    if mix not in MIXES:
        raise UsageError(f"no synthetic mix {mix!r}", hint="one of " + ", ".join(MIXES))
    redolog_dir.mkdir(parents=True, exist_ok=True)
    clock_holder: list[Synth] = []

    def clock() -> int:
        return int(clock_holder[0].now) if clock_holder else start_ms

    w = RedoLogWriter(redolog_dir, server_id=server_id, clock=clock,
                      config=WriterConfig(fsync_interval_ms=0, rollover_size=rollover_mb << 20,
                                          rollover_min_age_ms=0,
                                          rollover_hard_max=rollover_mb << 21),
                      fsync=lambda fd: None)
    w.open()
    s = Synth(w, accounts=accounts, seed=seed, start_ms=start_ms, mix=MIXES[mix])
    clock_holder.append(s)
    s.create_mailboxes()
    while s.result.ops < ops:
        s.step_once()
        if progress and s.result.ops % 10000 == 0:
            progress(s.result.ops)
    w.close()
    s.result.files = w.rollovers + 1
    s.result.bytes = sum(p.stat().st_size for p in redolog_dir.rglob("*.log"))
    return s.result
