"""Faults while shipping to S3, against moto_server over HTTP.

- the endpoint dies in the middle of a multipart upload (a counting proxy in front of moto is
  killed: moto, like a real S3, keeps the upload): the next `ship` finishes it without sending
  any part the server had acknowledged, counted at the server;
- the server itself dies and loses everything (moto killed): the next `ship` cannot continue
  the upload and starts it again cleanly;
- a part that comes out different on the second run (the recorded hash is changed): the old
  upload is aborted and the object sent again from its start;
- a `zfs send | zfs recv` to a zfs target killed mid-stream: resumed from its token where zfs
  can, else (zfs-fuse) cleaned up and sent again.

Between the failure and the next ship, nothing at the target looks complete to a pull.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from standby import settings as settings_mod
from standby.errors import NotFound, ServiceError
from standby.snapshot.zfs import ZfsBackend
from standby.transfer import pull, ship, verify
from standby.transfer.receive import ReceiveTarget
from standby.transfer.ship import TargetState
from tests import test_transfer_support as support
from tests.services import CountingProxy, MotoServer
from tests.test_transfer_support import (
    Pools,
    Rig,
    config_of,
    fill,
    make_rig,
)

PART = 5 << 20


def _big_set(r: Rig, mb: int = 24) -> None:
    fill(r)
    r.write("db", "data/ibdata1", __import__("os").urandom(mb << 20))  # incompressible
    r.take("set")


def _ship_in_thread(r: Rig, **kw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["result"] = ship.ship(r.primary, r.target(), **kw)
        except ServiceError as e:
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


def _wait(cond: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _uploads(r: Rig) -> dict[str, Any]:
    return TargetState(r.primary.state_dir, r.target().url).load()


@pytest.fixture
def proxied(tmp_path: Path, moto: MotoServer, request: pytest.FixtureRequest) -> Any:
    proxy = CountingProxy(moto.url, tmp_path / "requests.log").start()
    r = make_rig("s3", tmp_path / "rig", request)
    r.with_target(endpoint_url=proxy.url, concurrency=2, part_size_mb=5, retries=1)
    # The standby looks at the bucket straight (not through the proxy this test kills).
    r.standby = settings_mod.with_overrides(r.standby, {"target.endpoint_url": moto.url})
    yield r, proxy
    proxy.kill()


def test_endpoint_killed_mid_multipart_next_ship_sends_no_completed_part_again(
        proxied: Any) -> None:
    r, proxy = proxied
    _big_set(r)
    t, out = _ship_in_thread(r, bwlimit="6M")
    _wait(lambda: len(proxy.parts()) >= 2)
    proxy.kill()
    t.join(120)
    assert isinstance(out.get("error"), ServiceError), out
    assert "standby ship" in (out["error"].hint or "")  # it says what to do
    before = len(proxy.requests())
    state = next(v for k, v in _uploads(r).items() if k.endswith("stream.tar.zst"))["sink"]
    done = {int(n) for n in state["parts"]}
    assert done and state["upload_id"]
    # nothing at the target is complete: a pull finds no set
    direct = make_standby_target(r)
    with pytest.raises(NotFound, match="no complete snapshot set"):
        pull.plan(direct)

    proxy.start()
    res = ship.ship(r.primary, r.target())
    assert isinstance(res, ship.ShipResult)
    row = next(x for x in res.shipped if x["volume"] == "db")
    assert row["resumed"] and row["parts_skipped"] == len(done)
    after = [p for m, path, st, _n in proxy.requests()[before:]
             if (p := _part(path)) is not None and st == 200 for _ in [0]]
    assert not set(after) & done, f"parts {set(after) & done} were sent again"
    every = Counter(proxy.parts())
    n_parts = -(-row["stored_bytes"] // PART)  # the stream (index and others are small)
    assert set(every) == set(range(1, n_parts + 1))
    assert _uploads(r) == {}
    assert verify.verify(direct).ok
    p = pull.plan(direct)
    pull.pull(r.standby, direct, p)
    assert r.standby_tree("db") == r.expect(p.set_manifest, "db")


def _part(path: str) -> int | None:
    import re

    m = re.search(r"partNumber=(\d+)", path)
    return int(m.group(1)) if m else None


def make_standby_target(r: Rig) -> Any:
    """The standby's view of the bucket, straight to moto (not through the proxy)."""
    return r.target("standby")


def test_a_part_that_comes_out_different_restarts_the_object(proxied: Any) -> None:
    r, proxy = proxied
    _big_set(r, mb=16)
    t, out = _ship_in_thread(r, bwlimit="6M")
    _wait(lambda: len(proxy.parts()) >= 1)
    proxy.kill()
    t.join(120)
    assert "error" in out
    st = TargetState(r.primary.state_dir, r.target().url)
    data = st.load()
    key = next(k for k in data if k.endswith("stream.tar.zst"))
    first = min(data[key]["sink"]["parts"], key=int)
    data[key]["sink"]["parts"][first]["sha256"] = "0" * 64
    st.path.write_text(json.dumps(data))
    old_upload = data[key]["sink"]["upload_id"]
    proxy.start()
    before = len(proxy.requests())
    res = ship.ship(r.primary, r.target())
    assert isinstance(res, ship.ShipResult)
    seen = proxy.requests()[before:]
    assert any(m == "DELETE" and f"uploadId={old_upload}" in p for m, p, _s, _n in seen)
    assert sum(1 for m, p, _s, _n in seen if m == "POST" and p.endswith("?uploads")) == 1
    assert verify.verify(make_standby_target(r)).ok


def test_server_lost_its_state_next_ship_starts_again_cleanly(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    own = MotoServer()
    own.__enter__()
    try:
        r = make_rig("s3", tmp_path / "rig", request)
        r.with_target(endpoint_url=own.url, concurrency=2, part_size_mb=5, retries=1)
        s3 = boto3.client("s3", endpoint_url=own.url, region_name="us-east-1")
        s3.create_bucket(Bucket=r.bucket)
        _big_set(r, mb=12)
        t, out = _ship_in_thread(r, bwlimit="1500K")  # about 8 s: a part is done after 4
        _wait(lambda: bool(_uploads(r)) and any(
            v.get("sink", {}).get("parts") for v in _uploads(r).values()) or not t.is_alive())
        assert t.is_alive(), out
        own.kill()
        t.join(120)
        assert "error" in out
        own.__enter__()  # the same port, nothing in it
        with pytest.raises(NotFound, match="does not exist"):
            ship.ship(r.primary, r.target())
        s3.create_bucket(Bucket=r.bucket)
        res = ship.ship(r.primary, r.target())
        assert isinstance(res, ship.ShipResult)
        row = next(x for x in res.shipped if x["volume"] == "db")
        assert not row["resumed"] and row["parts_sent"] >= 3
        assert _uploads(r) == {}
        assert verify.verify(r.target("standby")).ok
    finally:
        own.__exit__()


# --------------------------------------------------------------------------------------------
# A zfs receive interrupted mid-stream


@pytest.fixture(scope="module")
def zfs_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pools]:
    with support.zfs_pools(tmp_path_factory.mktemp("pools")) as p:
        yield p


def test_a_zfs_receive_killed_mid_stream_is_resumed_or_restarted_cleanly(
        tmp_path: Path, request: pytest.FixtureRequest, zfs_pools: Pools) -> None:
    """With resumable streams at both ends (OpenZFS: `send -t`, `recv -s`) the next ship
    continues from the target's receive_resume_token; zfs-fuse has neither (`zfs send` takes
    `[-RDp] [-[iI] snapshot]`, `zfs receive` `[-vnF]`), so there what the killed receive left is
    removed and the stream sent again from its start. Either way the set arrives whole."""
    r = make_rig("zfs", tmp_path, request, pools=zfs_pools)
    fill(r)
    r.write("db", "data/ibdata1", os.urandom(24 << 20))
    m = r.take("set")
    t = r.target()
    assert isinstance(t, ReceiveTarget)
    loc = t.location("db")
    caps = ZfsBackend(use_lzc=False).stream_capabilities()
    resumable = caps.send_token and caps.recv_resumable
    assert t.backend.can_resume(loc) == resumable
    exe = Path(sys.executable).with_name("standby")
    proc = subprocess.Popen([str(exe), "-c", config_of(r.primary), "--log-level", "warning",
                             "ship", "--target", r.url, "--bwlimit", "3M"],
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = TargetState(r.primary.state_dir, t.url)
    try:
        _wait(lambda: any(k.startswith("receive:") and v for k, v in state.load().items()))
    except AssertionError:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"no stream started: {err.decode()[-2000:]}") from None
    time.sleep(1.5)  # some megabytes into the db stream
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert state.get(f"receive:{loc}"), "the killed stream is marked for the next ship"
    assert not r.target().catalog.exists("set", m.id)
    res = ship.ship(r.primary, r.target())
    assert isinstance(res, ship.ShipResult) and m.id in res.manifests
    assert not any(k.startswith("receive:") for k in state.load())
    rep = verify.verify(r.target())
    assert rep.ok, rep.problems
    db = r.target().catalog.record("db", m.id)
    assert db.stream_id == support.identity(r, m, "db")  # the snapshot's zfs guid
    if resumable:
        row = next(x for x in res.shipped if x["volume"] == "db")
        assert row["plain_bytes"] < 24 << 20  # only the rest of the stream travelled
    p = pull.plan(r.target("standby"))
    pull.pull(r.standby, r.target("standby"), p)
    assert r.standby_tree("db") == r.expect(m, "db")
