"""Every op Zimbra has: the codec derived from its layout, against Hypothesis and hand-built bytes.

1. Hypothesis, for every op class: values encode and decode to equal values, consuming exactly
   the encoded bytes; at every version where the op's layout branches, decoding what was
   encoded and encoding it again reproduces the bytes.
2. A table of every opcode of Zimbra's `MailboxOperation` with the class that reads it.
3. Records Zimbra reads specially (newer versions, unknown and classless opcodes, opcode 35's
   three layouts, refused values). The records built by hand from each op's `serializeData`
   are in test_ops_hand_bytes.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.redolog import layout
from standby.redolog import ops as o
from standby.redolog.codec import DecodeError, Out
from standby.redolog.dump import DumpOptions, dump, op_text, record_json
from standby.redolog.reader import scan_bytes
from standby.redolog.header import FileHeader
from standby.redolog.record import REGISTRY, VERSION, Record, UnknownOpcode, decode_at
from tests.op_bytes import i8, i32, record, utf, z
from tests.op_strategies import op_strategy, versions_of

ALL = o.ALL_OPS


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_round_trip(cls: type[o.Op], data: st.DataObject) -> None:
    op = data.draw(op_strategy(cls))
    out = Out()
    op.encode_data(out)
    payload = bytes(out.buf)
    prefix = data.draw(st.binary(max_size=6))
    back, end = cls.decode_data(prefix + payload + b"ZMREDO", len(prefix), VERSION)
    assert type(back) is cls and back == op, (back, op)
    assert end == len(prefix) + len(payload)
    again = Out()
    back.encode_data(again)
    assert bytes(again.buf) == payload
    # Every op prints (text or Zimbra's null) and has a JSON form.
    text = back.printable(VERSION)
    assert text is None or isinstance(text, str)
    json.dumps(back.fields())


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_version_branch_reproduces_its_bytes(cls: type[o.Op], data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(versions_of(cls)))
    op = data.draw(op_strategy(cls, version))
    out = Out()
    op.encode_data(out, version)
    payload = bytes(out.buf)
    back, end = cls.decode_data(payload + b"ZMREDO", 0, version)
    assert end == len(payload), f"version {version}: decoder stopped at {end} of {len(payload)}"
    again = Out()
    back.encode_data(again, version)
    assert bytes(again.buf) == payload


# CreateLink and CreateFileSharedWithMe log opcode 35 in layouts CreateMountpoint may read too;
# the reader prefers Zimbra's reading then (test_opcode_35_... below covers them).
UNAMBIGUOUS = [c for c in ALL if c not in (o.CreateLink, o.CreateFileSharedWithMe)]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.one_of(*(op_strategy(c) for c in UNAMBIGUOUS)), min_size=1, max_size=8),
       seq=st.integers(0, 2**40))
def test_any_mix_of_records_scans_back(ops: list[o.Op], seq: int) -> None:
    """Records of every kind back to back: each comes back as the class that wrote it."""
    recs = [Record(op, 1_700_000_000_000 + i, 7, i + 1, i % 3 + 1, i) for i, op in enumerate(ops)]
    raw = FileHeader(sequence=seq, server_id="s", create_time=1).encode()
    raw += b"".join(r.encode() for r in recs)
    sc = scan_bytes(raw)
    got = list(sc)
    assert sc.problems == []
    assert [type(r.op) for r in got] == [type(r.op) for r in recs]
    assert got == recs
    for r in got:
        assert op_text(r).startswith(f"txn 7.{r.txn_counter} [{r.op.printed_name}] ver=1.42")
        j = record_json(r)
        assert j["op"] == r.op.NAME and j["opcode"] == r.opcode
        json.dumps(j)


# --------------------------------------------------------------------------------------------
# MailboxOperation, opcode by opcode: its name and the class Zimbra's reader instantiates


MAILBOX_OPERATION: dict[int, tuple[str, str | None]] = {
    1: ("Checkpoint", "Checkpoint"), 3: ("CommitTxn", "CommitTxn"), 4: ("AbortTxn", "AbortTxn"),
    6: ("Rollover", "Rollover"), 7: ("CreateMailbox", "CreateMailbox"),
    8: ("DeleteMailbox", "DeleteMailbox"), 9: ("BackupMailbox", "BackupMailbox"),
    10: ("ReindexMailbox", "ReindexMailbox"), 11: ("PurgeOldMessages", "PurgeOldMessages"),
    12: ("CreateSavedSearch", "CreateSavedSearch"),
    13: ("ModifySavedSearch", "ModifySavedSearch"), 14: ("CreateTag", "CreateTag"),
    15: ("RenameTag", "RenameTag"), 16: ("ColorItem", "ColorItem"),
    17: ("IndexItem", "IndexItem"), 18: ("AlterItemTag", "AlterItemTag"),
    19: ("SetItemTags", "SetItemTags"), 20: ("MoveItem", "MoveItem"),
    21: ("DeleteItem", "DeleteItem"), 22: ("CopyItem", "CopyItem"),
    23: ("CreateFolderPath", "CreateFolderPath"), 24: ("RenameFolderPath", "RenameFolderPath"),
    25: ("EmptyFolder", "EmptyFolder"), 26: ("StoreIncomingBlob", "StoreIncomingBlob"),
    27: ("CreateMessage", "CreateMessage"), 28: ("SaveDraft", "SaveDraft"),
    29: ("SetImapUid", "SetImapUid"), 30: ("CreateContact", "CreateContact"),
    31: ("ModifyContact", "ModifyContact"), 32: ("CreateNote", "CreateNote"),
    33: ("EditNote", "EditNote"), 34: ("RepositionNote", "RepositionNote"),
    35: ("CreateMountpoint", "CreateMountpoint"), 36: ("ModifyInviteFlag", "ModifyInviteFlag"),
    37: ("ModifyInvitePartStat", "ModifyInvitePartStat"), 38: ("CreateVolume", "CreateVolume"),
    39: ("ModifyVolume", "ModifyVolume"), 40: ("DeleteVolume", "DeleteVolume"),
    41: ("SetCurrentVolume", "SetCurrentVolume"), 42: ("MoveBlobs", None),
    43: ("CreateInvite", "CreateInvite"), 44: ("SetCalendarItem", "SetCalendarItem"),
    45: ("TrackSync", "TrackSync"), 46: ("SetConfig", "SetConfig"),
    47: ("GrantAccess", "GrantAccess"), 48: ("RevokeAccess", "RevokeAccess"),
    49: ("SetFolderUrl", "SetFolderUrl"), 50: ("SetSubscriptionData", "SetSubscriptionData"),
    51: ("SetPermissions", "SetPermissions"), 52: ("SaveWiki", "SaveWiki"),
    53: ("SaveDocument", "SaveDocument"), 54: ("AddDocumentRevision", "AddDocumentRevision"),
    55: ("TrackImap", "TrackImap"), 56: ("ImapCopyItem", "ImapCopyItem"),
    57: ("ICalReply", "ICalReply"), 58: ("CreateFolder", "CreateFolder"),
    59: ("RenameFolder", "RenameFolder"),
    60: ("FixCalendarItemTimeZone", "FixCalendarItemTimeZone"), 61: ("RenameItem", "RenameItem"),
    62: ("RenameItemPath", "RenameItemPath"), 63: ("CreateChat", "CreateChat"),
    64: ("SaveChat", "SaveChat"), 65: ("PurgeImapDeleted", "PurgeImapDeleted"),
    66: ("DismissCalendarItemAlarm", "DismissCalendarItemAlarm"),
    67: ("FixCalendarItemEndTime", "FixCalendarItemEndTime"),
    68: ("IndexDeferredItems", "IndexDeferredItems"), 69: ("RenameMailbox", "RenameMailbox"),
    70: ("FixCalendarItemTZ", "FixCalendarItemTZ"), 71: ("DateItem", "DateItem"),
    72: ("SetFolderDefaultView", "SetFolderDefaultView"), 73: ("SetCustomData", "SetCustomData"),
    74: ("LockItem", "LockItem"), 75: ("UnlockItem", "UnlockItem"),
    76: ("PurgeRevision", "PurgeRevision"),
    77: ("DeleteItemFromDumpster", "DeleteItemFromDumpster"),
    78: ("FixCalendarItemPriority", "FixCalendarItemPriority"), 79: ("RecoverItem", "RecoverItem"),
    80: ("EnableSharedReminder", "EnableSharedReminder"), 81: ("Download", None),
    82: ("Preview", None), 83: ("SnoozeCalendarItemAlarm", "SnoozeCalendarItemAlarm"),
    84: ("CreateComment", "CreateComment"), 85: ("CreateLink", "CreateLink"),
    86: ("SetRetentionPolicy", "SetRetentionPolicy"), 87: ("Watch", None), 88: ("Unwatch", None),
    89: ("RefreshMountpoint", "RefreshMountpoint"),
    # No class of these names: written by RevokeAccess (due to expiry), SetActiveSyncDisabled.
    90: ("ExpireAccess", "RevokeAccess"), 91: ("SetDisableActiveSync", "SetActiveSyncDisabled"),
    92: ("SetWebOfflineSyncDays", "SetWebOfflineSyncDays"), 93: ("DeleteConfig", "DeleteConfig"),
    94: ("View", None), 95: ("SetPop3Uid", "SetPop3Uid"),
}


@pytest.mark.parametrize("opcode", sorted(MAILBOX_OPERATION))
def test_every_mailbox_operation_opcode(opcode: int) -> None:
    name, zimbra_class = MAILBOX_OPERATION[opcode]
    assert o.op_name(opcode) == name
    head = struct.pack(">6shhiqiiiiq", b"ZMREDO", 1, 42, opcode, 0, -1, 0, 1, 1, 5)
    if zimbra_class is None:
        assert opcode not in REGISTRY
        with pytest.raises(UnknownOpcode, match=f"{name}: Zimbra has no op class"):
            decode_at(head + b"\x00" * 64, 0)
        return
    cls = REGISTRY[opcode]
    assert (cls.CLASS or cls.__name__) == zimbra_class
    # A record of the class's default values decodes under this opcode.
    rec = Record(cls(**_required(cls)), 0, 1, 1, 5, opcode=opcode)
    back, end = decode_at(rec.encode(), 0)
    assert type(back.op) is cls and back.opcode == opcode and end == len(rec.encode())


def test_registry_covers_every_class() -> None:
    classes = set(REGISTRY.values()) | {o.CreateFileSharedWithMe}
    assert classes == set(ALL)
    assert set(REGISTRY) == {c for c, (_, k) in MAILBOX_OPERATION.items() if k is not None}


def _required(cls: type[o.Op]) -> dict[str, object]:
    return {n: (1 if isinstance(fl.wire, layout.Prim) else "x")
            for n, fl in cls.FIELDS.items() if fl.required}


# --------------------------------------------------------------------------------------------
# Records read specially: newer versions, unknown opcodes, opcode 35, refused values


def test_a_record_of_a_newer_version_or_unknown_opcode_is_refused() -> None:
    with pytest.raises(Exception, match="newer"):
        decode_at(record(14, b"", (1, 43)), 0)
    with pytest.raises(UnknownOpcode, match="unknown opcode 200$"):
        decode_at(record(200, b""), 0)


def test_opcode_35_picks_the_layout_that_ends_at_a_record() -> None:
    """CreateLink and CreateFileSharedWithMe both log opcode 35; so does CreateMountpoint.
    Where the record's bytes do not fit CreateMountpoint's layout, the one that ends at the next
    record is taken; where they fit both, Zimbra's reading (CreateMountpoint) wins."""
    link = Record(o.CreateLink(412, "u", "Shared", "acct", 9, 1), 1, 2, 3, 5, 10)
    share = Record(o.CreateFileSharedWithMe(413, "u2", "f.pdf", "acct", 10, "ru", 16, "Ann",
                                            "application/pdf", "r"), 1, 2, 4, 5, 11)
    mount = Record(o.CreateMountpoint(414, "u3", "M", "acct", 11, "ru3", 1, 5, 0, 0, True),
                   1, 2, 5, 5, 12)
    tail = Record(o.CreateTag(415, "t"), 1, 2, 6, 5, 13)
    raw = b"".join(r.encode() for r in (link, share, mount, tail))
    assert {raw[10:14], raw[len(link.encode()) + 10:len(link.encode()) + 14]} == {i32(35)}
    got = list(scan_bytes(FileHeader(sequence=0, server_id="s", create_time=0).encode() + raw))
    assert [type(r.op) for r in got] == [o.CreateLink, o.CreateFileSharedWithMe,
                                         o.CreateMountpoint, o.CreateTag]
    assert [r.op.printed_name for r in got[:3]] == ["CreateMountpoint"] * 3
    assert got == [link, share, mount, tail]
    # Three UTFs of 14 bytes in all are CreateMountpoint's view, flags, color and reminder.
    odd = Record(o.CreateFileSharedWithMe(1, None, "n", None, 2, None, 3, None, None, "a\x01"),
                 1, 2, 7, 5, 14)
    (back,) = list(scan_bytes(FileHeader(sequence=0, server_id="s", create_time=0).encode()
                              + odd.encode()))
    assert type(back.op) is o.CreateMountpoint and back.encode() == odd.encode()


def test_a_wrong_retention_type_is_refused_as_zimbra_does() -> None:
    with pytest.raises(DecodeError, match="Unexpected item type: 5"):
        decode_at(record(86, i8(5) + i32(2) + i32(0) + i32(0)), 0)


def test_revoke_access_due_to_expiry_prints_as_expire_access() -> None:
    rec, _ = decode_at(record(48, i32(2) + utf("g") + z(True)), 0)
    assert op_text(rec).startswith("txn 1700000000.4 [ExpireAccess] ver=1.42")


def test_empty_printable_data_still_adds_its_separator() -> None:
    """RedoableOp.toString appends ", " + data whenever data is not null."""
    rec, _ = decode_at(record(29, i32(0)), 0)
    assert op_text(rec).endswith(", mailbox=5, ")
    rec2, _ = decode_at(record(11, b""), 0)
    assert op_text(rec2).endswith(", mailbox=5")


def test_dump_skips_a_classless_opcode_by_marker_and_reads_on(tmp_path: Path) -> None:
    """MoveBlobs (42) names no class: its record is skipped to the next marker with a warning,
    and every Zimbra op around it is read and printed."""
    before = Record(o.SetImapUid(((259, 7),)), 1, 2, 1, 5, 3)
    after = Record(o.DateItem(259, o.TYPE_MESSAGE, 42), 1, 2, 2, 5, 4)
    log = tmp_path / "redo.log"
    log.write_bytes(FileHeader(sequence=0, server_id="s", create_time=0).encode()
                    + before.encode() + record(42, i32(1) + i32(2)) + after.encode())
    out = io.StringIO()
    res = dump([str(log)], DumpOptions(no_offset=True), out)
    text = out.getvalue()
    assert "[SetImapUid] ver=1.42, tstamp=1, change=3, mailbox=5, 259=7" in text
    assert "unknown opcode 42 (MoveBlobs: Zimbra has no op class for it)" in text
    assert "bad bytes will be skipped" in text
    assert "[DateItem] ver=1.42, tstamp=1, change=4, mailbox=5, id=259, date=42" in text
    assert res.exit_code == 1 and res.records == 2
