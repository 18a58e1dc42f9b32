"""Accounts worked on a few at a time: the one runner of backup sessions and restores.

Invariant: the items are drawn from their iterable, and each result handed to `done`, in the
calling process and thread only, so whatever a caller does between two accounts (a stop check,
its directory entry, its maintenance gate, the session's progress) stays single-threaded; only
`work` runs in the workers, each with a context of its own (a database connection) opened at
its first item and closed when the run ends.

The workers are forked processes (`Workers`), because an account's work is mostly Python
(decoding rows, building Parquet, packing containers) and threads would share one core; a
worker's objects are copies, so `work` returns everything the caller needs (its results and
any counts) and changes nothing the caller reads. A run of one worker works in the calling
thread.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from standby import _process
from standby.errors import ServiceError

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")


_STOP = None  # what a worker is sent when the run ends


def _serve(conn: Connection, inherited: list[Connection], parent: int,
           work: Callable[[Any, Any], Any], open_context: Callable[[], Any],
           close_context: Callable[[Any], None]) -> None:
    """A worker's loop: an item in, ("ok", result) or ("error", exception) out; ends when the
    parent says so or closes its end (or dies: the kernel kills the worker with it)."""
    _process.die_with_parent(parent)
    for c in inherited:  # the parent's ends of the pipes, copied by the fork
        c.close()
    ctx = None
    try:
        while True:
            try:
                item = conn.recv()
            except EOFError:
                return
            if item is _STOP:
                return
            try:
                if ctx is None:
                    ctx = open_context()
                conn.send(("ok", work(ctx, item)))
            except BaseException as e:  # noqa: BLE001 - handed to the parent, which raises it
                conn.send(("error", _portable(e)))
    finally:
        if ctx is not None:
            close_context(ctx)


def _portable(e: BaseException) -> BaseException:
    """`e` as it can cross to the parent: itself when it pickles, else a ServiceError with its
    text and where it was raised."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - any pickling failure gets the same fallback
        return ServiceError(f"a worker failed: {type(e).__name__}: {e}\n"
                            f"{''.join(traceback.format_exception(e))}")


class Workers(Generic[C, T, R]):
    """`n` worker processes forked now, each running `work(context, item)` with a context it
    opens at its first item. Fork them before the caller starts threads of its own: a child
    has only the forking thread, and a lock another thread held stays held in the child."""

    def __init__(self, work: Callable[[C, T], R], *, workers: int,
                 open_context: Callable[[], C], close_context: Callable[[C], None]) -> None:
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        try:
            with _process.forking() as mp:
                for _ in range(max(1, workers)):
                    ours, theirs = mp.Pipe()
                    p = mp.Process(target=_serve, daemon=True,
                                   args=(theirs, [*self.conns, ours], os.getpid(), work,
                                         open_context, close_context))
                    p.start()
                    theirs.close()
                    self.conns.append(ours)
                    self.procs.append(p)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Let each worker finish its item and close its context, then reap it."""
        for c in self.conns:
            with suppress(OSError):  # a worker that is gone already
                c.send(_STOP)
            c.close()
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        self.conns, self.procs = [], []

    def __enter__(self) -> Workers[C, T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def each(self, items: Iterable[T], done: Callable[[T, R], None]) -> None:
        """`work` for each item, `done(item, result)` here as each ends. A new item is drawn
        only when a worker is free, so an iterable that stops yielding (an abort) stops the
        run after the items in hand. An exception in `work` (a full disk) ends the run with
        it, after the items in hand."""
        todo = iter(items)
        free = list(self.conns)
        inflight: dict[Connection, T] = {}
        failed: BaseException | None = None
        exhausted = False
        while True:
            while failed is None and not exhausted and free:
                try:
                    item = next(todo)
                except StopIteration:
                    exhausted = True
                    break
                c = free.pop()
                try:
                    c.send(item)
                except OSError as e:  # BrokenPipeError: the worker is gone
                    raise self._died(c) from e
                inflight[c] = item
            if not inflight:
                break
            for ready in wait(list(inflight)):
                assert isinstance(ready, Connection)
                c = ready
                try:
                    kind, payload = c.recv()
                except (EOFError, OSError) as e:  # killed (OOM killer, operator)
                    raise self._died(c) from e
                item = inflight.pop(c)
                free.append(c)
                if kind == "ok":
                    done(item, payload)
                elif failed is None:
                    failed = payload
        if failed is not None:
            raise failed

    def _died(self, c: Connection) -> ServiceError:
        p = self.procs[self.conns.index(c)]
        p.join(timeout=5)
        return ServiceError(f"a worker process (pid {p.pid}) died with exit code {p.exitcode}",
                            hint="what the session or restore finished is kept; run it again")


@contextmanager
def started(work: Callable[[C, T], R], *, workers: int, open_context: Callable[[], C],
            close_context: Callable[[C], None]) -> Iterator[Callable[[Iterable[T],
                                                                      Callable[[T, R], None]],
                                                             None]]:
    """The `each` of a run: forked `Workers` when there is more than one, else the calling
    thread with one context (no fork for a single account)."""
    if workers > 1:
        with Workers(work, workers=workers, open_context=open_context,
                     close_context=close_context) as w:
            yield w.each
        return
    opened: list[C] = []

    def inline(items: Iterable[T], done: Callable[[T, R], None]) -> None:
        for item in items:
            if not opened:
                opened.append(open_context())
            done(item, work(opened[0], item))

    try:
        yield inline
    finally:
        for ctx in opened:
            close_context(ctx)


def each(items: Iterable[T], work: Callable[[C, T], R], done: Callable[[T, R], None], *,
         workers: int, open_context: Callable[[], C], close_context: Callable[[C], None]
         ) -> None:
    """Run `work(context, item)` for each item with up to `workers` at a time (see
    `Workers.each`), for a caller that starts no threads of its own meanwhile."""
    with started(work, workers=workers, open_context=open_context,
                 close_context=close_context) as run:
        run(items, done)
