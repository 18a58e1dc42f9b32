"""A receiving target's resume logic (`receive.ReceiveTarget.send`) with a backend that can
resume, which this machine's zfs-fuse cannot (no `zfs recv -s`, no `zfs send -t`, no
`receive_resume_token`; the real interrupted receive, cleaned up and sent again, is in
tests/test_transfer_faults.py).

Every command is the one the real `ZfsBackend` builds (answered like OpenZFS or zfs-fuse by
`FakeZfs`), recorded, and run as a small stand-in process that streams real bytes through
`_process.pipe`: the receiving stand-in keeps what it got and, like `zfs recv -s`, leaves a token
while a receive is partial. A stream is interrupted the way a test does it, by raising from the
pipe's chunk callback (the throttle), or by a ship that died with its marker left in the state.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from standby import _process
from standby.catalog.manifest import RedoPoint, SnapshotRecord
from standby.catalog.target import TargetCatalog
from standby.errors import CommandFailed, StandbyError
from standby.snapshot import zfs
from standby.snapshot._base import Received, Snapshot, StreamTarget
from standby.transfer._base import SendJob, Source, TargetUrl, TransferEffects
from standby.transfer.receive import ReceiveTarget
from tests.test_snapshot_streams import FakeZfs

TOKEN = "1-c0ffee-42"
SIZE = 6 << 20  # six chunks of the pipe

SEND = r"""
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
while n > 0:
    k = min(n, 1 << 16)
    out.write(b"z" * k)
    n -= k
"""
# Like `zfs recv -s`: a partial receive leaves a token until the stream is whole.
RECV = r"""
import pathlib, sys
got, token, size = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
token.write_text(sys.argv[4])
with open(got, "ab") as f:
    for chunk in iter(lambda: sys.stdin.buffer.read(1 << 16), b""):
        f.write(chunk)
        f.flush()
if got.stat().st_size != size:
    sys.exit("cannot receive: stream is truncated")
token.unlink()
"""


class Resumable:
    """A `StreamingBackend` whose argv is the real `ZfsBackend`'s, run as stand-ins."""

    name = "zfs"

    def __init__(self, tmp: Path, *, modern: bool) -> None:
        self.real = zfs.ZfsBackend(run=FakeZfs(modern=modern), use_lzc=False)
        self.modern = modern
        self.got, self.token_file = tmp / "received.bin", tmp / "token"
        self.built: list[tuple[str, ...]] = []
        self.aborted: list[str] = []

    def _py(self, script: str, *args: object) -> _process.Command:
        return _process.Command((sys.executable, "-c", script, *map(str, args)))

    def send(self, snapshot: Snapshot, parent: Snapshot | None = None, *,
             remote: _process.Remote | None = None) -> _process.Command:
        self.built.append(self.real.send(snapshot, parent).argv)
        return self._py(SEND, SIZE)

    def resume_send(self, token: str, *, remote: _process.Remote | None = None
                    ) -> _process.Command:
        self.built.append(self.real.resume_send(token).argv)
        return self._py(SEND, SIZE - self.got.stat().st_size)  # the rest of the stream

    def receive(self, target: StreamTarget, *, resumable: bool = False,
                rollback: bool = False) -> _process.Command:
        self.built.append(self.real.receive(target, resumable=resumable,
                                            rollback=rollback).argv)
        return self._py(RECV, self.got, self.token_file, SIZE, TOKEN)

    def can_resume(self, target: StreamTarget, *, sender: _process.Remote | None = None
                   ) -> bool:
        return self.real.can_resume(target, sender=sender)

    def resume_token(self, target: StreamTarget) -> str | None:
        if not self.modern:  # zfs-fuse discards a partial receive: no token to read
            return None
        return self.token_file.read_text() if self.token_file.exists() else None

    def abort_receive(self, target: StreamTarget, snapshot: Snapshot) -> list[str]:
        self.aborted.append(target.location)
        self.got.unlink(missing_ok=True)
        self.token_file.unlink(missing_ok=True)
        return []

    def received(self, target: StreamTarget) -> list[Received]:
        done = self.got.exists() and not self.token_file.exists() \
            and self.got.stat().st_size == SIZE
        return [Received("s1", f"{target.location}@s1", "9")] if done else []

    def prepare_receive(self, target: StreamTarget) -> None:
        pass

    def after_receive(self, target: StreamTarget) -> None:
        pass

    def destroy_received(self, target: StreamTarget, snapshot: Received) -> None:
        raise AssertionError("nothing is destroyed while sending")

    def estimate(self, snapshot: Snapshot, parent: Snapshot | None = None) -> int | None:
        return SIZE

    def stream_id(self, snapshot: Snapshot) -> str:
        return str(snapshot.identity["guid"])

    def stream_error(self, error: CommandFailed, target: StreamTarget) -> StandbyError:
        return self.real.stream_error(error, target)


class Interrupted(Exception):
    pass


def _job(be: Resumable, state: dict[str, Any], *, stop_after: int | None = None) -> SendJob:
    snap = Snapshot("db", "zfs", "s1", "p/db@s1", {"guid": "9"})
    rec = SnapshotRecord(volume="db", backend="zfs", name="s1", ref=snap.ref, dataset="p/db",
                         path="/p/db", identity=snap.identity, started_ms=1, taken_at_ms=2,
                         redo=RedoPoint(1, 0))
    seen = [0]

    def throttle(n: int) -> None:
        seen[0] += n
        if stop_after is not None and seen[0] >= stop_after:
            raise Interrupted

    def put(key: str, st: Mapping[str, Any]) -> None:
        state[key] = dict(st)

    fx = TransferEffects(now_ms=lambda: 3, throttle=throttle, resume_get=state.get,
                         resume_put=put)
    return SendJob(Source("set-1", "set", rec, be.real, snap), None, None, fx)


def _target(be: Resumable) -> ReceiveTarget:
    def no_catalog() -> TargetCatalog:
        raise AssertionError("send does not read the catalog")

    return ReceiveTarget(TargetUrl("zfs", "q/sb"), be, no_catalog, remote=None,
                         server_id="srv")


def test_an_interrupted_resumable_receive_continues_from_its_token(tmp_path: Path) -> None:
    be = Resumable(tmp_path, modern=True)
    t, state = _target(be), {}
    marker = "receive:q/sb/srv/db"
    with pytest.raises(Interrupted):
        t.send(_job(be, state, stop_after=2 << 20))
    # The partial receive is kept for the next ship: its marker stays, nothing was aborted.
    assert state[marker] == {"snapshot": "s1"} and be.aborted == []
    assert be.built == [("zfs", "send", "p/db@s1"), ("zfs", "recv", "-s", "q/sb/srv/db")]
    partial = be.got.stat().st_size
    assert 0 < partial < SIZE and be.token_file.read_text() == TOKEN
    be.built.clear()
    rec = _target(be).send(_job(be, state))  # the next ship, a new run
    assert be.built == [("zfs", "send", "-t", TOKEN), ("zfs", "recv", "-s", "q/sb/srv/db")]
    assert be.aborted == [] and state[marker] == {}
    assert be.got.stat().st_size == SIZE  # only the rest travelled, and it is whole
    assert (rec.stream_id, rec.received, rec.manifest_id) == ("9", "q/sb/srv/db@s1", "set-1")


def test_a_ship_killed_mid_stream_resumes_from_the_token_it_left(tmp_path: Path) -> None:
    be = Resumable(tmp_path, modern=True)
    be.got.write_bytes(b"z" * (1 << 20))
    be.token_file.write_text(TOKEN)
    state: dict[str, Any] = {"receive:q/sb/srv/db": {"snapshot": "s1"}}  # the killed ship's
    _target(be).send(_job(be, state))
    assert be.built[0] == ("zfs", "send", "-t", TOKEN) and be.aborted == []
    assert be.got.stat().st_size == SIZE


def test_without_resume_a_partial_receive_is_removed_and_sent_again(tmp_path: Path) -> None:
    be = Resumable(tmp_path, modern=False)  # zfs-fuse: plain send and receive, no token
    t, state = _target(be), {}
    with pytest.raises(Interrupted):
        t.send(_job(be, state, stop_after=2 << 20))
    assert be.built == [("zfs", "send", "p/db@s1"), ("zfs", "recv", "q/sb/srv/db")]
    assert be.aborted == ["q/sb/srv/db"] and state["receive:q/sb/srv/db"] == {}
    be.built.clear()
    _target(be).send(_job(be, state))
    assert be.built == [("zfs", "send", "p/db@s1"), ("zfs", "recv", "q/sb/srv/db")]
    assert be.got.stat().st_size == SIZE


def test_a_ship_killed_without_resume_cleans_up_then_sends_from_the_start(
        tmp_path: Path) -> None:
    be = Resumable(tmp_path, modern=False)
    be.got.write_bytes(b"z" * (1 << 20))  # what the killed receive left
    state: dict[str, Any] = {"receive:q/sb/srv/db": {"snapshot": "s1"}}
    _target(be).send(_job(be, state))
    assert be.aborted == ["q/sb/srv/db"]
    assert be.built == [("zfs", "send", "p/db@s1"), ("zfs", "recv", "q/sb/srv/db")]
    assert be.got.stat().st_size == SIZE and state["receive:q/sb/srv/db"] == {}
