"""The redo position at a snapshot's moment: from the running store, or from the redolog volume.

With the store running, its writer answers `redo_position` atomically (sequence, offset, active
transactions, the oldest one's start); `freeze` blocks new changes, waits for those in flight
and answers the position at that moment, until `thaw` or the connection closes. With the store
stopped nothing changes: the sequence is in `redo.log`'s header and the offset is its size.

Invariant the manifest relies on: every op whose CommitTxn lies before a position read here had
all its effects on the db, blob and index volumes before the read, because the store writes
CommitTxn last (after the DB commit, the blob and the index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from standby.catalog.manifest import RedoPoint
from standby.errors import ServiceError, StateConflict
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.settings import Settings
from standby.store.client import StoreClient
from standby.store.site import Site
from standby.timefmt import now_ms


class RedoSource(Protocol):
    def position(self) -> RedoPoint: ...

    def frozen(self, timeout_s: float) -> AbstractContextManager[RedoPoint]: ...

    def close(self) -> None: ...


class StoreRedo:
    """The running store, over its socket (one connection for positions, one per freeze)."""

    def __init__(self, socket: Path, *, clock: Callable[[], int] = now_ms) -> None:
        self.socket = socket
        self._clock = clock
        self._client: StoreClient | None = None

    def _c(self) -> StoreClient:
        if self._client is None:
            self._client = StoreClient(self.socket, timeout=60)
        return self._client

    @staticmethod
    def _point(r: dict, at: int) -> RedoPoint:  # type: ignore[type-arg]
        return RedoPoint(seq=int(r["seq"]), offset=int(r["offset"]),
                         active_txns=tuple((int(a), int(b)) for a, b in r.get("active_txns", [])),
                         oldest_active_tstamp=(None if r.get("oldest_active_tstamp") is None
                                               else int(r["oldest_active_tstamp"])),
                         source="store", at_ms=at)

    def position(self) -> RedoPoint:
        at = self._clock()
        return self._point(self._c().call("redo_position"), at)

    @contextmanager
    def frozen(self, timeout_s: float) -> Iterator[RedoPoint]:
        with StoreClient(self.socket, timeout=timeout_s + 60) as c:
            at = self._clock()
            r = c.call("freeze", timeout_s=timeout_s)
            try:
                yield self._point(r, at)
            finally:
                try:
                    c.call("thaw")
                except ServiceError:
                    pass  # closing the connection thaws as well

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class DiskRedo:
    """A stopped store: the position is where `redo.log` ends."""

    def __init__(self, redolog_dir: Path, *, clock: Callable[[], int] = now_ms) -> None:
        self.dir = redolog_dir
        self._clock = clock

    def position(self) -> RedoPoint:
        at = self._clock()
        current = self.dir / files.CURRENT
        try:
            with open(current, "rb") as f:
                head = f.read(fileheader.HEADER_SIZE)
                size = f.seek(0, 2)
        except FileNotFoundError:
            archived = files.list_archive(self.dir / files.ARCHIVE_DIR)
            seq = archived[-1].seq + 1 if archived else 0
            return RedoPoint(seq=seq, offset=0, source="disk", at_ms=at)
        hdr = fileheader.decode(head, path=str(current))
        return RedoPoint(seq=hdr.sequence, offset=size, source="disk", at_ms=at)

    @contextmanager
    def frozen(self, timeout_s: float) -> Iterator[RedoPoint]:
        yield self.position()

    def close(self) -> None:
        pass


def open_source(s: Settings, *, clock: Callable[[], int] = now_ms) -> StoreRedo | DiskRedo:
    """The store if it answers; the disk if the store is stopped; an error if it is running
    but not answering (a position read from disk would then be a guess)."""
    sock = s.store_socket
    if sock.exists():
        src = StoreRedo(sock, clock=clock)
        try:
            src.position()
            return src
        except ServiceError:
            src.close()
    if Site(s).locked():
        raise StateConflict(f"the store holds its volumes but does not answer at {sock}",
                            hint="wait for it to finish starting, or stop it; a redo position "
                                 "read from disk while it writes would be a guess")
    disk = DiskRedo(s.volumes.redolog.path, clock=clock)
    disk.position()  # a damaged redo.log header is reported now, before anything is taken
    return disk
