"""Helpers for the replay tests (`tests/test_replay_*.py`).

- `Lab`: the stores of one test or one Hypothesis example, made with the `make_store` fixture,
  stopped and removed when the example ends (so a long property does not pile up servers). They
  share the first one's directory, as a standby site shares its primary's LDAP: a replayed
  purge deletes by the accounts' lifetimes found there.
- `run_primary`: a real primary driven by loadgen (its default mix, or `MAIL_HEAVY_MIX`), stopped,
  with its digest and the ops its log committed; `ZIMBRA_MAIL_OPS`, the ops loadgen's
  `ZIMBRA_MAIL_MIX` writes, which the properties must see.
- `zmplayredo` / `standby_cli`: the commands as a user runs them (a subprocess), with the exit
  code, the output, and the `--json` summary.
- `zimbra_time`: an epoch-ms instant written in one of Zimbra's local-time formats.
- A reference selection of committed transactions (`committed_txns`), written independently of
  `standby.replay.player` from the Zimbra semantics in the reference (§3), and `write_txns`,
  which writes exactly a chosen list of transactions as a clean redo log: replaying that log with
  the naive engine from empty is the expected state of a selective replay.
- `LogBuilder`: a redo log written record by record with `RedoLogWriter` (a fake clock, no
  fsync), for crafted logs: uncommitted, aborted and re-logged transactions, torn tails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, settings

from standby.redolog import files as logfiles
from standby.redolog import header as fileheader
from standby.redolog.ops import (
    BODY_INLINE,
    BODY_LINK,
    FLAG_UNREAD,
    AbortTxn,
    CommitTxn,
    CreateMailbox,
    CreateMessage,
    StoreIncomingBlob,
)
from standby.redolog.reader import read_all
from standby.redolog.record import MAILBOX_ALL, Op, Record
from standby.redolog.writer import RedoLogWriter, TxnIds, WriterConfig
from standby.replay import catchup
from standby.replay.catchup import CatchupResult
from standby.store import blobs as blobmod
from standby.store.digest import StoreDigest, digest_settings
from standby.store.loadgen import CORE_MIX, DEFAULT_MIX, ZIMBRA_MAIL_MIX, LoadResult
from standby.store.loadgen import run as loadgen
from standby.store.messages import MessageFactory
from standby.store.site import Site

BIN = Path(sys.executable).parent
ZMPLAYREDO = BIN / "zmplayredo"
STANDBY = BIN / "standby"


SOAK = os.environ.get("STANDBY_SOAK") == "1"  # `make soak`: every property at full strength


def property_settings(max_examples: int, *, ci: int | None = None) -> settings:
    """Few examples (each starts real servers), reproducible in CI, no shrinking (a shrink of a
    multi-second example would take minutes; the falsifying example is printed anyway).
    `ci` examples instead of `max_examples` in the test suite's run, all of them under
    `make soak` (STANDBY_SOAK=1)."""
    n = max_examples if SOAK or ci is None else ci
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    phases=(Phase.explicit, Phase.generate), print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# Running the commands


@dataclass
class Run:
    argv: list[str]
    rc: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, Any]:
        """The `--json` summary: the last line of stdout."""
        lines = [ln for ln in self.out.splitlines() if ln.strip()]
        assert lines, f"no output from {self.argv}: stderr {self.err[-2000:]}"
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    def describe(self) -> str:
        return (f"{' '.join(self.argv)}\n-> exit {self.rc}\nstdout: {self.out[-3000:]}\n"
                f"stderr: {self.err[-3000:]}")

    def assert_ok(self) -> Run:
        assert self.rc == 0, self.describe()
        self.assert_no_traceback()
        return self

    def assert_no_traceback(self) -> None:
        assert "Traceback" not in self.out + self.err, self.describe()


def _env(tz: str = "UTC") -> dict[str, str]:
    env = dict(os.environ)
    env["TZ"] = tz
    return env


def run_cli(argv: list[str], *, timeout: float = 300, tz: str = "UTC") -> Run:
    cp = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout,
                        env=_env(tz), stdin=subprocess.DEVNULL)
    return Run(argv, cp.returncode, cp.stdout, cp.stderr)


def zmplayredo(cfg: Path, *args: str | os.PathLike[str], timeout: float = 300,
               tz: str = "UTC") -> Run:
    """zmplayredo as a user runs it; `tz` is the local zone its times are read in."""
    return run_cli([str(ZMPLAYREDO), "--config", str(cfg), *map(str, args)], timeout=timeout,
                   tz=tz)


def standby_cli(cfg: Path, *args: str, timeout: float = 300) -> Run:
    return run_cli([str(STANDBY), "--config", str(cfg), *args], timeout=timeout)


def spawn_zmplayredo(cfg: Path, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """zmplayredo in its own process group, so the replay and its fork()ed workers can be
    SIGKILLed together (the MariaDB it starts runs in its own session and survives)."""
    return subprocess.Popen([str(ZMPLAYREDO), "--config", str(cfg), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=_env(), start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d))
    return out


def kill_group(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL the process group of `proc` (the replay and its workers); return who was in it."""
    members = group_members(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not group_members(proc.pid), "replay processes survived SIGKILL"
    return members


# --------------------------------------------------------------------------------------------
# Stores


class Lab:
    """The stores of one example: made with `make_store`, stopped and deleted on exit."""

    _count = 0

    def __init__(self, make_store: Callable[..., Any]) -> None:
        Lab._count += 1
        self.prefix = f"x{Lab._count}"
        self.make_store = make_store
        self.handles: list[Any] = []
        self.directory: Path | None = None  # the first store's, shared by the others

    def store(self, name: str, **kw: Any) -> Any:
        if self.directory is not None:
            sections = {k: dict(v) for k, v in kw.pop("sections", {}).items()}
            sections.setdefault("store", {}).setdefault("directory", str(self.directory))
            kw["sections"] = sections
        h = self.make_store(f"{self.prefix}-{name}", **kw)
        self.handles.append(h)
        if self.directory is None:
            self.directory = h.settings.directory_path
        return h

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        from standby.store import control

        for h in self.handles:
            try:
                control.stop(h.settings, timeout=30)
            except Exception:  # noqa: BLE001 - the other stores must still be stopped
                control.kill(h.settings)
        for h in self.handles:
            shutil.rmtree(h.root, ignore_errors=True)


def digest(h: Any, *, catch_up: bool = True) -> StoreDigest:
    """The store's digest; first, unless told not to, its index caught up if a `--index defer`
    replay left it behind, so a two-phase replay is compared with one-phase ones."""
    if catch_up:
        catch_up_index(h)
    return digest_settings(h.settings)


def catch_up_index(h: Any) -> CatchupResult | None:
    """Phase two (`standby.replay.catchup.run`) on a store whose index volume is behind."""
    site = Site(h.settings)
    try:
        if not site.index.marked_behind():
            return None
        res = catchup.run(site)
        assert res.as_dict()["complete"], res.as_dict()
        return res
    finally:
        site.close()


def volume_files(h: Any, *names: str) -> list[str]:
    """Every file on the named volumes (relative paths), to prove a command wrote nothing."""
    out = []
    for n in names:
        root = getattr(h.settings.volumes, n).path
        out += [f"{n}/{p.relative_to(root)}" for p in sorted(root.rglob("*")) if p.is_file()]
    return out


# Loadgen's mix with Zimbra's other mail ops as frequent as moves: a property example of a few
# hundred actions writes each of them (the default mix's proportions take thousands).
MAIL_HEAVY_MIX = {**CORE_MIX, **{k: 4.0 for k in ZIMBRA_MAIL_MIX}}
MIXES = {"default": DEFAULT_MIX, "mail-heavy": MAIL_HEAVY_MIX}
# The ops loadgen's ZIMBRA_MAIL_MIX writes (besides CreateMessage, MoveItem, DeleteItem and
# RenameFolder, which the core mix writes too). DeleteItemFromDumpster is not among them: this
# store keeps no dumpster (test_replay_zimbra_ops replays it from a crafted log).
ZIMBRA_MAIL_OPS = frozenset({
    "ColorItem", "DateItem", "SetImapUid", "CreateSavedSearch", "ModifySavedSearch",
    "RenameItem", "SetCustomData", "CopyItem", "SaveDraft", "SetConfig", "DeleteConfig",
    "PurgeOldMessages"})


@dataclass
class Primary:
    handle: Any
    digest: StoreDigest
    load: LoadResult
    ops: Counter[str]  # the committed ops of its log, by name

    @property
    def redolog(self) -> Path:
        return Path(self.handle.settings.volumes.redolog.path)


def run_primary(lab: Lab, *, seed: int, accounts: int, ops: int, workers: int,
                rollover_kb: int, mix: str = "default", name: str = "primary") -> Primary:
    """A primary that ran loadgen (with `MIXES[mix]`) and was stopped cleanly; its digest is
    the reference."""
    h = lab.store(name, sections={"redolog": {"rollover_size_kb": rollover_kb}})
    h.start()
    res = loadgen(h.settings.store_socket, accounts=accounts, ops=ops, seed=seed,
                  workers=workers, mix=MIXES[mix])
    assert res.errors == 0, res.error_samples
    h.stop()
    logged = committed_txns(log_files(Path(h.settings.volumes.redolog.path))).txns
    return Primary(h, digest(h), res, Counter(t.op.NAME for t in logged))


# --------------------------------------------------------------------------------------------
# Zimbra's time formats

# Zimbra's nine SoapCLI formats and the guide's own, as strftime patterns (%f -> ms added).
_STRFTIME = {
    "yyyy/MM/dd HH:mm:ss": "%Y/%m/%d %H:%M:%S",
    "yyyy/MM/dd HH:mm:ss SSS": "%Y/%m/%d %H:%M:%S {ms}",
    "yyyy/MM/dd HH:mm:ss.SSS": "%Y/%m/%d %H:%M:%S.{ms}",
    "yyyy/MM/dd-HH:mm:ss-SSS": "%Y/%m/%d-%H:%M:%S-{ms}",
    "yyyy/MM/dd-HH:mm:ss": "%Y/%m/%d-%H:%M:%S",
    "yyyyMMdd.HHmmss.SSS": "%Y%m%d.%H%M%S.{ms}",
    "yyyyMMdd.HHmmss": "%Y%m%d.%H%M%S",
    "yyyyMMddHHmmssSSS": "%Y%m%d%H%M%S{ms}",
    "yyyyMMddHHmmss": "%Y%m%d%H%M%S",
    "yyyy/MM/dd HH:mm:ss:SSS": "%Y/%m/%d %H:%M:%S:{ms}",
}
ALL_FORMATS = tuple(_STRFTIME)
MS_FORMATS = tuple(f for f in ALL_FORMATS if "SSS" in f)


def zimbra_time(ms: int, fmt: str, tz: str = "UTC") -> str:
    """`ms` as local time in zone `tz` (the commands run with TZ=UTC unless told otherwise) in
    Zimbra format `fmt`; formats without milliseconds round down to the second."""
    dt = datetime.fromtimestamp(ms // 1000, ZoneInfo(tz))
    return dt.strftime(_STRFTIME[fmt]).replace("{ms}", f"{ms % 1000:03d}")


def parsed_ms(ms: int, fmt: str) -> int:
    """The instant `zimbra_time(ms, fmt)` stands for."""
    return ms if "SSS" in fmt else ms - ms % 1000


# --------------------------------------------------------------------------------------------
# The reference selection (Zimbra's semantics, written without standby.replay)


@dataclass(frozen=True)
class LogPath:
    seq: int
    path: Path


def log_files(redolog_dir: Path) -> list[LogPath]:
    """Archived logs by name sequence, then redo.log with its header's sequence."""
    out = [LogPath(lf.seq, lf.path) for lf in
           logfiles.list_archive(redolog_dir / logfiles.ARCHIVE_DIR)]
    cur = redolog_dir / logfiles.CURRENT
    if cur.exists() and cur.stat().st_size >= fileheader.HEADER_SIZE:
        out.append(LogPath(fileheader.decode(cur.read_bytes()[:512]).sequence, cur))
    return out


def first_op_tstamp(path: Path) -> int:
    with open(path, "rb") as f:
        return fileheader.decode(f.read(fileheader.HEADER_SIZE)).first_op_tstamp


@dataclass
class Txn:
    start: Record
    commit: Record
    seq: int  # sequence of the file the commit was read from

    @property
    def op(self) -> Op:
        return self.start.op


@dataclass
class Reading:
    txns: list[Txn] = field(default_factory=list)  # committed, in commit order
    aborted: int = 0
    orphans: int = 0
    uncommitted: list[Record] = field(default_factory=list)
    problems: int = 0


def committed_txns(logs: Iterable[LogPath]) -> Reading:
    """Zimbra's RedoPlayer bookkeeping over these files, in order: a start marker enters a map
    by txn id (a re-logged one replaces its earlier copy), a Commit takes it out as committed,
    an Abort drops it, a Commit or Abort without a start is an orphan."""
    r = Reading()
    pending: dict[tuple[int, int], Record] = {}
    for lp in logs:
        _hdr, recs, problems = read_all(lp.path)
        r.problems += len(problems)
        for rec in recs:
            key = (rec.txn_time, rec.txn_counter)
            if rec.op.OPCODE == CommitTxn.OPCODE:
                start = pending.pop(key, None)
                if start is None:
                    r.orphans += 1
                else:
                    r.txns.append(Txn(start, rec, lp.seq))
            elif rec.op.OPCODE == AbortTxn.OPCODE:
                if pending.pop(key, None) is None:
                    r.orphans += 1
                else:
                    r.aborted += 1
            elif rec.op.is_start_marker:
                pending[key] = rec
    r.uncommitted = list(pending.values())
    return r


def applied_ops(txns: Iterable[Txn]) -> list[Txn]:
    """The transactions a replay runs against the volumes (StoreIncomingBlob only feeds blobs)."""
    return [t for t in txns if not isinstance(t.op, StoreIncomingBlob)]


def write_txns(redolog_dir: Path, txns: Iterable[Txn]) -> Path:
    """Write exactly these transactions (change record + commit, in this order) as a clean log."""
    redolog_dir.mkdir(parents=True, exist_ok=True)
    now = [0]
    w = RedoLogWriter(redolog_dir, server_id="expected", clock=lambda: now[0],
                      config=WriterConfig(fsync_interval_ms=0, rollover_size=1 << 40,
                                          rollover_min_age_ms=0, rollover_hard_max=1 << 41),
                      fsync=lambda fd: None)
    w.open()
    for t in txns:
        now[0] = t.start.tstamp
        s = t.start
        w.log(Record(s.op, s.tstamp, s.txn_time, s.txn_counter, s.mailbox_id, s.change_id,
                     s.change_constraint), sync=False)
        now[0] = t.commit.tstamp
        w.log_commit(s, tstamp=t.commit.tstamp)
    w.close()
    return redolog_dir


def expected_store(lab: Lab, name: str, txns: Iterable[Txn], *,
                   lost_blobs: bool = False) -> tuple[Any, StoreDigest]:
    """A store built by the naive engine from empty on a log of exactly `txns`; with
    `lost_blobs`, the txns may lack a shared delivery's StoreIncomingBlob (a damaged record),
    and the replay's exit 1 for those messages' missing blobs is expected."""
    h = lab.store(name)
    logdir = write_txns(h.root / "expected-log", txns)
    r = zmplayredo(h.cfg, "--naive", "--json", "--log-dir", logdir)
    if lost_blobs:
        r.assert_no_traceback()
        assert r.rc in (0, 1), r.describe()
        assert all("no blob" in e for e in r.summary["error_samples"]), r.describe()
    else:
        r.assert_ok()
    return h, digest(h)


# --------------------------------------------------------------------------------------------
# Crafted logs


class LogBuilder:
    """Writes a redo log op by op as the store would (consistent ids and change numbers), with
    full control over commits, aborts, rollovers and the clock."""

    def __init__(self, redolog_dir: Path, *, start_ms: int = 1_700_000_000_000,
                 seed: int = 1) -> None:
        self.now = start_ms
        self.w = RedoLogWriter(redolog_dir, server_id="crafted", clock=lambda: self.now,
                               config=WriterConfig(fsync_interval_ms=0, rollover_size=1 << 40,
                                                   rollover_min_age_ms=0,
                                                   rollover_hard_max=1 << 41),
                               fsync=lambda fd: None)
        self.w.open()
        self.txn = TxnIds(start_s=start_ms // 1000)
        self.change: dict[int, int] = {}
        self.last_id: dict[int, int] = {}
        self.rng = random.Random(seed)
        self.factory = MessageFactory(self.rng, ["a@example.com", "b@example.com"])
        self.txns: list[Txn] = []  # committed, in commit order

    def tick(self, ms: int = 3) -> int:
        self.now += ms
        return self.now

    def _at(self, at: int | None) -> int:
        if at is None:
            return self.tick()
        assert at >= self.now, "the clock of a log only moves forward"
        self.now = at
        return at

    def begin(self, mailbox: int, op: Op, *, change: int | None = None,
              at: int | None = None) -> Record:
        """Log a change record (its change number: the mailbox's next, unless given)."""
        if change is None and mailbox != MAILBOX_ALL:
            change = self.change.get(mailbox, 0) + 1
        t, c = self.txn.next()
        rec = Record(op, self._at(at), t, c, mailbox, change if change is not None else -1)
        self.w.log(rec, sync=False)
        return rec

    def commit(self, rec: Record, *, at: int | None = None) -> Record:
        done = Record(CommitTxn(rec.op.OPCODE), self._at(at), rec.txn_time, rec.txn_counter,
                      rec.mailbox_id)
        self.w.log(done, sync=False)
        self.txns.append(Txn(rec, done, -1))
        if rec.mailbox_id != MAILBOX_ALL:
            self.change[rec.mailbox_id] = max(self.change.get(rec.mailbox_id, 0), rec.change_id)
        return rec

    def abort(self, rec: Record) -> None:
        self.w.log_abort(rec, tstamp=self.tick())

    def op(self, mailbox: int, op: Op) -> Record:
        return self.commit(self.begin(mailbox, op))

    def new_id(self, mailbox: int) -> int:
        self.last_id[mailbox] = self.last_id.get(mailbox, 256) + 1
        return self.last_id[mailbox]

    def create_mailbox(self, mailbox: int) -> Record:
        return self.commit(self.begin(mailbox, CreateMailbox(f"{mailbox:032x}"), change=1))

    def message(self, mailbox: int, *, folder: int = 2) -> CreateMessage:
        raw = self.factory.message(sender="a@example.com", recipients=["b@example.com"],
                                   date_ms=self.now)
        return CreateMessage(f"user{mailbox}@example.com", self.now, False, blobmod.digest(raw),
                             len(raw), self.new_id(mailbox), folder, flags=FLAG_UNREAD,
                             body_type=BODY_INLINE, data=raw)

    def shared_delivery(self, mailboxes: list[int]) -> list[Record]:
        """StoreIncomingBlob (mailbox -1) + one LINK CreateMessage per mailbox, all committed."""
        raw = self.factory.message(sender="a@example.com", recipients=["b@example.com"],
                                   date_ms=self.now)
        dig = blobmod.digest(raw)
        path = f"/nonexistent/incoming/crafted-{self.now}.msg"
        out = [self.op(MAILBOX_ALL, StoreIncomingBlob(tuple(mailboxes), dig, path, len(raw),
                                                       raw))]
        for m in mailboxes:
            out.append(self.op(m, CreateMessage(f"user{m}@example.com", self.now, True, dig,
                                                len(raw), self.new_id(m), 2, flags=FLAG_UNREAD,
                                                path=path, body_type=BODY_LINK)))
        return out

    def rollover(self) -> None:
        self.w.rollover(force=True)

    def close(self) -> None:
        self.w.close()

    def crash(self) -> None:
        """Stop without closing (the header of redo.log stays open=1)."""
        self.w.abandon()


def patch_version(path: Path, major: int, minor: int) -> None:
    """Rewrite a log header's format version (offset 168: int16 major, int16 minor)."""
    with open(path, "r+b") as f:
        f.seek(168)
        f.write(major.to_bytes(2, "big") + minor.to_bytes(2, "big"))


def records_with_offsets(path: Path) -> list[Record]:
    return read_all(path)[1]


def iter_blob_ops(txns: Iterable[Txn]) -> Iterator[tuple[int, int, int]]:
    """(mailbox, item, change) of every op that stores a blob (messages, contacts with data)."""
    from standby.redolog.ops import CreateContact, ModifyContact

    for t in txns:
        op = t.op
        if isinstance(op, CreateMessage):
            yield t.start.mailbox_id, op.msg_id, t.start.change_id
        elif isinstance(op, CreateContact | ModifyContact) and op.data:
            yield t.start.mailbox_id, op.contact_id, t.start.change_id
