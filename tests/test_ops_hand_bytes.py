"""Records built by hand, field by field as each op's `serializeData` in Zimbra's source writes
them, decoded by standby's codec: the values, the text Zimbra's `toString` prints, and the same
bytes when encoded again.

Every op class of the registry has at least one record here; the older sides of its
`getVersion().atLeast(...)` gates follow, most common ops first. `NOT_HAND_BUILT` lists each
(op, version) point `versions_of` finds with no record yet, and a test holds it to exactly that,
so the list only shrinks: adding a record means removing its point, and a new op or gate means
a new record (or an honest entry here).
"""

from __future__ import annotations

import pytest

from standby.redolog import ops
from standby.redolog.codec import DecodeError
from standby.redolog.record import decode_at
from tests.op_bytes import (
    MESSAGE_VERSIONS, META, MSG, PRE_1_0, VCARD, comment_bytes, copy_bytes,
    copy_text, document_bytes, document_fields, document_text, folder_bytes, folder_path_bytes,
    folder_path_text, folder_text, grant_bytes, grant_text, i8, i16, i32, i64, imap_copy_bytes,
    invite_bytes, invite_text, item_path_bytes, link_bytes, message_bytes, message_fields,
    message_text, mountpoint_bytes, mountpoint_text, record, reindex_bytes, search_bytes,
    search_text, set_calendar_item_bytes, set_calendar_item_text, utf, utfs, uuid, z,
)
from tests.op_strategies import versions_of

Example = tuple[str, int, tuple[int, int], bytes, dict[str, object], str | None]

# (id, opcode, version, payload, expected fields, expected getPrintableData)
EXAMPLES: list[Example] = [
    # bool, int, UTF (null and not), int32 -1 marker, optional UTF (constraint), int list
    ("DeleteItem", 21, (1, 42), i32(-1) + i8(5) + z(True) + utf("tjs") + i32(2) + i32(300)
     + i32(301), {"type": 5, "ids": (300, 301), "constraint": "tjs"},
     "ids=[300, 301], type=message, constraint=tjs"),
    # legacy single id (the leading int > 0), no uidnext before 1.16
    ("MoveItem<1.16", 20, (1, 15), i32(300) + i8(5) + i32(3) + z(False),
     {"ids": (300,), "dest_id": 3, "uidnext": -1}, "id=[300], type=message, dest=3"),
    ("MoveItem", 20, (1, 42), i32(-1) + i8(5) + i32(257) + z(False) + i32(1) + i32(300)
     + i32(12), {"ids": (300,), "dest_id": 257, "uidnext": 12},
     "id=[300], type=message, dest=257, uidnext=12"),
    # long color; byte color before 1.27
    ("CreateTag", 14, (1, 42), i32(258) + utf("urgent") + i64(0x01FF0000),
     {"tag_id": 258, "name": "urgent", "color": 0x01FF0000},
     "id=258, name=urgent, color=33488896"),
    ("CreateTag<1.27", 14, (1, 26), i32(258) + utf("x") + i8(4), {"color": 4},
     "id=258, name=x, color=4"),
    ("ColorItem", 16, (1, 42), i32(-1) + i8(5) + i64(7) + i32(1) + i32(300),
     {"ids": (300,), "color": 7}, "id=[300], color=7"),
    ("ColorItem<1.27", 16, (1, 20), i32(-1) + i8(5) + i8(3) + i32(1) + i32(301),
     {"ids": (301,), "color": 3}, "id=[301], color=3"),
    # UTF array; a bitmask instead before 1.33
    ("SetItemTags", 19, (1, 42), i32(-1) + i8(5) + i32(0x20) + utfs(["a,b", "c"]) + z(False)
     + i32(1) + i32(300), {"tags": ("a,b", "c"), "flags": 32},
     "ids=[300], type=message, flags=[32], tags=[a\\,b,c]"),
    ("SetItemTags<1.33", 19, (1, 32), i32(-1) + i8(5) + i32(0) + i64(6) + z(False) + i32(0),
     {"tags": None, "tag_bits": 6}, "ids=[], type=message, flags=[0], tags=[]"),
    # a tag name; a (flag) tag id before 1.33
    ("AlterItemTag", 18, (1, 42), i32(-1) + i8(5) + utf("\\Flagged") + z(True) + z(False)
     + i32(1) + i32(300), {"tag": "\\Flagged", "tagged": True},
     "ids=[300], type=message, tag=\\Flagged, tagged=true"),
    ("AlterItemTag<1.33", 18, (1, 30), i32(-1) + i8(5) + i32(-10) + z(True) + z(False)
     + i32(0), {"tag": "\\Unread"}, "ids=[], type=message, tag=-10, tagged=true"),
    ("IndexItem", 17, (1, 42), i32(300) + i8(5) + z(True),
     {"item_id": 300, "delete_first": True}, "id=300, type=message"),
    ("IndexItem<1.8", 17, (1, 7), i32(300) + i8(5), {"item_id": 300, "delete_first": False},
     "id=300, type=message"),
    # optional long (date), the CustomMetadata pair, a Metadata string
    ("CreateFolder", 58, (1, 42), utf("F") + i32(1) + i8(0) + i8(5) + i32(0) + i64(0)
     + utf("") + i32(257) + utf("u-1") + z(True) + i64(1_700_000_000_123) + utf("zimbra")
     + utf(META), {"date": 1_700_000_000_123, "custom_key": "zimbra"},
     "name=F, parent=1, attrs=0, view=message, flags=0, color=0, url=, id=257, uuid=u-1, "
     "date=1700000000123, custom=zimbra: {a=1, b=xy}"),
    # 1.18: no attrs (0), a byte color, no uuid, no date, no custom metadata
    ("CreateFolder<1.19", 58, (1, 18), utf("F") + i32(1) + i8(5) + i32(0) + i8(3) + utf("")
     + i32(257), {"attrs": 0, "color": 3, "uuid": None, "date": None, "custom_key": None},
     "name=F, parent=1, attrs=0, view=message, flags=0, color=3, url=, id=257, uuid=null, "
     "date=null, custom=null"),
    # 1.39: the date in seconds; no custom metadata yet
    ("CreateFolder=1.39", 58, (1, 39), utf("F") + i32(1) + i8(0) + i8(5) + i32(0) + i64(0)
     + utf("") + i32(257) + utf(None) + z(True) + i32(1_700_000_000),
     {"date": 1_700_000_000_000, "custom_key": None, "uuid": None},
     "name=F, parent=1, attrs=0, view=message, flags=0, color=0, url=, id=257, uuid=null, "
     "date=1700000000000, custom=null"),
    # blob after the payload; int msgSize before 1.42; link bodies
    ("CreateMessage", 27, (1, 42), utf("bob@x") + i64(5) + z(False) + utf("dig") + i64(len(MSG))
     + i32(259) + i32(2) + i32(-1) + i32(-1) + i32(0) + i32(0) + utf("NE") + i32(0x200)
     + z(False) + utfs(None) + utf(None) + i16(-1) + utf(None) + i8(1) + i32(len(MSG)) + MSG,
     {"msg_id": 259, "data": MSG, "msg_size": len(MSG)},
     'id=259, rcpt=bob@x, rcvDate=5, shared=false, blobDigest="dig", size=18, dataLen=18, '
     "folder=2, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=false, flags=512, "
     "tags=[], bodyType=1, path=null"),
    ("CreateMessage<1.42", 27, (1, 41), utf("bob@x") + i64(5) + z(True) + utf("dig") + i32(18)
     + i32(259) + i32(2) + i32(-1) + i32(-1) + i32(0) + i32(0) + utf("NE") + i32(0)
     + z(False) + utfs(["t"]) + utf("/in/1") + i16(-1) + utf(None) + i8(2) + i16(-1),
     {"msg_size": 18, "data": None, "body_type": 2, "tags": ("t",)},
     'id=259, rcpt=bob@x, rcvDate=5, shared=true, blobDigest="dig", size=18, folder=2, '
     "conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=false, flags=0, tags=[t], "
     "bodyType=2, linkSourcePath=/in/1"),
    # 1.0, before every branch of CreateMessage's serializeData: no received date (the op's
    # time), no first-message id (the constructor's UNKNOWN_ID, 0), merged ids or part-stat
    # (their defaults), int size, tag ids
    # as one string (kept as the tags, not printed: Zimbra prints mTags), no custom metadata
    ("CreateMessage=1.0", 27, (1, 0), utf("bob@x") + z(False) + utf("dig") + i32(len(MSG))
     + i32(259) + i32(2) + i32(-1) + i32(0) + i32(0) + z(False) + utf("3,4") + utf("/p")
     + i16(-1) + i8(1) + i32(len(MSG)) + MSG,
     {"rcv_date": 1_700_000_000_000, "msg_size": len(MSG), "conv_first_msg_id": 0,
      "part_stat": "NE", "tags": ("3", "4"), "data": MSG},
     'id=259, rcpt=bob@x, rcvDate=1700000000000, shared=false, blobDigest="dig", size=18, '
     "dataLen=18, folder=2, conv=-1, convFirstMsgId=0, calItemPartStat=NE, noICal=false, "
     "flags=0, tags=[], bodyType=1, path=/p"),
    # SaveDraft: the imap id, then CreateMessage's payload at the record's version
    ("SaveDraft=1.0", 28, (1, 0), i32(45) + utf(":API:") + z(False) + utf("d") + i32(0)
     + i32(260) + i32(-1) + i32(-1) + i32(0) + i32(0x40) + z(True) + utf(None) + utf(None)
     + i16(-1) + i8(1) + i32(0), {"imap_id": 45, "msg_id": 260, "msg_size": 0},
     'id=260, rcpt=:API:, rcvDate=1700000000000, shared=false, blobDigest="d", size=0, '
     "dataLen=0, folder=-1, conv=-1, convFirstMsgId=0, calItemPartStat=NE, noICal=true, "
     "flags=64, tags=[], bodyType=1, path=null,imap=45"),
    ("SaveDraft", 28, (1, 42), i32(44) + utf(":API:") + i64(5) + z(False) + utf("d") + i64(0)
     + i32(260) + i32(6) + i32(-1) + i32(-1) + i32(0) + i32(0) + utf("NE") + i32(0x40)
     + z(True) + utfs([]) + utf(None) + i16(-1) + utf(None) + i8(1) + i32(0),
     {"imap_id": 44, "msg_id": 260, "data": b""},
     'id=260, rcpt=:API:, rcvDate=5, shared=false, blobDigest="d", size=0, dataLen=0, '
     "folder=6, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=true, flags=64, "
     "tags=[], bodyType=1, path=null,imap=44"),
    # SaveDocument: its own fields (description since 1.29, enabled since 1.31, uuid since
    # 1.37), then CreateMessage's payload
    ("SaveDocument", 53, (1, 42), utf("f.pdf") + utf("application/pdf") + utf("Ann") + i8(8)
     + utf("d") + z(False) + utf("u9") + utf(":API:") + i64(5) + z(False) + utf("dg") + i64(2)
     + i32(270) + i32(16) + i32(-1) + i32(-1) + i32(0) + i32(0) + utf("NE") + i32(0) + z(True)
     + utfs([]) + utf(None) + i16(-1) + utf(None) + i8(1) + i32(2) + b"hi",
     {"filename": "f.pdf", "description": "d", "desc_enabled": False, "uuid": "u9",
      "msg_id": 270, "data": b"hi"},
     'uuid=u9, id=270, rcpt=:API:, rcvDate=5, shared=false, blobDigest="dg", size=2, '
     "dataLen=2, folder=16, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=true, "
     "flags=0, tags=[], bodyType=1, path=null"),
    ("SaveDocument=1.0", 53, (1, 0), utf("f") + utf("text/plain") + utf("Ann") + i8(8)
     + utf(":API:") + z(False) + utf("dg") + i32(2) + i32(271) + i32(16) + i32(-1) + i32(0)
     + i32(0) + z(True) + utf(None) + utf(None) + i16(-1) + i8(1) + i32(2) + b"hi",
     {"description": None, "desc_enabled": True, "uuid": None, "rcv_date": 1_700_000_000_000,
      "msg_size": 2},
     'uuid=null, id=271, rcpt=:API:, rcvDate=1700000000000, shared=false, blobDigest="dg", '
     "size=2, dataLen=2, folder=16, conv=-1, convFirstMsgId=0, calItemPartStat=NE, "
     "noICal=true, flags=0, tags=[], bodyType=1, path=null"),
    # long mailbox ids; int ids before 1.26
    ("StoreIncomingBlob", 26, (1, 42), i32(2) + i64(1) + i64(2) + utf("dig") + utf("/in/2")
     + i16(-1) + i32(4) + i32(4) + b"abcd", {"mailbox_ids": (1, 2), "data": b"abcd"},
     'blobDigest="dig", size=4, dataLen=4, path=/in/2, mbox=[1, 2]'),
    ("StoreIncomingBlob<1.26", 26, (1, 25), i32(1) + i32(7) + utf("dig") + utf("/in/3")
     + i16(-1) + i32(0) + i32(0), {"mailbox_ids": (7,)},
     'blobDigest="dig", size=0, dataLen=0, path=/in/3, mbox=[7]'),
    # int16 count of (UTF, UTF); contact blob since 1.14
    ("CreateContact", 30, (1, 42), i32(261) + i32(7) + i16(-1) + utfs(["b"]) + i16(2)
     + utf("email") + utf("a@x") + utf("firstName") + utf("Ann") + i32(len(VCARD)) + VCARD,
     {"attrs": (("email", "a@x"), ("firstName", "Ann")), "tags": ("b",), "data": VCARD},
     'folder=7, tags="b", attrs={\n    firstName: Ann\n    email: a@x\n}'),
    ("ModifyContact<1.14", 31, (1, 13), i32(261) + z(True) + i16(1) + utf("email")
     + utf("b@x"), {"attrs": (("email", "b@x"),), "data": b""},
     "id=261, attrs={\n    email: b@x\n}"),
    # a map with a count (HashMap order when printed), uuids since 1.37
    ("CopyItem", 22, (1, 42), i32(-1) + i32(-1) + i8(5) + i32(2) + i16(-1) + i32(2)
     + i32(18) + i32(400) + utf("u4") + i32(1) + i32(401) + utf("u5") + z(False),
     {"entries": ((18, 400, "u4"), (1, 401, "u5")), "dest_folder_id": 2},
     "type=message, destFolder=2, [srcId, destId, destUuid]=[1,401,u5][18,400,u4]"),
    # 17 and 1 share a bucket of the 16: insertion order
    ("CopyItem same bucket", 22, (1, 42), i32(-1) + i32(-1) + i8(5) + i32(2) + i16(-1)
     + i32(2) + i32(17) + i32(400) + utf("u4") + i32(1) + i32(401) + utf("u5") + z(True),
     {"from_dumpster": True},
     "type=message, destFolder=2, [srcId, destId, destUuid]=[17,400,u4][1,401,u5], "
     "fromDumpster=true"),
    ("CopyItem<1.30", 22, (1, 29), i32(300) + i32(402) + i8(5) + i32(2) + i16(-1),
     {"entries": ((300, 402, None),), "from_dumpster": False},
     "type=message, destFolder=2, [srcId, destId, destUuid]=[300,402,null]"),
    ("SetImapUid", 29, (1, 42), i32(2) + i32(34) + i32(9) + i32(1) + i32(8),
     {"uids": ((34, 9), (1, 8))}, "1=8, 34=9"),
    ("RenameItem", 61, (1, 42), i32(300) + i32(2) + utf("n") + i8(5) + z(True) + i64(99),
     {"date": 99}, "id=300, type=message, name=n,parent=2, date=99"),
    ("RenameItem<1.40", 61, (1, 39), i32(300) + i32(2) + utf("n") + i8(5), {"date": None},
     "id=300, type=message, name=n,parent=2, date=null"),
    ("DateItem", 71, (1, 42), i32(300) + i8(5) + i64(1_600_000_000_000),
     {"date": 1_600_000_000_000}, "id=300, date=1600000000000"),
    ("SetCustomData", 73, (1, 42), i32(300) + i8(5) + utf(" s ") + utf(META),
     {"custom_key": " s ", "custom_value": META}, "id=300, data=s: {a=1, b=xy}"),
    ("SetConfig", 46, (1, 42), utf("sec") + utf(META), {"section": "sec", "config": META},
     f"section=sec, config={META}"),
    ("SetConfig empty", 46, (1, 42), utf("sec") + utf(""), {"config": ""},
     "section=sec, config=null"),
    ("DeleteConfig", 93, (1, 42), utf("sec"), {"section": "sec"}, "sectionPart=sec"),
    ("DeleteItemFromDumpster", 77, (1, 42), i32(2) + i32(5) + i32(6), {"ids": (5, 6)},
     "ids=[5, 6]"),
    ("PurgeOldMessages", 11, (1, 42), b"", {}, None),
    # saved searches: no uuid before 1.37, no flags before 1.28
    ("CreateSavedSearch", 12, (1, 42), i32(262) + utf("u") + utf("S") + utf("in:inbox")
     + utf("message") + utf("dateDesc") + i32(1) + i32(0) + i64(0), {"query": "in:inbox"},
     "id=262, uuid=u, name=S, query=in:inbox, types=message, sort=dateDesc, flags=0, "
     "color=0"),
    ("CreateSavedSearch<1.28", 12, (1, 27), i32(262) + utf("S") + utf("q") + utf("")
     + utf("") + i32(1) + i64(2), {"flags": 0, "color": 2, "uuid": None},
     "id=262, uuid=null, name=S, query=q, types=, sort=, flags=0, color=2"),
    ("ModifySavedSearch", 13, (1, 42), i32(262) + utf("q2") + utf("") + utf(""),
     {"query": "q2"}, "id=262, query=q2, types=, sort="),
    # shorts (volumes), Guava's toStringHelper
    ("SetCurrentVolume", 41, (1, 42), i16(1) + i16(3), {"type": 1, "volume_id": 3},
     "type=1, id=3"),
    ("CreateVolume", 38, (1, 42), i16(3) + i16(1) + utf("v3") + utf("/v") + i16(8) + i16(12)
     + i16(8) + i16(12) + z(True) + i16(1) + utf(None), {"compress_blobs": True},
     "CreateVolume{id=3, type=1, name=v3, path=/v, mboxGroupBits=8, mboxBit=12, "
     "fileGroupBits=8, fileBits=12, compressBlobs=true, compressionThreshold=0, storeType=1, "
     "storeManagerClass=null}"),
    # byte array inside the payload, a constant true, Metadata strings printed re-encoded
    ("CreateInvite", 43, (1, 42), i32(500) + utf("AC") + i32(10) + i16(-1) + z(True) + i32(2)
     + b"hi" + utf("d1:ai1ee") + utf(META) + z(False) + z(True) + z(False),
     {"data": b"hi", "discard_invites": True},
     "calItemId=500, calItemPartStat=AC, folder=10, dataLen=2, localTZ=d1:ai1e1:vi10ee, "
     f"inv={META}, preserveExistingAlarms=false, discardExistingInvites=true, "
     "addRevision=false"),
    # optional struct (recurrence id)
    ("ModifyInvitePartStat", 37, (1, 42), i32(500) + z(True) + i32(1) + utf("20240101")
     + utf("Ann") + utf("a@x") + utf("IND") + utf("REQ") + utf("AC") + z(True) + i32(2)
     + i64(3), {"recur_id": (1, "20240101")},
     "calItemId=500, recurIdDt=20240101, recurIdRange=1, cn=Ann, address=a@x, cutype=IND, "
     "role=REQ, part=AC, rsvp=true, seqNo=2, dtStamp=3"),
    ("GrantAccess<1.2", 47, (1, 1), i32(2) + utf("g") + i8(1) + i16(0x13) + z(True),
     {"password": None, "expiry": 0}, "id=2, grantee=g, type=1, rights=rwx, args=null, "
     "expiry=0"),
    ("RevokeAccess<1.39", 48, (1, 38), i32(2) + utf("g"), {"due_to_expiry": False},
     "id=2, grantee=g"),
    ("ExpireAccess", 90, (1, 42), i32(2) + utf("g") + z(True), {"due_to_expiry": True},
     "id=2, grantee=g, dueToExpiry=true"),
    ("SetDisableActiveSync", 91, (1, 42), i32(2) + z(True), {"disabled": True},
     "id=2, disableActiveSync=TRUE"),
    ("ReindexMailbox<1.9", 10, (1, 8), b"", {"types": None, "item_ids": None}, None),
    ("ReindexMailbox", 10, (1, 42), i32(4) + z(True) + i32(2) + i8(6) + i8(5) + z(False)
     + z(True), {"types": (6, 5), "skip_delete": True},
     "Completion=4 SkipDelete=TRUE TYPES[[message, contact]]"),
    ("IndexDeferredItems", 68, (1, 42), i32(2) + i32(7) + i32(8) + i8(5) + i8(6),
     {"items": ((7, 5), (8, 6))}, "7,8,"),
    ("SetImapUid empty", 29, (1, 42), i32(0), {"uids": ()}, ""),
    ("SetRetentionPolicy", 86, (1, 42), i8(1) + i32(2) + i32(1) + utf("p1") + utf(None)
     + i32(1) + utf(None) + utf("30d"), {"keep": (("p1", None),), "purge": ((None, "30d"),)},
     "retentionPolicy=RetentionPolicy{keep=[Policy{type=system, id=p1, name=null, "
     "lifetimeString=null}], purge=[Policy{type=user, id=null, name=null, "
     "lifetimeString=30d}]}"),
    ("CreateNote<1.27", 32, (1, 26), i32(9) + i32(1) + i16(-1) + utf("hi") + i8(2) + i32(1)
     + i32(2) + i32(3) + i32(4), {"color": 2, "height": 4},
     "id=9, folder=1, content=hi, color=2, bounds=(1,2,3,4)"),
    ("RenameMailbox<1.25", 69, (1, 24), utf("new@x"), {"old_name": None},
     "newName=new@x oldName=null"),
    ("BackupMailbox", 9, (1, 42), i64(1) + i64(2) + i64(3) + utf("L"), {"label": "L"},
     'backupSetTstamp=1, startTime=2, endTime=3label="L"'),

    # ---- Control records
    # TransactionId.serialize: int time, int counter; a LinkedHashSet of them
    ("Checkpoint", 1, (1, 42), i32(2) + i32(1_700_000_000) + i32(3) + i32(1_700_000_001)
     + i32(4), {"txns": ((1_700_000_000, 3), (1_700_000_001, 4))},
     "2 active txns: 1700000000.3, 1700000001.4"),
    ("Checkpoint empty", 1, (1, 42), i32(0), {"txns": ()}, None),
    # the set keeps one of a repeated transaction (and writes it once)
    ("Checkpoint repeated txn", 1, (1, 42), i32(2) + i32(7) + i32(1) + i32(7) + i32(1),
     {"txns": ((7, 1),)}, "1 active txns: 7.1"),
    ("CommitTxn", 3, (1, 42), i32(27), {"txn_opcode": 27}, "txnType=CreateMessage"),
    ("AbortTxn", 4, (1, 42), i32(30), {"txn_opcode": 30}, "txnType=CreateContact"),
    ("Rollover", 6, (1, 42), i64(12) + utf("redo-12.log"),
     {"seq": 12, "filename": "redo-12.log"}, "seq=12, filename=redo-12.log"),
    # ---- Mailboxes
    ("CreateMailbox", 7, (1, 42), utf("acct-1"), {"account_id": "acct-1"},
     "account=acct-1"),
    ("CreateMailbox null account", 7, (1, 42), utf(None), {"account_id": None}, "account="),
    ("DeleteMailbox", 8, (1, 42), b"", {}, None),
    ("TrackSync", 45, (1, 42), b"", {}, None),
    ("TrackImap", 55, (1, 42), b"", {}, None),
    # ---- Folders
    # CreateFolderPath: long color, optional long date, CustomMetadata pair, (id, uuid) list
    ("CreateFolderPath", 23, (1, 42), utf("/a/b") + i8(0) + i8(5) + i32(0) + i64(3) + utf("")
     + z(True) + i64(99) + utf("k") + utf(META) + i32(2) + i32(300) + utf("u1") + i32(301)
     + utf("u2"), {"path": "/a/b", "color": 3, "date": 99, "custom_key": "k",
                   "folders": ((300, "u1"), (301, "u2"))},
     "name=/a/b, attrs=0, view=message, flags=0, color=3, url=, date=99, "
     "custom=k: {a=1, b=xy}, folderIdsAndUuids=[300 (u1), 301 (u2)]"),
    ("RenameFolder", 59, (1, 42), i32(257) + i32(1) + utf("New"),
     {"folder_id": 257, "parent_id": 1, "name": "New"},
     "id=257, type=folder, name=New,parent=1, date=null"),
    ("RenameFolderPath", 24, (1, 42), i32(257) + utf("/x/y") + i32(0),
     {"folder_id": 257, "path": "/x/y", "parent_ids": ()}, "id=257, type=folder, path=/x/y"),
    # Zimbra's RenameFolderPath reads no uuids, so its toString throws on a parent list
    # (RenameItemPath's loop); we print the uuids as null.
    ("RenameFolderPath parents", 24, (1, 42), i32(257) + utf("/x/y") + i32(2) + i32(1)
     + i32(300), {"parent_ids": (1, 300)},
     "id=257, type=folder, path=/x/y, destParentIdsAndUuids=[1 (null), 300 (null)]"),
    ("EmptyFolder", 25, (1, 42), i32(257) + z(True), {"folder_id": 257, "subfolders": True},
     "id=257, subfolders=true"),
    ("SetFolderDefaultView", 72, (1, 42), i32(257) + i8(6), {"folder_id": 257, "view": 6},
     "id=257, view=contact"),
    ("SetFolderUrl", 49, (1, 42), i32(257) + utf("http://x/f.ics"),
     {"url": "http://x/f.ics"}, "id=257, url=http://x/f.ics"),
    ("SetSubscriptionData", 50, (1, 42), i32(257) + i64(1_700_000_000_000) + utf("g-1"),
     {"last_item_date": 1_700_000_000_000, "last_item_guid": "g-1"},
     "id=257, date=1700000000000, guid=g-1"),
    ("SetWebOfflineSyncDays", 92, (1, 42), i32(257) + i32(30), {"days": 30},
     "id=257, webofflinesyncdays=30"),
    ("SetPermissions", 51, (1, 42), i32(257) + utf("d1:gi1ee"), {"acl": "d1:gi1ee"},
     "id=257, acl=d1:gi1ee"),
    # RenameTag: RenameItem's text with the type and parent its constructor sets (tag, 8)
    ("RenameTag", 15, (1, 42), i32(258) + utf("later"), {"tag_id": 258, "name": "later"},
     "id=258, type=tag, name=later,parent=8, date=null"),
    # ---- Mountpoints and links
    ("CreateMountpoint", 35, (1, 42), i32(414) + utf("u3") + utf("M") + utf("acct") + i32(11)
     + utf("ru3") + i32(1) + i8(5) + i32(0) + i64(0) + z(True),
     {"mountpoint_id": 414, "uuid": "u3", "remote_uuid": "ru3", "reminder": True},
     "id=414, uuid=u3, name=M, folder=1, owner=acct, remoteId=11, remoteUuid=ru3, "
     "view=message, flags=0, color=0, reminder=true"),
    ("RefreshMountpoint", 89, (1, 42), i32(414) + utf("acct") + i32(11),
     {"mountpoint_id": 414, "owner_id": "acct", "remote_id": 11},
     "id=414, owner=acct, remoteId=11"),
    ("EnableSharedReminder", 80, (1, 42), i32(414) + z(True), {"enabled": True},
     "mountpoint=414, reminderEnabled=true"),
    # CreateFileSharedWithMe logs CreateMountpoint's opcode in its own layout (its reader reads
    # another order, never called); bytes CreateMountpoint's layout cannot end at the record
    ("CreateFileSharedWithMe", 35, (1, 42), i32(413) + utf("u2") + utf("f.pdf") + utf("acct")
     + i32(10) + utf("ru") + i32(16) + utf("Ann") + utf("application/pdf") + utf("r"),
     {"mountpoint_id": 413, "remote_uuid": "ru", "folder_id": 16, "owner_name": "Ann",
      "content_type": "application/pdf", "rights": "r"},
     "id=413, uuid=u2, name=f.pdf, folder=16, owner=acct, remoteId=10, remoteUuid=ru"),
    ("CreateLink", 85, (1, 42), i32(412) + utf("u") + utf("Shared") + utf("acct") + i32(9)
     + i32(1), {"link_id": 412, "uuid": "u", "remote_id": 9, "folder_id": 1},
     "id=412, uuid=u, name=Shared, folder=1, owner=acct, remote=9"),
    # ---- Messages, chats, documents
    # CreateChat is CreateMessage's payload; merged conversations, a calendar item and
    # extended (custom) data print where Zimbra's getPrintableData puts them
    ("CreateChat", 63, (1, 42), utf(":API:") + i64(5) + z(False) + utf("dg") + i64(2)
     + i32(280) + i32(14) + i32(-1) + i32(-1) + i32(2) + i32(7) + i32(8) + i32(500)
     + utf("NE") + i32(0) + z(True) + utfs([]) + utf(None) + i16(-1) + utf("k") + utf(META)
     + i8(1) + i32(2) + b"hi",
     {"msg_id": 280, "merged_conv_ids": (7, 8), "cal_item_id": 500, "custom_key": "k",
      "custom_value": META, "data": b"hi"},
     'id=280, rcpt=:API:, rcvDate=5, shared=false, blobDigest="dg", size=2, dataLen=2, '
     "folder=14, conv=-1, convFirstMsgId=-1, mergedConvIds=[7, 8], calItemId=500, "
     "calItemPartStat=NE, noICal=true, extended=k: {a=1, b=xy}, flags=0, tags=[], "
     "bodyType=1, path=null"),
    ("SaveChat", 64, (1, 42), i32(46) + utf(":API:") + i64(5) + z(False) + utf("dg") + i64(2)
     + i32(281) + i32(14) + i32(-1) + i32(-1) + i32(0) + i32(0) + utf("NE") + i32(0) + z(True)
     + utfs(["a", "b"]) + utf(None) + i16(-1) + utf(None) + i8(1) + i32(2) + b"hi",
     {"imap_id": 46, "msg_id": 281, "tags": ("a", "b")},
     'id=281, rcpt=:API:, rcvDate=5, shared=false, blobDigest="dg", size=2, dataLen=2, '
     "folder=14, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=true, flags=0, "
     "tags=[a,b], bodyType=1, path=null,imap=46"),
    # AddDocumentRevision: the document id, then SaveDocument's payload
    ("AddDocumentRevision", 54, (1, 42), i32(270) + utf("f.pdf") + utf("application/pdf")
     + utf("Ann") + i8(8) + utf("d") + z(True) + utf("u9") + utf(":API:") + i64(5) + z(False)
     + utf("dg") + i64(2) + i32(272) + i32(16) + i32(-1) + i32(-1) + i32(0) + i32(0)
     + utf("NE") + i32(0) + z(True) + utfs([]) + utf(None) + i16(-1) + utf(None) + i8(1)
     + i32(2) + b"hi",
     {"doc_id": 270, "filename": "f.pdf", "desc_enabled": True, "msg_id": 272},
     'uuid=u9, id=272, rcpt=:API:, rcvDate=5, shared=false, blobDigest="dg", size=2, '
     "dataLen=2, folder=16, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=true, "
     "flags=0, tags=[], bodyType=1, path=null"),
    # SaveWiki: the wiki word, then SaveDocument's payload
    ("SaveWiki", 52, (1, 42), utf("Word") + utf("Word") + utf("text/html") + utf("Ann")
     + i8(14) + utf(None) + z(False) + utf("u10") + utf(":API:") + i64(5) + z(False)
     + utf("dg") + i64(2) + i32(273) + i32(12) + i32(-1) + i32(-1) + i32(0) + i32(0)
     + utf("NE") + i32(0) + z(True) + utfs([]) + utf(None) + i16(-1) + utf(None) + i8(1)
     + i32(2) + b"hi",
     {"wikiword": "Word", "item_type": 14, "description": None, "uuid": "u10"},
     'uuid=u10, id=273, rcpt=:API:, rcvDate=5, shared=false, blobDigest="dg", size=2, '
     "dataLen=2, folder=12, conv=-1, convFirstMsgId=-1, calItemPartStat=NE, noICal=true, "
     "flags=0, tags=[], bodyType=1, path=null"),
    # ---- Item changes
    # RecoverItem is CopyItem's payload; Zimbra forces fromDumpster on read, so it prints
    ("RecoverItem", 79, (1, 42), i32(-1) + i32(-1) + i8(5) + i32(2) + i16(-1) + i32(1)
     + i32(300) + i32(402) + utf("u6") + z(True),
     {"entries": ((300, 402, "u6"),), "from_dumpster": True},
     "type=message, destFolder=2, [srcId, destId, destUuid]=[300,402,u6], fromDumpster=true"),
    # ImapCopyItem: no legacy ids; an unused int -1 in each entry; a HashMap (17 before 2)
    ("ImapCopyItem", 56, (1, 42), i8(5) + i32(2) + i16(-1) + i32(2) + i32(2) + i32(403)
     + i32(-1) + utf("u7") + i32(17) + i32(404) + i32(-1) + utf("u8"),
     {"entries": ((2, 403, "u7"), (17, 404, "u8")), "dest_folder_id": 2},
     "type=message, destFolder=2, [srcId, destId, destUuid]=[17,404,u8][2,403,u7]"),
    ("RenameItemPath", 62, (1, 42), i32(300) + utf("/a/n") + i32(1) + i32(2) + utf("u2")
     + i8(5), {"item_id": 300, "parents": ((2, "u2"),), "type": 5},
     "id=300, type=message, path=/a/n, destParentIdsAndUuids=[2 (u2)]"),
    ("RenameItemPath no parents", 62, (1, 42), i32(300) + utf("n") + i32(0) + i8(8),
     {"parents": ()}, "id=300, type=document, path=n"),
    ("SetPop3Uid", 95, (1, 42), i32(300) + i8(5) + utf("UID1"), {"uid": "UID1"},
     "id=300, pop3uid=UID1"),
    # LockItem writes the type first, the id last
    ("LockItem", 74, (1, 42), i8(8) + utf("acct") + i32(300),
     {"type": 8, "account_id": "acct", "item_id": 300},
     "id=300, type=document, accountId=acct"),
    ("UnlockItem", 75, (1, 42), i8(8) + utf(None) + i32(301), {"account_id": None},
     "id=301, type=document, accountId=null"),
    ("PurgeRevision", 76, (1, 42), i32(300) + i32(3) + z(True),
     {"revision": 3, "include_older": True}, "id=300, rev=3, includeOlderRevisions=true"),
    ("PurgeImapDeleted", 65, (1, 42), b"", {}, None),
    ("CreateComment", 84, (1, 42), i32(600) + utf("u") + i32(300) + utf("acct")
     + utf("nice"), {"item_id": 600, "parent_id": 300, "text": "nice"},
     "id=600, uuid=u, creator=acct, text=nice, parentId=300"),
    # ---- Notes
    ("EditNote", 33, (1, 42), i32(9) + utf("hello"), {"content": "hello"},
     "id=9, content=hello"),
    ("RepositionNote", 34, (1, 42), i32(9) + i32(1) + i32(2) + i32(3) + i32(4),
     {"x": 1, "y": 2, "width": 3, "height": 4}, "id=9, bounds=(1,2,3,4)"),
    # ---- Calendar
    ("ModifyInviteFlag", 36, (1, 42), i32(500) + i32(0) + i32(4) + z(True),
     {"comp_num": 0, "flag": 4, "add": True}, "id=500, comp=0, flag=4, add=true"),
    ("ICalReply", 57, (1, 42), utf("d1:ai1ee") + utf(META) + utf("a@x"),
     {"local_tz": "d1:ai1ee", "invite": META, "sender": "a@x"},
     f"localTZ=d1:ai1e1:vi10ee, inv={META}, sender=a@x"),
    # SetCalendarItem: a default invite with its message, no exceptions, no replies list (-1)
    ("SetCalendarItem", 44, (1, 42), i32(10) + i16(-1) + i32(500) + utf("AC") + z(False)
     + i32(0) + utfs(["t"]) + z(True) + z(True) + utf("d1:ai1ee") + utf(META) + z(True)
     + i64(7) + i32(2) + b"hi" + i32(0) + i32(-1) + i64(99),
     {"folder_id": 10, "cal_item_id": 500, "tags": ("t",),
      "default": ("d1:ai1ee", META, 7, b"hi"), "exceptions": (), "replies": None,
      "next_alarm": 99},
     "calItemId=500, calItemPartStat=AC, folder=10, flags=0, tags=t\n"
     f"Default=SetCalendarItemData{{inv={META}, hasBody=true}}\nnextAlarm=99\n"),
    ("FixCalendarItemTimeZone", 60, (1, 42), i32(500) + i64(1000) + utf("US"),
     {"after": 1000, "country": "US"}, "id=500, after=1000, country=US"),
    ("FixCalendarItemTZ", 70, (1, 42), i32(500) + i32(1) + utf("X") + utf("d1:ai1ee"),
     {"replacements": (("X", "d1:ai1ee"),)},
     'id=500, replacementMap=[\noldTZID="X"\n==> newTZ: d1:ai1e1:vi10ee,]'),
    ("FixCalendarItemTZ none", 70, (1, 42), i32(500) + i32(0), {"replacements": ()},
     "id=500"),
    ("FixCalendarItemEndTime", 67, (1, 42), i32(500), {"item_id": 500}, "id=500"),
    ("FixCalendarItemPriority", 78, (1, 42), i32(501), {"item_id": 501}, "id=501"),
    ("DismissCalendarItemAlarm", 66, (1, 42), i32(500) + i64(123), {"dismissed_at": 123},
     "id=500, dismissedAt=123"),
    ("SnoozeCalendarItemAlarm", 83, (1, 42), i32(500) + i64(456), {"snooze_until": 456},
     "id=500, snoozeUntil=456"),
    # ---- Volumes: shorts; Guava's toStringHelper with the two fields the reader never sets
    ("ModifyVolume", 39, (1, 42), i16(3) + i16(1) + utf("v3") + utf("/v") + i16(8) + i16(12)
     + i16(8) + i16(12), {"volume_id": 3, "root_path": "/v"},
     "ModifyVolume{id=3, type=1, name=v3, path=/v, mboxGroupBits=8, mboxBits=12, "
     "fileGroupBits=8, fileBits=12, compressBlobs=false, compressionThrehold=0}"),
    ("DeleteVolume", 40, (1, 42), i16(3), {"volume_id": 3}, "id=3"),
    # ---- What Java's collections do to repeated and odd entries
    # a repeated contact field: the HashMap keeps its first place and its last value; a null
    # value prints as null
    ("CreateContact repeated field", 30, (1, 42), i32(261) + i32(7) + i16(-1) + utfs([])
     + i16(3) + utf("email") + utf("a@x") + utf("note") + utf(None) + utf("email")
     + utf("b@x") + i32(0), {"attrs": (("email", "a@x"), ("note", None), ("email", "b@x"))},
     'folder=7, tags="", attrs={\n    note: null\n    email: b@x\n}'),
    ("CopyItem repeated source", 22, (1, 42), i32(-1) + i32(-1) + i8(5) + i32(2) + i16(-1)
     + i32(2) + i32(5) + i32(400) + utf("u4") + i32(5) + i32(401) + utf("u5") + z(False),
     {}, "type=message, destFolder=2, [srcId, destId, destUuid]=[5,401,u5]"),
    ("SetImapUid repeated message", 29, (1, 42), i32(2) + i32(34) + i32(9) + i32(34)
     + i32(10), {}, "34=10"),
    # Java's `for (count = readInt(); count > 0; ...)`: a negative count is no entries
    ("Checkpoint negative count", 1, (1, 42), i32(-1), {"txns": ()}, None),
    ("ReindexMailbox negative count", 10, (1, 42), i32(4) + z(True) + i32(-2) + z(False)
     + z(False), {"types": ()}, "Completion=4 SkipDelete=FALSE TYPES[[]]"),
    ("ReindexMailbox repeated id", 10, (1, 42), i32(4) + z(False) + z(True) + i32(3) + i32(5)
     + i32(5) + i32(6) + z(False), {}, "Completion=4 SkipDelete=FALSE ITEMIDS[5,6]"),
]


# --------------------------------------------------------------------------------------------
# CreateMessage's payload, and the six ops that write it after fields of their own, at every
# version where its deserializeData branches (op_bytes.message_bytes and its kin build them)

EXAMPLES += [
    example for v in MESSAGE_VERSIONS for example in (
        (f"CreateMessage@{v}", 27, v, message_bytes(v), message_fields(v), message_text(v)),
        (f"CreateChat@{v}", 63, v, message_bytes(v), message_fields(v), message_text(v)),
        (f"SaveDraft@{v}", 28, v, i32(47) + message_bytes(v),
         {"imap_id": 47, **message_fields(v)}, message_text(v) + ",imap=47"),
        (f"SaveChat@{v}", 64, v, i32(48) + message_bytes(v),
         {"imap_id": 48, **message_fields(v)}, message_text(v) + ",imap=48"),
        (f"SaveDocument@{v}", 53, v, document_bytes(v), document_fields(v), document_text(v)),
        (f"AddDocumentRevision@{v}", 54, v, i32(270) + document_bytes(v),
         {"doc_id": 270, **document_fields(v)}, document_text(v)),
        (f"SaveWiki@{v}", 52, v, utf("Word") + document_bytes(v),
         {"wikiword": "Word", **document_fields(v)}, document_text(v)),
    )
]


# --------------------------------------------------------------------------------------------
# Folders, searches, mountpoints, tags, items and contacts at each side of their version gates

EXAMPLES += [
    *((f"CreateFolder@{v}", 58, v, folder_bytes(v), {"attrs": 1 if v >= (1, 19) else 0},
       folder_text(v)) for v in [(1, 19), (1, 26), (1, 27), (1, 36), (1, 37), (1, 38), (1, 40),
                                 (1, 41), (1, 42)]),
    *((f"CreateFolderPath@{v}", 23, v, folder_path_bytes(v), {"color": 3},
       folder_path_text(v)) for v in [(1, 26), (1, 27), (1, 36), (1, 37), (1, 40), (1, 41)]),
    *((f"CreateSavedSearch@{v}", 12, v, search_bytes(v), {"query": "in:inbox"}, search_text(v))
      for v in [(1, 26), (1, 28), (1, 36), (1, 37)]),
    *((f"CreateMountpoint@{v}", 35, v, mountpoint_bytes(v), {"color": 4}, mountpoint_text(v))
      for v in [(1, 26), (1, 27), (1, 32), (1, 33), (1, 36), (1, 37), (1, 38)]),
    ("CreateTag@(1, 27)", 14, (1, 27), i32(258) + utf("x") + i64(4), {"color": 4},
     "id=258, name=x, color=4"),
    # ColorItem: a legacy single id, then a byte color (1.26); the list and a long (1.27)
    ("ColorItem@(1, 26)", 16, (1, 26), i32(300) + i8(5) + i8(-3), {"ids": (300,), "color": -3},
     "id=[300], color=-3"),
    ("ColorItem@(1, 27)", 16, (1, 27), i32(-1) + i8(5) + i64(0x01000000) + i32(2) + i32(300)
     + i32(301), {"ids": (300, 301), "color": 0x01000000}, "id=[300, 301], color=16777216"),
    ("SetItemTags@(1, 33)", 19, (1, 33), i32(-1) + i8(5) + i32(0) + utfs([]) + z(True)
     + utf("tcon") + i32(1) + i32(300), {"tags": (), "constraint": "tcon"},
     "ids=[300], type=message, flags=[0], tags=[], constraint=tcon"),
    # AlterItemTag before 1.33 holds the tag's id; Zimbra prints that id (mTagId), resolving
    # the name only in redo(); a plain tag's id is kept as it is
    ("AlterItemTag@(1, 32)", 18, (1, 32), i32(-1) + i8(5) + i32(64) + z(False) + z(False)
     + i32(1) + i32(300), {"tag": "64", "tagged": False},
     "ids=[300], type=message, tag=64, tagged=false"),
    ("AlterItemTag@(1, 33)", 18, (1, 33), i32(-1) + i8(5) + utf("later") + z(True) + z(False)
     + i32(1) + i32(300), {"tag": "later"}, "ids=[300], type=message, tag=later, tagged=true"),
    ("MoveItem@(1, 16)", 20, (1, 16), i32(-1) + i8(5) + i32(3) + z(False) + i32(1) + i32(300)
     + i32(-1), {"ids": (300,), "uidnext": -1}, "id=[300], type=message, dest=3"),
    ("IndexItem@(1, 8)", 17, (1, 8), i32(300) + i8(6) + z(False), {"delete_first": False},
     "id=300, type=contact"),
    *((f"CopyItem@{v}", 22, v, copy_bytes(v, False), {"from_dumpster": False}, copy_text(v))
      for v in [(1, 30), (1, 36), (1, 37)]),
    *((f"RecoverItem@{v}", 79, v, copy_bytes(v, True), {}, copy_text(v) + ", fromDumpster=true")
      for v in [(1, 29), (1, 30), (1, 36), (1, 37)]),
    *((f"ImapCopyItem@{v}", 56, v, imap_copy_bytes(v), {}, copy_text(v))
      for v in [(1, 36), (1, 37)]),
    ("RenameItem@(1, 40)", 61, (1, 40), i32(300) + i32(2) + utf("n") + i8(5) + z(False),
     {"date": None}, "id=300, type=message, name=n,parent=2, date=null"),
    *((f"RenameItemPath@{v}", 62, v, item_path_bytes(v), {},
       f"id=300, type=message, path=/a/n, destParentIdsAndUuids=[2 ({uuid(v, 'u2')})]")
      for v in [(1, 36), (1, 37)]),
    *((f"CreateComment@{v}", 84, v, comment_bytes(v), {"parent_id": 300},
       f"id=600, uuid={uuid(v, 'u')}, creator=acct, text=nice, parentId=300")
      for v in [(1, 36), (1, 37)]),
    *((f"CreateLink@{v}", 85, v, link_bytes(v), {"remote_id": 9},
       f"id=412, uuid={uuid(v, 'u')}, name=Shared, folder=1, owner=acct, remote=9")
      for v in [(1, 36), (1, 37)]),
    ("StoreIncomingBlob@(1, 26)", 26, (1, 26), i32(1) + i64(7) + utf("dig") + utf("/in/4")
     + i16(-1) + i32(2) + i32(2) + b"hi", {"mailbox_ids": (7,), "data": b"hi"},
     'blobDigest="dig", size=2, dataLen=2, path=/in/4, mbox=[7]'),
    # contacts: a tag-id string before 1.33 (Zimbra prints mTags, null then), the blob's
    # length since 1.14 (0: no blob)
    ("CreateContact@(1, 13)", 30, (1, 13), i32(261) + i32(7) + i16(-1) + utf("3") + i16(1)
     + utf("email") + utf("a@x"), {"tags": ("3",), "data": b""},
     'folder=7, tags="", attrs={\n    email: a@x\n}'),
    ("CreateContact@(1, 14)", 30, (1, 14), i32(261) + i32(7) + i16(-1) + utf(None) + i16(0)
     + i32(0), {"tags": None, "attrs": (), "data": b""}, 'folder=7, tags=""'),
    ("CreateContact@(1, 32)", 30, (1, 32), i32(261) + i32(7) + i16(-1) + utf("3,4") + i16(1)
     + utf("email") + utf("a@x") + i32(len(VCARD)) + VCARD, {"data": VCARD},
     'folder=7, tags="", attrs={\n    email: a@x\n}'),
    ("CreateContact@(1, 33)", 30, (1, 33), i32(261) + i32(7) + i16(-1) + utfs(["a,b"])
     + i16(1) + utf("email") + utf("a@x") + i32(len(VCARD)) + VCARD, {"tags": ("a,b",)},
     'folder=7, tags="a\\,b", attrs={\n    email: a@x\n}'),
    # ModifyContact since 1.14: no replace flag; a -1 short and the blob's length after
    ("ModifyContact@(1, 14)", 31, (1, 14), i32(261) + i16(1) + utf("email") + utf("b@x")
     + i16(-1) + i32(0), {"attrs": (("email", "b@x"),), "data": b""},
     "id=261, attrs={\n    email: b@x\n}"),
    ("ModifyContact", 31, (1, 42), i32(261) + i16(2) + utf("email") + utf("b@x")
     + utf("lastName") + utf("Lee") + i16(-1) + i32(len(VCARD)) + VCARD,
     {"attrs": (("email", "b@x"), ("lastName", "Lee")), "data": VCARD},
     "id=261, attrs={\n    lastName: Lee\n    email: b@x\n}"),
]


# --------------------------------------------------------------------------------------------
# Mailboxes, access, notes and calendar items at each side of their gates. Versions before 1.0
# are 0.x (PRE_1_0): `versions_of` names that side (1, -1), a minor Zimbra's Version refuses.

EXAMPLES += [
    *((f"CreateInvite@{v}", 43, v, invite_bytes(v),
       {"part_stat": "AC" if v >= (1, 1) else "NE", "data": b"hi",
        "preserve_alarms": v >= (1, 22), "add_revision": v >= (1, 23)}, invite_text(v))
      for v in [PRE_1_0, (1, 0), (1, 1), (1, 21), (1, 22), (1, 23)]),
    *((f"SetCalendarItem@{v}", 44, v, set_calendar_item_bytes(v),
       {"tags": ("t",) if v >= (1, 33) else None,
        "tag_bits": 6 if (1, 11) <= v < (1, 33) else 0,
        "replies": ("d1:ri2ee",) if v >= (1, 15) else None}, set_calendar_item_text(v))
      for v in [PRE_1_0, (1, 0), (1, 1), (1, 2), (1, 10), (1, 11), (1, 14), (1, 15), (1, 16),
                (1, 17), (1, 20), (1, 21), (1, 23), (1, 24), (1, 32), (1, 33)]),
    *((f"GrantAccess@{v}", 47, v, grant_bytes(v), {"rights": 0x1B}, grant_text(v))
      for v in [(1, 2), (1, 35), (1, 36), (1, 42)]),
    # RevokeAccess: the expiry flag since 1.39; one due to expiry logs ExpireAccess (90)
    ("RevokeAccess@(1, 39)", 48, (1, 39), i32(2) + utf("g@x") + z(False),
     {"due_to_expiry": False}, "id=2, grantee=g@x"),
    ("RevokeAccess", 48, (1, 42), i32(2) + utf("g@x") + z(False), {"grantee": "g@x"},
     "id=2, grantee=g@x"),
    ("ExpireAccess@(1, 38)", 90, (1, 38), i32(2) + utf("g@x"), {"due_to_expiry": False},
     "id=2, grantee=g@x"),
    ("ExpireAccess@(1, 39)", 90, (1, 39), i32(2) + utf("g@x") + z(True),
     {"due_to_expiry": True}, "id=2, grantee=g@x, dueToExpiry=true"),
    ("RenameMailbox@(1, 25)", 69, (1, 25), utf("new@x") + utf("old@x"),
     {"new_name": "new@x", "old_name": "old@x"}, "newName=new@x oldName=old@x"),
    ("RenameMailbox", 69, (1, 42), utf("new@x") + utf(None), {"old_name": None},
     "newName=new@x oldName=null"),
    # ReindexMailbox: types (an EnumSet, printed in its order) since 1.9, item ids (a HashSet,
    # printed instead of the types) since 1.10, skip-delete since 1.20
    ("ReindexMailbox@(1, 9)", 10, (1, 9), reindex_bytes((1, 9), None),
     {"types": (6, 5), "item_ids": None, "skip_delete": False},
     "Completion=4 SkipDelete=FALSE TYPES[[message, contact]]"),
    ("ReindexMailbox@(1, 10)", 10, (1, 10), reindex_bytes((1, 10), [300, 17, 2]),
     {"item_ids": (300, 17, 2)}, "Completion=4 SkipDelete=FALSE ITEMIDS[17,2,300]"),
    ("ReindexMailbox@(1, 19)", 10, (1, 19), reindex_bytes((1, 19), None), {"item_ids": None},
     "Completion=4 SkipDelete=FALSE TYPES[[message, contact]]"),
    ("ReindexMailbox@(1, 20)", 10, (1, 20), reindex_bytes((1, 20), [5]),
     {"skip_delete": True}, "Completion=4 SkipDelete=TRUE ITEMIDS[5]"),
    # StoreIncomingBlob: int mailbox ids from 1.0 (none before), longs since 1.26
    ("StoreIncomingBlob@(1, 0)", 26, (1, 0), i32(2) + i32(7) + i32(8) + utf("dig")
     + utf("/in/5") + i16(-1) + i32(2) + i32(2) + b"hi", {"mailbox_ids": (7, 8)},
     'blobDigest="dig", size=2, dataLen=2, path=/in/5, mbox=[7, 8]'),
    ("StoreIncomingBlob@(0, 9)", 26, PRE_1_0, utf("dig") + utf("/in/6") + i16(-1) + i32(2)
     + i32(2) + b"hi", {"mailbox_ids": None, "data": b"hi"},
     'blobDigest="dig", size=2, dataLen=2, path=/in/6, mbox=[]'),
    # CreateNote: a long color since 1.27
    ("CreateNote@(1, 27)", 32, (1, 27), i32(9) + i32(1) + i16(-1) + utf("hi") + i64(2)
     + i32(1) + i32(2) + i32(3) + i32(4), {"color": 2}, "id=9, folder=1, content=hi, "
     "color=2, bounds=(1,2,3,4)"),
    ("CreateNote", 32, (1, 42), i32(9) + i32(1) + i16(-1) + utf("") + i64(0x01FF0000)
     + i32(0) + i32(0) + i32(50) + i32(60), {"content": "", "width": 50},
     "id=9, folder=1, content=, color=33488896, bounds=(0,0,50,60)"),
]


# Records only older writers produced (a legacy single id, ModifyContact's replace flag) or that
# Zimbra's reader normalises (a repeated transaction, a negative count): they come back in
# today's form.
NORMALISED = {"MoveItem<1.16", "CopyItem<1.30", "ModifyContact<1.14", "ColorItem@(1, 26)",
              "Checkpoint repeated txn", "Checkpoint negative count",
              "ReindexMailbox negative count"}


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda e: e[0])
def test_hand_built_record_decodes(ex: Example) -> None:
    name, opcode, version, payload, want, text = ex
    raw = record(opcode, payload, version)
    rec, end = decode_at(raw + b"ZMREDO", 0)
    assert end == len(raw), f"decoder stopped at {end} of {len(raw)}"
    assert rec.version == version and rec.opcode == opcode
    assert rec.mailbox_id == 5 and rec.change_id == 9 and rec.txn == (1_700_000_000, 4)
    for k, v in want.items():
        assert getattr(rec.op, k) == v, k
    assert rec.op.printable(rec.version) == text
    if name not in NORMALISED:
        assert rec.encode() == raw


@pytest.mark.parametrize("opcode, payload", [
    (77, i32(-1)),  # DeleteItemFromDumpster: new int[readInt()] throws on a negative size
    (21, i32(-1) + i8(5) + z(False) + i32(-1)),  # DeleteItem: the same for its id list
], ids=["DeleteItemFromDumpster", "DeleteItem"])
def test_a_negative_array_size_is_refused_as_zimbra_does(opcode: int, payload: bytes) -> None:
    with pytest.raises(DecodeError, match="implausible"):
        decode_at(record(opcode, payload) + b"ZMREDO", 0)


def test_example_ids_are_unique() -> None:
    names = [e[0] for e in EXAMPLES]
    assert len(names) == len(set(names))
    assert NORMALISED <= set(names)


# Every point has a record now; a new op or gate without one goes here, named, until it has.
NOT_HAND_BUILT: set[tuple[str, tuple[int, int]]] = set()


def test_every_op_and_version_branch_has_a_hand_built_record() -> None:
    """Every op class (those opcode 35 may also be read as included), at every version point
    `versions_of` finds, has a record that decodes as that class at that version."""
    built = {(type(decode_at(record(op, payload, v) + b"ZMREDO", 0)[0].op).__name__, v)
             for _, op, v, payload, _, _ in EXAMPLES}
    # (1, -1), the side before a gate at 1.0, is built at a 0.x version
    built |= {(name, (1, -1)) for name, v in list(built) if v < (1, 0)}
    missing = {(cls.__name__, v) for cls in ops.ALL_OPS for v in versions_of(cls)
               if (cls.__name__, v) not in built}
    assert missing - NOT_HAND_BUILT == set(), "points with no record: build one"
    assert NOT_HAND_BUILT - missing == set(), "points now built: remove them from NOT_HAND_BUILT"
