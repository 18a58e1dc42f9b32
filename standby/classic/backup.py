"""Backup sessions (`zmbackup -f` / `-i`), standard and auto-grouped, on a running store.

A full session, as the guide's steps: the global system data (`sys/`: the global tables, a copy
of `localconfig.xml`, the whole directory); the blobs several of its accounts share, stored once;
then each account in turn — its mailbox in maintenance only while its own data is read (the
directory's exclusive gate: the change in flight finishes, new ones are refused, and a killed
backup releases it with its process) — its rows as Parquet, its blobs, its index (a SQLite
backup of a quiet database), `meta.xml` with the change number and redo sequence it was taken
at, and `ldap.xml`; an auto-grouped session then saves the archived redo logs into its own
`redologs/`. An incremental session saves the global data and every account's `ldap.xml`, rolls
the store's redo log over and saves the archived logs into `<target>/redologs/`, after a full
session for each account that has none.

Every session is written in `sessions_tmp/<label>/` and moved into `sessions/` when it ends:
`completed` (per-account errors recorded), `aborted` (zmbackupabort: the account in hand
finishes, the rest are not started), or — when the disk fills — discarded entirely. Then
`accounts.xml` records each completed account's latest full label, the database dump is taken
if `mysql_backup_retention` asks for one, and the report is written into the session and mailed.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

from standby import fsutil
from standby.classic import accounts as parts
from standby.classic import (
    autogroup,
    blobpack,
    labels,
    redo,
    report,
    sqldump,
    xmlfiles,
)
from standby.classic import target as target_mod
from standby.classic.env import Env
from standby.classic.labels import Label
from standby.classic.target import SessionDir, Target, account_relpath, is_disk_full
from standby.classic.xmlfiles import AccountEntry, AccountMeta, Session, SessionAccount
from standby.errors import (
    NotFound,
    StandbyError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.redolog import files
from standby.store.directory import Account


@dataclass(frozen=True)
class Request:
    kind: str  # full | incr
    accounts: tuple[str, ...] | None = None  # None: all (-a all); auto-grouped: its choice
    zip_mode: str = "zipStore"
    search_index: bool | None = None  # --include/--excludeSearchIndex; None: the attribute
    blobs: bool | None = None
    hsm_blobs: bool | None = None
    label: Label | None = None  # reserved beforehand (a session run in the background)

    def __post_init__(self) -> None:
        if self.kind not in ("full", "incr"):
            raise UsageError("a backup is full (-f) or incremental (-i)")
        blobpack.check_mode(self.zip_mode)


@dataclass
class Outcome:
    sessions: list[Session] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sessions]


class _Aborted(Exception):
    """zmbackupabort asked this session to stop."""


# ---------------------------------------------------------------------------------------------
# Entry points


def preflight(env: Env, req: Request) -> None:
    """The checks a session makes before it starts (also run before going to the background);
    with a remote target, its local copy brought up to date first."""
    if env.remote is not None:
        env.remote.pull()
    env.target.check_usable(create=True)
    if fsutil.flock_held(env.target.tmp_dir / target_mod.LOCK):
        raise StateConflict(f"a backup session is already running on {env.target.root}",
                            hint="`zmbackupquery` shows it; wait for it or stop it with "
                            "`zmbackupabort -lb LABEL`")
    if req.kind == "incr" and env.config.auto_grouped:
        raise UsageError("incremental backups are not used in Auto-Grouped mode: each "
                         "auto-grouped session is a full backup that keeps the redo logs",
                         hint="run `zmbackup -f`, or `zmprov mcf zimbraBackupMode Standard`")
    if req.kind == "full" and req.accounts is not None:
        resolve_accounts(env, req.accounts)
    try:
        env.target.check_min_free(env.config.min_free)
    except VolumeError as e:
        report.notify_refused(env, e.message)
        raise


def run(env: Env, req: Request) -> Outcome:
    """Run the session(s) `req` asks for, under the target's lock."""
    preflight(env, req)
    out = Outcome()
    with env.target.locked():
        if req.kind == "full":
            out.sessions.append(_full(env, req, _full_accounts(env, req)))
        else:
            lacking = _without_full(env)
            if lacking:
                out.sessions.append(_full(env, replace(req, kind="full", label=None), lacking))
            out.sessions.append(_incremental(env, req))
    for s in out.sessions:
        if s.status != "failed" and env.mysql_retention > 0:
            sqldump.dump(env, s.label)
    if env.remote is not None:
        with env.target.locked():
            env.remote.push()
    return out


def resolve_accounts(env: Env, names: Sequence[str]) -> list[Account]:
    d = env.site.directory
    out, missing = [], []
    for n in names:
        a = d.find(n)
        if a is None:
            missing.append(n)
        elif a.mailbox_id is not None:
            out.append(a)
    if missing:
        raise NotFound(f"no such account: {', '.join(missing)}",
                       hint="`zmprov` lists accounts in the directory; give their addresses")
    return out


def accounts_for(env: Env, req: Request) -> list[Account]:
    """The accounts the session(s) of `req` would back up in full (the dry run's answer)."""
    return _full_accounts(env, req) if req.kind == "full" else _without_full(env)


def _full_accounts(env: Env, req: Request) -> list[Account]:
    if req.accounts is not None:
        return resolve_accounts(env, req.accounts)
    everyone = [a for a in env.site.directory.accounts() if a.mailbox_id is not None]
    if not env.config.auto_grouped:
        return everyone
    last = _last_fulls(env.target)
    plan = autogroup.plan([autogroup.Candidate(a.id, last.get(a.id)) for a in everyone],
                          now_ms=env.now_ms(), interval_ms=env.config.interval_ms,
                          groups=env.config.groups, throttled=env.config.throttled)
    by_id = {a.id: a for a in everyone}
    return [by_id[i] for i in plan.accounts]


def _last_fulls(target: Target) -> dict[str, int]:
    out = {}
    for e in target.accounts():
        if e.latest_full:
            try:
                out[e.zimbra_id] = labels.parse(e.latest_full).ms
            except UsageError:
                continue
    return out


def _without_full(env: Env) -> list[Account]:
    have = {e.zimbra_id for e in env.target.accounts()
            if e.latest_full and env.target.session_dir(e.latest_full).is_dir()}
    return [a for a in env.site.directory.accounts()
            if a.mailbox_id is not None and a.id not in have]


# ---------------------------------------------------------------------------------------------
# Sessions


def _start(env: Env, kind: str, req: Request) -> tuple[SessionDir, Session]:
    label = req.label if req.label is not None and req.label.kind == kind else \
        SessionDir.reserve(env.target, kind, env.now_ms())
    sd = SessionDir(env.target, label)
    cfg = env.config
    rec = Session(
        label=str(label), type=label.type, start_ms=label.ms, status="in progress",
        server=env.server, server_id=env.settings.server_id, mode=cfg.mode,
        zip=req.zip_mode,
        skip_search_index=not req.search_index if req.search_index is not None
        else cfg.skip_search_index,
        skip_blobs=not req.blobs if req.blobs is not None else cfg.skip_blobs,
        skip_hsm_blobs=not req.hsm_blobs if req.hsm_blobs is not None else cfg.skip_hsm_blobs)
    env.log.info("backup_session_start", label=str(label))
    return sd, rec


def _end(env: Env, sd: SessionDir, rec: Session) -> Session:
    rec = replace(rec, end_ms=env.now_ms())
    report.write(sd.root, env, rec)
    sd.finish(rec)
    if rec.type == "full":
        _record_fulls(env.target, rec)
    env.log.info("backup_session_end", label=rec.label, status=rec.status)
    report.mail(env, rec)
    return rec


def _fail(env: Env, sd: SessionDir, rec: Session, e: OSError) -> VolumeError:
    sd.discard()
    msg = (f"the backup target {env.target.root} ran out of space during session {rec.label}; "
           "everything the session wrote was removed")
    report.mail(env, replace(rec, status="failed", end_ms=env.now_ms(), errors=(msg,)))
    return VolumeError(msg, hint="free space on the target or choose another one with -t")


def _record_fulls(target: Target, rec: Session) -> None:
    entries = {e.zimbra_id: e for e in target.accounts()}
    for a in rec.accounts:
        if a.status == "COMPLETED":
            entries[a.zimbra_id] = AccountEntry(a.zimbra_id, a.email, rec.label)
    target.write_accounts(list(entries.values()))


def _ended(env: Env, sd: SessionDir, box: list[Session],
           body: Callable[[], Session]) -> Session:
    """Run a session's `body` and end the session as it says; a full disk discards the
    session (VolumeError), another failure ends it as failed and is raised. `box[0]` is the
    session record as far as it got."""
    try:
        return _end(env, sd, body())
    except OSError as e:
        if is_disk_full(e):
            raise _fail(env, sd, box[0], e) from e
        _end(env, sd, replace(box[0], status="failed", errors=(*box[0].errors, str(e))))
        raise
    except StandbyError as e:
        _end(env, sd, replace(box[0], status="failed", errors=(*box[0].errors, e.message)))
        raise


def _full(env: Env, req: Request, accounts: list[Account]) -> Session:
    sd, rec = _start(env, "full", req)
    box = [replace(rec, accounts=tuple(SessionAccount(a.id, a.email, "NOTSTARTED",
                                                      a.mailbox_id) for a in accounts))]
    sd.write_progress(box[0])
    return _ended(env, sd, box, lambda: _full_body(env, req, accounts, sd, box))


def _full_body(env: Env, req: Request, accounts: list[Account], sd: SessionDir,
               box: list[Session]) -> Session:
    rec = box[0]
    done: list[SessionAccount] = []
    metas: list[AccountMeta] = []
    db = parts.Db(env)
    try:
        parts.backup_sys(env, db, sd.root)
        blobs = blobpack.SessionBlobs(sd.root, req.zip_mode)
        shared = parts.store_shared(env, db, blobs, accounts) if not rec.skip_blobs else None
        fulls = {e.zimbra_id: e.latest_full for e in env.target.accounts()}
        slots = list(rec.accounts)

        def progress(r: Session) -> None:
            sd.write_progress(r)

        def on_done(i: int, backed: parts.Backed) -> None:
            nonlocal rec
            slots[i] = backed.entry
            done.append(backed.entry)
            if backed.meta is not None:
                metas.append(backed.meta)
            blobs.add(backed.blobs)
            rec = box[0] = replace(rec, accounts=tuple(slots))
            sd.write_progress(rec, now=time.monotonic())

        def one(db: parts.Db, a: Account, now: Session) -> parts.Backed:
            prev = fulls.get(a.id)
            prev_dir = env.target.session_dir(prev) if prev else None
            return parts.backup_account(env, db, sd.root, blobs, a, now, prev_dir,
                                        on_wait=partial(progress, now))

        # The accounts' workers are forked first (a fork copies no other thread); the shared
        # blobs are written beside them (the accounts only need to know which digests the
        # session stores itself, decided above).
        with parts.workers(env, len(accounts), one) as run, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="shared") as bg:
            written = bg.submit(shared) if shared is not None else None
            finished = run(accounts, on_done, stop=sd.abort_requested, current=lambda: rec)
            if written is not None:
                written.result()
        if not finished:
            raise _Aborted
        status = "completed"
    except _Aborted:
        status = "aborted"
    finally:
        db.close()
    logs: tuple[str, ...] = ()
    if env.config.auto_grouped and status == "completed":
        logs = _save_redologs(env, sd.root / "redologs")
    seqs = [m.redo_seq for m in metas]
    end_seq = redo.current_seq(env.redolog_dir)
    rec = replace(rec, status=status,
                  min_redo_seq=min(seqs) if seqs else end_seq,
                  max_redo_seq=end_seq, redologs=logs,
                  stats={**blobs.stats.as_dict(), "accounts": len(done),
                         "bytes": _size(sd.root)})
    return rec


def _incremental(env: Env, req: Request) -> Session:
    sd, rec = _start(env, "incr", req)
    box = [rec]
    return _ended(env, sd, box, lambda: _incremental_body(env, sd, rec))


def _incremental_body(env: Env, sd: SessionDir, rec: Session) -> Session:
    db = parts.Db(env)
    try:
        parts.backup_sys(env, db, sd.root)
    finally:
        db.close()
    entries = []
    for a in env.site.directory.accounts():
        adir = sd.root / account_relpath(a.id)
        adir.mkdir(parents=True)
        xmlfiles.write_xml(adir / "ldap.xml", xmlfiles.account_ldap_to_xml(asdict(a)),
                           durable=False)
        entries.append(SessionAccount(a.id, a.email, "COMPLETED", a.mailbox_id))
    saved = _save_redologs(env, env.target.redologs_dir)
    seqs = [q for q in (files.seq_of(n) for n in saved) if q >= 0]
    cur = redo.current_seq(env.redolog_dir)
    rec = replace(rec, status="completed", accounts=tuple(entries), redologs=saved,
                  min_redo_seq=min(seqs) if seqs else cur,
                  max_redo_seq=max(seqs) if seqs else cur,
                  stats={"redologs": len(saved), "bytes": _size(sd.root)})
    return rec


def _save_redologs(env: Env, dest: Path) -> tuple[str, ...]:
    """Roll the running store's log over, then save the archived logs into `dest`."""
    if env.rollover is not None:
        env.rollover()
    archived = files.list_archive(env.redolog_dir / files.ARCHIVE_DIR)
    have = redo.in_dir(env.target.redologs_dir)
    if dest != env.target.redologs_dir:
        have.update(redo.in_dir(dest))
    steps = redo.plan_save(archived, have, now_ms=env.now_ms(), keep_ms=env.keep_ms)
    return tuple(st.name for st in redo.save(env.redolog_dir, dest, steps))


def _size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            total += st.st_size if st.st_nlink == 1 else 0
    return total
