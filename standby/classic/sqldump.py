"""The optional `mysqldump` of the whole database taken with each session
(`zmlocalconfig -e mysql_backup_retention=N`): gzipped into `<target>/mysql/`, the newest N kept.

`command` builds the `mariadb-dump` argv (one consistent transaction over every database of the
store's private server); `dump` runs it through `standby._process`, streams its output through
gzip into a temporary file that is renamed into place when the dump succeeded, and prunes.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from standby import _process, fsutil
from standby.classic.env import Env
from standby.errors import CommandFailed
from standby.store.schema import FLUSH_TABLE

PROGRAM = "mariadb-dump"
PREFIX, SUFFIX = "mysql-", ".sql.gz"


def command(socket: Path) -> _process.Command:
    return _process.Command.of(PROGRAM, "--no-defaults", f"--socket={socket}", "--user=root",
                               "--all-databases", "--single-transaction", "--quick",
                               "--skip-lock-tables", f"--ignore-table={FLUSH_TABLE}")


def dump(env: Env, label: str) -> Path:
    d = env.target.mysql_dir
    d.mkdir(parents=True, exist_ok=True)
    dest = d / f"{PREFIX}{label}{SUFFIX}"
    tmp = dest.with_name(f".{dest.name}.tmp")
    cmd = command(env.settings.mariadb_socket)
    proc = _process.spawn(cmd)
    out, err = proc.stdout, proc.stderr
    assert out is not None and err is not None
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            while chunk := out.read(1 << 20):
                gz.write(chunk)
        rc = proc.wait()
        if rc != 0:
            raise CommandFailed(cmd.argv, rc, err.read().decode("utf-8", "replace"))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsutil.fsync_dir(d)
    finally:
        tmp.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    prune(d, env.mysql_retention)
    return dest


def prune(d: Path, keep: int) -> list[Path]:
    dumps = sorted(p for p in d.iterdir() if p.name.startswith(PREFIX)
                   and p.name.endswith(SUFFIX))
    gone = dumps[:-keep] if keep > 0 else dumps
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
