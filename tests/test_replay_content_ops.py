"""CopyItem, SaveDraft, SetConfig/DeleteConfig and PurgeOldMessages, replayed by both engines.

- A crafted log (`_build`) with each op's cases — copies of messages (one tagged, one delivered
  by LINK), of a contact and of a draft; a draft saved twice (with and without an attachment);
  config sections set, replaced and deleted by name and by pattern, matched case-insensitively
  as Zimbra's table does; a purge by the Trash, Junk, Inbox-read and global lifetimes with a
  subfolder spared for a recent move, a grandchild under it purged and emptied folders deleted;
  and two ops Zimbra would refuse — is replayed from empty by the fast and the naive engine:
  both reach the same digest, report the same two refusals, and a second replay skips every op.
  The rows, blob files and index documents are then checked against Zimbra's semantics.
- With the database ahead of the blob and index volumes (both emptied after a replay), a replay
  brings them back: copies' blobs from their sources' files, a purge's deletions from its
  tombstones.
- The live store writes these ops through its service; replayed from empty (both engines,
  sharing the primary's directory for the lifetimes), the digest is the primary's.
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from standby.redolog import metadata
from standby.redolog.ops import (
    BODY_INLINE,
    FLAG_ATTACHED,
    FLAG_DRAFT,
    FLAG_FROM_ME,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    AlterItemTag,
    CopyItem,
    CreateContact,
    CreateFolder,
    CreateMessage,
    CreateTag,
    DateItem,
    DeleteConfig,
    MoveItem,
    PurgeOldMessages,
    RenameFolder,
    SaveDraft,
    SetConfig,
    hashmap_ordered,
)
from standby.redolog.reader import read_all
from standby.store import blobs as blobmod
from standby.store.directory import Directory
from standby.store.index import IndexStore
from standby.store.itemrules import FLAG_COPIED
from standby.store.mime import message_fields
from standby.store.site import Site
from tests.replay_util import (
    Lab,
    LogBuilder,
    catch_up_index,
    digest,
    expected_store,
    zmplayredo,
)

pytestmark = pytest.mark.services

# Each engine with --index defer (the default; the digest catches the index up first) and with
# --index now: the same store either way (a copy of a still pending source stays pending).
ENGINES = {"fast": ["--batch-ops", "7"], "naive": ["--naive"],
           "fast-now": ["--batch-ops", "7", "--index", "now"],
           "naive-now": ["--naive", "--index", "now"]}
LIFETIMES = {"zimbraMailTrashLifetime": "3s", "zimbraMailSpamLifetime": "3000ms",
             "zimbraPrefInboxReadLifetime": "4s", "zimbraMailMessageLifetime": "31d"}
T1_GAP = 60_000  # the Trash scenario starts a minute after the mail traffic


def _mime(subject: str, body: str, *, attachment: bool = False) -> bytes:
    head = (f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\n")
    if not attachment:
        return (head + f"Content-Type: text/plain\r\n\r\n{body}\r\n").encode()
    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            f"Content-Type: text/plain\r\n\r\n{body}\r\n--b\r\nContent-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="a.pdf"\r\n\r\nJVBERi0x\r\n--b--\r\n'
            ).encode()


def _draft(b: LogBuilder, m: int, draft_id: int, raw: bytes, *, save: int = 0) -> Any:
    if not save:
        return CreateMessage(":API:", b.now, False, blobmod.digest(raw), len(raw), draft_id, 6,
                             flags=FLAG_DRAFT | FLAG_FROM_ME, no_ical=True,
                             body_type=BODY_INLINE, data=raw)
    return SaveDraft(save, ":API:", b.now, False, blobmod.digest(raw), len(raw), draft_id, -1,
                     no_ical=True, body_type=BODY_INLINE, data=raw)


def _build(logdir: Path, *, refused: bool = False) -> tuple[LogBuilder, dict[str, int]]:
    """The crafted log (with two ops Zimbra refuses if `refused`); returns the builder and the
    change numbers the checks need."""
    b = LogBuilder(logdir, seed=5)
    at: dict[str, int] = {}
    for m in (1, 2):
        b.create_mailbox(m)
    for _ in range(4):
        b.op(1, b.message(1))  # 257..260 in Inbox, unread
    vcard = b"BEGIN:VCARD\r\nFN:Ann Lee\r\nEND:VCARD\r\n"
    b.op(1, CreateContact(b.new_id(1), 7, (("fullName", "Ann Lee"), ("email", "ann@x.org")),
                          None, vcard))  # 261
    work = b.new_id(1)  # 262
    b.op(1, CreateFolder("Work", 1, 0, TYPE_MESSAGE, 0, 0, "", work, "u-262", b.now))
    red = b.new_id(1)  # 263
    b.op(1, CreateTag(red, "red", 1))
    b.op(1, AlterItemTag(TYPE_MESSAGE, "red", True, (257,)))
    b.op(1, AlterItemTag(TYPE_MESSAGE, "\\Unread", False, (258,)))
    at["copy"] = b.op(1, CopyItem(TYPE_MESSAGE, work, ((257, b.new_id(1), "u-264"),
                                                       (258, b.new_id(1), "u-265")))).change_id
    b.op(1, CopyItem(TYPE_CONTACT, 13, ((261, b.new_id(1), "u-266"),)))
    if refused:
        b.op(1, CopyItem(TYPE_MESSAGE, 999, ((259, 998, "u-998"),)))  # no folder 999
    draft = b.new_id(1)  # 267
    b.op(1, _draft(b, 1, draft, _mime("first draft", "qqfirst")))
    b.op(1, _draft(b, 1, draft, _mime("second draft", "qqsecond", attachment=True),
                   save=b.new_id(1)))  # imap 268
    at["save"] = b.op(1, _draft(b, 1, draft, _mime("final draft", "qqfinal"),
                                save=b.new_id(1))).change_id  # imap 269
    b.op(1, CopyItem(TYPE_MESSAGE, work, ((draft, b.new_id(1), "u-270"),)))
    if refused:
        b.op(1, _draft(b, 1, 257, _mime("not a draft", "x"), save=1000))  # not a draft
    for section, value in (("imap", {"a": "1"}), ("Dev1:Email", {"k": 2}),
                           ("dev1:Calendar", {"k": 3}), ("zimlets", {"z": "1"})):
        b.op(1, SetConfig(section, metadata.to_string(value)))
    b.op(1, SetConfig("IMAP", ""))  # deletes "imap": Zimbra matches the upper-cased name
    b.op(1, SetConfig("ZIMLETS", metadata.to_string({"b": "2"})))  # replaces "zimlets"
    b.op(1, DeleteConfig("dev1%"))
    b.op(1, DateItem(260, TYPE_MESSAGE, b.now - 40 * 86_400_000))  # past the global lifetime
    # The Trash scenario, a minute later: at T1 things go to Trash, at T1+4s two more, and the
    # purge at T1+5s (Trash lifetime 3s) takes what has been there since T1.
    t1 = b.now + T1_GAP
    b.op(1, b.message(1))  # 271, into Inbox before T1
    olds = []
    for name in ("Old", "Keep"):
        fid = b.new_id(1)  # 272, 273
        olds.append(fid)
        b.commit(b.begin(1, CreateFolder(name, 3, 0, TYPE_MESSAGE, 0, 0, "", fid, f"u-{fid}",
                                         t1), at=max(t1, b.now + 1)))
    sub = b.new_id(1)  # 274, under Keep
    b.commit(b.begin(1, CreateFolder("Sub", olds[1], 0, TYPE_MESSAGE, 0, 0, "", sub, "u-274",
                                     t1), at=b.now + 1))
    for folder in (olds[1], sub, 4):  # 275 in Keep, 276 in Sub, 277 in Junk
        b.commit(b.begin(1, b.message(1, folder=folder), at=b.now + 1))
    b.commit(b.begin(1, MoveItem(TYPE_MESSAGE, 3, (259, 264)), at=b.now + 1))
    b.commit(b.begin(1, MoveItem(TYPE_MESSAGE, 3, (271,)), at=t1 + 4000))
    b.commit(b.begin(1, RenameFolder(olds[1], 3, "Keep (recent)"), at=b.now + 1))
    at["purge"] = b.commit(b.begin(1, PurgeOldMessages(), at=t1 + 5000)).change_id
    # Mailbox 2: a LINK delivery shared with mailbox 1, copied in mailbox 2.
    recs = b.shared_delivery([2, 1])
    shared = recs[1].op.msg_id
    b.op(2, CopyItem(TYPE_MESSAGE, 2, ((shared, b.new_id(2), "u-2-copy"),)))
    b.close()
    return b, at


def _lab_with_lifetimes(make_store: Any) -> tuple[Lab, Path]:
    lab = Lab(make_store)
    holder = lab.store("log")  # its directory is the lab's
    Directory(holder.settings.directory_path).set_cos_attrs("default", LIFETIMES)
    logdir = holder.root / "crafted"
    logdir.mkdir()
    return lab, logdir


def test_copy_draft_config_purge_replay_alike_in_both_engines(make_store) -> None:
    lab, logdir = _lab_with_lifetimes(make_store)
    with lab:
        b, at = _build(logdir)
        _, want = expected_store(lab, "expected", b.txns)
        for engine, args in ENGINES.items():
            t = lab.store(f"standby-{engine}")
            s = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args).assert_ok().summary
            assert s["not_applied"] == {} and s["errors"] == 0, s
            got = digest(t)
            assert got.total == want.total, (engine, got.as_dict(), want.as_dict())
            again = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args).assert_ok().summary
            assert set(again["db"]) == {"skipped"} and set(again["index"]) == {"skipped"}, again
            assert digest(t).total == want.total
        _check(lab.store("standby-check"), logdir, at)


def test_a_draft_moved_then_saved_in_one_batch_keeps_its_folder(make_store) -> None:
    """Regression: the fast engine indexed a draft saved after a move in the same batch under
    the folder it was created in (it took the folder from the document still to be written,
    which the move had not changed)."""
    with Lab(make_store) as lab:
        logdir = lab.store("log").root / "crafted"
        logdir.mkdir()
        b = LogBuilder(logdir, seed=6)
        b.create_mailbox(1)
        draft = b.new_id(1)
        b.op(1, _draft(b, 1, draft, _mime("a draft", "qqdraft")))  # into Drafts
        b.op(1, MoveItem(TYPE_MESSAGE, 2, (draft,)))
        b.op(1, _draft(b, 1, draft, _mime("saved again", "qqsaved"), save=b.new_id(1)))
        b.close()
        _, want = expected_store(lab, "expected", b.txns)
        for engine, args in {"fast": [], "naive": ["--naive"]}.items():
            t = lab.store(f"standby-{engine}")
            zmplayredo(t.cfg, "--log-dir", logdir, *args).assert_ok()
            assert digest(t).total == want.total, engine
            index = IndexStore(Path(t.settings.volumes.index.path))
            try:
                with index.use(1, create=False) as idx:
                    assert idx is not None
                    row = idx.db.execute("SELECT folder_id FROM items WHERE id = ?",
                                         (draft,)).fetchone()
                    assert row == (2,), (engine, row)
            finally:
                index.close()


def test_ops_zimbra_refuses_change_nothing_and_are_reported(make_store) -> None:
    """A copy into a folder that is not there and a SaveDraft of a message that is not a draft
    fail in Zimbra's redo(): both engines report the same two errors (exit 1) and reach the
    state of the log without them."""
    lab, logdir = _lab_with_lifetimes(make_store)
    with lab:
        b, _at = _build(logdir, refused=True)
        kept = [t for t in b.txns if not (
            (isinstance(t.op, CopyItem) and t.op.dest_folder_id == 999)
            or (isinstance(t.op, SaveDraft) and t.op.msg_id == 257))]
        assert len(kept) == len(b.txns) - 2
        _, want = expected_store(lab, "expected", kept)
        for engine, args in ENGINES.items():
            t = lab.store(f"standby-{engine}")
            r = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args)
            assert r.rc == 1, r.describe()
            errors = sorted(r.summary["error_samples"])
            assert len(errors) == 2 and "change" in errors[0], errors
            assert "CopyItem mailbox 1" in errors[0] and "no folder 999" in errors[0]
            assert "SaveDraft mailbox 1" in errors[1] and "item 257 is not a draft" in errors[1]
            assert digest(t).total == want.total, engine


def _rows(cur: Any, sql: str, *args: Any) -> dict[int, dict[str, Any]]:
    cur.execute(sql, args)
    cols = [d[0] for d in cur.description]
    return {r[1]: dict(zip(cols, r)) for r in cur.fetchall()}


def _check(h: Any, logdir: Path, at: dict[str, int]) -> None:
    """The effects themselves, read back from the three volumes (after a naive replay, with
    `--index defer`, and the index's catch-up: copies of pending sources come out of it)."""
    zmplayredo(h.cfg, "--naive", "--log-dir", logdir).assert_ok()
    caught = catch_up_index(h)
    assert caught is not None and caught.documents and not caught.behind, caught
    recs = [r for f in sorted(logdir.rglob("*.log")) for r in read_all(f)[1]]
    raw258 = next(r.op.data for r in recs if isinstance(r.op, CreateMessage)
                  and r.mailbox_id == 1 and r.op.msg_id == 258)
    assert raw258 is not None
    f258 = message_fields(raw258)
    site = Site.open(h.settings)
    with site.database():
        conn = site.connect()
        try:
            cur = conn.cursor()
            items = _rows(cur, "SELECT mailbox_id, id, type, folder_id, parent_id, prev_folders,"
                          " index_id, imap_id, size, blob_digest, unread, flags, sender,"
                          " recipients, subject, mod_metadata, mod_content, uuid, date"
                          " FROM mboxgroup1.mail_item WHERE mailbox_id = 1")
            # Copies: the source's row with the copy's id, uuid, folder; Zimbra's copy leaves
            # recipients out, notes the source's folder, shares an immutable message's index
            # entry (both then flagged \Copied; the source keeps its change number).
            c265 = items[265]
            assert c265["folder_id"] == 262 and c265["uuid"] == "u-265"
            assert c265["imap_id"] == 265 and c265["index_id"] == 258
            assert c265["recipients"] is None and f258.recipients
            assert (c265["sender"], c265["subject"]) == (f258.sender, f258.subject)
            assert c265["prev_folders"] == f"{at['copy']}:2"
            assert c265["mod_content"] == c265["mod_metadata"] == at["copy"]
            assert c265["flags"] & FLAG_COPIED and items[257]["flags"] & FLAG_COPIED
            assert items[257]["mod_metadata"] < at["copy"]
            # The contact's copy is indexed on its own; the draft's copy too, not \Copied.
            assert items[266]["type"] == TYPE_CONTACT and items[266]["index_id"] == 266
            assert items[270]["index_id"] == 270 and not items[270]["flags"] & FLAG_COPIED
            assert items[270]["flags"] & FLAG_DRAFT
            # The draft: its last body, a new content change, \Attached as the body says.
            d = items[267]
            assert d["subject"] == "final draft" and d["mod_content"] == at["save"]
            assert d["imap_id"] == 267 and not d["flags"] & FLAG_ATTACHED
            assert items[270]["subject"] == "final draft"
            # SaveDraft's imap ids come from the item id counter; the refused one drew none.
            cur.execute("SELECT item_id_checkpoint FROM zimbra.mailbox WHERE id = 1")
            assert cur.fetchone()[0] == 278
            cur.execute("SELECT tag_id, item_id FROM mboxgroup1.tagged_item WHERE mailbox_id = 1"
                        " ORDER BY item_id")
            assert cur.fetchall() == ((263, 257),)  # 264, the tagged copy, was purged
            # Config: case-insensitive section names, as Zimbra's table compares them.
            cur.execute("SELECT section, metadata FROM zimbra.mailbox_metadata WHERE"
                        " mailbox_id = 1")
            assert cur.fetchall() == (("ZIMLETS", metadata.to_string({"b": "2"})),)
            # The purge: Trash by change date (259, 264; 271 moved in lately stays), the
            # empty old subfolder, the recently moved one spared but not its old grandchild
            # (276), which then lay empty and went too; Junk (277); read Inbox mail (258);
            # the global lifetime (260, dated 40 days back).
            purged = {259, 264, 272, 274, 276, 277, 258, 260}
            assert not purged & set(items), purged & set(items)
            assert {257, 271, 273, 275}.issubset(items)
            cur.execute("SELECT type, ids FROM mboxgroup1.tombstone WHERE mailbox_id = 1 AND"
                        " sequence = %s ORDER BY type", (at["purge"],))
            tombs = {t: {int(i) for i in ids.split(",")} for t, ids in cur.fetchall()}
            assert tombs == {TYPE_FOLDER: {272, 274}, TYPE_MESSAGE: purged - {272, 274}}
            conn.commit()
        finally:
            conn.close()
    # Blobs: each copy its own file with the source's bytes; the draft only at its last change.
    blobs = site.blobs

    def blob(m: int, item: int) -> bytes:
        (p,) = [p for p in blobs.mailbox_blobs(m) if p.name.startswith(f"{item}-")]
        return blobs.read(p)

    assert blob(1, 265) == raw258 and blob(1, 270) == blob(1, 267)
    assert [p.name for p in blobs.mailbox_blobs(1) if p.name.startswith("267-")] == \
        [f"267-{at['save']}.msg"]
    (two,) = [r for r in recs if isinstance(r.op, CopyItem) and r.mailbox_id == 2]
    src, copy, _ = two.op.entries[0]
    assert blob(2, copy) == blob(2, src)
    # Index: the copies' documents are the sources'; what the purge deleted is gone.
    with site.index.use(1, create=False) as idx:
        assert idx is not None
        docs = {r[0]: r for r in idx.iter_docs()}
        assert docs[265][2] == 262 and docs[265][4] == f258.subject
        assert docs[270][4] == docs[267][4] == "final draft"
        assert not purged & set(docs)
        assert idx.search("qqsecond") == [] and set(idx.search("qqfinal")) == {267, 270}
        folders = {f for f, _ in idx.iter_folders()}
        assert 273 in folders and not {272, 274} & folders
    site.close()


def test_volumes_behind_the_database_are_brought_forward(make_store) -> None:
    """After a replay, the blob and index volumes are emptied (as if restored from older
    snapshots than the database): a second replay skips every op on the database and rebuilds
    them — copies' blobs from their sources' files, the purge's deletions from its tombstones."""
    lab, logdir = _lab_with_lifetimes(make_store)
    with lab:
        b, _at = _build(logdir)
        _, want = expected_store(lab, "expected", b.txns)
        for engine, args in ENGINES.items():
            t = lab.store(f"behind-{engine}")
            zmplayredo(t.cfg, "--log-dir", logdir, *args).assert_ok()
            for vol in (t.settings.volumes.blob.path, t.settings.volumes.index.path):
                shutil.rmtree(vol)
                vol.mkdir()
            s = zmplayredo(t.cfg, "--json", "--log-dir", logdir, *args).assert_ok().summary
            assert set(s["db"]) == {"skipped"}, s["db"]
            assert s["index"].get("applied"), s["index"]
            assert digest(t).total == want.total, engine


def test_the_live_store_writes_them_and_a_replay_equals_it(make_store) -> None:
    """Through the service: copies, a draft saved twice and sent, config sections and a purge
    by the account's lifetimes (`zmprov ma`). The log holds Zimbra's records for them (a
    SaveDraft stamped with its received date, CopyItem's copies in HashMap order); replayed
    from empty by both engines with the primary's directory, the digest is the primary's."""
    with Lab(make_store) as lab:
        p = lab.store("primary")
        p.start()
        c = p.client()
        try:
            m = c.call("create_account", email="ann@example.com")["mailbox_id"]
            c.call("set_account_attrs", account="ann@example.com",
                   attrs={"zimbraMailTrashLifetime": "1s"})
            ids = [c.deliver(_mime(f"note {i}", f"word{i}"), ["ann@example.com"])[0]["id"]
                   for i in range(20)]
            copies = c.call("copy", mailbox_id=m, ids=ids, dest_id=5)
            assert sorted(int(k) for k in copies) == ids
            draft = c.call("create_draft", mailbox_id=m, message=_b64(_mime("d1", "one")))
            c.call("save_draft", mailbox_id=m, draft_id=draft,
                   message=_b64(_mime("d2", "two", attachment=True)))
            c.call("set_config", mailbox_id=m, section="dev7:Email", config={"k": 1})
            c.call("set_config", mailbox_id=m, section="imap", config={"u": "x"})
            c.call("delete_config", mailbox_id=m, section_part="dev7%")
            c.call("move", mailbox_id=m, ids=ids[:3], dest_id=3)
            time.sleep(2.1)  # change dates are in seconds: past the 1 s lifetime for sure
            gone = c.call("purge", mailbox_id=m)
            assert gone == ids[:3]
        finally:
            c.close()
        p.stop()
        recs = [r for f in sorted(p.settings.volumes.redolog.path.rglob("*.log"))
                for r in read_all(f)[1]]
        (copy,) = [r.op for r in recs if isinstance(r.op, CopyItem)]
        order = [e[0] for e in copy.entries]
        assert order == [k for k, _ in hashmap_ordered([(i, 0) for i in ids])]
        (sd,) = [r for r in recs if isinstance(r.op, SaveDraft)]
        assert sd.op.rcv_date == sd.tstamp and sd.op.folder_id == -1 and sd.op.rcpt == ":API:"
        names = {r.op.NAME for r in recs}
        assert {"CopyItem", "SaveDraft", "SetConfig", "DeleteConfig",
                "PurgeOldMessages"} <= names
        want = digest(p)
        for engine, args in ENGINES.items():
            t = lab.store(f"standby-{engine}")
            s = zmplayredo(t.cfg, "--json", "--log-dir", p.settings.volumes.redolog.path,
                           *args).assert_ok().summary
            assert s["errors"] == 0 and s["not_applied"] == {}, s
            assert digest(t).total == want.total, engine


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
