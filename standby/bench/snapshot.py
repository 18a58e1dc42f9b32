"""`standby bench snapshot`: what a set and a redolog snapshot cost on ZFS, measured.

On a file-backed zfs-fuse pool it makes and destroys itself (starting the zfs-fuse daemon if none
runs, and stopping it again only if it started it), with a real store on four datasets
(`pool/sb/{db,blob,index,redolog}`) and some traffic in it, it measures:

- one staggered set: wall time, skew (first to last snapshot), per-volume call time;
- one atomic set: wall time, skew, and whether all four share one creation txg;
- N redolog snapshots: wall time each, the part of it spent in `zfs snapshot`, and the rest —
  the tool's own overhead (redo position, planning, identity, manifest) — median and max.

Processes start through `standby._process` (the zfs-fuse/zpool/zfs commands, the store's
`mariadbd` and service); the pool logic is a copy of what tests/services.py does, because
tests/ is not part of the installed package.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from standby import _process
from standby import settings as settings_mod
from standby.errors import ServiceError
from standby.snapshot import sets
from standby.snapshot.execute import Outcome
from standby.snapshot.zfs import ZfsBackend
from standby.store import control

VOLS = ("db", "blob", "index", "redolog")


def _ok(*argv: str) -> bool:
    return _process.run(_process.Command(tuple(argv)), check=False).returncode == 0


class _Pool:
    """A zfs-fuse pool on a sparse file, with the four volume datasets."""

    def __init__(self, workdir: Path, say: Callable[[str], None], *, size: str = "2G") -> None:
        self.workdir = workdir
        self.say = say
        self.size = size  # of the sparse file: what the pool can hold
        self.name = f"sbbench{secrets.token_hex(3)}"
        self.img = workdir / f"{self.name}.img"
        self.daemon_pid: int | None = None
        self.created = False

    def __enter__(self) -> Self:
        if not _ok("zpool", "list"):
            pidfile = self.workdir / "zfs-fuse.pid"
            self.say("starting zfs-fuse")
            _process.run(_process.Command.of("zfs-fuse", "--pidfile", pidfile))
            deadline = time.monotonic() + 20
            while not _ok("zpool", "list"):
                if time.monotonic() > deadline:
                    raise ServiceError("zfs-fuse did not come up within 20 s")
                time.sleep(0.2)
            self.daemon_pid = int(pidfile.read_text().strip())
        _process.run(_process.Command.of("truncate", "-s", self.size, self.img))
        _process.run(_process.Command.of("zpool", "create", "-f", "-m",
                                         self.workdir / "pool", self.name, self.img))
        self.created = True
        _process.run(_process.Command.of("zfs", "create", "-o",
                                         f"mountpoint={self.workdir / 'sb'}", f"{self.name}/sb"))
        for v in VOLS:
            _process.run(_process.Command.of("zfs", "create", "-o",
                                             f"mountpoint={self.workdir / v}",
                                             f"{self.name}/sb/{v}"))
        return self

    def __exit__(self, *exc: object) -> None:
        # zfs-fuse says "pool is busy" for a moment after the last process using it exits.
        deadline = time.monotonic() + 30
        while self.created:
            res = _process.run(_process.Command.of("zpool", "destroy", "-f", self.name),
                               check=False)
            if res.returncode == 0:
                self.created = False
            elif time.monotonic() > deadline:
                self.say(f"could not destroy pool {self.name}: {res.stderr.decode().strip()}")
                break
            else:
                time.sleep(0.25)
        if not self.created:
            self.img.unlink(missing_ok=True)
        if self.daemon_pid:
            _process.terminate(self.daemon_pid, timeout=10)


def _config(workdir: Path, pool: str, stagger_s: float) -> Path:
    lines = [f'server_id = "bench-{secrets.token_hex(4)}"', f'state_dir = "{workdir / "state"}"']
    for v in VOLS:
        lines += [f"[volumes.{v}]", f'path = "{workdir / v}"', 'backend = "zfs"',
                  f'dataset = "{pool}/sb/{v}"']
    lines += ["[mariadb]", 'buffer_pool = "64M"', 'log_file_size = "48M"',
              "[store]", "mailbox_groups = 4",
              "[snapshot]", f'manifest_key = "{secrets.token_hex(16)}"',
              f"stagger_s = {stagger_s}", "use_pyzfs = false"]
    (workdir / "state").mkdir(exist_ok=True)
    cfg = workdir / "standby.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def run(*, stagger_s: float = 1.0, redologs: int = 10, workdir: Path | None = None,
        keep: bool = False, say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    from standby.store.loadgen import run as loadgen

    for prog in ("zfs-fuse", "zpool", "zfs", "mariadbd"):
        _process.which(prog)
    base = Path(tempfile.mkdtemp(prefix="standby-bench-snapshot-", dir=workdir))
    out: dict[str, Any] = {"backend": "zfs (zfs-fuse)", "stagger_s": stagger_s}
    try:
        with _Pool(base, say) as pool:
            s = settings_mod.load(_config(base, pool.name, stagger_s))
            assert s is not None
            bes = {"zfs": ZfsBackend(use_lzc=False)}
            say("starting the store and writing some mail")
            control.start(s)
            try:
                loadgen(s.store_socket, accounts=4, ops=200, seed=1, workers=2)
                out.update(_measure(s, bes, redologs, say))
            finally:
                control.stop(s)
    finally:
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return out


def _take(kind: str, s: settings_mod.Settings, bes: dict[str, Any],
          **kw: Any) -> tuple[Outcome, float]:
    t0 = time.perf_counter()
    res = sets.take(kind, s, backends=bes, **kw)
    assert isinstance(res, Outcome)
    return res, _ms(t0)


def _measure(s: settings_mod.Settings, bes: dict[str, Any], redologs: int,
             say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    say("staggered set")
    st, wall = _take("set", s, bes)
    m = st.manifest
    out["staggered_wall_ms"] = wall
    out["staggered_skew_ms"] = m.skew_ms
    out["staggered_calls_ms"] = {x.volume: x.taken_at_ms - x.started_ms for x in m.snapshots}
    out["staggered_tool_overhead_ms"] = st.tool_ms
    out["staggered_overhead_per_snapshot_ms"] = round(st.tool_ms / len(m.snapshots), 1)
    say("atomic set")
    at, wall = _take("set", s, bes, atomic=True)
    a = at.manifest
    txgs = {x.identity.get("createtxg") for x in a.snapshots}
    out["atomic_wall_ms"] = wall
    out["atomic_skew_ms"] = a.skew_ms
    out["atomic_one_txg"] = len(txgs) == 1
    out["atomic_createtxg"] = sorted(t for t in txgs if t is not None)
    out["atomic_call_ms"] = a.snapshots[0].taken_at_ms - a.snapshots[0].started_ms
    out["atomic_tool_overhead_ms"] = at.tool_ms
    say(f"{redologs} redolog snapshots")
    walls, tools, calls = [], [], []
    for _ in range(redologs):
        r, wall = _take("redolog", s, bes)
        walls.append(wall)
        calls.append(r.backend_ms)
        tools.append(max(0.0, wall - r.backend_ms))
    out["redolog_wall_ms_median"] = round(statistics.median(walls), 1)
    out["redolog_wall_ms_max"] = round(max(walls), 1)
    out["redolog_zfs_call_ms_median"] = round(statistics.median(calls), 1)
    out["redolog_tool_overhead_ms_median"] = round(statistics.median(tools), 1)
    out["redolog_tool_overhead_ms_max"] = round(max(tools), 1)
    out["redolog_target_met"] = max(tools) < 500
    out.update(_cli_redolog(s, say))
    return out


def _cli_redolog(s: settings_mod.Settings, say: Callable[[str], None],
                 runs: int = 3) -> dict[str, Any]:
    """The same through the command line, as cron runs it: interpreter start-up included."""
    import sys

    exe = Path(sys.executable).with_name("standby")
    if not exe.exists():
        return {}
    say(f"{runs} redolog snapshots through the CLI")
    cmd = _process.Command.of(exe, "--config", str(s.source), "--log-level", "warning",
                              "snapshot", "redolog")
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        _process.run(cmd)
        walls.append(_ms(t0))
    return {"redolog_cli_wall_ms_median": round(statistics.median(walls), 1)}
