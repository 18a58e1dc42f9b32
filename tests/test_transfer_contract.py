"""One suite over every target (the `Target` contract), against real services.

For each kind of rig (tests/test_transfer_support.py): three sets and the redolog snapshots
between them are shipped (full, then incremental), verified, pulled at a standby (the standby's
volumes equal the primary's snapshots, file by file and byte for byte), pulled again at an
older set, pruned at the target with the chains intact; a damaged object is refused by `verify`
and `pull`; an incremental whose parent is gone is refused with the offer of a full send;
encryption leaves nothing readable at the target and a wrong key is named at pull.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from standby.catalog import local
from standby.catalog.start import replay_start
from standby.errors import ConfigError, IntegrityError, NotFound, StateConflict
from standby.transfer import codec, pull, ship, stream_keys, verify
from standby.transfer.objects import ObjectTarget
from standby.transfer import prune as target_prune
from tests import test_transfer_support as support
from tests.test_transfer_support import (
    ENC_KEY,
    Pools,
    Rig,
    Setup,
    fill,
    rig_fixture,
    tree,
)

rig = rig_fixture(["file", "s3", "zfs", "zfs-ssh", "zfs-s3", "btrfs"])
# Over ssh the commands are the same ones, run there: the round trip shows they work; the
# chains (prune, lost parents) are the same code on zfs here.
chain_rig = rig_fixture(["file", "s3", "zfs", "zfs-s3", "btrfs"])
object_rig = rig_fixture(["file", "s3", "zfs-s3"])


@pytest.fixture(scope="module")
def zfs_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pools]:
    with support.zfs_pools(tmp_path_factory.mktemp("pools")) as p:
        yield p


@pytest.fixture(scope="module")
def btrfs_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pools]:
    with support.btrfs_pools(tmp_path_factory.mktemp("loops")) as p:
        yield p


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with support.sshd_at(tmp_path_factory.mktemp("sshd")) as s:
        yield s


def _three_sets(r: Rig) -> list:
    """set1, redolog r1, set2, redolog r2, set3, redolog r3 with changes between each."""
    fill(r)
    out = [r.take("set")]
    steps = [
        lambda: (r.write("blob", "0/0/msg/100-1.msg", b"new mail"),
                 r.write("redolog", "logs/redo.bin", b"more" * 2000)),
        lambda: (r.remove("blob", "0/1/msg/1-1.msg"),
                 r.write("db", "data/ibdata1", b"changed" * 40_000)),
        lambda: r.write("redolog", "logs/archive/1.bin", b"archived" * 500),
        lambda: (r.remove("redolog", "current"), r.write("index", "0/1/index/2.sqlite",
                                                          b"i" * 9000)),
        lambda: r.write("redolog", "logs/redo.bin", b"last" * 3000),
    ]
    for i, change in enumerate(steps):
        change()
        out.append(r.take("redolog" if i % 2 == 0 else "set"))
    return out


def _shipped(res: ship.ShipResult | ship.ShipPlan) -> list[tuple[str, str, str]]:
    assert isinstance(res, ship.ShipResult)
    return [(x["manifest"], x["volume"], x["mode"]) for x in res.shipped]


def test_round_trip_three_sets_full_then_incremental(rig: Setup) -> None:
    r = rig()
    ms = _three_sets(r)
    set1, r1, set2, r2, set3, r3 = ms
    t = r.target()
    # sets first, then redolog snapshots; a receiving target cannot take r1 and r2 after set2
    # and set3 (a receive cannot go back): they are skipped, superseded by r3
    shipped_ids = [m.id for m in ms] if r.objects else [set1.id, set2.id, set3.id, r3.id]
    t.check(write=True)
    plan = ship.plan(t, local.for_settings(r.primary), ship.Backends(r.primary),
                     receiving=not r.objects)
    assert plan.steps[0].mode == "full"
    assert len(plan.skipped) == (0 if r.objects else 2)
    res = ship.ship(r.primary, t)
    got = _shipped(res)
    assert sorted({mid for mid, _v, _m in got}) == sorted(shipped_ids)
    assert len(got) == sum(len(m.snapshots) for m in ms if m.id in shipped_ids)
    assert all(mode == "full" for mid, _v, mode in got if mid == set1.id)
    assert all(mode == "incremental" for mid, _v, mode in got if mid != set1.id)
    assert isinstance(res, ship.ShipResult) and sorted(res.manifests) == sorted(shipped_ids)
    # an incremental carries what changed, not the volume again
    sizes = {(x["manifest"], x["volume"]): x["plain_bytes"] for x in res.shipped}
    assert sizes[(set2.id, "db")] > 200_000  # ibdata1 changed
    assert sizes[(set2.id, "blob")] < sizes[(set1.id, "blob")] / 3
    # nothing more to send; everything checks out
    again = ship.ship(r.primary, t)
    assert _shipped(again) == [] and isinstance(again, ship.ShipResult) and not again.manifests
    rep = verify.verify(r.target())
    assert rep.ok, rep.problems
    assert (rep.sets, rep.redolog_snapshots) == (3, len(shipped_ids) - 3)
    assert rep.records == len(got)
    # shipped state is per target, and the listing shows it
    mine = local.for_settings(r.primary)
    assert set(mine.shipped(r.url)) == {f"{m.id}/{s.volume}" for m in ms for s in m.snapshots
                                        if m.id in shipped_ids}
    assert mine.shipped("file:///elsewhere") == {}

    # pull the latest at the standby: set3's db/blob/index, r3's redolog volume
    tb = r.target("standby")
    p = pull.plan(tb)
    assert (p.set_manifest.id, p.redo_manifest.id) == (set3.id, r3.id)
    assert [x.manifest_id for x in p.chains["db"]] == [set1.id, set2.id, set3.id]
    pull.pull(r.standby, tb, p)
    for vol in ("db", "blob", "index"):
        assert r.standby_tree(vol) == r.expect(set3, vol), vol
    assert r.standby_tree("redolog") == r.expect(r3, "redolog")
    if r.kind != "file" and r.kind != "s3":
        # the standby holds the very snapshots: zfs guids / btrfs received uuids
        for vol, m in (("db", set3), ("redolog", r3)):
            assert p.chains[vol][-1].stream_id == support.identity(r, m, vol)
            assert p.chains[vol][-1].stream_id in support.standby_stream_ids(r, vol)
    # what `zmplayredo --set latest` reads at the standby is the pulled set
    start = replay_start(local.for_settings(r.standby), "latest")
    assert start.manifest.id == set3.id and start.from_seq == set3.replay.seq

    # an older set: its volumes, and the newest redolog snapshot after it
    p1 = pull.plan(tb, set1.id)
    assert p1.redo_manifest.id == r3.id
    if r.standby.volumes.db.backend == "zfs":
        # a dataset only goes forward: going back to set1 is refused, with what to do
        with pytest.raises(StateConflict, match="zfs destroy -r"):
            pull.pull(r.standby, tb, p1)
        support.destroy_standby_datasets(r)
    pull.pull(r.standby, tb, p1)
    for vol in ("db", "blob", "index"):
        assert r.standby_tree(vol) == r.expect(set1, vol), vol
    assert replay_start(local.for_settings(r.standby), "latest").manifest.id == set1.id


def test_prune_at_the_target_keeps_every_chain_whole(chain_rig: Setup) -> None:
    r = chain_rig(sections={"retention": {"hourly": 1, "daily": 0, "weekly": 0, "monthly": 0,
                                    "redolog_keep": 1}})
    set1, r1, set2, r2, set3, r3 = _three_sets(r)
    ship.ship(r.primary, r.target())
    res = target_prune.prune(r.primary, r.target(), dry_run=True)
    assert set(res.plan.keep) == {set3.id, r3.id} and not res.removed
    # streamed redo: logs rolled over before the log below set3's replay start go
    floor = set3.replay.seq - 1
    plain = b"0123456789"
    streamed = {seq: [stream_keys.segment_key(seq, 0, 10, hashlib.sha256(plain).hexdigest()),
                      stream_keys.final_key(seq, 10, 1_700_000_000_000)]
                for seq in range(max(0, floor - 2), set3.replay.seq + 2)}
    if r.objects:
        t = r.target()
        assert isinstance(t, ObjectTarget)
        for seg, fin in streamed.values():
            t.store.put(seg, codec.encode(plain, key=t.enc_key)[0])
            t.store.put(fin, b"")
    res = target_prune.prune(r.primary, r.target())
    if r.objects:
        gone_stream = {k for seq, keys in streamed.items() if seq < floor for k in keys}
        assert set(res.stream) == gone_stream and gone_stream <= set(res.removed)
        left_stream = set(r.target().catalog.store.list(stream_keys.PREFIX))
        assert left_stream == {k for seq, keys in streamed.items() if seq >= floor
                               for k in keys}
    # set1 and set2 can no longer be pulled, but their snapshots set3's increments need stay
    # (r1 and r2 never reached a receiving target: superseded by the sets after them)
    gone = {set1.id, set2.id} | ({r1.id, r2.id} if r.objects else set())
    assert set(res.plan.remove_manifests) == gone
    left = r.target().catalog.listing(fresh=True)
    assert set(left.manifests) == {set3.id, r3.id}
    for vol in ("db", "blob", "index"):
        assert left.chain(vol, set3.id) == [set1.id, set2.id, set3.id]
    assert rep_ok(r)
    p = pull.plan(r.target("standby"))
    pull.pull(r.standby, r.target("standby"), p)
    assert r.standby_tree("blob") == r.expect(set3, "blob")
    r.write("blob", "x.msg", b"x")
    set4 = r.take("set")
    if _zfs_receiving(r):
        # a zfs dataset takes no full stream once it has snapshots: set4 follows set3, and
        # its chain keeps every link
        ship.ship(r.primary, r.target())
        target_prune.prune(r.primary, r.target())
        left = r.target().catalog.listing(fresh=True)
        assert left.chain("blob", set4.id) == [set1.id, set2.id, set3.id, set4.id]
        assert set(left.manifests) == {set4.id, r3.id}
    else:
        # a full send of the newest lets the rest go
        ship.ship(r.primary, r.target(), full=True)
        target_prune.prune(r.primary, r.target())
        left = r.target().catalog.listing(fresh=True)
        assert left.chain("blob", set4.id) == [set4.id]
        assert ("blob", set1.id) not in left.records
    assert rep_ok(r)


def test_the_stream_floor_is_below_the_oldest_kept_sets_replay_start(chain_rig: Setup) -> None:
    r = chain_rig()
    set1, r1, set2, _r2, set3, _r3 = _three_sets(r)
    at = {set1.id: 7, set2.id: 9, set3.id: 12, r1.id: 2}  # a redolog snapshot does not count
    ms = [dataclasses.replace(m, replay=dataclasses.replace(m.replay, seq=at[m.id]))
          for m in (set1, r1, set2, set3)]
    assert target_prune.stream_floor(ms, set()) == 6
    assert target_prune.stream_floor(ms, {set1.id}) == 8
    assert target_prune.stream_floor(ms, {set1.id, set2.id, set3.id}) is None


def _zfs_receiving(r: Rig) -> bool:
    return r.kind in ("zfs", "zfs-ssh")


def rep_ok(r: Rig) -> bool:
    rep = verify.verify(r.target())
    assert rep.ok, rep.problems
    return True


def test_a_damaged_object_is_refused_by_verify_and_pull(object_rig: Setup) -> None:
    r = object_rig()
    fill(r)
    m = r.take("set")
    ship.ship(r.primary, r.target())
    rec = r.target().catalog.record("db", m.id)
    obj = rec.object("stream")
    assert obj is not None
    raw = bytearray(r.read_object(obj.key))
    raw[len(raw) // 2] ^= 0x40
    r.replace_object(obj.key, bytes(raw))
    rep = verify.verify(r.target())
    assert not rep.ok and any(obj.key in pr and "does not match its record" in pr
                              for pr in rep.problems), rep.problems
    quick = verify.verify(r.target(), deep=False)
    assert quick.ok  # same size: only reading it shows the damage
    # pull refuses before anything is applied: the standby's volumes stay as they were
    r.standby.volumes.blob.path.joinpath("mine.msg").write_bytes(b"standby's own")
    before = {v: r.standby_tree(v) for v in ("db", "blob", "index", "redolog")}
    with pytest.raises(IntegrityError, match="does not match its record|changed or damaged"):
        pull.pull(r.standby, r.target("standby"), pull.plan(r.target("standby")))
    assert {v: r.standby_tree(v) for v in before} == before
    # a record changed at the target is caught by its signature
    key = rec.key
    r.replace_object(key, r.read_object(key).replace(b'"kind":"set"', b'"kind":"redolog"'))
    rep = verify.verify(r.target())
    assert any("changed after it was signed" in pr for pr in rep.problems), rep.problems


def test_an_incremental_whose_parent_is_gone_is_refused_offering_a_full_send(
        chain_rig: Setup) -> None:
    r = chain_rig()
    fill(r)
    set1 = r.take("set")
    ship.ship(r.primary, r.target())
    r.write("blob", "0/0/msg/200-1.msg", b"after")
    set2 = r.take("set")
    r.lose("blob", set1.id)  # its stream object, or its received snapshot, is gone
    with pytest.raises(NotFound, match=f"{set1.id}.*not (whole|at).*standby ship --full"):
        ship.ship(r.primary, r.target())
    assert not r.target().catalog.exists("set", set2.id)
    if _zfs_receiving(r):
        # zfs takes a full stream only into a dataset without snapshots: it says so
        with pytest.raises(StateConflict, match="zfs destroy -r"):
            ship.ship(r.primary, r.target(), full=True)
        assert not r.target().catalog.exists("set", set2.id)
        return
    res = ship.ship(r.primary, r.target(), full=True)
    assert {mode for _m, _v, mode in _shipped(res)} == {"full"}
    tb = r.target("standby")
    with pytest.raises(IntegrityError, match="missing|is not at"):
        verify_or_raise(r)
    p = pull.plan(tb)
    assert [x.manifest_id for x in p.chains["blob"]] == [set2.id]
    pull.pull(r.standby, tb, p)
    assert r.standby_tree("blob") == r.expect(set2, "blob")


def verify_or_raise(r: Rig) -> None:
    rep = verify.verify(r.target())
    if not rep.ok:
        raise IntegrityError("; ".join(rep.problems))


def test_encryption_leaves_nothing_readable_and_a_wrong_key_is_named(
        object_rig: Setup) -> None:
    r = object_rig(encrypt=True)
    fill(r)
    r.write("blob", "0/0/msg/secret-1.msg", b"Subject: the merger\r\n\r\nconfidential")
    m = r.take("set")
    ship.ship(r.primary, r.target())
    for key in r.keys():
        data = r.read_object(key)
        assert b"confidential" not in data and b"ibdata1" not in data
        assert data.startswith(b"SBX1"), key  # manifests and records too
    assert rep_ok(r)
    r.standby = dataclasses.replace(r.standby, target=dataclasses.replace(
        r.standby.target, encryption_key="cd" * 32))
    with pytest.raises(ConfigError, match="another key"):
        pull.plan(r.target("standby"))
    r.standby = dataclasses.replace(r.standby, target=dataclasses.replace(
        r.standby.target, encryption_key=ENC_KEY))
    pull.pull(r.standby, r.target("standby"), pull.plan(r.target("standby")))
    assert r.standby_tree("blob") == r.expect(m, "blob")
    secret = tree(r.standby.volumes.blob.path)["0/0/msg/secret-1.msg"]
    assert isinstance(secret, bytes) and secret.endswith(b"confidential")
