"""`standby bench classic --mb N`: classic backups against `tar` of the same volumes, same run.

1. A live store grown by loadgen (the store service, real MIME messages, shared deliveries)
   until its blob, index and redolog volumes hold about N MB (`data_mb`; the db volume adds
   MariaDB's own files, a few hundred MB even when nearly empty).
2. The page cache warmed (every volume file read once), then `tar -cf` of the four volumes and a
   full backup of all accounts (`zmbackup -f -a all`), each timed: `tar_mb_s` and `full_mb_s`
   are the volumes' bytes over each one's wall time. A backup session ends durable (one syncfs
   of the target), so tar is timed with the same sync of its archive (`tar_sync_seconds`):
   `full_ratio` compares the two durable copies (target 0.8), `full_ratio_nosync` plain tar.
3. An incremental of the unchanged store (`incr_seconds`, target under 2 s).
4. On a fresh store with its MariaDB up: the directory restored (zmrestoreldap), then every
   account restored offline from the target (`zmrestoreoffline -sys -a all -c -br`, durable at
   its end), timed, and `tar -xf` of the archive into a fresh folder followed by a sync:
   `restore_ratio` of the two rates (target 0.5), `restore_ratio_nosync` without the sync.
   The restored store's digest must equal the primary's (`digest_equal`).
Everything lives under a temporary work folder, removed at the end unless `keep`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby import _process, fsutil
from standby import settings as settings_mod
from standby.bench import replay as bench_replay
from standby.classic import backup, ldap, restore
from standby.classic import env as env_mod
from standby.errors import ServiceError, StandbyError
from standby.settings import Settings
from standby.store import control, loadgen
from standby.store.digest import digest_site
from standby.store.site import Site

LOAD_CHUNK = 2000  # loadgen actions between two looks at the volumes' size
VOLUMES = ("db", "blob", "index", "redolog")
DATA = ("blob", "index", "redolog")


def _store(root: Path) -> Settings:
    s = bench_replay.make_store(root, groups=20, buffer_pool="512M")
    s = dataclasses.replace(s, mariadb=dataclasses.replace(s.mariadb, log_file_size="48M"))
    assert s.source is not None
    s.source.write_text(settings_mod.to_toml(s))
    return settings_mod.load(s.source)


def _volume_bytes(root: Path, volumes: tuple[str, ...] = VOLUMES) -> tuple[int, int]:
    total = files = 0
    for v in volumes:
        for d, _dirs, names in os.walk(root / v):
            for n in names:
                try:
                    total += os.lstat(os.path.join(d, n)).st_size
                    files += 1
                except FileNotFoundError:
                    continue
    return total, files


def _warm(root: Path) -> None:
    """Read every volume file once, so tar and the backup both start from a warm cache."""
    buf = bytearray(1 << 20)
    for v in VOLUMES:
        for d, _dirs, names in os.walk(root / v):
            for n in names:
                try:
                    with open(os.path.join(d, n), "rb", buffering=0) as f:
                        while f.readinto(buf):
                            pass
                except OSError:
                    continue


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _tar(argv: list[str]) -> None:
    # Exit 1 is "a file changed while it was read": the live store's files, as expected.
    r = _process.run(_process.Command.of("tar", *argv), check=False)
    if r.returncode not in (0, 1):
        raise ServiceError(f"tar failed: {r.stderr.decode(errors='replace')[-300:]}")


def _grow(ps: Settings, root: Path, *, mb: int, accounts: int, seed: int,
          say: Callable[[str], None]) -> int:
    """loadgen against the running store until its volumes hold `mb` MB; returns actions."""
    done = 0
    while _volume_bytes(root, DATA)[0] < mb * 1_000_000:
        r = loadgen.run(ps.store_socket, accounts=accounts, ops=LOAD_CHUNK,
                        seed=seed * 1000 + done // LOAD_CHUNK, workers=8)
        done += r.actions
        say(f"loadgen: {done} actions, {_volume_bytes(root, DATA)[0] / 1e6:.0f} MB of data")
    return done


def run(*, mb: int, workdir: Path | None = None, seed: int = 1, accounts: int = 200,
        keep: bool = False, say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="standby-bench-classic-", dir=workdir))
    out: dict[str, Any] = {"target_mb": mb}
    stores: list[Settings] = []
    try:
        ps = _store(base / "primary")
        stores.append(ps)
        control.start(ps)
        site = Site.open(ps)
        out["loadgen_actions"] = _grow(ps, base / "primary", mb=mb, accounts=accounts,
                                       seed=seed, say=say)
        out["accounts"] = len(site.directory.accounts())
        vol_bytes, vol_files = _volume_bytes(base / "primary")
        out["volume_mb"] = round(vol_bytes / 1e6, 1)
        out["data_mb"] = round(_volume_bytes(base / "primary", DATA)[0] / 1e6, 1)
        out["volume_files"] = vol_files
        mbytes = vol_bytes / 1e6

        say("warming the page cache, then tar of the four volumes")
        _warm(base / "primary")
        (base / "tar").mkdir()
        tarball = base / "tar" / "volumes.tar"
        _, tar_s = _timed(lambda: _tar(["-cf", str(tarball), "-C", str(base / "primary"),
                                        *VOLUMES]))
        _, tar_sync_s = _timed(lambda: fsutil.syncfs(base / "tar"))
        tar_sync_s += tar_s
        say("full backup of all accounts")
        env = env_mod.build(site, target=base / "target")
        full, full_s = _timed(lambda: backup.run(env, backup.Request("full")))
        session = full.sessions[0]
        out.update(tar_seconds=round(tar_s, 2), tar_sync_seconds=round(tar_sync_s, 2),
                   tar_mb_s=round(mbytes / tar_sync_s, 1), full_seconds=round(full_s, 2),
                   full_mb_s=round(mbytes / full_s, 1), full_ratio=round(tar_sync_s / full_s, 3),
                   full_ratio_nosync=round(tar_s / full_s, 3), full_status=session.status,
                   full_stats=dict(session.stats))
        say("incremental of the unchanged store")
        _, incr_s = _timed(lambda: backup.run(env, backup.Request("incr")))
        out["incr_seconds"] = round(incr_s, 2)

        say("restore of all accounts on a fresh store, then untar")
        ds = _store(base / "restored")
        stores.append(ds)
        dsite = Site.open(ds)
        dsite.db.start()
        dsite.ensure_schema()
        denv = env_mod.build(dsite, target=base / "target")
        ldap.restore(denv.target, dsite.directory, session.label)
        req = restore.Request(accounts=None, sys=True, continue_on_error=True,
                              backup_redo_only=True)
        res, restore_s = _timed(lambda: restore.run(denv, req, online=False))
        (base / "untar").mkdir()
        _, untar_s = _timed(lambda: _tar(["-xf", str(tarball), "-C", str(base / "untar")]))
        _, untar_sync_s = _timed(lambda: fsutil.syncfs(base / "untar"))
        untar_sync_s += untar_s
        out.update(restore_seconds=round(restore_s, 2),
                   restore_mb_s=round(mbytes / restore_s, 1), untar_seconds=round(untar_s, 2),
                   untar_sync_seconds=round(untar_sync_s, 2),
                   untar_mb_s=round(mbytes / untar_sync_s, 1),
                   restore_ratio=round(untar_sync_s / restore_s, 3),
                   restore_ratio_nosync=round(untar_s / restore_s, 3),
                   restored_accounts=len(res.restored), restore_failed=len(res.failed))
        say("digests")
        out["digest_equal"] = digest_site(dsite).total == digest_site(site).total
        out["backup_mb"] = round(sum(f.stat().st_size for f in (base / "target").rglob("*")
                                     if f.is_file()) / 1e6, 1)
        out["targets"] = {"full_ratio": 0.8, "incr_seconds": 2.0, "restore_ratio": 0.5}
        out["meets_targets"] = (out["full_ratio"] >= 0.8 and out["incr_seconds"] < 2.0
                                and out["restore_ratio"] >= 0.5 and out["digest_equal"])
        return out
    finally:
        for s in stores:
            try:
                control.stop(s, timeout=30)
            except StandbyError as e:
                say(f"clean-up of {s.state_dir}: {e}")
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
