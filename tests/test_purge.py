"""The purge of old messages as a pure function (`store.purge`), and the account lifetimes it reads.

- Durations parse as Zimbra's `DateUtil.getTimeInterval` (digits and d/h/m/s/ms, none meaning
  seconds; anything else the default), Hypothesis over numbers and units.
- Lifetimes come from an account's attributes as Zimbra's getters read them (defaults from
  zimbra-attrs.xml, Mailbox.pickTimeout, the 31-day floor of the global lifetime).
- Each rule of `Mailbox.purgeMessages` on a hand-made mailbox (written out, expected ids by hand).
- Hypothesis over random mailboxes (folder trees under the system folders, items of every
  type, lifetimes, times): the ids are the mailbox's, a purge right after a purge deletes
  nothing, a later purge deletes at least as much, nothing outside the folders a rule reads is
  deleted, and a smaller batch deletes a subset (the hand-made mailbox shows it takes the
  oldest, ties by id).
- The directory holds the lifetimes: account over COS over Zimbra's defaults, a retention
  snapshot for replay workers, `zmprov ma`/`mc`, dump and load, and a directory made before
  accounts had attributes.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from standby.redolog.ops import TYPE_CONTACT, TYPE_FOLDER, TYPE_MESSAGE, TYPE_SEARCH
from standby.store import purge
from standby.store.directory import Directory
from standby.store.purge import DAY_MS, Item, Lifetimes, duration_ms, victims

NOW = 1_700_000_000_000
S = NOW // 1000  # "now" in the seconds the rows hold
UNITS = {"d": DAY_MS, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1, "": 1000}


@given(n=st.integers(0, 10**9), unit=st.sampled_from(sorted(UNITS)))
def test_durations_parse_as_zimbra(n: int, unit: str) -> None:
    assert duration_ms(f"{n}{unit}", -7) == n * UNITS[unit]


def test_bad_durations_take_the_default() -> None:
    for text in ("", None, "5x", "-1d", "1.5d", "d", " 5d", "5d ", "\u0663d", "5 d", "5D"):
        assert duration_ms(text, 123) == 123, text


def test_lifetimes_from_attributes() -> None:
    assert Lifetimes.from_attrs({}) == Lifetimes()
    assert Lifetimes().trash == Lifetimes().spam == 30 * DAY_MS and Lifetimes().message == 0
    lt = Lifetimes.from_attrs({"zimbraMailTrashLifetime": "2h", "zimbraPrefTrashLifetime": "3h",
                               "zimbraMailSpamLifetime": "bogus",
                               "zimbraMailPurgeUseChangeDateForTrash": "false",
                               "zimbraMailMessageLifetime": "1d"})
    assert (lt.trash, lt.pref_trash, lt.spam) == (7_200_000, 10_800_000, 30 * DAY_MS)
    assert not lt.trash_by_change and lt.spam_by_change
    rules = {r.root: r for r in lt.rules()}
    assert rules[None].lifetime == 31 * DAY_MS  # below a month: a month
    assert rules[purge.TRASH].lifetime == 7_200_000  # the smaller of the two
    assert not rules[purge.TRASH].by_change and rules[purge.TRASH].delete_empty
    user_only = Lifetimes(trash=0, pref_trash=60_000).rules()
    assert [(r.root, r.lifetime) for r in user_only][:1] == [(purge.TRASH, 60_000)]
    assert Lifetimes(trash=0, spam=0).rules() == []


def _box(*extra: Item) -> list[Item]:
    """The system folders (as Zimbra creates them, long ago) and `extra`."""
    old = S - 400 * 86_400
    folders = [Item(f, TYPE_FOLDER, p, old, old, None)
               for f, p in ((1, 11), (11, 11), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1))]
    return folders + list(extra)


def test_each_rule_on_a_hand_made_mailbox() -> None:
    day = 86_400
    rows = _box(
        Item(300, TYPE_MESSAGE, 3, S - 90 * day, S - 2 * day, 1),     # Trash, trashed 2 d ago
        Item(301, TYPE_MESSAGE, 3, S - 90 * day, S - 60, 1),          # Trash, trashed just now
        Item(302, TYPE_CONTACT, 3, S - 90 * day, S - 2 * day, None),  # a contact in Trash
        Item(303, TYPE_SEARCH, 3, S - 90 * day, S - 2 * day, None),   # searches stay
        Item(310, TYPE_FOLDER, 3, S - 90 * day, S - 2 * day, None),   # Trash/old, empty
        Item(311, TYPE_FOLDER, 3, S - 90 * day, S - 60, None),        # Trash/recent (spared)
        Item(312, TYPE_MESSAGE, 311, S - 90 * day, S - 2 * day, 1),   # in the spared one: stays
        Item(313, TYPE_FOLDER, 311, S - 90 * day, S - 2 * day, None),  # its old subfolder
        Item(314, TYPE_MESSAGE, 313, S - 90 * day, S - 2 * day, 1),   # ... whose mail goes
        Item(320, TYPE_MESSAGE, 4, S - 90 * day, S - 2 * day, 1),     # Junk, 2 d
        Item(330, TYPE_MESSAGE, 2, S - 5 * day, S - 5 * day, 0),      # Inbox, read, 5 d old
        Item(331, TYPE_MESSAGE, 2, S - 5 * day, S - 5 * day, 1),      # Inbox, unread
        Item(340, TYPE_MESSAGE, 5, S - 50 * day, S - 50 * day, 0),    # Sent, 50 d
        Item(341, TYPE_MESSAGE, 6, S - 20 * day, S - 20 * day, 0),    # Drafts, 20 d
    )
    lt = Lifetimes(trash=DAY_MS, spam=DAY_MS, inbox_read=3 * DAY_MS)
    assert victims(rows, lt, NOW) == [300, 302, 310, 313, 314, 320, 330]
    # The global lifetime: messages anywhere by date (Trash included), not contacts.
    assert victims(rows, Lifetimes(trash=0, spam=0, message=31 * DAY_MS), NOW) == \
        [300, 301, 312, 314, 320, 340]
    # By date instead of change date, the Trash subfolder is not spared, and 301 goes too.
    by_date = Lifetimes(trash=DAY_MS, trash_by_change=False, spam=0)
    assert victims(rows, by_date, NOW) == [300, 301, 302, 310, 311, 312, 313, 314]
    # Unread Inbox mail and Sent have their own lifetimes; none at all deletes nothing.
    assert victims(rows, Lifetimes(trash=0, spam=0, inbox_unread=DAY_MS), NOW) == [331]
    assert victims(rows, Lifetimes(trash=0, spam=0, sent=DAY_MS), NOW) == [340]
    assert victims(rows, Lifetimes(trash=0, spam=0), NOW) == []
    # Each rule takes at most a batch, oldest first (ties by id).
    assert victims(rows, Lifetimes(trash=DAY_MS, spam=0), NOW, batch=1) == [300, 310]


@st.composite
def mailboxes(draw: st.DrawFn) -> list[Item]:
    """System folders, a random tree of user folders under them, items of several types."""
    day = 86_400

    def when() -> int:
        return S - draw(st.integers(0, 60 * day))

    rows = _box()
    folder_ids = [2, 3, 4, 5, 6, 7]
    next_id = 300
    for _ in range(draw(st.integers(0, 8))):
        parent = draw(st.sampled_from(folder_ids))
        rows.append(Item(next_id, TYPE_FOLDER, parent, when(), when(), None))
        folder_ids.append(next_id)
        next_id += 1
    for _ in range(draw(st.integers(0, 40))):
        typ = draw(st.sampled_from([TYPE_MESSAGE, TYPE_MESSAGE, TYPE_CONTACT, TYPE_SEARCH]))
        unread = draw(st.sampled_from([0, 1])) if typ == TYPE_MESSAGE else None
        rows.append(Item(next_id, typ, draw(st.sampled_from(folder_ids)), when(), when(),
                         unread))
        next_id += 1
    return rows


lifetime_values = st.sampled_from([0, 0, 1000, 3_600_000, DAY_MS, 7 * DAY_MS, 31 * DAY_MS])
lifetimes = st.builds(Lifetimes, message=lifetime_values, trash=lifetime_values,
                      spam=lifetime_values, pref_trash=lifetime_values,
                      pref_junk=lifetime_values, inbox_read=lifetime_values,
                      inbox_unread=lifetime_values, sent=lifetime_values,
                      trash_by_change=st.booleans(), spam_by_change=st.booleans())


@settings(max_examples=300)
@given(rows=mailboxes(), lt=lifetimes, later=st.integers(0, 10 * DAY_MS))
def test_purge_invariants(rows: list[Item], lt: Lifetimes, later: int) -> None:
    big = 10**6
    gone = victims(rows, lt, NOW, batch=big)
    ids = {r.id for r in rows}
    assert gone == sorted(set(gone)) and set(gone) <= ids
    # Nothing of the system folders, nothing outside what the rules read.
    assert not set(gone) & {1, 2, 3, 4, 5, 6, 7, 11}
    folders = {r.id: r.folder_id for r in rows if r.type == TYPE_FOLDER}
    roots, every_message = purge.scope(lt)
    reach = {f for root in roots for f in purge.hierarchy(folders, root)}
    for r in rows:
        if r.id in gone and not (every_message and r.type == TYPE_MESSAGE):
            assert r.folder_id in reach or r.id in reach, r
    # Right after, nothing more; later, at least as much.
    left = [r for r in rows if r.id not in set(gone)]
    assert victims(left, lt, NOW, batch=big) == []
    assert set(gone) <= set(victims(rows, lt, NOW + later, batch=big))
    assert set(victims(rows, lt, NOW, batch=2)) <= set(gone)


def test_the_directory_holds_the_lifetimes(tmp_path: Path) -> None:
    d = Directory(tmp_path / "dir.sqlite")
    a = d.create_account("ann@example.com")
    b = d.create_account("bob@example.com")
    assert d.lifetimes(a.id) == Lifetimes() == d.lifetimes("no-such-account")
    d.set_cos_attrs("default", {"zimbraMailTrashLifetime": "7d"})
    d.set_attrs("ann@example.com", {"zimbraMailSpamLifetime": "2s",
                                    "zimbraPrefSentLifetime": "1h"})
    assert d.lifetimes(a.id) == Lifetimes(trash=7 * DAY_MS, spam=2000, sent=3_600_000)
    assert d.lifetimes(b.id) == Lifetimes(trash=7 * DAY_MS) == d.lifetimes(None)
    d.set_attrs(a.id, {"zimbraPrefSentLifetime": None})  # removes it
    assert d.get(a.id).attributes() == {"zimbraMailSpamLifetime": "2s"}
    snap = d.retention()
    assert snap.lifetimes(a.id) == d.lifetimes(a.id) and snap.lifetimes(b.id) == d.lifetimes(b.id)
    assert set(snap.accounts) == {a.id}  # only those that differ from the default COS
    # zmrestoreldap's dump keeps the attributes.
    e = Directory(tmp_path / "restored.sqlite")
    e.load(json.loads(d.dumps()))
    assert e.lifetimes(a.id) == d.lifetimes(a.id) and e.cos_attrs("default") == \
        {"zimbraMailTrashLifetime": "7d"}


def test_a_directory_from_before_attributes_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE account (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
               " domain TEXT NOT NULL, cos TEXT NOT NULL, status TEXT NOT NULL DEFAULT"
               " 'active', mailbox_id INTEGER, created_ms INTEGER NOT NULL)")
    db.execute("INSERT INTO account (id, email, domain, cos, created_ms) VALUES"
               " ('a1', 'old@example.com', 'example.com', 'default', 0)")
    db.commit()
    db.close()
    d = Directory(path)
    assert d.get("a1").attributes() == {}
    d.set_attrs("a1", {"zimbraMailTrashLifetime": "1d"})
    assert d.lifetimes("a1").trash == DAY_MS
