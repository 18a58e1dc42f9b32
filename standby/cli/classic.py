"""Zimbra's classic backup tools, with the guide's flags: `zmbackup`, `zmbackupquery`,
`zmbackupabort`, `zmrestore`, `zmrestoreoffline`, `zmrestoreldap`, `zmschedulebackup`, and the
`zmprov` / `zmlocalconfig` subset the guide uses; also `standby classic <tool> ...`.

Thin commands over `standby.classic`: each checks its flags, builds the `Env` (the composition
root: the site, the target, the attributes, the SMTP mailer, the clock) and calls one library
function. Zimbra spells options with one dash (`-sync`, `-lb`, `-restoreToTime`) and takes
several values after one `-a`; both work. `-c/--config FILE` names the configuration
everywhere, except in the zmrestore and zmrestoreoffline tools, where `-c` is Zimbra's
--continueOnError and the configuration is `--config` alone (`standby classic zmrestore` keeps
standby's `-c/--config`). Exit codes are README's table.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from standby import timefmt
from standby.classic import (
    backup,
    control,
    deletion,
    labels,
    ldap,
    localconfig,
    prov,
    query,
    restore,
)
from standby import schedule as sched_pkg
from standby.classic import env as env_mod
from standby.classic import schedule as classic_schedule
from standby.classic.env import Env
from standby.cli import common
from standby.cli.common import remember_config
from standby.cli.replay import expand_multi
from standby.cli.schedule import (
    DEFAULT_UNIT_DIR,
    CrontabFileOpt,
    EnableOpt,
    SystemdOpt,
    UnitDirOpt,
)
from standby.cli.schedule import _target as schedule_target
from standby.errors import NotFound, StandbyError, UsageError
from standby.store.site import Site

app = typer.Typer(help="Zimbra's classic backups: zmbackup, zmrestore and their companions.",
                  no_args_is_help=True)

ConfigOpt = common.ConfigOpt
# zmrestore and zmrestoreoffline as Zimbra's tools: -c is --continueOnError there, so the
# config file is --config alone; under `standby classic` they keep standby's -c/--config.
ZimbraConfigOpt = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", help=common.CONFIG_HELP, callback=remember_config)]
ContinueOpt = Annotated[bool, typer.Option(
    "--continueOnError", "--contineOnError",
    help="Go on after an account fails; list the failures at the end.")]
ZimbraContinueOpt = Annotated[bool, typer.Option(
    "-c", "--continueOnError", "--contineOnError",
    help="Go on after an account fails; list the failures at the end.")]
ServerOpt = Annotated[str | None, typer.Option("-s", "--server", help="The server (this one).")]
TargetOpt = Annotated[str | None, typer.Option(
    "-t", "--target", help="The backup target: a folder, file:///path or s3://bucket/prefix "
    "(default: zimbraBackupTarget, else <state_dir>/backup).")]
AccountsOpt = Annotated[list[str] | None, typer.Option(
    "-a", "--account", "--a", help="Accounts (several after one -a), or 'all'.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
MULTI = ("-a", "--account", "--a")


def _env(ctx: typer.Context, config: Path | None, *, target: str | None = None,
         server: str | None = None) -> Env:
    if config is not None:
        common.ctx_obj(ctx).config = config
    site = Site.open(common.settings(ctx))
    return env_mod.build(site, target=target, server=server)


def _pull(env: Env) -> None:
    """A remote target's local copy brought up to date before it is read."""
    if env.remote is not None:
        env.remote.pull()


def _accounts(values: list[str] | None) -> tuple[str, ...] | None:
    """-a: None for 'all' (or not given), else the addresses."""
    if not values or [v.lower() for v in values] == ["all"]:
        return None
    if "all" in (v.lower() for v in values):
        raise UsageError("-a all stands alone; give 'all' or a list of accounts")
    return tuple(values)


def _one_of(flags: dict[str, bool], what: str) -> None:
    given = [k for k, v in flags.items() if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other ({what})")


def _include(include: bool, exclude: bool, name: str) -> bool | None:
    _one_of({f"--include{name}": include, f"--exclude{name}": exclude}, name)
    return True if include else False if exclude else None


# ---------------------------------------------------------------------------------------------
# zmbackup


def zmbackup_command(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("-f", "--fullBackup", help="A full backup.")] = False,
    incr: Annotated[bool, typer.Option("-i", "--incrementalBackup",
                                       help="An incremental backup (all accounts).")] = False,
    delete: Annotated[str | None, typer.Option(
        "-del", "--delete", help="Delete sessions: a label (it and all before it), a date "
        "YYYY/MM/DD[-hh:mm:ss], or an age 7d, 1m, 1y.")] = None,
    account: AccountsOpt = None,
    server: ServerOpt = None,
    target: TargetOpt = None,
    sync: Annotated[bool, typer.Option("-sync", "--sync",
                                       help="Wait for the session (default: background).")]
    = False,
    zip_: Annotated[bool, typer.Option("-z", "--zip", help="Zip blobs and index, compressed.")]
    = False,
    zip_store: Annotated[bool, typer.Option("--zipStore",
                                            help="Zip without compression (the default).")]
    = False,
    no_zip: Annotated[bool, typer.Option("--noZip", help="Plain files, no zip.")] = False,
    include_search_index: Annotated[bool, typer.Option("--includeSearchIndex")] = False,
    exclude_search_index: Annotated[bool, typer.Option("--excludeSearchIndex")] = False,
    include_blobs: Annotated[bool, typer.Option("--includeBlobs")] = False,
    exclude_blobs: Annotated[bool, typer.Option("--excludeBlobs")] = False,
    include_hsm_blobs: Annotated[bool, typer.Option("--includeHsmBlobs")] = False,
    exclude_hsm_blobs: Annotated[bool, typer.Option("--excludeHsmBlobs")] = False,
    label: Annotated[str | None, typer.Option("--label", hidden=True)] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Run a full (-f) or incremental (-i) backup session, or delete old sessions (-del)."""
    if sum([full, incr, delete is not None]) != 1:
        raise UsageError("give exactly one of -f (full), -i (incremental) and -del (delete)")
    _one_of({"--zip": zip_, "--zipStore": zip_store, "--noZip": no_zip}, "the zip mode")
    mode = "zip" if zip_ else "noZip" if no_zip else "zipStore"
    req_kw: dict[str, Any] = {
        "search_index": _include(include_search_index, exclude_search_index, "SearchIndex"),
        "blobs": _include(include_blobs, exclude_blobs, "Blobs"),
        "hsm_blobs": _include(include_hsm_blobs, exclude_hsm_blobs, "HsmBlobs")}
    spec = labels.parse_delete(delete) if delete is not None else None
    reserved = labels.parse(label) if label is not None else None
    env = _env(ctx, config, target=target, server=server)
    if spec is not None:
        return _delete(env, spec, dry_run=dry_run, json_out=json_out)
    accounts = _accounts(account)
    if incr and account:
        sys.stderr.write("zmbackup: -a is ignored for an incremental backup, which covers "
                         "every account\n")
        accounts = None
    if full and not account and not env.config.auto_grouped:
        raise UsageError("a standard full backup needs -a: the accounts, or -a all")
    req = backup.Request("full" if full else "incr", accounts, mode, label=reserved, **req_kw)
    if dry_run:
        backup.preflight(env, req)
        names = [a.email for a in backup.accounts_for(env, req)]
        if json_out:
            common.emit_json({"type": req.kind, "target": str(env.target.root),
                              "mode": env.config.mode, "zip": mode, "accounts": names})
        else:
            common.emit(f"would run a {'full' if full else 'incremental'} backup to "
                        f"{env.target.root} ({env.config.mode}, {mode}); full backups of: "
                        + (", ".join(names) or "none"))
        return
    if not sync and reserved is None:
        backup.preflight(env, req)
        lb = backup.SessionDir.reserve(env.target, req.kind, env.now_ms())
        argv = [*_child_argv(env, req, account, server), "-sync", "--label", str(lb)]
        log = control.folder(env.settings.state_dir) / f"{lb}.log"
        control.start_background(argv, log_path=log, target=env.target, label=lb)
        return common.emit_json({"label": str(lb)}) if json_out else common.emit(str(lb))
    out = backup.run(env, req)
    shown = sorted(out.sessions, key=lambda s: s.type != "incremental")
    if json_out:
        common.emit_json({"sessions": [{"label": s.label, "type": s.type, "status": s.status,
                                        "stats": dict(s.stats)} for s in shown]})
    else:
        for s in shown:
            common.emit(s.label)
    if any(s.status != "completed" or any(a.status == "ERROR" for a in s.accounts)
           for s in out.sessions):
        raise typer.Exit(1)


def _child_argv(env: Env, req: backup.Request, account: list[str] | None,
                server: str | None) -> list[str]:
    """The command line of the same session, for the background process that runs it."""
    where = str(env.remote.url) if env.remote is not None else str(env.target.root)
    words = ["zmbackup", "-f" if req.kind == "full" else "-i", "-t", where,
             {"zip": "--zip", "noZip": "--noZip", "zipStore": "--zipStore"}[req.zip_mode]]
    if account:
        words += ["-a", *account]
    if server:
        words += ["-s", server]
    for flag, value in (("SearchIndex", req.search_index), ("Blobs", req.blobs),
                        ("HsmBlobs", req.hsm_blobs)):
        if value is not None:
            words.append(("--include" if value else "--exclude") + flag)
    if env.settings.source is not None:
        words += ["--config", str(env.settings.source)]
    return words


def _delete(env: Env, spec: labels.DeleteSpec, *, dry_run: bool, json_out: bool) -> None:
    _pull(env)
    env.target.check_usable(create=False)
    p = deletion.plan(env.target.sessions(), spec, now_ms=env.now_ms(),
                      redologs=deletion.redologs_of(env.target))
    if not dry_run:
        deletion.execute(env.target, p)
        if env.remote is not None:
            env.remote.forget()
    if json_out:
        return common.emit_json({**p.as_dict(), "dry_run": dry_run})
    verb = "would delete" if dry_run else "deleted"
    common.emit(f"{verb} {len(p.sessions)} sessions and {len(p.redologs)} redo logs" +
                ("".join(f"\n  {s.label}" for s in p.sessions)))


# ---------------------------------------------------------------------------------------------
# zmbackupquery and zmbackupabort


def zmbackupquery_command(
    ctx: typer.Context,
    label: Annotated[str | None, typer.Option("-lb", "--label", help="One session.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="full or incremental.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Sessions started at or after.")]
    = None,
    to: Annotated[str | None, typer.Option("--to", help="Sessions started at or before.")]
    = None,
    account: Annotated[str | None, typer.Option("-a", "--account",
                                                help="The sessions holding this account.")]
    = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="List the accounts.")]
    = False,
    server: ServerOpt = None,
    target: TargetOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List backup sessions: label, type, status, times, redo log range, accounts."""
    q = query.Query(type=type_, account=account, verbose=verbose,
                    from_ms=timefmt.parse(from_, option="--from") if from_ else None,
                    to_ms=timefmt.parse(to, option="--to") if to else None)
    env = _env(ctx, config, target=target, server=server)
    _pull(env)
    env.target.check_usable(create=False)
    sessions = env.target.sessions()
    if label is not None:
        q = query.Query(labels.resolve(label, [s.label for s in sessions]), q.type, q.from_ms,
                        q.to_ms, q.account, q.verbose)
    chosen = query.select(sessions, q)
    free, total = env.target.space()
    if json_out:
        return common.emit_json({"sessions": [query.as_dict(s) for s in chosen],
                                 "total_space": total, "free_space": free})
    blocks = ["\n".join(query.describe(s, verbose=verbose, account=account,
                                       size_bytes=(s.record.stats.get("bytes")
                                                   if s.record else None)))
              for s in chosen]
    common.emit("\n\n".join(blocks + ["\n".join(query.space_lines(free, total))]))


def zmbackupabort_command(
    ctx: typer.Context,
    label: Annotated[str | None, typer.Option("-lb", "--label",
                                              help="The running session to stop.")] = None,
    restore_: Annotated[bool, typer.Option("-r", "--restore",
                                           help="Stop the running restore instead.")] = False,
    server: ServerOpt = None,
    target: TargetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop a running backup session (it ends partially successful) or the running restore."""
    if (label is None) == (not restore_):
        raise UsageError("give -lb LABEL (a backup session) or -r (the running restore)")
    env = _env(ctx, config, target=target, server=server)
    if restore_:
        left = control.abort_restore(env.settings.state_dir)
        common.emit("Restore stopped. Accounts not restored: " + (", ".join(left) or "none"))
        return
    assert label is not None
    lb = labels.resolve(label, env.target.labels())
    info = control.abort_session(env.target, lb)
    common.emit(f"Backup session {lb} stopped: {query.display_status(info)}")


# ---------------------------------------------------------------------------------------------
# zmrestore and zmrestoreoffline


def _restore(ctx: typer.Context, *, online: bool, account: list[str] | None, label: str | None,
             rf: bool, br: bool, to_time: str | None, to_incr: str | None, to_seq: int | None,
             ca: bool, pre: str | None, ra: bool, sys_: bool, cont: bool, skip_deletes: bool,
             skip_deleted: bool, ex_index: bool, ex_blobs: bool, ex_hsm: bool,
             allow_incomplete: bool, server: str | None, target: str | None, dry_run: bool,
             json_out: bool, config: Path | None) -> None:
    if online and not account and not sys_:
        raise UsageError("zmrestore needs -a (accounts, or all) and/or -sys")
    accounts = _accounts(account) if account else (() if sys_ and online else None)
    req = restore.Request(
        accounts=accounts, label=label, full_only=rf, backup_redo_only=br,
        to_time=timefmt.parse(to_time, option="-restoreToTime") if to_time else None,
        to_incr_label=to_incr, to_redo_seq=to_seq, create=ca, prefix=pre,
        restore_account=ra, sys=sys_, continue_on_error=cont, skip_deletes=skip_deletes,
        skip_deleted_accounts=skip_deleted, search_index=not ex_index, blobs=not ex_blobs,
        hsm_blobs=not ex_hsm, allow_incomplete=allow_incomplete)
    env = _env(ctx, config, target=target, server=server)
    if dry_run:
        restore.fetch(env, req)
        p = restore.plan(env, req)
        if json_out:
            return common.emit_json(p.as_dict())
        for s in p.steps:
            common.emit(f"would restore {s.email} from {s.session.label}")
        for a, why in p.failed:
            common.emit(f"cannot restore {a}: {why}")
        return
    out = restore.run(env, req, online=online)
    if json_out:
        common.emit_json(out.as_dict())
    else:
        for a in out.restored:
            common.emit(f"restored {a}")
        if out.sys:
            common.emit("restored the system data (localconfig.xml as localconfig.xml.restore)")
        for a in out.skipped:
            common.emit(f"skipped {a} (deleted account)")
        if out.not_restored:
            common.emit("Accounts not restored (stopped): " + ", ".join(out.not_restored))
        if out.failed:
            common.emit("Accounts that could not be restored:")
            for a, why in out.failed:
                common.emit(f"  {a}: {why}")
        for e in out.replay.get("errors", []):
            common.emit(f"replay error: {e}")
    if out.failed or out.not_restored or out.replay.get("errors"):
        raise typer.Exit(1)


def _restore_command(online: bool, *, zimbra: bool) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        account: AccountsOpt = None,
        label: Annotated[str | None, typer.Option(
            "-lb", "--label", help="The full backup to start from (default: the latest "
            "before the requested point).")] = None,
        rf: Annotated[bool, typer.Option("-rf", "--restoreFullBackupOnly",
                                         help="The full backup only, no redo logs.")] = False,
        br: Annotated[bool, typer.Option(
            "-br", "--backedupRedologsOnly", help="Replay only the redo logs in the backup, "
            "not the server's archive and current log.")] = False,
        to_time: Annotated[str | None, typer.Option(
            "-restoreToTime", help='Replay up to this time, e.g. "2021/07/12 15:59:51".')]
        = None,
        to_incr: Annotated[str | None, typer.Option(
            "-restoreToIncrLabel", help="Replay up to and including this incremental.")]
        = None,
        to_seq: Annotated[int | None, typer.Option(
            "-restoreToRedoSeq", help="Replay up to and including this redo log sequence.")]
        = None,
        ca: Annotated[bool, typer.Option("-ca", "--createAccount",
                                         help="Restore into new accounts (with -pre).")] = False,
        pre: Annotated[str | None, typer.Option("-pre", "--prefix",
                                                help="Prefix of the new accounts' names.")]
        = None,
        ra: Annotated[bool, typer.Option("-ra", "--restoreAccount",
                                         help="Restore the directory entry too.")] = False,
        sys_: Annotated[bool, typer.Option(
            "-sys", "--systemData", help="Restore the system data (localconfig.xml as "
            "localconfig.xml.restore).")] = False,
        cont: ContinueOpt = False,
        skip_deletes: Annotated[bool, typer.Option(
            "--skipDeletes", help="Leave out deletions while replaying.")] = False,
        skip_deleted: Annotated[bool, typer.Option(
            "-skipDeletedAccounts", "--skipDeletedAccounts",
            help="Do not bring back deleted accounts.")] = False,
        ex_index: Annotated[bool, typer.Option(
            "--exclude-search-index", "--excludeSearchIndex",
            help="No index: the mailbox is marked for reindexing.")] = False,
        ex_blobs: Annotated[bool, typer.Option("--exclude-blobs", "--excludeBlobs",
                                               help="Keep the blobs already there.")] = False,
        ex_hsm: Annotated[bool, typer.Option("--exclude-hsm-blobs", "--excludeHsmBlobs",
                                             help="Keep HSM blobs already there.")] = False,
        ignore_redo_errors: Annotated[bool, typer.Option(
            "--ignoreRedoErrors", help="Accepted; replay errors never stop a restore.")]
        = False,
        allow_incomplete: Annotated[bool, typer.Option(
            "--allowIncomplete", help="Restore from a session a crash interrupted (the "
            "accounts it finished).")] = False,
        server: ServerOpt = None,
        target: TargetOpt = None,
        dry_run: DryRunOpt = False,
        json_out: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        _restore(ctx, online=online, account=account, label=label, rf=rf, br=br,
                 to_time=to_time, to_incr=to_incr, to_seq=to_seq, ca=ca, pre=pre, ra=ra,
                 sys_=sys_, cont=cont, skip_deletes=skip_deletes, skip_deleted=skip_deleted,
                 ex_index=ex_index, ex_blobs=ex_blobs, ex_hsm=ex_hsm,
                 allow_incomplete=allow_incomplete, server=server, target=target,
                 dry_run=dry_run, json_out=json_out, config=config)

    if zimbra:  # Zimbra's -c (see ZimbraConfigOpt)
        command.__annotations__ = {**command.__annotations__, "cont": ZimbraContinueOpt,
                                   "config": ZimbraConfigOpt}
    command.__doc__ = ("Restore accounts into the running store (zmrestore)." if online else
                       "Restore with the store service stopped and MariaDB up "
                       "(zmrestoreoffline; default: every account backed up).")
    return command




def zmrestoreldap_command(
    ctx: typer.Context,
    list_sessions: Annotated[bool, typer.Option("-lbs", "--listLabels",
                                                help="List the sessions to restore from.")]
    = False,
    label: Annotated[str | None, typer.Option("-lb", "--label",
                                              help="The session to restore from.")] = None,
    account: AccountsOpt = None,
    target: TargetOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Restore the directory (accounts, domains, classes of service, configuration)."""
    if list_sessions == (label is not None):
        raise UsageError("give -lbs (list the sessions) or -lb LABEL (restore from one)")
    env = _env(ctx, config, target=target)
    _pull(env)
    if list_sessions:
        env.target.check_usable(create=False)
        for s in ldap.sessions(env.target):
            common.emit(str(s.label))
        return
    assert label is not None
    n = ldap.restore(env.target, env.site.directory, label, _accounts(account),
                     remote=env.remote)
    common.emit(f"restored {n} accounts from {label}")


# ---------------------------------------------------------------------------------------------
# zmprov and zmlocalconfig


def zmprov_command(
    ctx: typer.Context,
    words: Annotated[list[str], typer.Argument(help=prov.USAGE, metavar="COMMAND ARGS...")],
    config: ConfigOpt = None,
) -> None:
    """Set and read the backup attributes; put accounts and domains in maintenance."""
    words = list(words)
    given = [w for w in ("-c", "--config") if w in words]
    if given:  # after the words too (they are taken as they come, '-ATTR' too)
        i = words.index(given[0])
        if i + 1 >= len(words):
            raise UsageError("--config needs a file")
        config = Path(words[i + 1])
        del words[i:i + 2]
    cmd = prov.parse(words)
    if config is not None:
        common.ctx_obj(ctx).config = config
    site = Site.open(common.settings(ctx), writable=False)
    for line in prov.execute(site.directory, cmd):
        common.emit(line)


def zmlocalconfig_command(
    ctx: typer.Context,
    keys: Annotated[list[str] | None, typer.Argument(help="Keys to show, or key=value to "
                                                     "set with -e.")] = None,
    edit: Annotated[bool, typer.Option("-e", "--edit", help="Set key=value.")] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="Accepted (Zimbra's).")] = False,
    show_secrets: Annotated[bool, typer.Option("-s", "--show",
                                               help="Show secret values.")] = False,
    mode: Annotated[str | None, typer.Option("-m", help="nokey: print values only.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Show or edit localconfig.xml keys (backup_archived_redolog_keep_time,
    mysql_backup_retention, ...)."""
    words = list(keys or [])
    if words[:1] == ["edit"]:  # the guide writes `zmlocalconfig edit key=value`
        edit, words = True, words[1:]
    if mode not in (None, "nokey"):
        raise UsageError(f"-m {mode!r}: the mode this zmlocalconfig knows is nokey")
    if config is not None:
        common.ctx_obj(ctx).config = config
    s = common.settings(ctx)
    if edit:
        if not words:
            raise UsageError("zmlocalconfig -e needs key=value")
        localconfig.edit(s.state_dir, words)
        return
    values = localconfig.effective(localconfig.load(s.state_dir),
                                   hostname=socket.gethostname())
    for k in words or sorted(values):
        if k not in values:
            raise UsageError(f"zmlocalconfig: no key {k!r}")
        secret = k in localconfig.KEYS and localconfig.KEYS[k].secret and not show_secrets
        v = "*" * 8 if secret and values[k] else values[k]
        common.emit(v if mode == "nokey" else f"{k} = {v}")


# ---------------------------------------------------------------------------------------------
# zmschedulebackup


def zmschedulebackup_command(
    ctx: typer.Context,
    words: Annotated[list[str] | None, typer.Argument(
        help='Entries: f "CRON" (full), i "CRON" (incremental), d AGE "CRON" (delete).',
        metavar="ENTRIES...")] = None,
    query_: Annotated[bool, typer.Option("-q", "--query", help="Show the schedule.")] = False,
    save: Annotated[bool, typer.Option("-s", "--save",
                                       help="Print the command that recreates it.")] = False,
    replace: Annotated[bool, typer.Option("-R", "--replace",
                                          help="Replace the schedule with ENTRIES.")] = False,
    add: Annotated[bool, typer.Option("-A", "--append", help="Add ENTRIES.")] = False,
    default: Annotated[bool, typer.Option(
        "-D", "--default", help="The default schedule (from zimbraBackupMode and "
        "zimbraBackupAutoGroupedInterval).")] = False,
    target: TargetOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    enable: EnableOpt = False,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show or change the backup schedule (cron lines, or systemd timers with --systemd)."""
    flags = {"-q": query_, "-s": save, "-R": replace, "-A": add, "-D": default}
    given = [k for k, v in flags.items() if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other")
    action = given[0][1] if given else "q"
    tgt = schedule_target(crontab_file, systemd, unit_dir.absolute(), enable)
    try:
        installed: sched_pkg.Schedule | None = sched_pkg.installed_schedule(
            tgt, classic_schedule.OWNER)
    except NotFound:
        installed = None
    if action in ("q", "s"):
        if installed is None:
            raise NotFound(f"no backup schedule is installed in {tgt.describe()}",
                           hint="zmschedulebackup -D installs the default")
        common.emit("\n".join(classic_schedule.lines(installed)) if action == "q" else
                    classic_schedule.command_line(classic_schedule.from_schedule(installed)))
        return
    env = _env(ctx, config, target=target)
    zmbackup = sched_pkg.locate_program("zmbackup", argv0=sys.argv[0],
                                        executable=sys.executable)
    extra = ["-t", str(env.target.root)] if target else []
    if env.settings.source is not None:
        extra += ["--config", str(env.settings.source)]
    s = classic_schedule.build(action, list(words or ()), installed=installed,
                               cfg=env.config, zmbackup=zmbackup, extra=extra)
    plan = tgt.plan_install(s)
    if dry_run:
        common.emit("\n".join(plan.preview()))
        return
    common.emit("\n".join([*plan.execute().describe(), *classic_schedule.lines(s)]))


# ---------------------------------------------------------------------------------------------
# The console scripts


_PASS = {"ignore_unknown_options": True, "allow_interspersed_args": False}
TOOLS: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {
    "zmbackup": (zmbackup_command, {}),
    "zmbackupquery": (zmbackupquery_command, {}),
    "zmbackupabort": (zmbackupabort_command, {}),
    "zmrestore": (_restore_command(online=True, zimbra=True), {}),
    "zmrestoreoffline": (_restore_command(online=False, zimbra=True), {}),
    "zmrestoreldap": (zmrestoreldap_command, {}),
    "zmprov": (zmprov_command, _PASS),
    "zmlocalconfig": (zmlocalconfig_command, {"ignore_unknown_options": True}),
    "zmschedulebackup": (zmschedulebackup_command, {}),
}
STANDBY_VARIANTS = {"zmrestore": _restore_command(online=True, zimbra=False),
                    "zmrestoreoffline": _restore_command(online=False, zimbra=False)}
for _name, (_fn, _cs) in TOOLS.items():
    app.command(_name, context_settings=_cs)(STANDBY_VARIANTS.get(_name, _fn))


def _tool(name: str) -> typer.Typer:
    try:
        fn, cs = TOOLS[name]
    except KeyError:
        raise UsageError(f"no tool named {name!r}", hint="one of " + ", ".join(TOOLS)) from None
    t = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                    context_settings={"help_option_names": ["-h", "--help"]})
    t.command(name, context_settings=cs)(fn)
    return t


def _argv(argv: list[str]) -> list[str]:
    for opt in MULTI:
        argv = expand_multi(argv, opt)
    return argv


def _main(name: str, argv: list[str] | None = None) -> None:
    common.run(_tool(name), argv=_argv(list(sys.argv[1:] if argv is None else argv)),
               prog=name, default_log_level="warning")


def zmbackup() -> None:
    _main("zmbackup")


def zmbackupquery() -> None:
    _main("zmbackupquery")


def zmbackupabort() -> None:
    _main("zmbackupabort")


def zmrestore() -> None:
    _main("zmrestore")


def zmrestoreoffline() -> None:
    _main("zmrestoreoffline")


def zmrestoreldap() -> None:
    _main("zmrestoreldap")


def zmprov() -> None:
    _main("zmprov")


def zmlocalconfig() -> None:
    _main("zmlocalconfig")


def zmschedulebackup() -> None:
    _main("zmschedulebackup")


if __name__ == "__main__":  # `python -m standby.cli.classic TOOL ARGS` (background sessions)
    try:
        _main(sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:])
    except StandbyError as e:  # a tool name that does not exist
        sys.exit(common.fail(e))
