"""Realistic traffic for the store (`standby store loadgen`), deterministic for a seed.

Workers drive the store service over its socket. Accounts are split among workers by index and
each worker draws from its own `random.Random(f"{seed}:{worker}")`, so each worker issues the
same request stream for a seed; with one worker the whole run is reproducible (with several, the
streams are the same but their interleaving is not).

The mix (weights in `DEFAULT_MIX`) is a mail server's day. `CORE_MIX`: deliveries with real
MIME messages of realistic sizes (some with attachments), shared deliveries to several
mailboxes, reads (fetch and mark read), flags, tags, moves, deletes, moves to Trash and emptying
it, folder create and rename, tag create and rename, contacts, re-indexing and searches.
`ZIMBRA_MAIL_MIX`, Zimbra's other mail calls: copies, drafts (created, saved again and again as a
client autosaves them, sent: a copy in Sent and the draft deleted), colors, dates, imap uids,
saved searches, custom data, folders moved to Trash; and, rarely, config sections (a client's or
an ActiveSync device's) and the purge of old messages, about once per mailbox per day's worth of
actions.

Time runs fast here: a run of a few hundred actions stands for a day, so each account gets
message lifetimes (`zmprov ma`, drawn for the seed from `LIFETIMES`) of days or of seconds, and
the purges of a short run find something to delete. A replay purges as the primary did only if
its directory holds the same lifetimes (as a standby's LDAP does).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.errors import NotFound, StandbyError, StateConflict, UsageError
from standby.store.client import StoreClient
from standby.store.messages import MessageFactory

CORE_MIX: dict[str, float] = {
    "deliver": 24, "deliver_shared": 4, "read": 18, "flag": 9, "tag": 6, "set_tags": 2,
    "move": 9, "trash": 5, "delete": 5, "empty_trash": 0.6, "create_folder": 1.5,
    "rename_folder": 0.8, "delete_folder": 0.3, "create_tag": 1, "rename_tag": 0.4,
    "create_contact": 4, "modify_contact": 3, "index_item": 1, "search": 3,
}
# Zimbra's other mail ops, as rare as they are on a mail server's day.
ZIMBRA_MAIL_MIX: dict[str, float] = {
    "color": 0.4, "set_date": 0.1, "reset_imap_uids": 0.3, "create_saved_search": 0.15,
    "modify_saved_search": 0.1, "rename_saved_search": 0.05, "set_custom_data": 0.1,
    "copy": 3, "create_draft": 1.2, "save_draft": 3, "send_draft": 0.8, "trash_folder": 0.2,
    "set_config": 0.15, "delete_config": 0.04, "purge": 0.4,
}
DEFAULT_MIX: dict[str, float] = {**CORE_MIX, **ZIMBRA_MAIL_MIX}
TRASH, INBOX, JUNK, SENT, DRAFTS, CONTACTS, EMAILED = 3, 2, 4, 5, 6, 7, 13
# Each account's lifetimes: one of these per attribute, drawn for the seed (None: the COS's).
LIFETIMES: dict[str, list[str | None]] = {
    "zimbraMailTrashLifetime": [None, "7d", "5s", "2s"],
    "zimbraMailSpamLifetime": [None, "3s"],
    "zimbraPrefInboxReadLifetime": [None, None, None, "20s"],
    "zimbraPrefSentLifetime": [None, None, "10s"],
}


@dataclass
class _Mailbox:
    mailbox_id: int
    email: str
    messages: dict[int, int] = field(default_factory=dict)  # id -> folder
    folders: list[int] = field(default_factory=lambda: [INBOX])
    tags: dict[int, str] = field(default_factory=dict)
    contacts: list[int] = field(default_factory=list)
    searches: list[int] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)
    devices: int = 0  # ActiveSync devices that have config sections

    def forget(self, ids: list[int]) -> None:
        """Items that are gone (deleted, purged)."""
        gone = set(ids)
        for i in gone:
            self.messages.pop(i, None)
        self.drafts = [d for d in self.drafts if d not in gone]
        self.contacts = [c for c in self.contacts if c not in gone]
        self.folders = [f for f in self.folders if f not in gone]


@dataclass
class LoadResult:
    actions: int = 0
    errors: int = 0
    seconds: float = 0.0
    by_type: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    bytes_delivered: int = 0
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        return {
            "actions": self.actions, "errors": self.errors, "seconds": round(self.seconds, 3),
            "actions_per_s": round(self.actions / self.seconds, 1) if self.seconds else None,
            "mb_delivered": round(self.bytes_delivered / 1e6, 2),
            "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99),
            "by_type": dict(sorted(self.by_type.items())),
            "error_samples": self.error_samples[:5],
        }


def account_emails(n: int, domain: str) -> list[str]:
    return [f"user{i:05d}@{domain}" for i in range(1, n + 1)]


def ensure_accounts(client: StoreClient, emails: list[str], seed: int) -> list[_Mailbox]:
    rng = random.Random(f"{seed}:accounts")
    out = []
    for email in emails:
        acct_id = "%08x-%04x-4%03x-a%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                   rng.getrandbits(12), rng.getrandbits(12),
                                                   rng.getrandbits(48))
        lifetimes = {a: v for a, choices in LIFETIMES.items()
                     if (v := rng.choice(choices)) is not None}
        try:
            mid = client.call("mailbox_id", account=email)
        except NotFound:
            mid = client.call("create_account", email=email, account_id=acct_id)["mailbox_id"]
            if lifetimes:
                client.call("set_account_attrs", account=email, attrs=lifetimes)
        out.append(_Mailbox(int(mid), email))
    return out


class _Worker:
    def __init__(self, wid: int, seed: int, boxes: list[_Mailbox], everyone: list[str],
                 client: StoreClient, mix: dict[str, float], result: LoadResult,
                 lock: threading.Lock) -> None:
        self.rng = random.Random(f"{seed}:{wid}")
        self.factory = MessageFactory(self.rng, everyone)
        self.boxes = boxes
        self.everyone = everyone
        self.c = client
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.result = result
        self.lock = lock

    def step(self) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        box = self.rng.choice(self.boxes)
        t0 = time.perf_counter()
        try:
            done = getattr(self, "_" + kind)(box)
        except (NotFound, StateConflict, UsageError) as e:
            # Benign races with other workers' shared deliveries or stale local knowledge.
            done = kind + ":skipped"
            if isinstance(e, UsageError):
                with self.lock:
                    self.result.errors += 1
                    self.result.error_samples.append(f"{kind}: {e}")
        except StandbyError as e:
            with self.lock:
                self.result.errors += 1
                self.result.error_samples.append(f"{kind}: {e}")
            return
        ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            self.result.actions += 1
            self.result.by_type[done or kind] += 1
            self.result.latencies_ms.append(ms)

    # -- actions (each returns the name to count it under, or None for its own) --------------
    def _deliver(self, box: _Mailbox, shared: bool = False) -> str | None:
        sender = self.rng.choice(self.everyone)
        rcpts = [box.email]
        if shared:
            others = [b for b in self.boxes if b is not box]
            rcpts += [b.email for b in self.rng.sample(others, min(len(others),
                                                                   self.rng.randint(1, 4)))]
        raw = self.factory.message(sender=sender, recipients=rcpts,
                                   date_ms=int(time.time() * 1000))
        folder = INBOX if self.rng.random() < 0.8 or len(box.folders) == 1 else \
            self.rng.choice(box.folders)
        res = self.c.deliver(raw, rcpts, folder_id=folder)
        with self.lock:
            self.result.bytes_delivered += len(raw)
        by_mbox = {b.mailbox_id: b for b in self.boxes}
        for r in res:
            b = by_mbox.get(r["mailbox_id"])
            if b is not None:
                b.messages[r["id"]] = folder
        return None

    def _deliver_shared(self, box: _Mailbox) -> str | None:
        if len(self.boxes) < 2:
            return self._deliver(box)
        self._deliver(box, shared=True)
        return "deliver_shared"

    def _pick(self, box: _Mailbox, n: int = 1) -> list[int]:
        if not box.messages:
            raise NotFound("no messages yet")
        ids = list(box.messages)
        return sorted(self.rng.sample(ids, min(n, len(ids))))

    def _read(self, box: _Mailbox) -> str | None:
        (mid,) = self._pick(box)
        self.c.read_message(box.mailbox_id, mid)
        self.c.call("alter_tag", mailbox_id=box.mailbox_id, ids=[mid], tag="\\Unread",
                    tagged=False)
        return None

    def _flag(self, box: _Mailbox) -> str | None:
        ids = self._pick(box, self.rng.randint(1, 3))
        self.c.call("alter_tag", mailbox_id=box.mailbox_id, ids=ids, tag="\\Flagged",
                    tagged=self.rng.random() < 0.7)
        return None

    def _tag(self, box: _Mailbox) -> str | None:
        if not box.tags:
            return self._create_tag(box)
        ids = self._pick(box, self.rng.randint(1, 4))
        name = self.rng.choice(list(box.tags.values()))
        self.c.call("alter_tag", mailbox_id=box.mailbox_id, ids=ids, tag=name,
                    tagged=self.rng.random() < 0.75)
        return None

    def _set_tags(self, box: _Mailbox) -> str | None:
        ids = self._pick(box, self.rng.randint(1, 3))
        names = self.rng.sample(list(box.tags.values()), min(len(box.tags),
                                                             self.rng.randint(0, 2)))
        flags = self.rng.choice([0, 0x20, 0x200, 0x4])
        self.c.call("set_tags", mailbox_id=box.mailbox_id, ids=ids, flags=flags, tags=names)
        return None

    def _move(self, box: _Mailbox) -> str | None:
        if len(box.folders) < 2:
            return self._create_folder(box)
        ids = self._pick(box, self.rng.randint(1, 5))
        dest = self.rng.choice(box.folders)
        moved = self.c.call("move", mailbox_id=box.mailbox_id, ids=ids, dest_id=dest)
        for i in moved:
            box.messages[i] = dest
        return None

    def _trash(self, box: _Mailbox) -> str | None:
        ids = self._pick(box, self.rng.randint(1, 3))
        moved = self.c.call("move", mailbox_id=box.mailbox_id, ids=ids, dest_id=TRASH)
        for i in moved:
            box.messages[i] = TRASH
        return None

    def _delete(self, box: _Mailbox) -> str | None:
        ids = self._pick(box, self.rng.randint(1, 3))
        self.c.call("delete", mailbox_id=box.mailbox_id, ids=ids)
        box.forget(ids)
        return None

    def _empty_trash(self, box: _Mailbox) -> str | None:
        self.c.call("empty_folder", mailbox_id=box.mailbox_id, folder_id=TRASH, subfolders=True)
        for i, f in list(box.messages.items()):
            if f == TRASH:
                del box.messages[i]
        return None

    def _create_folder(self, box: _Mailbox) -> str | None:
        name = self.factory.words(self.rng.randint(1, 2)).title()[:60] or "Folder"
        fid = self.c.call("create_folder", mailbox_id=box.mailbox_id, name=name, parent_id=1)
        box.folders.append(fid)
        return "create_folder"

    def _rename_folder(self, box: _Mailbox) -> str | None:
        user = [f for f in box.folders if f > 256]
        if not user:
            return self._create_folder(box)
        fid = self.rng.choice(user)
        name = self.factory.words(self.rng.randint(1, 3)).title()[:60] or "Renamed"
        self.c.call("rename_folder", mailbox_id=box.mailbox_id, folder_id=fid, name=name)
        return None

    def _delete_folder(self, box: _Mailbox) -> str | None:
        user = [f for f in box.folders if f > 256]
        if not user:
            return self._create_folder(box)
        fid = self.rng.choice(user)
        self.c.call("delete", mailbox_id=box.mailbox_id, ids=[fid])
        box.folders.remove(fid)
        for i, f in list(box.messages.items()):
            if f == fid:
                del box.messages[i]
        return None

    def _create_tag(self, box: _Mailbox) -> str | None:
        name = (self.factory.words(1) or "tag")[:40]
        tid = self.c.call("create_tag", mailbox_id=box.mailbox_id, name=name,
                          color=self.rng.randint(0, 9))
        box.tags[tid] = name
        return "create_tag"

    def _rename_tag(self, box: _Mailbox) -> str | None:
        if not box.tags:
            return self._create_tag(box)
        tid = self.rng.choice(list(box.tags))
        name = (self.factory.words(1) or "tag")[:30] + str(self.rng.randint(1, 999))
        self.c.call("rename_tag", mailbox_id=box.mailbox_id, tag_id=tid, name=name)
        box.tags[tid] = name
        return None

    def _create_contact(self, box: _Mailbox) -> str | None:
        attrs, vcard = self.factory.contact_vcard()
        data = vcard if self.rng.random() < 0.3 else b""
        cid = self.c.call("create_contact", mailbox_id=box.mailbox_id, attrs=attrs,
                          data=base64.b64encode(data).decode("ascii"))
        box.contacts.append(cid)
        return None

    def _modify_contact(self, box: _Mailbox) -> str | None:
        if not box.contacts:
            return self._create_contact(box)
        cid = self.rng.choice(box.contacts)
        attrs, vcard = self.factory.contact_vcard()
        self.c.call("modify_contact", mailbox_id=box.mailbox_id, contact_id=cid, attrs=attrs,
                    data=base64.b64encode(vcard if self.rng.random() < 0.3 else b"")
                    .decode("ascii"))
        return None

    def _index_item(self, box: _Mailbox) -> str | None:
        (mid,) = self._pick(box)
        self.c.call("index_item", mailbox_id=box.mailbox_id, item_id=mid)
        return None

    def _color(self, box: _Mailbox) -> str | None:
        if self.rng.random() < 0.5 and len(box.folders) > 1:
            ids = [self.rng.choice([f for f in box.folders if f > 256] or box.folders)]
        elif box.tags and self.rng.random() < 0.5:
            self.c.call("set_color", mailbox_id=box.mailbox_id, ids=[self.rng.choice(
                list(box.tags))], color=self.rng.randint(0, 9), tags=True)
            return None
        else:
            ids = self._pick(box, self.rng.randint(1, 3))
        self.c.call("set_color", mailbox_id=box.mailbox_id, ids=ids,
                    color=self.rng.choice([self.rng.randint(0, 9),
                                           0x1000000 | self.rng.getrandbits(24)]))
        return None

    def _set_custom_data(self, box: _Mailbox) -> str | None:
        (mid,) = self._pick(box)
        data = {} if self.rng.random() < 0.2 else {"seen": str(self.rng.randrange(10**6))}
        self.c.call("set_custom_data", mailbox_id=box.mailbox_id, item_id=mid,
                    section=self.rng.choice(["zimlet", "sync"]), data=data)
        return None

    def _set_date(self, box: _Mailbox) -> str | None:
        (mid,) = self._pick(box)
        self.c.call("set_date", mailbox_id=box.mailbox_id, item_id=mid,
                    date_ms=int(time.time() * 1000) - self.rng.randint(0, 86_400_000 * 30))
        return None

    def _reset_imap_uids(self, box: _Mailbox) -> str | None:
        ids = self._pick(box, self.rng.randint(1, 4))
        self.c.call("reset_imap_uids", mailbox_id=box.mailbox_id, ids=ids)
        return None

    def _create_saved_search(self, box: _Mailbox) -> str | None:
        query = self.rng.choice(["is:unread", "is:flagged", "has:attachment", "in:inbox",
                                 f"from:{self.rng.choice(self.everyone)}"])
        sid = self.c.call("create_saved_search", mailbox_id=box.mailbox_id,
                          name=f"{query.split(':')[0].title()} {self.rng.randrange(10**6)}",
                          query=query)
        box.searches.append(int(sid))
        return None

    def _modify_saved_search(self, box: _Mailbox) -> str | None:
        if not box.searches:
            return self._create_saved_search(box)
        self.c.call("modify_saved_search", mailbox_id=box.mailbox_id,
                    search_id=self.rng.choice(box.searches),
                    query=self.rng.choice(["is:unread in:inbox", "is:flagged has:attachment"]),
                    sort=self.rng.choice(["dateDesc", "dateAsc", "subjAsc"]))
        return None

    def _rename_saved_search(self, box: _Mailbox) -> str | None:
        if not box.searches:
            return self._create_saved_search(box)
        self.c.call("rename_item", mailbox_id=box.mailbox_id,
                    item_id=self.rng.choice(box.searches),
                    name=f"Search {self.rng.randrange(10**6)}")
        return None

    def _copy(self, box: _Mailbox) -> str | None:
        if box.contacts and self.rng.random() < 0.15:
            ids, dest = [self.rng.choice(box.contacts)], self.rng.choice([CONTACTS, EMAILED])
        else:
            ids = self._pick(box, self.rng.randint(1, 3))
            dest = self.rng.choice(box.folders + [INBOX, SENT])
        copies = self.c.call("copy", mailbox_id=box.mailbox_id, ids=ids, dest_id=dest)
        for src, copy in copies.items():
            if int(src) in box.messages:
                box.messages[int(copy)] = dest
            else:
                box.contacts.append(int(copy))
        return None

    def _draft_body(self, box: _Mailbox) -> bytes:
        return self.factory.message(sender=box.email, recipients=[self.rng.choice(self.everyone)],
                                    date_ms=int(time.time() * 1000))

    def _create_draft(self, box: _Mailbox) -> str | None:
        did = self.c.call("create_draft", mailbox_id=box.mailbox_id,
                          message=base64.b64encode(self._draft_body(box)).decode("ascii"))
        box.drafts.append(did)
        box.messages[did] = DRAFTS
        return "create_draft"

    def _save_draft(self, box: _Mailbox) -> str | None:
        if not box.drafts:
            return self._create_draft(box)
        did = self.rng.choice(box.drafts)
        try:
            self.c.call("save_draft", mailbox_id=box.mailbox_id, draft_id=did,
                        message=base64.b64encode(self._draft_body(box)).decode("ascii"))
        except NotFound:
            box.forget([did])
            raise
        except UsageError:  # its \Draft flag was set off (set_tags): no longer a draft
            box.drafts.remove(did)
            return "save_draft:skipped"
        return None

    def _send_draft(self, box: _Mailbox) -> str | None:
        """The draft goes out: its last body kept in Sent, the draft deleted."""
        if not box.drafts:
            return self._create_draft(box)
        did = self.rng.choice(box.drafts)
        raw = self.c.read_message(box.mailbox_id, did)
        (sent,) = self.c.deliver(raw, [box.email], folder_id=SENT, flags=0x1)  # \Sent
        self.c.call("delete", mailbox_id=box.mailbox_id, ids=[did])
        box.forget([did])
        box.messages[sent["id"]] = SENT
        return None

    def _trash_folder(self, box: _Mailbox) -> str | None:
        user = [f for f in box.folders if f > 256]
        if not user:
            return self._create_folder(box)
        fid = self.rng.choice(user)
        name = (self.factory.words(2).title()[:50] or "Old") + f" {self.rng.randrange(10**6)}"
        self.c.call("rename_folder", mailbox_id=box.mailbox_id, folder_id=fid, name=name,
                    parent_id=TRASH)
        box.folders.remove(fid)
        return None

    def _set_config(self, box: _Mailbox) -> str | None:
        if self.rng.random() < 0.6 or not box.devices:
            section = self.rng.choice(["imap", "zimlets", "mobile"])
        else:
            section = f"dev{self.rng.randint(1, box.devices)}:" + self.rng.choice(
                ["Email", "Calendar", "Contacts"])
        if self.rng.random() < 0.2:
            box.devices += 1
            section = f"dev{box.devices}:Email"
        config = None if self.rng.random() < 0.1 else {
            "sync": str(self.rng.randrange(10**9)), "n": self.rng.randint(0, 99)}
        self.c.call("set_config", mailbox_id=box.mailbox_id, section=section, config=config)
        return None

    def _delete_config(self, box: _Mailbox) -> str | None:
        if not box.devices:
            return self._set_config(box)
        self.c.call("delete_config", mailbox_id=box.mailbox_id,
                    section_part=f"dev{self.rng.randint(1, box.devices)}%")
        return None

    def _purge(self, box: _Mailbox) -> str | None:
        box.forget(self.c.call("purge", mailbox_id=box.mailbox_id))
        return None

    def _search(self, box: _Mailbox) -> str | None:
        self.c.call("search", mailbox_id=box.mailbox_id, query=self.factory.words(1) or "the")
        return None


def run(socket: Path, *, accounts: int, ops: int, seed: int, workers: int = 4,
        rate: float | None = None, domain: str = "example.com",
        mix: dict[str, float] | None = None, duration_s: float | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None) -> LoadResult:
    """Drive `ops` actions (or run for `duration_s`) against the store at `socket`."""
    if accounts < 1 or ops < 0 or workers < 1:
        raise UsageError("loadgen needs --accounts >= 1, --ops >= 0 and --workers >= 1")
    mix = dict(mix or DEFAULT_MIX)
    unknown = set(mix) - set(DEFAULT_MIX)
    if unknown:
        raise UsageError(f"unknown load kinds: {', '.join(sorted(unknown))}")
    emails = account_emails(accounts, domain)
    with StoreClient(socket) as c:
        boxes = ensure_accounts(c, emails, seed)
    workers = min(workers, len(boxes))
    result = LoadResult()
    lock = threading.Lock()
    stop = stop or threading.Event()
    counter = iter(range(ops)) if duration_s is None else None
    counter_lock = threading.Lock()
    t_start = time.perf_counter()
    deadline = t_start + duration_s if duration_s is not None else None
    per_worker_interval = workers / rate if rate else 0.0

    def take() -> bool:
        if stop.is_set():
            return False
        if deadline is not None:
            return time.perf_counter() < deadline
        with counter_lock:
            return next(counter, None) is not None  # type: ignore[arg-type]

    def body(wid: int) -> None:
        mine = boxes[wid::workers]
        with StoreClient(socket) as client:
            w = _Worker(wid, seed, mine, emails, client, mix, result, lock)
            next_at = time.perf_counter()
            while take():
                if per_worker_interval:
                    now = time.perf_counter()
                    if now < next_at:
                        time.sleep(next_at - now)
                    next_at = max(next_at + per_worker_interval, now - 1.0)
                w.step()
                if progress and wid == 0:
                    progress(result.actions, ops)

    threads = [threading.Thread(target=body, args=(i,), name=f"loadgen-{i}", daemon=True)
               for i in range(workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join(30)
        raise
    result.seconds = time.perf_counter() - t_start
    return result
