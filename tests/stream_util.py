"""A redo log written by the real writer, a clock the test moves, and a streamer on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from standby import settings as settings_mod
from standby.redolog.ops import CreateMailbox
from standby.redolog.record import Record
from standby.redolog.writer import RedoLogWriter, WriterConfig
from standby.settings import Settings
from standby.transfer import factory
from standby.transfer.stream import Streamer
from tests.status_util import config

T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


class Primary:
    """A redolog volume written by `RedoLogWriter`, and its server's settings."""

    def __init__(self, root: Path, **sections: dict[str, Any]) -> None:
        self.s: Settings = settings_mod.load(config(root, **sections))
        self.clock = Clock()
        self.w = RedoLogWriter(self.s.volumes.redolog.path, server_id=self.s.server_id,
                               clock=self.clock,
                               config=WriterConfig(fsync_interval_ms=0, rollover_size=1 << 40,
                                                   rollover_min_age_ms=0,
                                                   rollover_hard_max=1 << 41),
                               fsync=lambda fd: None)
        self.w.open()
        self.n = 0

    def txns(self, k: int) -> None:
        for _ in range(k):
            self.n += 1
            self.clock.advance(7)
            rec = Record(CreateMailbox(account_id=f"account-{self.n:06d}"), self.clock.ms,
                         T0 // 1000, self.n, self.n, 1)
            self.w.log(rec, sync=False)
            self.w.log_commit(rec, tstamp=self.clock.ms)

    def streamer(self, url: str, **kw: Any) -> Streamer:
        return Streamer(self.s, factory.open_target(url, self.s), now_ms=self.clock, **kw)

    @property
    def redo(self) -> Path:
        return self.s.volumes.redolog.path / "redo.log"
