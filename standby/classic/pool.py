"""Accounts worked on a few at a time: the one runner of backup sessions and restores.

Invariant: the items are drawn from their iterable, and each result handed to `done`, in the
calling thread only, so whatever a caller does between two accounts (a stop check, its
directory entry, its maintenance gate, the session's progress) stays single-threaded; only
`work` runs in the workers, each with a context of its own (a database connection) opened at
its first item and closed when the run ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")


def each(items: Iterable[T], work: Callable[[C, T], R], done: Callable[[T, R], None], *,
         workers: int, open_context: Callable[[], C], close_context: Callable[[C], None],
         name: str = "classic") -> None:
    """Run `work(context, item)` for each item with up to `workers` at a time, calling
    `done(item, result)` here as each ends. A new item is drawn only when a worker is free,
    so an iterable that stops yielding (an abort) stops the run after the items in hand. An
    exception in `work` (a full disk) ends the run with it, after the items in hand."""
    local = threading.local()
    opened: list[C] = []
    lock = threading.Lock()

    def task(item: T) -> R:
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = local.ctx = open_context()
            with lock:
                opened.append(ctx)
        return work(ctx, item)

    todo = iter(items)
    inflight: dict[Future[R], T] = {}
    n = max(1, workers)
    exhausted = False
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix=name) as pool:
            while True:
                while not exhausted and len(inflight) < n:
                    try:
                        item = next(todo)
                    except StopIteration:
                        exhausted = True
                        break
                    inflight[pool.submit(task, item)] = item
                if not inflight:
                    break
                finished, _pending = wait(inflight, return_when=FIRST_COMPLETED)
                for f in finished:
                    done(inflight.pop(f), f.result())
    finally:
        for ctx in opened:
            close_context(ctx)

