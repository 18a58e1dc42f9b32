"""The receiving targets (zfs, btrfs): snapshots received as snapshots, here or over ssh.

`zfs://[user@host/]pool/ds` receives each volume into the dataset `pool/ds/<server id>/<volume>`
(`zfs send [-i parent] | zfs recv`); `btrfs://[user@host]/path` into the subvolume
`path/<server id>/<volume>/`, one received snapshot each (`btrfs send [-p parent] | btrfs
receive`). The snapshot backends build every command (send, receive, what a side holds, resume,
abort); this module only composes them (`_process.pipe`, the bytes counted and paced on their
way through) and keeps the catalog in `.standby/` of the target's folder (`hostdir`). A record
lists no objects, only where the snapshot is at the target and the identity its stream carries
(`stream_id`: zfs guid, btrfs uuid), which is how `verify` and the next incremental find it.

Interrupted streams: a stream in flight is marked in the target's local state (so a ship that
was killed is known to the next one). Where both ends can (`can_resume`: OpenZFS `send -t` and
`recv -s`) the receive is resumable and the next ship continues from the target's
`receive_resume_token`; elsewhere (zfs-fuse, btrfs) what the interrupted receive left is removed
(`abort_receive`) — right away when the stream fails, or by the next ship after a kill — and the
stream starts again from its first byte. What each target holds is asked once per run. Pull sends the target's received snapshots (from
the target's host) into the standby's volumes: the volume's own dataset for zfs, a received copy
whose files are reflinked into the volume for btrfs; the full stream first, then each increment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

from standby import _process
from standby import log as slog
from standby.catalog.target import Shipment, TargetCatalog
from standby.errors import (
    CommandFailed,
    IntegrityError,
    NotFound,
    StandbyError,
    StateConflict,
    UsageError,
)
from standby.snapshot._base import Received, Snapshot, StreamingBackend, StreamTarget
from standby.transfer._base import (
    Landing,
    Progress,
    SendJob,
    Source,
    TargetUrl,
    TransferEffects,
    WriteStats,
)
from standby.transfer.landing import receive_chain


class Counter:
    """`on_count` of a pipe: counts, paces and reports the bytes passing (which move from pipe
    to pipe in the kernel, not through Python)."""

    def __init__(self, fx: TransferEffects, what: str, total: int | None) -> None:
        self.fx, self.what, self.total, self.n = fx, what, total, 0

    def __call__(self, size: int) -> None:
        self.n += size
        self.fx.throttle(size)
        self.fx.progress(Progress(self.what, self.n, self.total))


class ReceiveTarget:
    """A `Target` whose snapshots are received by `backend` under `root` (see the docstring)."""

    def __init__(self, url: TargetUrl, backend: StreamingBackend,
                 catalog: Callable[[], TargetCatalog], *, remote: _process.Remote | None,
                 server_id: str) -> None:
        self.url = url
        self.kind = url.scheme
        self.backend = backend
        self._catalog = catalog
        self.remote = remote
        self.server_id = server_id
        self._there: dict[str, list[Received]] = {}
        self._prepared: set[str] = set()
        self.log = slog.get("standby.transfer", target=str(url))

    @cached_property
    def catalog(self) -> TargetCatalog:
        """Made on first use: a zfs target's catalog is in its dataset's mountpoint, which
        exists once `check(write=True)` prepared the target."""
        return self._catalog()

    def location(self, volume: str) -> StreamTarget:
        return StreamTarget(f"{self.url.path.rstrip('/')}/{self.server_id}/{volume}",
                            self.remote)

    # -- Target -----------------------------------------------------------------------------
    def check(self, *, write: bool) -> None:
        if write:
            first = self.location("db")
            self.backend.prepare_receive(first)
            self._prepared.add(first.location)  # not asked again by its send
            self.__dict__.pop("catalog", None)  # made again: the dataset may be new
        self.catalog.store.list("catalog/")  # the catalog's folder is reachable

    def refuses(self, backend: str) -> str | None:
        if backend == self.kind:
            return None
        return (f"a {self.kind} target receives {self.kind} snapshots, and this volume's "
                f"backend is {backend}; ship it to an s3:// or file:// target instead")

    def needs_local_parent(self, backend: str) -> bool:
        return True

    def estimate(self, source: Source,
                 parent: tuple[Shipment | None, Snapshot | None] | None) -> int | None:
        return self.backend.estimate(source.snapshot, parent[1] if parent else None)

    def received(self, t: StreamTarget, *, fresh: bool = False) -> list[Received]:
        """What `t` holds, asked once per run (a command there each time, over ssh too)."""
        if fresh or t.location not in self._there:
            self._there[t.location] = self.backend.received(t)
        return self._there[t.location]

    def send(self, job: SendJob) -> Shipment:
        src = job.source
        t = self.location(src.volume)
        if t.location not in self._prepared:
            self.backend.prepare_receive(t)
            self._prepared.add(t.location)
        parent = job.parent_snapshot if job.parent is not None else None
        marker = f"receive:{t}"
        interrupted = job.effects.resume_get(marker)
        there = self.received(t, fresh=bool(interrupted))
        if job.parent is None and there and self.kind == "zfs":
            raise StateConflict(f"{t} holds snapshots, and a full stream cannot be received "
                                "into a dataset that has them",
                                hint=f"destroy it at the target (`zfs destroy -r "
                                     f"{t.location}`) to send a full stream")
        if job.parent is not None:
            if parent is None or job.parent.stream_id not in {r.stream_id for r in there}:
                raise NotFound(
                    f"the {src.volume} snapshot of {job.parent.manifest_id}, the parent of this "
                    f"incremental, is not at {t}",
                    hint="send a full stream instead: `standby ship --full`")
        resumable = self.backend.can_resume(t)
        sender = self._sender(t, src.snapshot, parent, resumable=resumable,
                              interrupted=bool(interrupted))
        receiver = self.backend.receive(t, resumable=resumable, rollback=parent is not None)
        count = Counter(job.effects, f"{src.volume} of {src.manifest_id}",
                        self.backend.estimate(src.snapshot, parent) if job.effects.totals
                        else None)
        # Marked before the stream starts: a ship killed mid-stream is known to the next one.
        job.effects.resume_put(marker, {"snapshot": src.snapshot.name})
        try:
            _process.pipe(sender, receiver, on_count=count)
        except CommandFailed as e:
            err = self.backend.stream_error(e, t)
            if isinstance(err, StateConflict):
                job.effects.resume_put(marker, {})  # refused before receiving: nothing left
            else:
                self._clean_up(t, src.snapshot, resumable, job.effects, marker)
            if parent is None and isinstance(err, StateConflict) and self.kind == "zfs":
                raise StateConflict(f"{t} already exists, and a full stream cannot be "
                                    f"received into it: {err.message}",
                                    hint=f"destroy it at the target (`zfs destroy -r "
                                         f"{t.location}`) to send a full stream") from e
            raise err from e
        except BaseException:
            self._clean_up(t, src.snapshot, resumable, job.effects, marker)
            raise
        job.effects.resume_put(marker, {})
        sid = self.backend.stream_id(src.snapshot)
        got = [r for r in self.received(t, fresh=True) if r.stream_id == sid]
        if not got:
            raise NotFound(f"{t} does not list {src.snapshot.name} after receiving it")
        self.log.info("snapshot_received", volume=src.volume, set_id=src.manifest_id,
                      at=got[-1].ref, bytes=count.n)
        job.effects.stats[got[-1].ref] = WriteStats(parts_sent=1, bytes_sent=count.n)
        return Shipment(
            server_id=self.server_id, manifest_id=src.manifest_id, kind=src.kind,
            volume=src.volume, backend=src.record.backend, name=src.record.name,
            stream_format=self.kind, stream_id=sid, taken_at_ms=src.record.taken_at_ms,
            parent=job.parent.manifest_id if job.parent else None, received=got[-1].ref,
            shipped_ms=job.effects.now_ms())

    def _clean_up(self, t: StreamTarget, snapshot: Snapshot, resumable: bool,
                  fx: TransferEffects, marker: str) -> None:
        """After a failed stream: keep a resumable receive for the next ship; remove what a
        receive that cannot resume left, so the next one starts cleanly."""
        if resumable and self.backend.resume_token(t):
            return  # the marker stays: the next ship continues from the token
        try:
            left = self.backend.abort_receive(t, snapshot)
        except StandbyError as e:  # the next ship tries again (the marker says so)
            self.log.warning("abort_receive_failed", at=str(t), error=str(e))
            return
        if left:
            self.log.warning("partial_receive_removed", at=str(t), removed=left)
        fx.resume_put(marker, {})

    def _sender(self, t: StreamTarget, snapshot: Snapshot, parent: Snapshot | None, *,
                resumable: bool, interrupted: bool) -> _process.Command:
        """The stream to send: the rest of an interrupted one where it can be resumed, else
        from its start, after clearing what an interrupted receive left."""
        if interrupted:
            token = self.backend.resume_token(t) if resumable else None
            if token:
                self.log.info("stream_resumed", at=str(t), snapshot=snapshot.name)
                return self.backend.resume_send(token)
            left = self.backend.abort_receive(t, snapshot)
            if left:
                self.log.warning("partial_receive_removed", at=str(t), removed=left)
        return self.backend.send(snapshot, parent)

    def check_snapshot(self, r: Shipment, *, deep: bool,
                       progress: Callable[[Progress], None] = lambda p: None) -> list[str]:
        t = self.location(r.volume)
        if r.stream_id not in {x.stream_id for x in self.received(t)}:
            return [f"the {r.volume} snapshot of {r.manifest_id} ({r.received}) is not at {t}"]
        return []

    def discard(self, r: Shipment) -> None:
        t = self.location(r.volume)
        for x in self.received(t):
            if x.stream_id == r.stream_id:
                self.backend.destroy_received(t, x)
        self._there.pop(t.location, None)

    # -- pull -------------------------------------------------------------------------------
    def stage(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
              fx: TransferEffects) -> None:
        if landing.backend != self.kind or landing.streaming is None:
            raise UsageError(f"the {chain[-1].volume} snapshots at {self.url} are {self.kind} "
                             f"snapshots, and the standby's volume uses {landing.backend}",
                             hint=f"make volumes.{chain[-1].volume} a {self.kind} volume here")
        problems = [p for r in chain for p in self.check_snapshot(r, deep=False)]
        if problems:
            raise IntegrityError("; ".join(problems), hint="ship them again (`standby ship`)")

    def land(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
             fx: TransferEffects) -> None:
        vol = chain[-1].volume
        there = {x.stream_id: x.as_snapshot(vol, self.kind)
                 for x in self.received(self.location(vol))}

        def feed(i: int, r: Shipment, receiver: _process.Command) -> None:
            prev = there[chain[i - 1].stream_id] if i else None
            sender = self.backend.send(there[r.stream_id], prev, remote=self.remote)
            _process.pipe(sender, receiver, on_count=Counter(fx, f"{r.volume} of "
                                                                 f"{r.manifest_id}", None))

        receive_chain(chain, landing, staging, feed)
