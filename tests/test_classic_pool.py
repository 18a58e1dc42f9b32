"""The classic module's runner (standby/classic/pool.py): work in forked worker processes,
results and errors back in the caller, a stop that ends the run after the items in hand, a
worker that dies reported, and no worker left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from standby.classic import pool
from standby.errors import NotFound, ServiceError


class Ctx:
    """A worker's context: where it runs, and a file it writes when it is closed."""

    def __init__(self, closed: Path) -> None:
        self.pid = os.getpid()
        self.closed = closed

    def close(self) -> None:
        (self.closed / str(self.pid)).write_text("closed")


def test_work_runs_in_worker_processes_and_results_come_back(tmp_path: Path) -> None:
    seen: dict[int, tuple[int, int]] = {}

    def work(ctx: Ctx, item: int) -> tuple[int, int]:
        time.sleep(0.01)
        return ctx.pid, item * item

    pool.each(range(20), work, lambda i, r: seen.__setitem__(i, r), workers=2,
              open_context=lambda: Ctx(tmp_path), close_context=Ctx.close)
    assert {i: r[1] for i, r in seen.items()} == {i: i * i for i in range(20)}
    pids = {r[0] for r in seen.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # Each worker closed its context when the run ended.
    assert {int(p.name) for p in tmp_path.iterdir()} == pids


def test_one_worker_works_in_the_calling_process(tmp_path: Path) -> None:
    seen: list[int] = []
    pool.each(range(3), lambda ctx, i: ctx.pid, lambda i, pid: seen.append(pid), workers=1,
              open_context=lambda: Ctx(tmp_path), close_context=Ctx.close)
    assert seen == [os.getpid()] * 3
    assert [p.name for p in tmp_path.iterdir()] == [str(os.getpid())]


def test_an_error_crosses_whole_and_ends_the_run_after_the_items_in_hand(
        tmp_path: Path) -> None:
    done: list[int] = []

    def work(ctx: Ctx, item: int) -> int:
        if item == 3:
            e = NotFound("mailbox 3 does not exist", hint="check the account")
            e.exit_code = 7
            raise e
        time.sleep(0.05)
        return item

    with pytest.raises(NotFound) as err:
        pool.each(range(100), work, lambda i, r: done.append(r), workers=2,
                  open_context=lambda: Ctx(tmp_path), close_context=Ctx.close)
    assert err.value.message == "mailbox 3 does not exist"
    assert err.value.hint == "check the account" and err.value.exit_code == 7
    assert 3 not in done and len(done) < 10  # no new item was started after the error


def test_an_error_that_does_not_pickle_comes_back_as_its_text(tmp_path: Path) -> None:
    class Local(Exception):  # defined here: a child's instance cannot be unpickled
        pass

    def work(ctx: Ctx, item: int) -> int:
        raise Local("the disk is on fire")

    with pytest.raises(ServiceError) as err:
        pool.each([1], work, lambda i, r: None, workers=2,
                  open_context=lambda: Ctx(tmp_path), close_context=Ctx.close)
    assert "the disk is on fire" in str(err.value)


def test_a_stop_ends_the_run_after_the_items_in_hand(tmp_path: Path) -> None:
    done: list[int] = []

    def items():
        for i in range(100):
            if len(done) >= 4:
                return
            yield i

    pool.each(items(), lambda ctx, i: i, lambda i, r: done.append(r), workers=2,
              open_context=lambda: Ctx(tmp_path), close_context=Ctx.close)
    assert 4 <= len(done) <= 5 and sorted(done) == list(range(len(done)))


def test_a_worker_that_dies_is_reported_and_none_is_left(tmp_path: Path) -> None:
    def work(ctx: Ctx, item: int) -> int:
        if item == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return item

    workers = pool.Workers(work, workers=2, open_context=lambda: Ctx(tmp_path),
                           close_context=Ctx.close)
    pids = [p.pid for p in workers.procs]
    with workers, pytest.raises(ServiceError, match="died"):
        workers.each(range(10), lambda i, r: None)
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone as far as work goes; reaped by close() it no longer exists.
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
