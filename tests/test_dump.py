"""zmredodump: Zimbra's text shapes against a golden file, its options, JSON and Parquet output.

The log is built deterministically (fixed clock, txn ids and server id; TZ=UTC for the command)
with every op the store writes, commits and an abort, a shared delivery (StoreIncomingBlob and a
LINK CreateMessage per recipient), contacts with attributes, a rollover with an active
transaction (Checkpoint in the old file, the change record re-logged in the new one) and an
uncommitted change at the end of an unclosed file. Set STANDBY_UPDATE_GOLDEN=1 to rewrite the
golden file after a deliberate change, then review the diff line by line against
notes/zimbra-ops.md §3-§5.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from standby.redolog import files, javafmt
from standby.redolog import ops as o
from standby.redolog.header import FileHeader
from standby.redolog.reader import scan
from standby.redolog.record import MAILBOX_ALL, Record
from standby.redolog.writer import RedoLogWriter, TxnIds, WriterConfig

GOLDEN = Path(__file__).parent / "data" / "zmredodump_golden.txt"
BIN = Path(sys.executable).parent
SERVER_ID = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
ACCT1, ACCT2 = "a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"
MIME = (b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: caf\xc3\xa9\r\n\r\n"
        b"Bonjour \xe9\xe8\x00\xff binary tail\r\n")
VCARD = b"BEGIN:VCARD\r\nFN:Ann Lee\r\nEND:VCARD\r\n"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1_111
        return self.now


def build_logs(redolog_dir: Path) -> None:
    """archive/redo-…-seq0.log, archive/redo-…-seq1.log and an unclosed redo.log (seq 2)."""
    clock = _Clock()
    w = RedoLogWriter(redolog_dir, server_id=SERVER_ID, clock=clock, fsync=lambda fd: None,
                      config=WriterConfig(fsync_interval_ms=0, rollover_min_age_ms=0))
    w.open()
    ids = TxnIds(start_s=1_700_000_000)

    def change(op: o.Op, mbox: int, chg: int = -1, end: str | None = "commit",
               constraint: int = 0) -> Record:
        t, c = ids.next()
        rec = Record(op, clock(), t, c, mbox, chg, constraint)
        w.log(rec, sync=True)
        if end == "commit":
            w.log_commit(rec)
        elif end == "abort":
            w.log_abort(rec)
        return rec

    change(o.CreateMailbox(ACCT1), 1, 1)
    change(o.CreateMailbox(ACCT2), 2, 1)
    custom = javafmt.bencode_map({"sort": "dateDesc", "n": 3, "zz": "é"})
    change(o.CreateFolder("Projets été", 1, 0, o.TYPE_MESSAGE, 0, 0x01FF8000, "", 257,
                          "0000-0101", 1_700_000_000_123, "zimbra", custom), 1, 2)
    change(o.CreateTag(258, "urgent,é\\x", 5), 1, 3)
    change(o.CreateMessage("bob@example.com", 1_700_000_004_000, False, "sha-inline", len(MIME),
                           259, 2, 300, 259, (301, 302), 7, "AC", 0x200, True,
                           ("urgent,é\\x", "b"), "/opt/zimbra/store/incoming/1-1.msg",
                           "ext", javafmt.bencode_map({"k": "v"}), o.BODY_INLINE, MIME), 1, 4)
    sib = o.StoreIncomingBlob((1, 2), "sha-shared", "/opt/zimbra/store/incoming/2-9.msg",
                              len(MIME), MIME)
    change(sib, MAILBOX_ALL)
    for mbox, msg_id, chg in ((1, 260, 5), (2, 257, 2)):
        change(o.CreateMessage(f"user{mbox}@example.com", 1_700_000_005_000, True, "sha-shared",
                               len(MIME), msg_id, 2, -1, -1, (), 0, "NE", 0x200, False, None,
                               sib.path, body_type=o.BODY_LINK), mbox, chg)
    change(o.SetItemTags(o.TYPE_MESSAGE, 0x20, ("urgent,é\\x", "b"), (259, 260)), 1, 6)
    change(o.SetItemTags(o.TYPE_MESSAGE, o.FLAG_UNCHANGED, None, (259,), "tjsdo"), 1, 7)
    change(o.AlterItemTag(o.TYPE_MESSAGE, "\\Flagged", True, (259, 260)), 1, 8)
    change(o.AlterItemTag(o.TYPE_MESSAGE, "urgent,é\\x", False, (260,), "t"), 1, 9, "abort")
    change(o.Rollover(7, "redo-20231114.221320.000-seq7.log"), 0)
    change(o.CreateContact(261, 7, (("firstName", "Ann"), ("lastName", "Lee"),
                                    ("email", "ann@example.com"), ("fullName", "Ann Lee"),
                                    ("company", "Ëxample & Co")), ("b",), VCARD), 1, 9)
    pending = change(o.IndexItem(259, o.TYPE_MESSAGE), 1, 10, end=None)
    assert w.rollover(force=True)  # Checkpoint lists the IndexItem; it is re-logged in seq1
    w.log_commit(pending)
    change(o.ModifyContact(261, (("email", "ann@new.example"), ("jobTitle", "CTO")), VCARD),
           1, 11)
    change(o.ModifyContact(261, ()), 1, 12)
    change(o.MoveItem(o.TYPE_MESSAGE, 257, (259, 260), None, 12), 1, 13)
    change(o.MoveItem(o.TYPE_MESSAGE, 3, (259,), "tq:in:inbox"), 1, 14, constraint=-2)
    change(o.RenameFolder(257, 1, "Archive 2023"), 1, 15)
    change(o.RenameTag(258, "later"), 1, 16)
    change(o.EmptyFolder(3, True), 1, 17)
    change(o.DeleteItem(o.TYPE_MESSAGE, (260, 261)), 1, 18)
    change(o.DeleteMailbox(), 2, 3)
    assert w.rollover(force=True)  # nothing active: no Checkpoint
    change(o.CreateTag(262, "never committed"), 1, 19, end=None)
    w.abandon()  # as after a crash: redo.log stays open=1
    build_zimbra_ops_log(redolog_dir / files.ARCHIVE_DIR)


INVITE = javafmt.bencode_map({"uid": "ev-1@example.com", "n": "Standup", "st": "20231114T090000",
                              "cn": 0, "ty": 11})
TZ = javafmt.bencode_map({"tzid": "Europe/Paris", "so": 3600000, "do": 7200000})


def zimbra_ops() -> list[tuple[o.Op, int]]:
    """One of every op a real Zimbra server writes that the store above does not, with its
    mailbox (0: a server-wide op)."""
    cal = (TZ, INVITE, 1_700_000_100_000, b"Subject: invite\r\n\r\n")
    msg = dict(rcpt=":API:", rcv_date=1_700_000_004_000, digest="sha-draft", msg_size=len(MIME),
               msg_id=263, folder_id=6, flags=o.FLAG_DRAFT, data=MIME)
    many = [(f"field{i:02d}", f"v{i}") for i in range(14)] + [("email", "zed@example.com")]
    return [
        (o.BackupMailbox(1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000, "nightly"), 1),
        (o.ReindexMailbox(7, None, (300, 17, 1), True), 1),
        (o.ReindexMailbox(8, (o.TYPE_CONTACT, o.TYPE_MESSAGE), None, False), 1),
        (o.PurgeOldMessages(), 1),
        (o.CreateSavedSearch(264, "0000-0108", "Unread", "is:unread", "message", "dateDesc", 1,
                             0, 3), 1),
        (o.ModifySavedSearch(264, "is:unread in:inbox", "conversation", "dateAsc"), 1),
        (o.ColorItem(o.TYPE_MESSAGE, 0x01FF8000, (259, 260)), 1),
        (o.CopyItem(o.TYPE_MESSAGE, 257, ((259, 270, "u-270"), (1, 271, "u-271"),
                                          (18, 272, "u-272"))), 1),
        (o.CreateFolderPath("/Projets/2023/Q4", 0, o.TYPE_MESSAGE, 0, 0, "", None, "zimbra",
                            javafmt.bencode_map({"k": "v"}),
                            ((273, "u-273"), (274, "u-274"))), 1),
        (o.RenameFolderPath(274, "/Projets/2024", (273,)), 1),
        (o.SaveDraft(0, **msg), 1),
        (o.SetImapUid(((259, 1001), (18, 1002), (2, 1003))), 1),
        (o.CreateNote(275, 1, "Remember the milk", 5, 10, 20, 300, 200), 1),
        (o.EditNote(275, "Remember the oat milk"), 1),
        (o.RepositionNote(275, 15, 25, 310, 210), 1),
        (o.CreateMountpoint(276, "u-276", "Ann's calendar", "acct-ann", 10, "ru-10", 1, 11, 0,
                            0, True), 1),
        (o.CreateLink(277, "u-277", "Shared doc", "acct-ann", 300, 16), 1),
        (o.CreateFileSharedWithMe(278, "u-278", "report.pdf", "acct-ann", 301, "ru-301", 16,
                                  "Ann", "application/pdf", "r"), 1),
        (o.ModifyInviteFlag(279, 0, 0x10, True), 1),
        (o.ModifyInvitePartStat(279, (0, "20231114T090000"), "Bob", "bob@example.com", "IND",
                                "REQ", "AC", True, 2, 1_700_000_000_000), 1),
        (o.CreateVolume(3, 1, "message2", "/opt/zimbra/store2", 8, 12, 8, 12, True, 1, None), 0),
        (o.ModifyVolume(3, 1, "message2", "/opt/zimbra/store2b", 8, 12, 8, 12), 0),
        (o.SetCurrentVolume(1, 3), 0),
        (o.DeleteVolume(3), 0),
        (o.CreateInvite(279, "AC", 10, b"BEGIN:VCALENDAR\r\n", TZ, INVITE, False, True, False), 1),
        (o.SetCalendarItem(10, 279, "AC", True, 0, ("b",), 0, cal, (cal,), (INVITE,),
                           1_700_000_200_000), 1),
        (o.TrackSync(), 1),
        (o.SetConfig("zimbra.sync", javafmt.bencode_map({"a": 1, "zz": "é"})), 1),
        (o.GrantAccess(257, "acct-bob", 1, 0x13, "", 0), 1),
        (o.RevokeAccess(257, "acct-bob"), 1),
        (o.ExpireAccess(257, "acct-carol", True), 1),
        (o.SetFolderUrl(257, "https://example.com/feed.ics"), 1),
        (o.SetSubscriptionData(257, 1_700_000_000_000, "guid-1"), 1),
        (o.SetPermissions(257, javafmt.bencode_map({"g": "acct-bob", "r": 1})), 1),
        (o.SaveWiki("Home", "home.wiki", "text/html", "ann", o.TYPE_DOCUMENT, "home page",
                    True, "u-280", **{**msg, "msg_id": 280, "folder_id": 16}), 1),
        (o.SaveDocument("a.txt", "text/plain", "ann", o.TYPE_DOCUMENT, "notes", True, "u-281",
                        **{**msg, "msg_id": 281, "folder_id": 16}), 1),
        (o.AddDocumentRevision(281, "a.txt", "text/plain", "ann", o.TYPE_DOCUMENT, "notes v2",
                               True, "u-281", **{**msg, "msg_id": 281, "folder_id": 16}), 1),
        (o.TrackImap(), 1),
        (o.ImapCopyItem(o.TYPE_MESSAGE, 2, ((259, 282, "u-282"), (260, 283, "u-283"))), 1),
        (o.ICalReply(TZ, INVITE, "bob@example.com"), 1),
        (o.FixCalendarItemTimeZone(279, 1_700_000_000_000, "FR"), 1),
        (o.RenameItem(259, 2, "Renamed message", o.TYPE_MESSAGE, 1_700_000_300_000), 1),
        (o.RenameItemPath(277, "/Briefcase/Shared doc 2", ((16, "u-16"),), o.TYPE_LINK), 1),
        (o.CreateChat(**{**msg, "msg_id": 284, "folder_id": 14}), 1),
        (o.SaveChat(7, **{**msg, "msg_id": 284, "folder_id": 14}), 1),
        (o.PurgeImapDeleted(), 1),
        (o.DismissCalendarItemAlarm(279, 1_700_000_400_000), 1),
        (o.FixCalendarItemEndTime(279), 1),
        (o.IndexDeferredItems(((259, o.TYPE_MESSAGE), (261, o.TYPE_CONTACT))), 1),
        (o.RenameMailbox("ann@new.example", "ann@example.com"), 1),
        (o.FixCalendarItemTZ(279, (("Romance Standard Time", TZ),)), 1),
        (o.DateItem(259, o.TYPE_MESSAGE, 1_600_000_000_000), 1),
        (o.SetFolderDefaultView(257, o.TYPE_CONTACT), 1),
        (o.SetCustomData(259, o.TYPE_MESSAGE, "zimbra.app", javafmt.bencode_map({"x": "1"})), 1),
        (o.LockItem(o.TYPE_DOCUMENT, "acct-ann", 281), 1),
        (o.UnlockItem(o.TYPE_DOCUMENT, "acct-ann", 281), 1),
        (o.PurgeRevision(281, 1, True), 1),
        (o.DeleteItemFromDumpster((259, 260)), 1),
        (o.FixCalendarItemPriority(279), 1),
        (o.RecoverItem(o.TYPE_MESSAGE, 2, ((260, 285, "u-285"),)), 1),
        (o.EnableSharedReminder(276, True), 1),
        (o.SnoozeCalendarItemAlarm(279, 1_700_000_500_000), 1),
        (o.CreateComment(286, "u-286", 281, "acct-bob", "Looks good"), 1),
        (o.SetRetentionPolicy(o.TYPE_FOLDER, 257, (("policy-1", None),), ((None, "30d"),)), 1),
        (o.RefreshMountpoint(276, "acct-ann", 10), 1),
        (o.SetActiveSyncDisabled(257, True), 1),
        (o.SetWebOfflineSyncDays(257, 30), 1),
        (o.DeleteConfig("zimbra.sync"), 1),
        (o.SetPop3Uid(259, o.TYPE_MESSAGE, "uid-259"), 1),
        (o.CreateContact(287, 7, o.contact_fields(many), None, b""), 1),
        (o.ModifyContact(287, o.contact_fields(many[::-1])), 1),
    ]


def build_zimbra_ops_log(archive: Path) -> None:
    """archive/redo-…-seq3.log: every Zimbra op of `zimbra_ops`, each committed, in a closed
    file written record by record (as a Zimbra server's archive)."""
    ids = TxnIds(start_s=1_700_001_000)
    t0 = 1_700_001_000_000
    recs = []
    for i, (op, mbox) in enumerate(zimbra_ops()):
        t, c = ids.next()
        rec = Record(op, t0 + 2 * i, t, c, mbox, 20 + i if mbox else -1)
        recs += [rec, Record(o.CommitTxn(rec.opcode), t0 + 2 * i + 1, t, c, mbox)]
    body = b"".join(r.encode() for r in recs)
    head = FileHeader(sequence=3, server_id=SERVER_ID, create_time=t0 - 1, open=False,
                      file_size=512 + len(body), first_op_tstamp=t0,
                      last_op_tstamp=recs[-1].tstamp)
    (archive / files.archive_name(t0 + 10_000, 3)).write_bytes(head.encode() + body)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("golden")
    red = d / "redolog"
    red.mkdir()
    build_logs(red)
    flat = d / "flat"  # every file in one folder, as zmredodump lists a directory
    flat.mkdir()
    for p in [*(red / files.ARCHIVE_DIR).iterdir(), red / files.CURRENT]:
        shutil.copy2(p, flat / p.name)
    return flat


def zmredodump(*args: str | Path, tz: str = "UTC") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, TZ=tz)
    return subprocess.run([str(BIN / "zmredodump"), *map(str, args)], capture_output=True,
                          check=False, env=env, timeout=120)


def _norm(text: str, root: Path) -> str:
    return text.replace(str(root.resolve()), "<DIR>")


def test_text_output_matches_golden(logs: Path) -> None:
    r = zmredodump(logs)
    assert r.returncode == 0, r.stderr
    assert b"Traceback" not in r.stdout + r.stderr
    got = _norm(r.stdout.decode("utf-8"), logs)
    if os.environ.get("STANDBY_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(got, encoding="utf-8")
    assert got == GOLDEN.read_text(encoding="utf-8")


def test_golden_shapes(logs: Path) -> None:
    """Spot checks of Zimbra's shapes that the golden file must keep (notes §3-§5)."""
    text = GOLDEN.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "VERIFYING DIRECTORY: <DIR>"
    verifying = [ln for ln in lines if ln.startswith("VERIFYING: ")]
    # In sequence order: the archived logs, then redo.log (Zimbra lists redo.log first).
    assert [v.rsplit("/", 1)[1] for v in verifying] == [
        *sorted((p.name for p in logs.iterdir() if p.name != "redo.log"), key=files.seq_of),
        "redo.log"]
    # redo.log was never closed: its last-op time is not recorded (0), said so and flagged.
    assert "last op:  none (0) (not up to date)" in text
    assert not [ln for ln in lines if ln.startswith(("created:", "first op:", "last op:"))
                and "1970/01/01" in ln]
    assert "open:     1" in text and "open:     0" in text
    op_rx = re.compile(r"^\[([0-9a-f]{8}) - ([0-9a-f]{8}): (\d+) bytes; tstamp: "
                       r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3} UTC\] txn -?\d+\.-?\d+ "
                       r"\[(\w+)\] ver=1\.42, tstamp=-?\d+")
    names = set()
    for ln in lines:
        m = op_rx.match(ln)
        if m:
            begin, end, size = int(m[1], 16), int(m[2], 16), int(m[3])
            assert end - begin + 1 == size
            names.add(m[4])
    assert names == {c.NAME for c in o.ALL_OPS}
    # Checkpoint as Zimbra writes it: txn 0.0, tstamp 0, no change/mailbox parts.
    assert any(ln.endswith("txn 0.0 [Checkpoint] ver=1.42, tstamp=0, "
                           "1 active txns: 1700000000.15") for ln in lines)
    assert ("txn 1700000000.6 [StoreIncomingBlob] ver=1.42, tstamp=1700000013332, mailbox=-1, "
            'blobDigest="sha-shared", size=88, dataLen=88, '
            "path=/opt/zimbra/store/incoming/2-9.msg, mbox=[1, 2]") in text
    assert "bodyType=2, linkSourcePath=/opt/zimbra/store/incoming/2-9.msg" in text
    assert ", tags=[urgent,é\\x,b], bodyType=1, path=" in text  # CreateMessage: plain join
    assert "flags=[32], tags=[urgent\\,é\\\\x,b]" in text  # SetItemTags: TagUtil.encodeTags
    assert "name=Archive 2023,parent=1, date=null" in text  # RenameItem: no space
    assert "[AbortTxn] ver=1.42, tstamp=" in text and "txnType=AlterItemTag" in text
    assert "constraint=-2, mailbox=1, id=[259], type=message, dest=3, constraint=tq:in:inbox" \
        in text


def _prefixless(text: str) -> str:
    return re.sub(r"^\[[0-9a-f]{8} - [0-9a-f]{8}: \d+ bytes; tstamp: [^\]]*\] ", "", text,
                  flags=re.MULTILINE)


def test_no_offset_drops_only_the_bracket_prefix(logs: Path) -> None:
    r = zmredodump("--no-offset", logs)
    assert r.returncode == 0
    assert _norm(r.stdout.decode(), logs) == _prefixless(GOLDEN.read_text(encoding="utf-8"))


def test_quiet_prints_only_file_names(logs: Path) -> None:
    r = zmredodump("-q", logs)
    assert r.returncode == 0
    names = sorted((p.name for p in logs.iterdir() if p.name != "redo.log"), key=files.seq_of)
    assert _norm(r.stdout.decode(), logs).splitlines() == [
        f"VERIFYING: <DIR>/{n}" for n in [*names, "redo.log"]]


def test_mailbox_filter(logs: Path) -> None:
    r = zmredodump("--no-offset", "--m", "2", next(logs.glob("*-seq0.log")))
    assert r.returncode == 0
    ops = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("txn ")]
    # Mailbox 2's ops, their commits, and the StoreIncomingBlob whose list holds 2.
    assert [re.search(r"\[(\w+)\]", ln)[1] for ln in ops] == [
        "CreateMailbox", "CommitTxn", "StoreIncomingBlob", "CreateMessage", "CommitTxn"]
    assert all(", mailbox=2," in ln for ln in ops if "StoreIncomingBlob" not in ln)
    # Several ids, comma and/or space separated; the Checkpoint (mailbox 0) is never shown.
    r2 = zmredodump("--no-offset", "--m", "1, 2", *sorted(logs.glob("*-seq*.log")))
    text = r2.stdout.decode()
    assert "[Checkpoint]" not in text and "[Rollover]" not in text
    assert text.count("[CreateMailbox]") == 2
    bad = zmredodump("--m", "0", logs)
    assert bad.returncode == 2 and b'Invalid mailbox id "0"' in bad.stderr
    assert b"Traceback" not in bad.stdout + bad.stderr


def test_show_blob_prints_raw_bytes(logs: Path) -> None:
    r = zmredodump("--show-blob", "--no-offset", next(logs.glob("*-seq0.log")))
    assert r.returncode == 0
    out = r.stdout
    # Raw bytes, unchanged (the body has Latin-1, NUL and 0xFF bytes), once per blob carrier:
    # the INLINE CreateMessage, the StoreIncomingBlob and the CreateContact.
    assert out.count(b"<START OF BLOB>\n" + MIME + b"\n<END OF BLOB>\n") == 2
    assert out.count(b"<START OF BLOB>\n" + VCARD + b"\n<END OF BLOB>\n") == 1
    assert out.count(b"<START OF BLOB>") == 3
    # LINK deliveries carry no blob: the line after each is the next op, not a blob.
    for m in re.finditer(rb"\[CreateMessage\][^\n]*bodyType=2[^\n]*\n", out):
        assert not out[m.end():].startswith(b"<START OF BLOB>")
    quiet = zmredodump("--show-blob", "-q", next(logs.glob("*-seq0.log")))
    assert b"<START OF BLOB>" not in quiet.stdout


def test_directory_order_is_by_sequence_with_redo_log_last(tmp_path: Path,
                                                            logs: Path) -> None:
    seq0 = next(logs.glob("*-seq0.log"))
    for n in (10, 2, 1):
        shutil.copy(seq0, tmp_path / f"redo-20240101.000000.000-seq{n}.log")
    shutil.copy(logs / "redo.log", tmp_path / "redo.log")
    (tmp_path / "notes.txt").write_text("not a log")
    (tmp_path / "sub.log").mkdir()  # a directory named *.log is not a file
    r = zmredodump("-q", tmp_path)
    assert r.returncode == 0, r.stdout
    assert [ln.rsplit("/", 1)[1] for ln in r.stdout.decode().splitlines()] == [
        "redo-20240101.000000.000-seq1.log", "redo-20240101.000000.000-seq2.log",
        "redo-20240101.000000.000-seq10.log", "redo.log"]


def test_json_carries_every_record(logs: Path) -> None:
    r = zmredodump("--json", "--show-blob", logs)
    assert r.returncode == 0, r.stderr
    objs = [json.loads(ln) for ln in r.stdout.decode().splitlines()]
    paths = [*sorted(logs.glob("*-seq*.log"), key=lambda p: files.seq_of(p.name)),
             logs / "redo.log"]
    headers = [x for x in objs if x["kind"] == "header"]
    assert [Path(h["file"]).name for h in headers] == [p.name for p in paths]
    recs = [x for x in objs if x["kind"] == "record"]
    assert not [x for x in objs if x["kind"] not in ("header", "record")]
    want: list[Record] = []
    for p in paths:
        with scan(p) as sc:
            want += list(sc)
    assert len(recs) == len(want) > 30
    required = {"offset", "length", "opcode", "op", "version", "txnId", "tstamp", "changeId",
                "changeConstraint", "mailboxId"}
    for j, rec in zip(recs, want):
        assert required <= set(j)
        assert (j["offset"], j["length"], j["opcode"], j["op"], j["version"]) == (
            rec.offset, rec.length, rec.opcode, rec.op.NAME, "1.42")
        assert j["txnId"] == {"time": rec.txn_time, "counter": rec.txn_counter}
        assert (j["tstamp"], j["changeId"], j["changeConstraint"], j["mailboxId"]) == (
            rec.tstamp, rec.change_id, rec.change_constraint, rec.mailbox_id)
        for k, v in rec.op.fields().items():
            key = re.sub(r"_(\w)", lambda m: m[1].upper(), k)
            assert key in j, (rec.op.NAME, key)
            assert j[key] == json.loads(json.dumps(list(v) if isinstance(v, tuple) else v))
        if rec.op.blob is not None:
            assert base64.b64decode(j["blob"]) == rec.op.blob
    current = headers[-1]  # redo.log, last in sequence order
    assert (current["sequence"], current["open"], current["serverId"],
            current["version"]) == (2, True, SERVER_ID, "1.42")


def test_parquet_has_one_row_per_record(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.parquet"
    r = zmredodump("-q", "--parquet", out, logs)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    want = []
    for p in (*sorted(logs.glob("*-seq*.log"), key=lambda p: files.seq_of(p.name)),
              logs / "redo.log"):
        with scan(p) as sc:
            want += [(str(p.resolve()), rec.offset, rec.length, rec.op.NAME) for rec in sc]
    assert t.num_rows == len(want)
    got = list(zip(t["file"].to_pylist(), t["offset"].to_pylist(), t["length"].to_pylist(),
                   t["op"].to_pylist()))
    assert got == want
    data = [json.loads(x) for x in t["data"].to_pylist()]
    assert {d.get("accountId") for d in data} >= {ACCT1, ACCT2}


def test_since_until_select_records_by_time(logs: Path) -> None:
    seq1 = next(logs.glob("*-seq1.log"))
    with scan(seq1) as sc:
        recs = list(sc)
    lo, hi = recs[2].tstamp, recs[5].tstamp
    fmt = "%Y/%m/%d %H:%M:%S"
    import time as _t

    def stamp(ms: int) -> str:
        return _t.strftime(fmt, _t.gmtime(ms // 1000)) + f".{ms % 1000:03d}"

    r = zmredodump("--no-offset", "--since", stamp(lo), "--until", stamp(hi), seq1)
    assert r.returncode == 0, r.stderr
    shown = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("txn ")]
    assert len(shown) == sum(lo <= x.tstamp <= hi for x in recs) == 4


def test_in_process_cli_runner(logs: Path) -> None:
    """The same command through typer's CliRunner and `standby redolog dump`."""
    import structlog
    from typer.testing import CliRunner

    from standby.cli.main import app

    saved = structlog.get_config()
    try:
        res = CliRunner().invoke(app, ["redolog", "dump", "-q", str(logs / "redo.log")])
    finally:
        # The root command configured logging onto CliRunner's stream, closed by now.
        structlog.configure(**saved)
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"VERIFYING: {(logs / 'redo.log').resolve()}"


# --------------------------------------------------------------------------------------------
# Java HashMap order, checked against a literal simulation of HashMap.put/resize


def _java_hashmap_iteration(keys: list[str], initial: int | None) -> list[str]:
    """java.util.HashMap: table, threshold, put at the tail of the bin, resize splitting each
    bin into lo/hi lists in order. (No treeification: bins stay below 8 entries here.)"""
    def spread(k: str) -> int:
        h = javafmt.string_hash(k)
        return h ^ (h >> 16)

    def table_size_for(n: int) -> int:
        cap = 1
        while cap < n:
            cap <<= 1
        return cap

    table: list[list[str]] | None = None
    threshold = table_size_for(initial) if initial is not None else 0
    size = 0

    def resize() -> None:
        nonlocal table, threshold
        old = table
        old_cap = len(old) if old else 0
        if old_cap > 0:
            new_cap = old_cap * 2
            new_thr = threshold * 2 if old_cap >= 16 else int(new_cap * 0.75)
        elif threshold > 0:
            new_cap, new_thr = threshold, int(threshold * 0.75)
        else:
            new_cap, new_thr = 16, 12
        new: list[list[str]] = [[] for _ in range(new_cap)]
        for j in range(old_cap):
            for k in old[j]:  # type: ignore[index]
                new[j + old_cap if spread(k) & old_cap else j].append(k)
        table, threshold = new, new_thr

    for k in keys:
        if table is None:
            resize()
        assert table is not None
        b = table[spread(k) & (len(table) - 1)]
        if k in b:
            continue
        b.append(k)
        size += 1
        if size > threshold:
            resize()
    return [k for b in (table or []) for k in b]


def test_hashmap_order_matches_a_java_simulation() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=400, deadline=None)
    @given(keys=st.lists(st.text(max_size=8), max_size=40, unique=True),
           initial=st.none() | st.integers(0, 40))
    def check(keys: list[str], initial: int | None) -> None:
        cap = 16 if initial is None else initial
        assert javafmt.hashmap_order(keys, capacity=cap) == \
            _java_hashmap_iteration(keys, initial)

    check()


def test_contact_attrs_print_in_the_readers_hashmap_order(logs: Path) -> None:
    text = GOLDEN.read_text(encoding="utf-8")
    block = text.split("[CreateContact]", 1)[1].split("\n}", 1)[0]
    keys = [ln.strip().split(":", 1)[0] for ln in block.splitlines()[1:]]
    order = ["firstName", "lastName", "email", "fullName", "company"]
    assert keys == _java_hashmap_iteration(order, len(order))


def test_custom_metadata_prints_in_javas_order() -> None:
    """Metadata string -> BEncoding map ("v" included) -> asMap() -> CustomMetadata(8)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(d=st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: k != "v"),
                             st.text(max_size=6) | st.integers(-5, 10**12), max_size=30))
    def check(d: dict[str, object]) -> None:
        enc = javafmt.bencode_map(d)
        decoded = javafmt.bdecode(enc)
        assert decoded == {**d, "v": 10}
        first = [k for k in _java_hashmap_iteration(list(decoded), None) if k != "v"]
        order = _java_hashmap_iteration(_java_hashmap_iteration(first, None), 8)
        want = "{" + ", ".join(f"{k}={d[k]}" for k in order) + "}"
        assert javafmt.custom_metadata_map(enc) == want

    check()
    # Exactly 12 keys: with "v" the BEncoding map outgrows 16 buckets (a case that used to
    # print in the wrong order).
    keys = {f"k{i:02d}x": "v" for i in range(12)}
    enc = javafmt.bencode_map(keys)
    first = [k for k in _java_hashmap_iteration(list(javafmt.bdecode(enc)), None) if k != "v"]
    order = _java_hashmap_iteration(_java_hashmap_iteration(first, None), 8)
    assert javafmt.custom_metadata_map(enc) == "{" + ", ".join(f"{k}=v" for k in order) + "}"


def test_bencoding_counts_and_sorts_utf16_like_java() -> None:
    # Java sorts keys by UTF-16 code units: U+1F600 (D83D DE00) before U+FFFF; string
    # lengths count code units too (an emoji is 2).
    enc = javafmt.bencode_map({"\uffff": 1, "😀": "😀é"})
    assert enc == "d1:vi10e2:😀3:😀é1:\uffffi1ee"
    assert javafmt.bdecode(enc) == {"😀": "😀é", "\uffff": 1, "v": 10}
