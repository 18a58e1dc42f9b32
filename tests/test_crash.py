"""Crash safety of the real store: SIGKILL the store service and its mariadbd at 20 seeded random
moments under load (some of them right at a redo log rollover), restart (crash recovery runs),
and check after each restart that

- every op whose change record is in the log was fully applied: per mailbox, the database's
  change number and the index's applied change number both equal the highest committed change
  number in the log, every blob the database refers to is on the blob volume with its digest,
  and the index holds exactly the database's messages, contacts and folders (nothing is half
  applied, nothing is applied that the log does not have);
- the store's digest equals the digest of a fresh store built by replaying the committed ops of
  the whole log from the start (naive replay from empty);
- crash recovery reported ops redone (its `crash_recovery_done` line in store.log).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from standby.redolog import files
from standby.redolog.ops import StoreIncomingBlob
from standby.redolog.reader import scan
from standby.replay import naive
from standby.replay.player import Player, Selection, select_files
from standby.store import blobs as blobmod
from standby.store import control
from standby.store.blobs import BlobStore
from standby.store.digest import digest_settings, store_digest
from standby.store.directory import Directory
from standby.store.effects import Effects
from standby.store.index import IndexStore
from standby.store.loadgen import run as loadgen
from standby.store.schema import group_of
from standby.store.site import Site

ROUNDS = 20
SEED = int(os.environ.get("STANDBY_CRASH_SEED", "20240611"))
ACCOUNTS = 5
TYPE_FOLDER, TYPE_MESSAGE, TYPE_CONTACT = 1, 5, 6


def _committed_high_water(redolog: Path) -> tuple[dict[int, int], Player]:
    """Highest committed change number per mailbox over every log file, in replay order."""
    logs, _ = select_files(redolog, Selection())
    player = Player(Selection())
    high: dict[int, int] = {}
    for rec, _path in player.play(logs):
        if isinstance(rec.op, StoreIncomingBlob):
            continue
        high[rec.mailbox_id] = max(high.get(rec.mailbox_id, 0), rec.change_id)
    return high, player


def _recent_recommits(path: Path) -> int:
    """Commits that crash recovery logs again for ops already committed in the look-back
    window: a second Commit of a txn whose first Commit is earlier in the same file."""
    seen_commit: set[tuple[int, int]] = set()
    again = 0
    with scan(path) as sc:
        for rec in sc:
            if rec.op.OPCODE in (3, 4):
                if rec.txn in seen_commit:
                    again += 1
                seen_commit.add(rec.txn)
    return again


def _check_fully_applied(s: Any, conn: Any) -> dict[str, int]:
    """The per-volume invariants after recovery (see the module docstring)."""
    high, player = _committed_high_water(s.volumes.redolog.path)
    assert player.stats.uncommitted == 0, "recovery left transactions without Commit/Abort"
    assert not player.stats.problems, player.stats.problems
    # Each file stands alone: crash recovery scans only redo.log, so a Commit/Abort must find
    # its change record in the same file (a rollover re-logs the active ones).
    for lf in select_files(s.volumes.redolog.path, Selection())[0]:
        alone = Player(Selection())
        for _ in alone.play_file(lf.path):
            pass
        assert alone.stats.orphans == _recent_recommits(lf.path), lf.path.name
    groups = s.store.mailbox_groups
    blobs = BlobStore(s.volumes.blob.path)
    index = IndexStore(s.volumes.index.path)
    cur = conn.cursor()
    cur.execute("SELECT id, change_checkpoint FROM zimbra.mailbox ORDER BY id")
    boxes = dict(cur.fetchall())
    assert set(boxes) == set(high), (boxes, high)
    stats = {"mailboxes": len(boxes), "items": 0, "blobs": 0}
    for m, change in boxes.items():
        assert change == high[m], f"mailbox {m}: database at change {change}, log at {high[m]}"
        g = group_of(m, groups)
        cur.execute(f"SELECT id, type, folder_id, mod_content, blob_digest FROM"
                    f" mboxgroup{g}.mail_item WHERE mailbox_id = %s", (m,))
        rows = cur.fetchall()
        stats["items"] += len(rows)
        # Blobs: exactly the referenced ones, each with the content the database expects.
        wanted = {}
        for iid, typ, _folder, mod_content, digest in rows:
            if digest:
                wanted[blobs.path(m, iid, mod_content)] = digest
        present = set(blobs.mailbox_blobs(m))
        assert present == set(wanted), (
            f"mailbox {m}: missing {sorted(map(str, set(wanted) - present))[:3]}, "
            f"unreferenced {sorted(map(str, present - set(wanted)))[:3]}")
        for path, digest in wanted.items():
            assert blobmod.digest(blobs.read(path)) == digest, f"{path}: wrong content"
        stats["blobs"] += len(wanted)
        # Index: same change number, the same documents and folders as the database.
        with index.use(m, create=False) as idx:
            assert idx is not None, f"mailbox {m} has no index"
            assert idx.hwm == change, f"mailbox {m}: index at {idx.hwm}, database at {change}"
            docs = {r[0]: r[1:3] for r in idx.db.execute("SELECT id, type, folder_id FROM items")}
            folders = {r[0] for r in idx.iter_folders()}
        assert docs == {iid: (typ, folder) for iid, typ, folder, _m, _d in rows
                        if typ in (TYPE_MESSAGE, TYPE_CONTACT)}, f"mailbox {m}: index differs"
        assert folders == {iid for iid, typ, *_ in rows if typ == TYPE_FOLDER}
    index.close()
    conn.commit()
    incoming = s.volumes.blob.path / blobmod.INCOMING
    assert not incoming.is_dir() or not any(incoming.iterdir()), "incoming/ not cleared"
    return stats


def _reset(s: Any, db: Any) -> None:
    """Make the standby an empty store again (same MariaDB server, so no restart cost)."""
    conn = db.connect(autocommit=True)
    try:
        cur = conn.cursor()
        for name in ["zimbra", *(f"mboxgroup{g}" for g in range(1, s.store.mailbox_groups + 1))]:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        conn.close()
    for vol in (s.volumes.blob.path, s.volumes.index.path):
        shutil.rmtree(vol)
        vol.mkdir()
    Site(s).ensure_schema()


def _replay_digest(primary: Any, standby: Any, db: Any) -> tuple[str, int]:
    _reset(standby, db)
    conn = db.connect()
    try:
        effects = Effects(groups=standby.store.mailbox_groups,
                          blobs=BlobStore(standby.volumes.blob.path),
                          index=IndexStore(standby.volumes.index.path),
                          retention=Directory(primary.directory_path).retention())
        logs, _ = select_files(primary.volumes.redolog.path, Selection())
        res = naive.replay(logs, Selection(), conn=conn, effects=effects)
        assert not res.errors, res.errors[:3]
        got = store_digest(conn, groups=standby.store.mailbox_groups, blobs=effects.blobs,
                           index=IndexStore(standby.volumes.index.path))
        return got.total, res.ops_applied
    finally:
        conn.close()


def _recovery_events(state_dir: Path) -> list[dict[str, Any]]:
    out = []
    for line in (state_dir / "store.log").read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "crash_recovery_done":
            out.append(ev)
    return out


def _wait_for_rollover(redolog: Path, timeout: float) -> bool:
    """Poll until a rollover is under way or just done (a tmp file, or one more archive)."""
    archive = redolog / files.ARCHIVE_DIR
    before = len(list(archive.iterdir()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [p.name for p in redolog.iterdir()]
        if any(n.startswith(files.TMP_PREFIX) for n in names):
            return True
        if len(list(archive.iterdir())) > before:
            return True
        time.sleep(0.001)
    return False


def _wait_for_traffic(redolog: Path, min_bytes: int, timeout: float) -> None:
    """Poll until the log has grown by `min_bytes` (so each kill lands in real work)."""
    def total() -> int:
        return sum(p.stat().st_size for p in [*(redolog / files.ARCHIVE_DIR).iterdir(),
                                                redolog / files.CURRENT] if p.exists())

    start = total()
    deadline = time.monotonic() + timeout
    while total() - start < min_bytes and time.monotonic() < deadline:
        time.sleep(0.005)


def _kill(handle: Any) -> None:
    """SIGKILL both processes. `standby._process.alive` can raise ProcessLookupError when a
    process vanishes between its two checks (reported); tolerate that here, then make sure
    both are gone."""
    s = handle.settings
    pids = [pid for pid in (control.service_pid(s), Site(s).db.pid()) if pid]
    try:
        handle.kill()
    except ProcessLookupError:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Gone means what `store start` checks: no live service pid and no lock on the volumes.
    deadline = time.monotonic() + 60
    while control.service_pid(s) is not None or Site(s).locked():
        assert time.monotonic() < deadline, "killed processes linger: " + "; ".join(
            f"{p}: {_stat(p)[:60]!r} wchan={_wchan(p)}" for p in pids)
        time.sleep(0.01)


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "-"


def _stat(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return b") Z"


def _drive(socket: Path, seed: int, stop: threading.Event, failures: list[BaseException]) -> None:
    """Load until `stop`; errors are expected while the store is being killed under it."""
    try:
        loadgen(socket, accounts=ACCOUNTS, ops=10**9, seed=seed, workers=3, stop=stop)
    except Exception as e:  # noqa: BLE001 - the store is being killed under it
        failures.append(e)


def test_sigkill_at_random_moments_keeps_every_logged_op(make_store) -> None:
    primary = make_store("primary", sections={"redolog": {"rollover_size_kb": 64}})
    primary.start()
    s = primary.settings
    red = s.volumes.redolog.path
    # Accounts first, with no kill in flight: the directory (the LDAP stand-in) is not part of
    # the redo protocol.
    loadgen(s.store_socket, accounts=ACCOUNTS, ops=0, seed=SEED)

    standby = make_store("standby").settings
    sdb = Site(standby).db
    sdb.start()

    rng = random.Random(SEED)
    rounds: list[dict[str, Any]] = []
    try:
        for rnd in range(ROUNDS):
            t0 = time.monotonic()
            stop = threading.Event()
            failures: list[BaseException] = []

            t = threading.Thread(target=_drive, args=(s.store_socket, SEED + rnd, stop, failures),
                                 name=f"load-{rnd}", daemon=True)
            t.start()
            at_rollover = rnd % 4 == 3
            _wait_for_traffic(red, rng.randint(5_000, 150_000), timeout=30)
            if at_rollover:
                hit = _wait_for_rollover(red, timeout=20)
                assert hit, "no rollover within 20 s of traffic"
            else:
                time.sleep(rng.uniform(0.0, 1.2))  # the random moment itself
            _kill(primary)
            stop.set()
            t.join(60)
            assert not t.is_alive()
            tmp_left = [p.name for p in red.iterdir() if p.name.startswith(files.TMP_PREFIX)]

            primary.start()  # crash recovery runs in the service before it serves
            db = Site(s).db
            conn = db.connect()
            try:
                stats = _check_fully_applied(s, conn)
            finally:
                conn.close()
            want = digest_settings(s).total
            got, replayed = _replay_digest(s, standby, sdb)
            assert got == want, f"round {rnd}: store differs from a replay of its own log"
            ev = _recovery_events(s.state_dir)
            assert len(ev) == rnd + 1, "every restart after a kill runs crash recovery"
            # (A redone LINK delivery may lack its bytes when a later op, redone after it,
            # deleted the message and its blob before the crash: `incomplete` is then
            # harmless, as the digest above shows.)
            assert ev[-1]["aborted"] == 0, ev[-1]
            rounds.append({"round": rnd, "at_rollover": at_rollover, "tmp_left": tmp_left,
                           "redone": ev[-1]["redone"], "incomplete": ev[-1]["incomplete"],
                           "truncated": ev[-1]["truncated_bytes"],
                           "tmp_actions": ev[-1]["tmp_actions"], "replayed": replayed,
                           "seconds": round(time.monotonic() - t0, 2), **stats})
    finally:
        sdb.stop()
    print("\n" + "\n".join(json.dumps(r) for r in rounds))
    redone_rounds = [r for r in rounds if r["redone"] > 0]
    assert len(redone_rounds) >= ROUNDS // 2, rounds
    assert rounds[-1]["items"] > 0 and rounds[-1]["blobs"] > 0
    assert len(files.list_archive(red / files.ARCHIVE_DIR)) > ROUNDS, "rollovers expected"
