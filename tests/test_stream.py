"""`standby stream`: segments at record boundaries, rollover and compaction, restart where it
left off (checked against the target), and pull assembling them — on a file:// target."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby.settings import Settings
from standby.redolog.position import complete_length, reach
from standby.transfer import stream_keys, stream_pull, stream_state, verify
from standby.transfer.stream_keys import Segment
from tests.stream_util import Primary


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, str]:
    d = tmp_path / "site"
    d.mkdir()
    return d, f"file://{d}"


def on_volume(p: Primary, redolog: Path) -> Settings:
    """The primary's settings with its redolog volume at `redolog` (the standby's)."""
    return dataclasses.replace(p.s, volumes=dataclasses.replace(
        p.s.volumes, redolog=dataclasses.replace(p.s.volumes.redolog, path=redolog)))


def stream_objects(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site / "srv-1")) for p in (site / "srv-1" / "stream").rglob(
        "*") if p.is_file() and not p.name.startswith("."))


def test_segments_end_at_record_boundaries_and_follow_the_interval(
        tmp_path: Path, site: tuple[Path, str]) -> None:
    p = Primary(tmp_path / "primary", stream={"interval_ms": 500})
    sm = p.streamer(site[1])
    sm.start()
    p.txns(5)
    sm.step()  # first round: due at once
    first = stream_objects(site[0])
    assert len(first) == 1
    p.txns(3)
    p.clock.advance(100)
    sm.step()  # 100 ms later: not due
    assert stream_objects(site[0]) == first
    # half a record at the tail, as a writer caught mid-write leaves it
    whole = p.redo.stat().st_size
    with open(p.redo, "ab") as f:
        f.write(b"ZMREDO\x00\x01\x00\x2a")
    p.clock.advance(500)
    sm.step()
    segs = [s for v in stream_keys.parse(stream_objects(site[0])).segments.values() for s in v]
    assert [(s.start, s.end) for s in segs] == [(0, segs[0].end), (segs[0].end, whole)]
    pos = stream_state.read(p.s.state_dir, sm.t.url)
    assert pos is not None and (pos.seq, pos.offset) == (segs[0].seq, whole)
    assert pos.segments == 2 and pos.puts == 2 and pos.buffered_bytes == 0


def test_rollover_final_marker_compaction_and_pull(tmp_path: Path,
                                                   site: tuple[Path, str]) -> None:
    p = Primary(tmp_path / "primary", stream={"interval_ms": 100})
    sb_vol = tmp_path / "standby-redolog"
    sm = p.streamer(site[1])
    sm.start()
    p.txns(4)
    shutil.copytree(p.s.volumes.redolog.path, sb_vol)  # "the redolog snapshot"
    for _ in range(3):
        p.txns(3)
        p.clock.advance(200)
        sm.step()
    p.w.rollover(force=True)
    p.txns(2)
    for _ in range(4):
        p.clock.advance(200)
        sm.step()
    listing = stream_keys.parse(stream_objects(site[0]))
    first = min(listing.seqs)
    assert first in listing.finals and len(listing.segments[first]) == 1  # compacted
    assert listing.segments[first][0].start == 0
    assert listing.finals[first].length == listing.segments[first][0].end
    # at the standby: the snapshot's redolog volume, extended by the stream
    out = stream_pull.extend(on_volume(p, sb_vol), sm.t)
    assert out is not None, "no stream"
    mine = reach(p.s.volumes.redolog.path)
    assert (out.seq, out.offset, out.last_commit_ms) == (mine.seq, mine.offset,
                                                         mine.last_commit_ms)
    assert (sb_vol / "redo.log").read_bytes() == p.redo.read_bytes()
    assert len(list((sb_vol / "archive").iterdir())) == 1
    rep = verify.verify(sm.t)
    assert rep.ok and rep.stream_logs == 2 and rep.stream_segments >= 2, rep.as_dict()


def test_a_restart_continues_where_the_target_is(tmp_path: Path, site: tuple[Path, str]
                                                 ) -> None:
    p = Primary(tmp_path / "primary", stream={"interval_ms": 100})
    sm = p.streamer(site[1])
    sm.start()
    p.txns(5)
    sm.step()
    # the target lost the segment (restored from an older copy): the next streamer sends it
    for f in (site[0] / "srv-1" / "stream").rglob("*.seg"):
        f.unlink()
    again = p.streamer(site[1])
    assert again.start().offset == 0
    p.clock.advance(200)
    again.step()
    assert stream_keys.end_of(stream_keys.parse(stream_objects(site[0])).segments[
        again.pos.seq]) == p.redo.stat().st_size
    # a position file behind the target (a crash after the put): the target's end is adopted
    p.txns(2)
    p.clock.advance(200)
    again.step()
    stream_state.write(p.s.state_dir, stream_state.StreamPosition(again.url, seq=again.pos.seq,
                                                                  offset=0))
    third = p.streamer(site[1])
    assert third.start().offset == p.redo.stat().st_size


def test_a_torn_segment_at_the_target_stops_the_pull_before_it(
        tmp_path: Path, site: tuple[Path, str]) -> None:
    p = Primary(tmp_path / "primary", stream={"interval_ms": 100})
    sb_vol = tmp_path / "standby-redolog"
    shutil.copytree(p.s.volumes.redolog.path, sb_vol)
    sm = p.streamer(site[1])
    sm.start()
    ends = []
    for _ in range(3):
        p.txns(3)
        p.clock.advance(200)
        sm.step()
        ends.append(p.redo.stat().st_size)
    segs = sorted(s for v in stream_keys.parse(stream_objects(site[0])).segments.values()
                  for s in v)
    last = site[0] / "srv-1" / segs[-1].key
    last.write_bytes(last.read_bytes()[:-9])  # bytes cut at the target
    out = stream_pull.extend(on_volume(p, sb_vol), sm.t)
    assert out is not None
    assert out.offset == ends[1]  # the last complete record before the torn segment
    assert any(f"segment {segs[-1].key}" in n and "stopped before it" in n for n in out.notes)
    assert reach(sb_vol).offset == ends[1]
    # `standby verify` names it; --quick (no reading) cannot see it
    rep = verify.verify(sm.t)
    assert [pr for pr in rep.problems if segs[-1].key in pr and "do not hash" in pr], \
        rep.problems
    assert verify.verify(sm.t, deep=False).ok
    # a segment gone from the middle: a gap, reading or not
    (site[0] / "srv-1" / segs[1].key).unlink()
    for deep in (True, False):
        rep = verify.verify(sm.t, deep=deep)
        assert any(f"a gap at offset {segs[1].start}" in pr for pr in rep.problems), \
            rep.problems


@given(cuts=st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_the_chain_is_the_contiguous_run(cuts: list[int]) -> None:
    pos, segs = 0, []
    for c in cuts:
        segs.append(Segment(3, pos, pos + c, "0" * 64))
        pos += c
    assert stream_keys.chain(segs) == segs
    assert stream_keys.parse([s.key for s in segs]).segments[3] == segs
    if len(segs) > 1:
        gap = segs[:1] + segs[2:]
        assert stream_keys.end_of(gap) == segs[0].end
    whole = Segment(3, 0, pos, "1" * 64)
    (one,) = stream_keys.chain([*segs, whole])  # a compacted log: the one object covering it
    assert (one.start, one.end) == (0, pos)


def test_complete_length_never_counts_a_partial_record(tmp_path: Path) -> None:
    p = Primary(tmp_path / "primary")
    p.txns(3)
    data = p.redo.read_bytes()
    full = complete_length(data, 0)
    assert full == len(data)
    for cut in range(512, len(data)):
        n = complete_length(data[:cut], 0)
        assert n <= cut and complete_length(data[n:full], n) == full - n


@given(logs=st.dictionaries(st.integers(0, 30), st.tuples(st.booleans(), st.integers(1, 4)),
                            max_size=8),
       below=st.integers(0, 32))
def test_expired_is_every_rolled_log_below_the_floor_segments_first(
        logs: dict[int, tuple[bool, int]], below: int) -> None:
    keys = []
    for seq, (rolled, n) in logs.items():
        keys += [stream_keys.segment_key(seq, i * 10, i * 10 + 10, "a" * 64) for i in range(n)]
        if rolled:
            keys.append(stream_keys.final_key(seq, n * 10, 1_700_000_000_000))
    listing = stream_keys.parse(keys)
    got = stream_keys.expired(listing, below)
    want = {k for k in keys if (seq := int(k.split("/")[1])) < below and logs[seq][0]}
    assert set(got) == want and len(got) == len(want)
    for seq in {int(k.split("/")[1]) for k in got}:  # each log's marker after its segments
        mine = [k for k in got if int(k.split("/")[1]) == seq]
        assert "/final." in mine[-1] and all(".seg" in k for k in mine[:-1])
