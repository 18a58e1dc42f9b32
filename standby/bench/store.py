"""`standby bench store`: the primary store's sustained throughput and the redo reader's speed.

1. Primary: a store on embedded defaults in a temporary folder; accounts are created, then the
   load generator drives a fixed number of actions with several workers through the service.
   Reported: actions/s, redo records/s and MB/s (every record the run added to the log, counted
   by reading the log back), and per-action latency p50/p99.
2. Reader: a large log of loadgen's default mix (about `reader_records` records, written straight
   by the redo writer with fsync off, `bench.synth`), then read back in full with
   `redolog.reader.scan` (every record decoded) `repeats` times from a warm page cache.
   Reported: records/s and MB/s of the best and the median pass.
Both follow loadgen's default mix, or (`mix="core"`) its core alone, the op kinds older versions
wrote, to compare with them.

Everything is created under one temporary folder and removed at the end (`keep` leaves it).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby import settings as settings_mod
from standby.bench import synth
from standby.errors import UsageError
from standby.redolog import files
from standby.redolog.reader import scan
from standby.store import control
from standby.store import loadgen as lg

READER_TARGET_RECORDS_PER_S = 300_000


def _log_files(redolog: Path) -> list[Path]:
    out = [lf.path for lf in files.list_archive(redolog / files.ARCHIVE_DIR)]
    cur = redolog / files.CURRENT
    return out + [cur] if cur.exists() else out


def _count(redolog: Path) -> tuple[int, int]:
    """Records and bytes (headers excluded) in every log file now."""
    recs = size = 0
    for p in _log_files(redolog):
        with scan(p) as sc:
            for _ in sc:
                recs += 1
            size += sc.good_end - 512
    return recs, size


def primary(root: Path, *, accounts: int, actions: int, workers: int, seed: int,
            say: Callable[[str], None], mix: str = "default") -> dict[str, Any]:
    cfg = control.init(root / "store", mailbox_groups=16)
    s = settings_mod.load(cfg)
    assert s is not None
    try:
        say("starting a store")
        control.start(s)
        lg.run(s.store_socket, accounts=accounts, ops=0, seed=seed)
        recs0, bytes0 = _count(s.volumes.redolog.path)
        say(f"loadgen: {actions} actions, {workers} workers, {accounts} accounts")
        res = lg.run(s.store_socket, accounts=accounts, ops=actions, seed=seed, workers=workers,
                     mix=synth.MIXES[mix])
    finally:
        control.stop(s)
    recs1, bytes1 = _count(s.volumes.redolog.path)
    summary = res.summary()
    secs = res.seconds
    recs = recs1 - recs0  # includes the Commits and the rollover on stop's Checkpoint, if any
    return {
        "primary_actions": res.actions,
        "primary_errors": res.errors,
        "primary_seconds": round(secs, 2),
        "primary_actions_per_s": summary["actions_per_s"],
        "primary_redo_records": recs,
        "primary_redo_records_per_s": round(recs / secs, 1) if secs else None,
        "primary_redo_mb_per_s": round((bytes1 - bytes0) / 1e6 / secs, 2) if secs else None,
        "primary_latency_ms_p50": summary["latency_ms_p50"],
        "primary_latency_ms_p99": summary["latency_ms_p99"],
        "primary_workers": workers,
        "primary_accounts": accounts,
    }


def _decode_all(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with scan(p) as sc:
            for _ in sc:
                n += 1
            if sc.problems:
                raise RuntimeError(f"{p}: {sc.problems[0]}")
    return n


def reader(root: Path, *, records: int, repeats: int, seed: int, profile: bool,
           say: Callable[[str], None], mix: str = "default") -> dict[str, Any]:
    d = root / "synth"
    ops = max(1, records // 2)  # each op is its change record and its CommitTxn
    say(f"writing a log of about {records} records (loadgen's mix, fsync off)")
    t0 = time.perf_counter()
    synth.write_log(d, ops=ops, seed=seed, accounts=500, mix=mix)
    written_s = time.perf_counter() - t0
    paths = _log_files(d)
    size = sum(p.stat().st_size for p in paths)
    n = _decode_all(paths)  # warms the page cache
    times = []
    for i in range(repeats):
        say(f"decoding pass {i + 1}/{repeats}")
        t = time.perf_counter()
        assert _decode_all(paths) == n
        times.append(time.perf_counter() - t)
    best, med = min(times), statistics.median(times)
    out: dict[str, Any] = {
        "reader_records": n,
        "reader_files": len(paths),
        "reader_mb": round(size / 1e6, 1),
        "reader_write_s": round(written_s, 2),
        "reader_records_per_s": round(n / best),
        "reader_mb_per_s": round(size / 1e6 / best, 1),
        "reader_records_per_s_median": round(n / med),
        "reader_target_records_per_s": READER_TARGET_RECORDS_PER_S,
        "reader_meets_target": n / best >= READER_TARGET_RECORDS_PER_S,
    }
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        _decode_all(paths)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        out["reader_profile"] = buf.getvalue()
    return out


def run(*, accounts: int = 20, actions: int = 3000, workers: int = 8,
        reader_records: int = 500_000, repeats: int = 3, seed: int = 1,
        workdir: Path | None = None, keep: bool = False, profile: bool = False,
        mix: str = "default", say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    if mix not in synth.MIXES:
        raise UsageError(f"no synthetic mix {mix!r}", hint="one of " + ", ".join(synth.MIXES))
    root = Path(tempfile.mkdtemp(prefix="standby-bench-store-", dir=workdir))
    try:
        out: dict[str, Any] = {"mix": mix}
        out |= primary(root, accounts=accounts, actions=actions, workers=workers, seed=seed,
                       say=say, mix=mix)
        out |= reader(root, records=reader_records, repeats=repeats, seed=seed,
                      profile=profile, say=say, mix=mix)
        out["cpus"] = os.cpu_count()
        if keep:
            out["workdir"] = str(root)
        return out
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
