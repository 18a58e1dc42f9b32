"""Replay of a log holding the other ops a real Zimbra server writes, with both engines.

- The mail ops the store models (RenameItem, ColorItem, DateItem, SetImapUid,
  CreateSavedSearch, ModifySavedSearch, DeleteItemFromDumpster) are applied: the fast engine
  reaches the naive engine's state, and both the state of an expected store built from exactly
  the applied transactions; a second replay changes nothing (each op is skipped by change
  number).
- Ops outside the store's model (calendar, notes, volumes, sharing, mountpoints) are counted by
  name and reported ("not applied: CreateInvite ×1, ..."), and change nothing; with
  --stopOnError the first one stops the replay with a message naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from standby.redolog.ops import (
    TYPE_FOLDER,
    TYPE_MESSAGE,
    ColorItem,
    CreateContact,
    CreateFolder,
    CreateInvite,
    CreateMountpoint,
    CreateNote,
    CreateSavedSearch,
    CreateTag,
    CreateVolume,
    DateItem,
    DeleteItemFromDumpster,
    GrantAccess,
    ModifySavedSearch,
    RenameItem,
    SetCustomData,
    SetImapUid,
    contact_fields,
)
from standby.redolog import metadata
from standby.redolog.reader import read_all
from standby.redolog.record import Record
from standby.store.effects import applies
from standby.store.site import Site
from tests.replay_util import Lab, LogBuilder, Txn, digest, expected_store, zmplayredo

pytestmark = pytest.mark.services

ENGINES = {"fast": ["--batch-ops", "5"], "naive": ["--naive"]}
OUTSIDE = {"CreateInvite": 1, "CreateNote": 1, "CreateVolume": 1, "GrantAccess": 1,
           "CreateMountpoint": 1}


def _build(logdir: Path) -> LogBuilder:
    b = LogBuilder(logdir, seed=11)
    for m in (1, 2):
        b.create_mailbox(m)
        for _ in range(4):
            b.op(m, b.message(m))  # messages 257..260
    fid = b.new_id(1)  # 261
    b.op(1, CreateFolder("Work", 1, 0, TYPE_MESSAGE, 0, 0, "", fid, "u-261", b.now))
    tid = b.new_id(1)  # 262
    b.op(1, CreateTag(tid, "red", 1))
    sid = b.new_id(1)  # 263
    b.op(1, CreateSavedSearch(sid, "u-263", "Unread", "is:unread", "message", "dateDesc", 1,
                              0, 3))
    b.op(1, ModifySavedSearch(sid, "is:unread in:inbox", "conversation", "dateAsc"))
    b.op(1, RenameItem(sid, fid, "Unread at work", 2, 1_700_000_500_000))
    b.op(1, RenameItem(fid, 1, "Work 2024", TYPE_FOLDER))
    b.op(1, RenameItem(258, fid, "moved and named", TYPE_MESSAGE))
    b.op(1, ColorItem(TYPE_MESSAGE, 0x01FF8000, (257, 258, 999)))
    b.op(1, ColorItem(TYPE_FOLDER, 5, (fid,)))
    b.op(1, ColorItem(3, 7, (tid,)))
    b.op(1, DateItem(259, TYPE_MESSAGE, 1_600_000_000_000))
    b.op(2, SetImapUid(((257, 1001), (258, 1002), (999, 1003))))
    b.op(2, DeleteItemFromDumpster((257,)))
    b.op(1, SetCustomData(259, TYPE_MESSAGE, " zimlet ", metadata.to_string({"n": 3, "s": "x"})))
    b.op(1, SetCustomData(260, TYPE_MESSAGE, "a", metadata.to_string({"k": "v"})))
    b.op(1, SetCustomData(260, TYPE_MESSAGE, "a", ""))  # an empty section removes it
    # Ops outside the store's model, in the middle of the mail traffic.
    b.op(1, CreateInvite(280, "AC", 10, b"", "d1:vi10ee", "d1:vi10ee", False, False, False))
    b.op(1, CreateNote(281, 1, "milk", 0, 1, 2, 3, 4))
    b.op(0, CreateVolume(3, 1, "message2", "/v2", 8, 12, 8, 12, False, 1, None))
    b.op(2, GrantAccess(2, "acct", 1, 1, "", 0))
    b.op(2, CreateMountpoint(282, "u", "M", "acct", 5, "ru", 1, 5, 0, 0, False))
    b.op(2, b.message(2))  # and mail after them
    b.close()
    return b


def test_zimbra_mail_ops_apply_and_the_rest_are_counted(make_store) -> None:
    with Lab(make_store) as lab:
        logdir = lab.store("log").root / "zimbra"
        logdir.mkdir()
        b = _build(logdir)
        applied: list[Txn] = [t for t in b.txns if applies(t.start.op)]
        assert len(applied) == len(b.txns) - len(OUTSIDE)
        _, want = expected_store(lab, "expected", applied)
        for engine, args in ENGINES.items():
            t = lab.store(f"standby-{engine}")
            s = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args).assert_ok().summary
            assert s["not_applied"] == OUTSIDE, s
            assert s["db"] == {"applied": len(applied)}, s["db"]
            assert s["errors"] == 0, s["error_samples"]
            got = digest(t)
            assert got.total == want.total, (engine, got.as_dict(), want.as_dict())
            again = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args).assert_ok().summary
            assert again["db"] == {"skipped": len(applied)}, again["db"]
            assert digest(t).total == want.total
        _check_rows(lab.store("standby-fast"))
        out = zmplayredo(lab.store("standby-text").cfg, "--log-dir", logdir).assert_ok().out
        assert ("not applied: CreateInvite ×1, CreateMountpoint ×1, CreateNote ×1, "
                "CreateVolume ×1, GrantAccess ×1") in out, out


def _check_rows(h: Any) -> None:
    """The effects themselves, read back from the database."""
    site = Site.open(h.settings)
    with site.database():
        conn = site.connect()
        try:
            cur = conn.cursor()
            cur.execute("SELECT id, type, name, folder_id, parent_id, date, imap_id, metadata"
                        " FROM mboxgroup1.mail_item WHERE mailbox_id = 1 AND id IN"
                        " (258, 259, 260, 261, 263) ORDER BY id")
            rows = {r[0]: r for r in cur.fetchall()}
            assert rows[261][2:5] == ("Work 2024", 1, 1)
            assert rows[263][1:6] == (2, "Unread at work", 261, 261, 1_700_000_500)
            assert "1:q18:is:unread in:inbox" in rows[263][7]
            assert rows[258][2:4] == ("moved and named", 261)
            assert "1:ci33521664e" in rows[258][7]
            assert rows[259][5] == 1_600_000_000
            # SetCustomData: the section under "xd.<trimmed name>", its values as strings.
            assert metadata.parse(rows[259][7]) == {"xd.zimlet": "d1:n1:31:s1:x1:vi10ee"}
            assert metadata.parse(rows[260][7]) == {}
            cur.execute("SELECT color FROM mboxgroup1.tag WHERE mailbox_id = 1 AND id = 262")
            assert cur.fetchone() == (7,)
            cur.execute("SELECT id, imap_id FROM mboxgroup2.mail_item WHERE mailbox_id = 2 AND"
                        " id IN (257, 258) ORDER BY id")
            assert cur.fetchall() == ((257, 1001), (258, 1002))
            conn.commit()
        finally:
            conn.close()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_stop_on_error_stops_at_the_first_op_outside_the_store(make_store, engine: str) -> None:
    with Lab(make_store) as lab:
        logdir = lab.store("log").root / "zimbra"
        logdir.mkdir()
        b = _build(logdir)
        first: Record = next(t.start for t in b.txns if not applies(t.start.op))
        t = lab.store("standby")
        r = zmplayredo(t.cfg, "--stopOnError", "--log-dir", logdir, *ENGINES[engine])
        assert r.rc != 0
        assert "Traceback" not in r.err
        assert (f"replay stopped: CreateInvite (mailbox 1, change {first.change_id}) is not "
                "applied") in r.err, r.err


def test_the_live_store_writes_the_new_ops_as_zimbra_does(make_store) -> None:
    """Through the service: contact fields in ParsedContact's HashMap order (blank names and
    empty values dropped), SetImapUid's uids from the item id counter in HashMap order, and a
    saved search created, changed and renamed; replayed from empty, the same state."""
    with Lab(make_store) as lab:
        p = lab.store("primary")
        p.start()
        c = p.client()
        try:
            m = c.call("create_account", email="ann@example.com")["mailbox_id"]
            fields = {"lastName": "Lee", "firstName": "Ann", "email": "ann@example.com",
                      "company": "Co", "nickname": "", "fullName": "Ann Lee"}
            c.call("create_contact", mailbox_id=m, attrs=fields)
            ids = [c.deliver(b"Subject: x\r\n\r\nbody", ["ann@example.com"])[0]["id"]
                   for _ in range(3)]
            uids = c.call("reset_imap_uids", mailbox_id=m, ids=ids)
            sid = c.call("create_saved_search", mailbox_id=m, name="Unread", query="is:unread")
            c.call("modify_saved_search", mailbox_id=m, search_id=sid, query="is:flagged")
            c.call("rename_item", mailbox_id=m, item_id=sid, name="Flagged")
            c.call("set_color", mailbox_id=m, ids=ids[:2], color=4)
            c.call("set_date", mailbox_id=m, item_id=ids[0], date_ms=1_600_000_000_000)
            c.call("set_custom_data", mailbox_id=m, item_id=ids[1], section="zimlet",
                   data={"a": "1"})
        finally:
            c.close()
        p.stop()
        recs = [r for f in sorted(p.settings.volumes.redolog.path.rglob("*.log"))
                for r in read_all(f)[1]]
        (cc,) = [r.op for r in recs if isinstance(r.op, CreateContact)]
        assert cc.attrs == contact_fields(list(fields.items()))
        # JDK 17's HashMap order for these fields in this order (lastName and firstName share
        # a bucket, so insertion order decides there); the empty nickname is dropped.
        assert [k for k, _ in cc.attrs] == ["lastName", "firstName", "fullName", "company",
                                            "email"]
        (iu,) = [r.op for r in recs if isinstance(r.op, SetImapUid)]
        assert dict(iu.uids) == {int(k): v for k, v in uids.items()}
        assert sorted(v for _, v in iu.uids) == list(range(max(ids) + 1, max(ids) + 4))
        names = [r.op.NAME for r in recs]
        for n in ("CreateSavedSearch", "ModifySavedSearch", "RenameItem", "ColorItem",
                  "DateItem", "SetCustomData"):
            assert n in names
        want = digest(p)
        t = lab.store("standby")
        s = zmplayredo(t.cfg, "--json", "--log-dir", p.settings.volumes.redolog.path)
        assert s.assert_ok().summary["not_applied"] == {}
        assert digest(t).total == want.total
