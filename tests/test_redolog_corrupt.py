"""Corrupted redo logs: a truncated tail, a flipped byte mid-file, garbage appended, a zero-length
redo.log, a header of a newer version. Each gives a clear message and a defined outcome, never a
traceback, in the reader (`Scan.problems`), in zmredodump (exit code, error block, the list of
files with errors), in the naive replay, and when a store starts on such a redo log volume.
"""

from __future__ import annotations

import functools
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby.errors import FormatError, StandbyError, UnsupportedVersion
from standby.redolog import dump as dumpmod
from standby.redolog import files
from standby.redolog import ops as o
from standby.redolog.header import HEADER_SIZE
from standby.redolog.reader import scan, scan_bytes
from standby.redolog.record import Record
from standby.replay import naive
from standby.replay.player import Player, Selection, select_files
from standby.store.blobs import BlobStore
from standby.store.effects import Effects
from standby.store.index import IndexStore
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.test_dump import build_logs

BIN = Path(sys.executable).parent
DASHES = "-" * 47


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deterministic seq0 archive of test_dump (its record offsets are known)."""
    d = tmp_path_factory.mktemp("pristine")
    build_logs(d)
    (p,) = (d / files.ARCHIVE_DIR).glob("*-seq0.log")
    return p


def _records(path: Path) -> list[Record]:
    with scan(path) as sc:
        assert sc.problems == []
        return list(sc)


def _copy(src: Path, dst_dir: Path, name: str) -> Path:
    dst = dst_dir / name
    shutil.copy(src, dst)
    return dst


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, argv)], capture_output=True, check=False, timeout=300,
                       env=dict(os.environ, TZ="UTC", **(env or {})))
    assert b"Traceback" not in r.stdout + r.stderr, r.stdout.decode() + r.stderr.decode()
    return r


def _expected_hexdump(data: bytes, at: int) -> list[str]:
    """notes/zimbra-ops.md §5.3 step 7, implemented from the text."""
    start = max(at - at % 16 - 160, 0)
    chunk = data[start:start + min(336, len(data) - start)]
    lines = []
    for base in range(0, len(chunk), 16):
        row = chunk[base:base + 16]
        s = f"{start + base:08x}: "
        for i in range(16):
            s += (f"{row[i]:02x}" if i < len(row) else "  ") + " " + (" " if i == 7 else "")
        s += " " + "".join(chr(b) if 33 <= b <= 126 else "." for b in row) + " " * (16 - len(row))
        if start + base <= at < start + base + len(row):
            s += " **"
        lines.append(s)
    return lines


# --------------------------------------------------------------------------------------------
# The reader


def test_truncated_tail(pristine: Path, tmp_path: Path) -> None:
    recs = _records(pristine)
    cut = next(r for r in recs if r.offset == 1993)  # the second (LINK) CreateMessage
    p = _copy(pristine, tmp_path, "t.log")
    os.truncate(p, cut.offset + 7)
    with scan(p) as sc:
        got = list(sc)
        assert got == recs[:recs.index(cut)]
        assert [(x.offset, x.kind, x.skipped) for x in sc.problems] == [(1993, "torn-tail", 7)]
        assert sc.good_end == 1993 and "ends inside a record" in sc.problems[0].message


def test_truncated_inside_the_header_of_a_record(pristine: Path, tmp_path: Path) -> None:
    p = _copy(pristine, tmp_path, "t.log")
    os.truncate(p, 784 + 20)
    with scan(p) as sc:
        assert len(list(sc)) == 4
        assert [(x.offset, x.kind) for x in sc.problems] == [(784, "torn-tail")]


def test_flipped_marker_byte_skips_one_record(pristine: Path, tmp_path: Path) -> None:
    recs = _records(pristine)
    p = _copy(pristine, tmp_path, "f.log")
    _patch(p, 784 + 2, b"\xff")  # inside the ZMREDO marker of the CreateFolder
    with scan(p) as sc:
        got = list(sc)
        assert got == [r for r in recs if r.offset != 784]
        assert [(x.offset, x.kind, x.skipped) for x in sc.problems] == [(784, "bad-record", 164)]
        assert sc.good_end == os.path.getsize(p)


def test_unknown_opcode_and_newer_record_version(pristine: Path, tmp_path: Path) -> None:
    recs = _records(pristine)
    p = _copy(pristine, tmp_path, "u.log")
    _patch(p, 998 + 10, (99).to_bytes(4, "big"))  # CreateTag -> opcode 99 (no layout known)
    _patch(p, 1121 + 8, (43).to_bytes(2, "big"))  # CreateMessage written as version 1.43
    with scan(p) as sc:
        got = list(sc)
        assert [r.offset for r in got] == [r.offset for r in recs if r.offset not in (998, 1121)]
        assert [(x.offset, x.kind, x.skipped) for x in sc.problems] == [
            (998, "unknown-opcode", 73), (1121, "newer-version", 322)]
        assert "unknown opcode 99" in sc.problems[0].message
        assert "1.43" in sc.problems[1].message


def test_garbage_appended(pristine: Path, tmp_path: Path) -> None:
    p = _copy(pristine, tmp_path, "g.log")
    size = os.path.getsize(p)
    junk = random.Random(5).randbytes(100).replace(b"ZM", b"zm")
    with open(p, "ab") as f:
        f.write(junk)
    with scan(p) as sc:
        assert list(sc) == _records(pristine)
        assert [(x.offset, x.kind, x.skipped) for x in sc.problems] == [(size, "torn-tail", 100)]
        assert sc.good_end == size


def test_zero_length_and_newer_header(pristine: Path, tmp_path: Path) -> None:
    zero = tmp_path / "redo.log"
    zero.write_bytes(b"")
    with pytest.raises(FormatError, match="0 bytes, shorter than the 512-byte header") as e:
        scan(zero)
    assert e.value.exit_code == 6
    newer = _copy(pristine, tmp_path, "n.log")
    _patch(newer, 168, (1).to_bytes(2, "big") + (43).to_bytes(2, "big"))
    with pytest.raises(UnsupportedVersion, match=r"format 1\.43, newer than the 1\.42") as e2:
        scan(newer)
    assert e2.value.exit_code == 6
    magic = _copy(pristine, tmp_path, "m.log")
    _patch(magic, 0, b"XX_REDO")
    with pytest.raises(FormatError, match="not a Zimbra redo log"):
        scan(magic)


PROBLEM_KINDS = {"bad-record", "unknown-opcode", "newer-version", "torn-tail"}


@functools.cache
def _pristine_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        build_logs(Path(d))
        (p,) = (Path(d) / files.ARCHIVE_DIR).glob("*-seq0.log")
        return p.read_bytes()


@st.composite
def _mutation(draw: st.DrawFn, size: int) -> list[tuple]:
    muts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "append", "zero"]))
        if kind == "flip":
            muts.append(("flip", draw(st.integers(HEADER_SIZE, size - 1)),
                         draw(st.integers(1, 255))))
        elif kind == "truncate":
            muts.append(("truncate", draw(st.integers(HEADER_SIZE, size))))
        elif kind == "append":
            muts.append(("append", draw(st.binary(min_size=1, max_size=80))))
        else:
            at = draw(st.integers(HEADER_SIZE, size - 1))
            muts.append(("zero", at, draw(st.integers(1, 64))))
    return muts


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_damage_never_raises(data: st.DataObject) -> None:
    good = _pristine_bytes()
    buf = bytearray(good)
    first_damage = len(buf)
    for m in data.draw(_mutation(len(good))):
        if m[0] == "flip" and m[1] < len(buf):
            buf[m[1]] ^= m[2]
            first_damage = min(first_damage, m[1])
        elif m[0] == "truncate":
            del buf[m[1]:]
            first_damage = min(first_damage, m[1])
        elif m[0] == "append":
            first_damage = min(first_damage, len(buf))
            buf += m[1]
        elif m[0] == "zero" and m[1] < len(buf):
            buf[m[1]:m[1] + m[2]] = bytes(len(buf[m[1]:m[1] + m[2]]))
            first_damage = min(first_damage, m[1])
    damaged = bytes(buf)
    sc = scan_bytes(damaged)
    got = list(sc)
    originals = list(scan_bytes(good))
    # Every record wholly before the first damaged byte comes back unchanged.
    intact = [r for r in originals if r.offset + r.length <= first_damage]
    assert got[:len(intact)] == intact
    assert all(p.kind in PROBLEM_KINDS and p.skipped >= 0 for p in sc.problems)
    assert HEADER_SIZE <= sc.good_end <= len(damaged)
    # Each record yielded decodes on its own to the same value.
    for r in got:
        again = scan_bytes(damaged[:HEADER_SIZE] + damaged[r.offset:r.offset + r.length])
        assert list(again) == [r]
    # zmredodump's text and JSON renderings of the same bytes never raise either.
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.log"
        p.write_bytes(damaged)
        for fmt in ("text", "json"):
            out = io.StringIO()
            res = dumpmod.dump([str(p)], dumpmod.DumpOptions(fmt=fmt), out)
            assert res.exit_code == (1 if sc.problems else 0)
            if fmt == "json":
                for line in out.getvalue().splitlines():
                    json.loads(line)


# --------------------------------------------------------------------------------------------
# zmredodump


def test_zmredodump_truncated_tail_error_block(pristine: Path, tmp_path: Path) -> None:
    recs = _records(pristine)
    p = _copy(pristine, tmp_path, "trunc.log")
    os.truncate(p, 1993 + 7)
    data = p.read_bytes()
    r = _run(BIN / "zmredodump", p)
    assert r.returncode == 1
    out = r.stdout.decode()
    last = next(x for x in recs if x.offset + x.length == 1993)
    block = ["", "Error while parsing data starting at offset 0x000007c9",
             f"{len(data) - 1993} bytes remaining in the file", "",
             "Last suceessfully parsed redo op:", dumpmod.op_line(last), "",
             "Data near error offset 000007c9:", *_expected_hexdump(data, 1993), "",
             f"Exception while verifying {p.resolve()}"]
    assert "\n".join(block) in out, out
    lines = out.splitlines()
    i = lines.index("The following files had errors:")
    assert lines[i - 4:i] == ["", "", DASHES, ""]
    assert lines[i + 1:i + 3] == ["", str(p.resolve())]
    assert lines[i + 3].startswith("    ") and "torn-tail" in lines[i + 3]
    # The records before the damage are printed as usual; --no-offset keeps the prefix of the
    # "last successfully parsed" line (as Zimbra does).
    assert out.count("] txn ") == len(recs[:recs.index(last) + 1]) + 1
    r2 = _run(BIN / "zmredodump", "--no-offset", p)
    assert dumpmod.op_line(last) in r2.stdout.decode()
    # -q: the file name and the error text only.
    q = _run(BIN / "zmredodump", "-q", p).stdout.decode()
    assert q.startswith(f"VERIFYING: {p.resolve()}\n\nError while parsing data")
    assert "HEADER" not in q and "[CreateMailbox]" not in q


def test_zmredodump_flipped_byte_and_garbage(pristine: Path, tmp_path: Path) -> None:
    flip = _copy(pristine, tmp_path, "flip.log")
    _patch(flip, 784 + 2, b"\xff")
    garbage = _copy(pristine, tmp_path, "garbage.log")
    with open(garbage, "ab") as f:
        f.write(b"\x01\x02 not a record \xfe" * 5)
    good = _copy(pristine, tmp_path, "good.log")
    r = _run(BIN / "zmredodump", "-q", flip, good, garbage)
    assert r.returncode == 1
    out = r.stdout.decode()
    assert (f"[] WARN: Error while parsing redolog {flip.resolve()}, offset=0x00000310; "
            "bad bytes will be skipped") in out
    assert (f"[] WARN: Skipped bad bytes in redolog {flip.resolve()}; resuming at offset "
            "0x000003b4 after skipping 164 bytes") in out
    listing = out.split("The following files had errors:\n\n", 1)[1].splitlines()
    assert listing[0::2] == [str(flip.resolve()), str(garbage.resolve())]
    assert all(m.startswith("    ") for m in listing[1::2])
    assert f"Found 85 junk bytes from offset 0x{os.path.getsize(pristine):08x} to end of " \
           f"file, in redolog {garbage.resolve()}" in out
    # Every file is verified, good ones included, and the good one is not listed.
    assert out.count("VERIFYING: ") == 3 and str(good.resolve()) not in "\n".join(listing)


def test_zmredodump_zero_length_and_newer_header(pristine: Path, tmp_path: Path) -> None:
    d = tmp_path / "vol"
    d.mkdir()
    (d / "redo.log").write_bytes(b"")
    newer = _copy(pristine, d, "redo-20231114.221354.441-seq0.log")
    _patch(newer, 170, (43).to_bytes(2, "big"))
    r = _run(BIN / "zmredodump", d)
    assert r.returncode == 1
    out = r.stdout.decode()
    assert f"VERIFYING: {(d / 'redo.log').resolve()}\nException while verifying" in out
    assert "shorter than the 512-byte header" in out
    assert "newer than the 1.42 this tool reads" in out and "1.43" in out
    listing = out.split("The following files had errors:\n\n", 1)[1].splitlines()
    # In sequence order: the archived log, then redo.log.
    assert listing[0::2] == [str(newer.resolve()), str((d / "redo.log").resolve())]
    missing = _run(BIN / "zmredodump", tmp_path / "nope.log")  # not found: exit 9
    assert missing.returncode == 9 and b"no such redolog file" in missing.stderr
    none = _run(BIN / "zmredodump")
    assert none.returncode == 2, none


# --------------------------------------------------------------------------------------------
# The naive replay and a store started on a damaged redo log volume


@pytest.fixture
def primary_log(make_store):  # type: ignore[no-untyped-def]
    """A store's real log: accounts, then traffic; killed, so redo.log holds records."""
    p = make_store("primary", sections={"redolog": {"rollover_size_kb": 64}})
    p.start()
    res = loadgen(p.settings.store_socket, accounts=3, ops=80, seed=11, workers=1)
    assert res.errors == 0, res.error_samples
    return p


def _standby_effects(make_store, name: str):  # type: ignore[no-untyped-def]
    s = make_store(name).settings
    db = Site(s).db
    db.start()
    Site(s).ensure_schema()
    eff = Effects(groups=s.store.mailbox_groups, blobs=BlobStore(s.volumes.blob.path),
                  index=IndexStore(s.volumes.index.path))
    return db, eff


def _committed(paths: list[Path]) -> int:
    player = Player(Selection())
    n = 0
    for path in paths:
        for rec, _ in player.play_file(path):
            n += not isinstance(rec.op, o.StoreIncomingBlob)
    return n


def test_naive_replay_of_damaged_logs(make_store, primary_log, tmp_path: Path) -> None:
    primary_log.stop()
    red = primary_log.settings.volumes.redolog.path
    paths = [lf.path for lf in files.list_archive(red / files.ARCHIVE_DIR)]
    assert len(paths) >= 3, "the test wants several rollovers"
    db, eff = _standby_effects(make_store, "standby")
    conn = db.connect()
    try:
        # A truncated last archive: the ops before the cut are applied, the cut is reported.
        damaged = tmp_path / "d"
        damaged.mkdir()
        copies = [_copy(p, damaged, p.name) for p in paths]
        recs = _records(copies[-1])
        cut = recs[len(recs) // 2]
        os.truncate(copies[-1], cut.offset + cut.length // 2)
        # A flipped marker byte in the first one: that record is skipped, the rest applied.
        first = _records(copies[0])
        _patch(copies[0], first[5].offset + 1, b"\x00")
        # Garbage after the second.
        with open(copies[1], "ab") as f:
            f.write(b"\xde\xad\xbe\xef" * 9)
        lfs, _ = select_files(None, Selection(), logfiles=copies)
        res = naive.replay(lfs, Selection(), conn=conn, effects=eff)
        assert res.ops_applied == _committed(copies) > 0
        problems = res.player["problems"]
        assert len(problems) == 3, problems
        assert any(copies[0].name in x and "bad-record" in x for x in problems)
        assert any(copies[1].name in x and "torn-tail" in x for x in problems)
        assert any(copies[-1].name in x and "torn-tail" in x for x in problems)
        assert not res.errors
        # A zero-length redo.log is skipped by file selection; named explicitly, or a header
        # of a newer version, it is refused with a format error (exit 6) before any replay.
        vol = tmp_path / "vol"
        (vol / files.ARCHIVE_DIR).mkdir(parents=True)
        (vol / files.CURRENT).write_bytes(b"")
        assert select_files(vol, Selection()) == ([], [])
        with pytest.raises(FormatError) as e:
            select_files(None, Selection(), logfiles=[vol / files.CURRENT])
        assert e.value.exit_code == 6
        newer = _copy(paths[0], vol / files.ARCHIVE_DIR, paths[0].name)
        _patch(newer, 170, (43).to_bytes(2, "big"))
        with pytest.raises(UnsupportedVersion, match="1.43"):
            select_files(vol, Selection())
    finally:
        conn.close()
        db.stop()


def _recovery_events(state_dir: Path) -> list[dict]:
    out = []
    for line in (state_dir / "store.log").read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "crash_recovery_done":
            out.append(ev)
    return out


def test_store_start_on_damaged_redo_logs(primary_log) -> None:  # type: ignore[no-untyped-def]
    p = primary_log
    s = p.settings
    red = s.volumes.redolog.path
    current = red / files.CURRENT
    cli = [BIN / "standby", "--config", p.cfg]

    def start() -> subprocess.CompletedProcess:
        return _run(*cli, "store", "start")

    def crash_with_traffic(seed: int) -> None:
        res = loadgen(s.store_socket, accounts=3, ops=25, seed=seed, workers=1)
        assert res.errors == 0, res.error_samples
        p.kill()
        assert os.path.getsize(current) > HEADER_SIZE

    # 1. Garbage appended after a crash: truncated by recovery, the store starts.
    crash_with_traffic(21)
    size = os.path.getsize(current)
    with open(current, "ab") as f:
        f.write(b"\x07junk\x00" * 20)
    r = start()
    assert r.returncode == 0, r.stderr.decode()
    ev = _recovery_events(s.state_dir)[-1]
    assert ev["truncated_bytes"] == 120 and ev["redone"] > 0
    assert any("torn-tail" in x for x in ev["problems"])
    assert _run(BIN / "zmredodump", "-q", red / files.ARCHIVE_DIR).returncode == 0

    # 2. A torn write (the first bytes of a record) at the tail: truncated likewise.
    crash_with_traffic(22)
    size = os.path.getsize(current)
    torn = Record(o.CreateTag(9999, "torn"), 1, 1, 1, 1, 99).encode()[:31]
    with open(current, "ab") as f:
        f.write(torn)
    assert start().returncode == 0
    ev = _recovery_events(s.state_dir)[-1]
    assert ev["truncated_bytes"] == 31
    with scan(max(files.list_archive(red / files.ARCHIVE_DIR)).path) as sc:
        recs = list(sc)
        assert sc.problems == [] and recs[0].offset == HEADER_SIZE
        assert all(r.offset + r.length <= size for r in recs if r.offset < size)

    # 3. A flipped byte mid-file: that record is skipped and reported; the store starts.
    crash_with_traffic(23)
    with scan(current) as sc:
        recs = list(sc)
    mid = recs[len(recs) // 2]
    _patch(current, mid.offset, b"X")
    assert start().returncode == 0
    ev = _recovery_events(s.state_dir)[-1]
    assert any("bad-record" in x for x in ev["problems"]) and ev["truncated_bytes"] == 0
    assert "redolog_problem" in (s.state_dir / "store.log").read_text()

    # 4. A zero-length redo.log (as after a crash while creating it): set aside, a new one
    # with the same sequence is started.
    p.stop()
    with open(current, "rb") as f:
        seq = int.from_bytes(f.read(24)[16:24], "big")
    os.truncate(current, 0)
    assert start().returncode == 0
    aside = [x.name for x in red.iterdir() if x.name.startswith("redo.log.headerless-")]
    assert len(aside) == 1 and (red / aside[0]).stat().st_size == 0
    st = _run(*cli, "store", "status", "--json")
    assert json.loads(st.stdout.decode().splitlines()[-1])["redo_seq"] == seq
    p.stop()

    # 5. A header of a newer format version: refused with exit 6 and a clear message.
    head = current.read_bytes()[:HEADER_SIZE]
    _patch(current, 168, (1).to_bytes(2, "big") + (43).to_bytes(2, "big"))
    r = start()
    assert r.returncode == 6, (r.returncode, r.stderr.decode())
    err = r.stderr.decode()
    (msg,) = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert "redo.log: written by redo log format 1.43, newer than the 1.42" in msg, err
    status = _run(*cli, "store", "status", "--json")
    assert json.loads(status.stdout.decode().splitlines()[-1])["service_pid"] is None
    _patch(current, 0, head)
    assert start().returncode == 0
    with pytest.raises(StandbyError):  # sanity: a second start is refused while it runs
        p.start()
