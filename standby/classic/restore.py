"""Restores (`zmrestore` on a running store, `zmrestoreoffline` with the service stopped).

For each account, as the guide's steps: the mailbox in maintenance (the directory's exclusive
gate, so a running store refuses its changes meanwhile); the mailbox's data on the server
deleted; the last full backup before the requested point loaded (rows from Parquet, blobs,
index); then the redo logs replayed with the replay engine (the fast engine, only the restored
mailboxes' ops): those of the target (incrementals' and auto-grouped sessions'), then — unless
`-br` — the server's archive and current log. Change numbers make the replay exact: the loaded
mailbox has every op up to its backup's change number and skips them (DESIGN.md §1).

Point in time: `-restoreToTime` (commit time, as `zmplayredo --toTime`), `-restoreToRedoSeq`
(logs up to that sequence), `-restoreToIncrLabel` (up to that incremental's last log); when
several are given the earliest wins, and `-rf` (the full backup alone) wins over all.
`--skipDeletes`, a deleted account brought back, `-ca -pre` (a new account) and an account whose
mailbox id changed make the replay read a rewritten log (`redo.rewrite`).

`plan` decides from the target's files alone which session each account comes from, and refuses
an account without a usable full backup, an unknown label, and a session that is not complete
(a crash left it in `sessions_tmp/`) unless `allow_incomplete`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from standby import fsutil
from standby.classic import blobpack, labels, load, pool, redo, xmlfiles
from standby.classic.control import RestoreRun
from standby.classic.env import Env
from standby.classic.labels import Label
from standby.classic.load import Step
from standby.classic.target import SessionInfo, account_relpath
from standby.classic.xmlfiles import AccountMeta
from standby.errors import (
    FormatError,
    NotFound,
    ServiceError,
    StandbyError,
    StateConflict,
    UsageError,
)
from standby.redolog.ops import CreateMailbox, DeleteMailbox
from standby.redolog.record import Record
from standby.replay import fast
from standby.replay.player import Selection
from standby.replay.worker import WorkerConfig


@dataclass(frozen=True)
class Request:
    accounts: tuple[str, ...] | None = None  # None: every account backed up (-a all); ()
    # with -sys alone: none
    label: str | None = None  # -lb
    full_only: bool = False  # -rf
    backup_redo_only: bool = False  # -br
    to_time: int | None = None
    to_incr_label: str | None = None
    to_redo_seq: int | None = None
    create: bool = False  # -ca
    prefix: str | None = None  # -pre
    restore_account: bool = False  # -ra
    sys: bool = False
    continue_on_error: bool = False
    skip_deletes: bool = False
    skip_deleted_accounts: bool = False
    search_index: bool = True
    blobs: bool = True
    hsm_blobs: bool = True
    allow_incomplete: bool = False

    def __post_init__(self) -> None:
        if self.create != (self.prefix is not None):
            raise UsageError("-ca and -pre go together: -ca -pre PREFIX restores into new "
                             "accounts named PREFIX + the original address")
        if self.prefix is not None:
            labels.check_name(self.prefix, what="prefix")
            if "@" in self.prefix or not self.prefix.strip():
                raise UsageError(f"-pre {self.prefix!r}: a prefix is the start of a local part")
        if self.accounts == () and not self.sys:
            raise UsageError("give the accounts to restore with -a (or -a all), or -sys")
        if self.to_redo_seq is not None and self.to_redo_seq < 0:
            raise UsageError("-restoreToRedoSeq must be 0 or more")


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    failed: tuple[tuple[str, str], ...]  # (account, why) refused by the plan
    to_seq: int | None
    sys_session: SessionInfo | None

    def as_dict(self) -> dict[str, object]:
        return {"accounts": [{"name": s.email, "label": str(s.session.label),
                              "redo_seq": s.meta.redo_seq} for s in self.steps],
                "failed": [{"name": a, "error": e} for a, e in self.failed],
                "to_seq": self.to_seq,
                "sys": str(self.sys_session.label) if self.sys_session else None}


@dataclass
class Outcome:
    restored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)  # left by zmbackupabort -r
    skipped: list[str] = field(default_factory=list)  # deleted accounts, -skipDeletedAccounts
    sys: bool = False
    replay: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"restored": self.restored, "failed": [{"name": a, "error": e}
                                                       for a, e in self.failed],
                "not_restored": self.not_restored, "skipped": self.skipped, "sys": self.sys,
                "replay": self.replay}


# ---------------------------------------------------------------------------------------------
# Planning


def _meta(info: SessionInfo, zimbra_id: str) -> AccountMeta | None:
    p = info.path / account_relpath(zimbra_id) / "meta.xml"
    try:
        return xmlfiles.meta_from_xml(xmlfiles.read_xml(p, root="accountBackup"), where=str(p))
    except FileNotFoundError:
        return None


def _ldap(info: SessionInfo, zimbra_id: str) -> dict[str, Any]:
    p = info.path / account_relpath(zimbra_id) / "ldap.xml"
    return xmlfiles.account_ldap_from_xml(xmlfiles.read_xml(p, root="account"), where=str(p))


def plan(env: Env, req: Request) -> Plan:
    t = env.target
    t.check_usable(create=False)
    sessions = t.sessions()
    known = [s.label for s in sessions]
    chosen: SessionInfo | None = None
    if req.label is not None:
        lb = labels.resolve(req.label, known)
        chosen = next(s for s in sessions if s.label == lb)
        if lb.kind != "full":
            raise UsageError(f"-lb {lb} is an incremental session; give a full backup's label",
                             hint="-restoreToIncrLabel replays up to an incremental")
        if not chosen.finished and not req.allow_incomplete:
            raise _incomplete(chosen)
    to_seq = req.to_redo_seq
    incr: Label | None = None
    if req.to_incr_label is not None:
        incr = labels.resolve(req.to_incr_label, known)
        info = next(s for s in sessions if s.label == incr)
        if incr.kind != "incr" or info.record is None or info.record.max_redo_seq is None:
            raise UsageError(f"-restoreToIncrLabel {incr}: not a completed incremental session")
        to_seq = info.record.max_redo_seq if to_seq is None else min(to_seq,
                                                                    info.record.max_redo_seq)
    wanted = _wanted(env, req, sessions, chosen)
    steps, failed = [], []
    for zid, email in wanted:
        try:
            info, meta = _full_for(zid, email, sessions, chosen, req, to_seq, incr)
            steps.append(Step(email, zid, info, meta, _ldap(info, zid)))
        except (NotFound, FormatError, UsageError) as e:
            if not req.continue_on_error:
                raise
            failed.append((email, e.message))
    sys_session = None
    if req.sys:
        fulls = [s for s in sessions if s.finished and s.label.kind == "full"]
        sys_session = chosen or (fulls[-1] if fulls else None)
        if sys_session is None:
            raise NotFound(f"no full backup in {t.root} to restore the system data from")
    return Plan(tuple(steps), tuple(failed), None if req.full_only else to_seq, sys_session)


def fetch(env: Env, req: Request) -> None:
    """With a remote target (`-t s3://…`): its local copy brought up to date, and the data of
    the sessions `req` reads fetched — the session of `-lb`, else for each account the newest
    full session holding it (at or before `-restoreToTime`), the newest full for `-sys`, and
    the auto-grouped sessions, which keep redo logs. A no-op for a folder target."""
    r = env.remote
    if r is None:
        return
    r.pull()
    sessions = env.target.sessions()
    fulls = [s for s in sessions if s.finished and s.label.kind == "full" and s.record]
    want: set[str] = set()
    if req.label is not None:
        want.add(str(labels.resolve(req.label, [s.label for s in sessions])))
    else:
        named = None if req.accounts is None else {a.lower() for a in req.accounts}
        covered: set[str] = set()
        for s in reversed(fulls):
            if req.to_time is not None and s.label.ms > req.to_time:
                continue
            assert s.record is not None
            for a in s.record.accounts:
                if a.status == "COMPLETED" and a.zimbra_id not in covered and (
                        named is None or a.email in named or a.zimbra_id in named):
                    covered.add(a.zimbra_id)
                    want.add(str(s.label))
        if req.sys and fulls:
            want.add(str(fulls[-1].label))
    want.update(str(s.label) for s in fulls if s.record and s.record.redologs)
    r.fetch(want)


def _incomplete(info: SessionInfo) -> StateConflict:
    return StateConflict(f"the backup session {info.label} is not complete (status: "
                         f"{info.status}); a crash or an abort interrupted it",
                         hint="restore from another session, or pass --allowIncomplete to "
                         "restore the accounts it finished")


def _wanted(env: Env, req: Request, sessions: list[SessionInfo],
            chosen: SessionInfo | None) -> list[tuple[str, str]]:
    """(zimbraId, email) of each account to restore: those named, or every account the
    target's accounts.xml lists (all those the sessions hold, if it is missing)."""
    if req.accounts == ():
        return []
    entries = {e.email: e.zimbra_id for e in env.target.accounts()}
    pool = [chosen] if chosen is not None else ([] if entries else sessions)
    for s in pool:
        for a in s.record.accounts if s.record else ():
            entries.setdefault(a.email, a.zimbra_id)
    if req.accounts is None:
        return sorted((zid, email) for email, zid in entries.items())
    by_id = {zid: email for email, zid in entries.items()}
    out, missing = [], []
    for name in req.accounts:
        n = name.lower()
        if n in entries:
            out.append((entries[n], n))
        elif name in by_id:
            out.append((name, by_id[name]))
        else:
            missing.append(name)
    if missing:
        raise NotFound(f"no backup of {', '.join(missing)} in {env.target.root}",
                       hint="`zmbackupquery -a ACCOUNT` shows an account's backups")
    return out


def _full_for(zid: str, email: str, sessions: list[SessionInfo], chosen: SessionInfo | None,
              req: Request, to_seq: int | None,
              incr: Label | None) -> tuple[SessionInfo, AccountMeta]:
    """The latest full backup of the account that comes before the requested point."""
    pool = [chosen] if chosen is not None else [
        s for s in reversed(sessions) if s.label.kind == "full" and s.finished]
    for s in pool:
        if s.record is None:
            continue
        entry = next((a for a in s.record.accounts if a.zimbra_id == zid), None)
        if entry is None or entry.status != "COMPLETED":
            continue
        meta = _meta(s, zid)
        if meta is None:
            continue
        if not req.full_only:
            if req.to_time is not None and meta.start_ms > req.to_time:
                continue
            if to_seq is not None and meta.redo_seq > to_seq:
                continue
            if incr is not None and s.label > incr:
                continue
        return s, meta
    where = f"session {chosen.label}" if chosen is not None else "the target"
    raise NotFound(f"no complete full backup of {email} in {where} before the requested point",
                   hint="`zmbackupquery -a " + email + "` lists its backups")


# ---------------------------------------------------------------------------------------------
# Running


def run(env: Env, req: Request, *, online: bool) -> Outcome:
    """Restore what `req` asks for (see the module docstring)."""
    site = env.site
    if online and site.service_pid() is None:
        raise StateConflict("the store is not running: zmrestore restores into a running store",
                            hint="start it with `standby store start`, or restore with the "
                            "service stopped with zmrestoreoffline")
    if not online:
        site.check_stopped("zmrestoreoffline")
    fetch(env, req)
    p = plan(env, req)
    out = Outcome(failed=list(p.failed))
    with RestoreRun(env.settings.state_dir) as reg, ExitStack() as stack:
        if not online:
            stack.enter_context(site.database())
            stack.enter_context(site.replaying())
        conn = site.connect()  # one for the whole restore: a connection costs more than a load
        stack.callback(conn.close)
        if p.sys_session is not None:
            load.restore_sys(env, conn, p.sys_session, online=online)
            out.sys = True
        loaded: list[tuple[int, Step, int, str]] = []  # (i, step, mailbox id now, account)
        first_error: list[BaseException] = []
        remap: dict[int, int] = {}
        undeleted: set[int] = set()

        def fail(step: Step, e: BaseException) -> None:
            msg = e.message if isinstance(e, StandbyError) else str(e)
            out.failed.append((step.email, msg))
            first_error.append(e)
            env.log.warning("restore_account_failed", account=step.email, error=msg)

        def todo() -> Iterator[_Job]:
            """Each account's destination made and its mailbox put in maintenance, here, as
            a worker becomes free; none once told to stop or (without -c) once one failed."""
            for i, step in enumerate(p.steps):
                if reg.should_stop() or (first_error and not req.continue_on_error):
                    out.not_restored = [s.email for s in p.steps[i:]]
                    return
                try:
                    dest = _destination(env, conn, step, req)
                except _EXPECTED as e:
                    fail(step, e)
                    continue
                if dest is None:
                    out.skipped.append(step.email)
                    continue
                m, account_id, brought_back = dest
                stack.enter_context(site.directory.maintenance(m))
                yield _Job(i, step, m, account_id, brought_back)

        def work(ctx: _Worker, job: _Job) -> BaseException | None:
            return ctx.load(env, req, job)

        def done(job: _Job, err: BaseException | None) -> None:
            if err is not None:
                return fail(job.step, err)
            loaded.append((job.index, job.step, job.mailbox_id, job.account_id))
            if job.mailbox_id != job.step.meta.mailbox_id:
                remap[job.step.meta.mailbox_id] = job.mailbox_id
            if job.brought_back:
                undeleted.add(job.step.meta.mailbox_id)

        pool.each(todo(), work, done, workers=min(env.workers, len(p.steps)),
                  open_context=lambda: _Worker(site), close_context=_Worker.close)
        loaded.sort(key=lambda x: x[0])
        steps = [(step, m, acct) for _i, step, m, acct in loaded]
        if loaded and not req.full_only:
            out.replay = _replay(env, req, p, steps, remap, undeleted, out)
        if loaded:  # what the loads wrote is made durable once, not file by file
            for vol in (env.settings.volumes.blob.path, env.settings.volumes.index.path):
                fsutil.syncfs(vol)
        site.directory.bump_epoch(*(m for _step, m, _acct in steps))
        for step, _m, _acct in steps:
            if not any(step.email == f for f, _ in out.failed):
                out.restored.append(_restored_name(step, req))
        reg.finish(out.not_restored, aborted=bool(out.not_restored))
    if out.failed and not req.continue_on_error:
        email, why = out.failed[0]
        # The exit code of what went wrong (a missing redo log is 9, a database error 7).
        code = first_error[0].exit_code if isinstance(first_error[0], StandbyError) else 1
        err = StandbyError(f"restoring {email} failed: {why}",
                           hint="-c (--continueOnError) restores the other accounts anyway")
        err.exit_code = code
        raise err
    return out


_EXPECTED = (StandbyError, pymysql.err.Error, OSError, sqlite3.Error, zipfile.BadZipFile)
_RETRIED = (1205, 1213)  # lock wait timeout, deadlock: the account's load is tried again
ATTEMPTS = 3


@dataclass(frozen=True)
class _Job:
    index: int
    step: Step
    mailbox_id: int
    account_id: str
    brought_back: bool


class _Worker:
    """What one restore worker loads accounts with: a connection at READ COMMITTED (two
    workers' deletes of absent rows take no gap locks, so their loads cannot deadlock on
    each other) and the containers it has open."""

    def __init__(self, site: Any) -> None:
        self.conn = site.connect()
        self.conn.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        self.containers = blobpack.Containers()

    def close(self) -> None:
        self.containers.close()
        self.conn.close()

    def load(self, env: Env, req: Request, job: _Job) -> BaseException | None:
        """Load one account; the error it failed with, if it did."""
        attempt = 1
        while True:
            try:
                load.load(env, self.conn, self.containers, job.step, job.mailbox_id,
                          job.account_id, blobs=req.blobs, search_index=req.search_index)
                return None
            except ServiceError as e:
                cause = e.__cause__
                if not (isinstance(cause, pymysql.err.OperationalError) and cause.args
                        and cause.args[0] in _RETRIED and attempt < ATTEMPTS):
                    return e
            except _EXPECTED as e:
                return e
            attempt += 1


def _restored_name(step: Step, req: Request) -> str:
    return f"{req.prefix}{step.email}" if req.create else step.email


def _destination(env: Env, conn: Any, step: Step,
                 req: Request) -> tuple[int, str, bool] | None:
    """(mailbox id, account id, brought back from deletion) the account is restored into, its
    directory entry made as asked; None to skip it."""
    d = env.site.directory
    if req.create:
        email = f"{req.prefix}{step.email}"
        if d.find(email) is not None:
            raise UsageError(f"-ca: the account {email} exists already")
        acct = d.create_account(email, cos=step.ldap.get("cos") or "default",
                                created_ms=env.now_ms())
        m = load.new_mailbox_id(conn)
        d.set_mailbox(acct.id, m)
        return m, acct.id, False
    current = d.find(step.zimbra_id) or d.find(step.email)
    if current is None:
        if req.skip_deleted_accounts:
            return None
        d.ensure_domain(step.ldap["domain"])
        d.load({"accounts": [step.ldap]}, only={step.ldap["email"]})
        return step.meta.mailbox_id, step.zimbra_id, True
    if req.restore_account:
        d.load({"accounts": [{**step.ldap, "mailbox_id": current.mailbox_id or
                              step.meta.mailbox_id}]}, only={step.ldap["email"]})
    m = current.mailbox_id if current.mailbox_id is not None else step.meta.mailbox_id
    if current.mailbox_id is None:
        d.set_mailbox(current.id, m)
    return m, current.id, False


def _replay(env: Env, req: Request, p: Plan, loaded: list[tuple[Step, int, str]],
            remap: dict[int, int], undeleted: set[int], out: Outcome) -> dict[str, Any]:
    """Replay the restored mailboxes' ops since their backups, up to the requested point."""
    t = env.target
    dirs = [t.redologs_dir] + [s.path / "redologs" for s in t.sessions()
                                if (s.path / "redologs").is_dir()]
    found = redo.gather(dirs, None if req.backup_redo_only else env.redolog_dir)
    start = min(step.meta.redo_seq for step, _m, _a in loaded)
    seqs = redo.chain(found, from_seq=start, to_seq=p.to_seq)
    logs = redo.log_files(found, seqs)
    sources = frozenset(step.meta.mailbox_id for step, _m, _a in loaded)
    sel = Selection(to_time=req.to_time, mailbox_ids=sources)
    s = env.settings
    work = Path(tempfile.mkdtemp(prefix="restore-", dir=s.state_dir))
    try:
        if req.skip_deletes or remap or undeleted:
            def drop(rec: Record) -> bool:
                if req.skip_deletes and redo.is_delete_op(rec.op):
                    return True
                if isinstance(rec.op, DeleteMailbox) and rec.mailbox_id in undeleted:
                    return True
                return isinstance(rec.op, CreateMailbox) and rec.mailbox_id in remap

            logs = [redo.rewrite(logs, sel, work / "restore.log", server_id=s.server_id,
                                 remap=remap, drop=drop, now_ms=env.now_ms())]
            sel = Selection()
        cfg = WorkerConfig(str(s.mariadb_socket), s.store.mailbox_groups,
                           str(s.volumes.blob.path), str(s.volumes.index.path),
                           s.store.compress_blobs, s.store.compression_threshold)
        workers = max(1, min(len(loaded), os.cpu_count() or 1))
        res = fast.replay(list(logs), sel, cfg=cfg, workers=workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if res.errors:
        env.log.warning("restore_replay_errors", count=len(res.errors), first=res.errors[0])
    d = {"files": [str(lf.path) for lf in logs], "from_seq": seqs[0] if seqs else None,
         "to_seq": seqs[-1] if seqs else None, "ops": res.ops_applied,
         "errors": res.errors[:20], "seconds": round(res.seconds, 3)}
    return d
