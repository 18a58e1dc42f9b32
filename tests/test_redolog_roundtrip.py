"""Hypothesis round trips of the redo format: every op, whole records, file headers, and random
record sequences written by `RedoLogWriter` across rollovers and read back by the reader.

Field values are drawn over the full range of their wire widths (int8/16/32/64), strings include
non-ASCII text, empty strings and null where the layout allows null, id lists and blob bytes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from standby import timefmt
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.redolog import ops as o
from standby.redolog.codec import Out
from standby.redolog.header import HEADER_SIZE, FileHeader
from standby.redolog.reader import scan, scan_bytes
from standby.redolog.record import REGISTRY, VERSION, Record, decode_at
from standby.redolog.writer import RedoLogWriter, WriterConfig
from tests.op_strategies import I8, I32, I64, op_strategy

# Plain text, text that is mostly outside ASCII (2-, 3- and 4-byte UTF-8), and the empty string.
TEXT = st.one_of(
    st.text(max_size=24),
    st.text(alphabet="äöüßéñ€中文字😀🎉\u0000\u00ff\uffff,\\", max_size=12),
    st.just(""),
)
OPT_TEXT = st.none() | TEXT
IDS = st.lists(I32, max_size=8).map(tuple)
TAGS = st.none() | st.lists(TEXT, max_size=5).map(tuple)
BLOB = st.binary(max_size=300)
CONSTRAINT = st.none() | st.sampled_from(["", "t", "tjsdo", "-t", "qin:inbox"]) | TEXT
ATTRS = st.lists(st.tuples(TEXT, TEXT), max_size=6).map(tuple)


@st.composite
def _custom(draw: st.DrawFn) -> tuple[str | None, str | None]:
    """(sectionKey, serializedValue): both null, or a key with a value that may itself be null."""
    key = draw(OPT_TEXT)
    return (None, None) if key is None else (key, draw(OPT_TEXT))


@st.composite
def _create_folder(draw: st.DrawFn) -> o.CreateFolder:
    ck, cv = draw(_custom())
    return o.CreateFolder(draw(TEXT), draw(I32), draw(I8), draw(I8), draw(I32), draw(I64),
                          draw(TEXT), draw(I32), draw(OPT_TEXT), draw(st.none() | I64), ck, cv)


@st.composite
def _create_message(draw: st.DrawFn) -> o.CreateMessage:
    ck, cv = draw(_custom())
    body = draw(st.sampled_from([o.BODY_INLINE, o.BODY_LINK]) | I8)
    return o.CreateMessage(
        draw(TEXT), draw(I64), draw(st.booleans()), draw(TEXT), draw(I64), draw(I32),
        draw(I32), draw(I32), draw(I32), draw(IDS), draw(I32), draw(OPT_TEXT), draw(I32),
        draw(st.booleans()), draw(TAGS), draw(OPT_TEXT), ck, cv, body,
        draw(BLOB) if body == o.BODY_INLINE else None)


STRATEGIES: dict[type[o.Op], st.SearchStrategy[o.Op]] = {
    o.Checkpoint: st.lists(st.tuples(I32, I32), unique=True, max_size=6)
    .map(lambda t: o.Checkpoint(tuple(t))),
    o.CommitTxn: st.builds(o.CommitTxn, I32),
    o.AbortTxn: st.builds(o.AbortTxn, I32),
    o.Rollover: st.builds(o.Rollover, I64, OPT_TEXT),
    o.CreateMailbox: st.builds(o.CreateMailbox, OPT_TEXT),
    o.DeleteMailbox: st.builds(o.DeleteMailbox),
    o.CreateFolder: _create_folder(),
    o.RenameFolder: st.builds(o.RenameFolder, I32, I32, TEXT),
    o.EmptyFolder: st.builds(o.EmptyFolder, I32, st.booleans()),
    o.CreateTag: st.builds(o.CreateTag, I32, TEXT, I64),
    o.RenameTag: st.builds(o.RenameTag, I32, TEXT),
    o.StoreIncomingBlob: st.builds(
        o.StoreIncomingBlob, st.none() | st.lists(I64, min_size=1, max_size=6).map(tuple),
        OPT_TEXT, OPT_TEXT, I32, BLOB),
    o.CreateMessage: _create_message(),
    o.SetItemTags: st.builds(o.SetItemTags, I8, I32, TAGS, IDS, CONSTRAINT),
    o.AlterItemTag: st.builds(o.AlterItemTag, I8, TEXT, st.booleans(), IDS, CONSTRAINT),
    o.MoveItem: st.builds(o.MoveItem, I8, I32, IDS, CONSTRAINT, I32),
    o.DeleteItem: st.builds(o.DeleteItem, I8, IDS, CONSTRAINT),
    o.CreateContact: st.builds(o.CreateContact, I32, I32, ATTRS, TAGS, BLOB),
    o.ModifyContact: st.builds(o.ModifyContact, I32, ATTRS, BLOB),
    o.IndexItem: st.builds(o.IndexItem, I32, I8, st.booleans()),
}
# The rest of Zimbra's ops: strategies read off their layouts.
for _cls in o.ALL_OPS:
    STRATEGIES.setdefault(_cls, op_strategy(_cls))
# Whole records: not the two layouts Zimbra also logs as opcode 35, whose bytes CreateMountpoint
# may read as well (tests/test_ops_codec.py covers them in context).
_RECORD_OPS = {c: s for c, s in STRATEGIES.items()
               if c not in (o.CreateLink, o.CreateFileSharedWithMe)}
ANY_OP = st.one_of(*_RECORD_OPS.values())
START_OPS = st.one_of(*(s for cls, s in _RECORD_OPS.items() if cls.OPCODE not in (1, 3, 4)))


def test_every_op_class_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(o.ALL_OPS)
    # Every class is registered for an opcode, but the one only ever read as an alternative
    # layout of opcode 35 (tests/test_ops_codec.py lists them all).
    assert set(REGISTRY.values()) | {o.CreateFileSharedWithMe} == set(o.ALL_OPS)


@pytest.mark.parametrize("cls", o.ALL_OPS, ids=lambda c: c.NAME)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_op_payload_round_trip(cls: type[o.Op], data: st.DataObject) -> None:
    op = data.draw(STRATEGIES[cls])
    out = Out()
    op.encode_data(out)
    payload = bytes(out.buf)
    prefix, suffix = data.draw(st.binary(max_size=8)), data.draw(st.binary(max_size=8))
    buf = prefix + payload + suffix
    back, end = cls.decode_data(buf, len(prefix), VERSION)
    assert type(back) is cls
    assert back == op, (back, op)
    assert end == len(prefix) + len(payload), "the decoder must consume exactly the payload"
    assert back.blob == op.blob
    # Encoding is a function of the value: re-encoding the decoded op gives the same bytes.
    again = Out()
    back.encode_data(again)
    assert bytes(again.buf) == payload


RECORDS = st.builds(Record, ANY_OP, tstamp=I64, txn_time=I32, txn_counter=I32, mailbox_id=I64,
                    change_id=I32, change_constraint=I32)


@settings(max_examples=400, deadline=None)
@given(rec=RECORDS, prefix=st.binary(max_size=64), suffix=st.binary(max_size=64))
def test_record_round_trip(rec: Record, prefix: bytes, suffix: bytes) -> None:
    raw = rec.encode()
    assert raw[:6] == b"ZMREDO" and raw[6:10] == b"\x00\x01\x00\x2a"
    assert int.from_bytes(raw[10:14], "big", signed=True) == rec.op.OPCODE
    back, end = decode_at(prefix + raw + suffix, len(prefix))
    assert back == rec
    assert (back.offset, back.length, end) == (len(prefix), len(raw), len(prefix) + len(raw))
    assert (back.tstamp, back.txn, back.mailbox_id, back.change_id, back.change_constraint) == (
        rec.tstamp, rec.txn, rec.mailbox_id, rec.change_id, rec.change_constraint)
    assert back.version == VERSION


@settings(max_examples=60, deadline=None)
@given(recs=st.lists(RECORDS, max_size=30), seq=I64)
def test_concatenated_records_scan_back(recs: list[Record], seq: int) -> None:
    head = FileHeader(sequence=seq, server_id="s", create_time=1).encode()
    blobs = [r.encode() for r in recs]
    sc = scan_bytes(head + b"".join(blobs))
    got = list(sc)
    assert got == recs
    assert sc.problems == [] and sc.good_end == HEADER_SIZE + sum(map(len, blobs))
    assert [r.offset for r in got] == [HEADER_SIZE + sum(map(len, blobs[:i]))
                                       for i in range(len(blobs))]


SERVER_IDS = st.text(max_size=127).filter(lambda s: len(s.encode()) <= 127)


@settings(max_examples=300, deadline=None)
@given(h=st.builds(FileHeader, sequence=I64, server_id=SERVER_IDS, create_time=I64,
                   open=st.booleans(), file_size=I64, first_op_tstamp=I64, last_op_tstamp=I64,
                   version=st.tuples(st.just(1), st.integers(0, 42))))
def test_file_header_round_trip(h: FileHeader) -> None:
    raw = h.encode()
    assert len(raw) == HEADER_SIZE and raw[:7] == b"ZM_REDO" and raw[180:] == bytes(332)
    assert raw[7] == (1 if h.open else 0)
    assert fileheader.decode(raw) == h


def test_file_header_reads_version_zero_as_one_zero() -> None:
    raw = FileHeader(sequence=3, server_id="x", create_time=5, version=(0, 0)).encode()
    assert fileheader.decode(raw).version == (1, 0)


def test_file_header_rejects_an_overlong_server_id() -> None:
    with pytest.raises(ValueError):
        FileHeader(sequence=0, server_id="é" * 64, create_time=0).encode()


# --------------------------------------------------------------------------------------------
# The writer: random sequences of transactions, across rollovers


class _Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 3
        return self.now


def _expected_files(actions: list[tuple], soft: int, hard: int) -> list[list[Record]]:
    """A model of what RedoLogWriter puts in each file (Zimbra's rollover rules)."""
    out: list[list[Record]] = [[]]
    size = size_at_open = HEADER_SIZE
    active: dict[tuple[int, int], Record] = {}

    def roll() -> None:
        nonlocal size, size_at_open
        if active:
            out[-1].append(Record(o.Checkpoint(tuple(active)), 0, 0, 0, 0))
        out.append(list(active.values()))
        size = size_at_open = HEADER_SIZE + sum(len(r.encode()) for r in active.values())

    for act in actions:
        if act[0] == "rollover":
            if size > HEADER_SIZE:
                roll()
            continue
        rec: Record = act[1]
        out[-1].append(rec)
        size += len(rec.encode())
        if rec.op.is_start_marker:
            active[rec.txn] = rec
        elif rec.op.OPCODE in (3, 4):
            active.pop(rec.txn, None)
        if size >= hard or (size >= soft and size > size_at_open):
            roll()
    return out


@st.composite
def _actions(draw: st.DrawFn) -> list[tuple]:
    """Change records (new txns), commits/aborts of open txns, orphan commits, forced rollovers."""
    acts: list[tuple] = []
    open_txns: list[Record] = []
    counter = 0
    tstamp = 1_700_000_000_000
    for _ in range(draw(st.integers(0, 45))):
        tstamp += draw(st.integers(0, 5000))
        kind = draw(st.sampled_from(["change", "change", "commit", "commit", "abort",
                                     "orphan", "rollover"]))
        if kind == "rollover":
            acts.append(("rollover",))
        elif kind == "change" or not open_txns and kind != "orphan":
            counter += 1
            rec = Record(draw(START_OPS), tstamp, 1_700_000_000, counter,
                         draw(st.integers(-1, 40)), draw(I32), draw(st.sampled_from([0, 0, -7])))
            open_txns.append(rec)
            acts.append(("log", rec, True))
        elif kind == "orphan":
            acts.append(("log", Record(o.CommitTxn(27), tstamp, 99, draw(I32), 5), False))
        else:
            chg = open_txns.pop(draw(st.integers(0, len(open_txns) - 1)))
            ctl = o.CommitTxn if kind == "commit" else o.AbortTxn
            acts.append(("log", Record(ctl(chg.op.OPCODE), tstamp, chg.txn_time,
                                       chg.txn_counter, chg.mailbox_id), kind == "abort"))
    return acts


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(actions=_actions(), soft=st.integers(600, 3000), extra=st.integers(0, 3000),
       clean_close=st.booleans())
def test_writer_sequences_read_back_across_rollovers(actions: list[tuple], soft: int,
                                                     extra: int, clean_close: bool) -> None:
    hard = soft + extra
    with tempfile.TemporaryDirectory(prefix="redo-rt-") as tmp:
        d = Path(tmp)
        clock = _Clock(1_700_000_000_000)
        w = RedoLogWriter(d, server_id="server-ü", clock=clock, fsync=lambda fd: None,
                          config=WriterConfig(fsync_interval_ms=0, rollover_size=soft,
                                              rollover_min_age_ms=0, rollover_hard_max=hard))
        w.open()
        for act in actions:
            if act[0] == "rollover":
                w.rollover(force=True)
            else:
                w.log(act[1], sync=act[2])
        if clean_close:
            w.close()
        else:
            w.abandon()

        want = _expected_files(actions, soft, hard)
        event(f"rollovers: {min(len(want) - 1, 3)}{'+' if len(want) > 4 else ''}")
        event(f"checkpoints: {min(sum(r.op.OPCODE == 1 for f in want for r in f), 2)}")
        archives = files.list_archive(d / files.ARCHIVE_DIR)
        assert [a.seq for a in archives] == list(range(len(want) - 1))
        assert w.rollovers == len(want) - 1
        paths = [a.path for a in archives] + [d / files.CURRENT]
        assert not [p for p in d.iterdir() if p.name.startswith(files.TMP_PREFIX)]

        headers = []
        for i, (path, expected) in enumerate(zip(paths, want)):
            with scan(path) as sc:
                got = list(sc)
                assert sc.problems == [], sc.problems
                h = sc.header
            headers.append(h)
            assert got == expected, f"file {i} ({path.name})"
            # Records are back to back from the header to the end of the file.
            ends = [HEADER_SIZE] + [r.offset + r.length for r in got]
            assert [r.offset for r in got] == ends[:-1]
            assert ends[-1] == os.path.getsize(path)
            assert h.sequence == i and h.server_id == "server-ü" and h.version == (1, 42)
            tstamps = [r.tstamp for r in got if r.op.OPCODE != 1]
            assert h.first_op_tstamp == (got[0].tstamp if got else 0)
            last = path == paths[-1]
            if not last or clean_close:
                assert not h.open
                assert h.file_size == os.path.getsize(path)
                assert h.last_op_tstamp == max(tstamps, default=h.first_op_tstamp)
            else:
                assert h.open and h.file_size == 0
        # The archive name carries the rollover time, which is also the next file's creation.
        for a, nxt in zip(archives, headers[1:]):
            assert a.stamp == timefmt.gmt_stamp(nxt.create_time)
            assert a.path.name == files.archive_name(nxt.create_time, a.seq)
        assert [h.create_time for h in headers] == sorted(h.create_time for h in headers)


def test_writer_model_sees_checkpoints_and_relogs() -> None:
    """A fixed case that the property above must cover: an active txn across a rollover."""
    chg = Record(o.CreateTag(300, "t"), 10, 7, 1, 5, 2)
    other = Record(o.IndexItem(300, 3), 11, 7, 2, 5, 3)
    acts = [("log", chg, True), ("log", other, True),
            ("log", Record(o.CommitTxn(17), 12, 7, 2, 5), False), ("rollover",),
            ("log", Record(o.CommitTxn(14), 13, 7, 1, 5), False)]
    want = _expected_files(acts, 10**6, 10**7)
    assert [[r.op.NAME for r in f] for f in want] == [
        ["CreateTag", "IndexItem", "CommitTxn", "Checkpoint"], ["CreateTag", "CommitTxn"]]
    assert want[0][-1].op == o.Checkpoint(((7, 1),))
    with tempfile.TemporaryDirectory() as tmp:
        w = RedoLogWriter(Path(tmp), server_id="s", clock=_Clock(0), fsync=lambda fd: None,
                          config=WriterConfig(fsync_interval_ms=0, rollover_min_age_ms=0))
        w.open()
        for a in acts:
            if a[0] == "rollover":
                assert w.rollover(force=True)
            else:
                w.log(a[1], sync=a[2])
        w.close()
        (arch,) = files.list_archive(Path(tmp) / files.ARCHIVE_DIR)
        with scan(arch.path) as sc:
            recs = list(sc)
        ck = recs[-1]
        assert (ck.op, ck.tstamp, ck.txn, ck.mailbox_id) == (o.Checkpoint(((7, 1),)), 0, (0, 0), 0)
        with scan(Path(tmp) / files.CURRENT) as sc:
            assert list(sc) == want[1]


def test_adopted_records_are_relogged_by_a_rollover() -> None:
    """Crash recovery adopts the change records it will redo; a rollover before their Commit
    (the reopened file is already over its size) re-logs them into the new redo.log."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cfg = WriterConfig(fsync_interval_ms=0, rollover_min_age_ms=0, rollover_size=600,
                           rollover_hard_max=10**6)
        a = RedoLogWriter(d, server_id="s", clock=_Clock(0), fsync=lambda fd: None,
                          config=WriterConfig(fsync_interval_ms=0, rollover_min_age_ms=0))
        a.open()
        pending = [Record(o.CreateTag(300 + i, "x" * 200), 10 + i, 7, i + 1, 5, i + 2)
                   for i in range(3)]
        for r in pending:
            a.log(r, sync=True)
        a.abandon()  # as a crash: three change records, no Commit

        b = RedoLogWriter(d, server_id="s", clock=_Clock(100), fsync=lambda fd: None,
                          config=cfg)
        b.open()
        with scan(d / files.CURRENT) as sc:
            on_disk = list(sc)
        raw = (d / files.CURRENT).read_bytes()
        b.adopt_active([(r.txn, raw[r.offset:r.offset + r.length]) for r in on_disk])
        b.log_commit(pending[0], tstamp=50)  # over 600 bytes: rolls over after this record
        b.close()
        (arch,) = files.list_archive(d / files.ARCHIVE_DIR)
        with scan(arch.path) as sc:
            old = list(sc)
        assert [r.op.NAME for r in old] == ["CreateTag"] * 3 + ["CommitTxn", "Checkpoint"]
        assert old[-1].op == o.Checkpoint(((7, 2), (7, 3)))
        with scan(d / files.CURRENT) as sc:
            assert list(sc) == pending[1:]
