"""`standby bench ship`: what shipping costs, against a plain upload of the same bytes.

In one run, against one `moto_server` it starts on 127.0.0.1 (S3 over HTTP):

1. a snapshot set of about `size_mb` MiB of realistic data on `dir` volumes — message blobs
   from the store's own `MessageFactory` (MIME text, HTML, base64 attachments; a pool of
   distinct messages written in shuffled order, so repeats fall outside zstd's window), and
   database and index files laid out as 16 KiB pages, rows of text and numbers, the rest of
   each page zero as InnoDB leaves it;
2. `standby ship` of that set (the library the command calls; compression and parallel parts
   as configured) — and a plain boto3 `upload_file` (s3transfer's defaults) of an uncompressed
   tar of the same snapshot; both rates are MB/s of snapshot data, with their ratio;
3. one small redolog increment: the wall time of `standby ship` as cron runs it (a process,
   interpreter start-up included) and in the library, and the tool's overhead, the library's
   wall time minus the time spent waiting in S3 calls;
4. on a zfs-fuse pool of its own (`bench snapshot`'s pool, sized for the data), a set of about
   `zfs_size_mb` MiB (1 GiB by default, as the S3 part's) on zfs volumes: `standby ship` to a
   zfs target on that pool vs a bare `zfs send | zfs recv` of the same snapshots (the
   backend's own commands joined by an OS pipe, no byte through Python), each three times,
   each side as often first as second, after a `sync`, into an emptied pool; the fastest of
   each kept, every run's time reported.

Processes start through `standby._process`; the S3 client is made here, the composition root of
the benchmark, with the configured retry settings. The work folder (volumes, tar, pool image)
goes on every exit: an error, Ctrl-C, and SIGTERM or SIGHUP too (turned into `SystemExit` while
the run lasts, so the clean-up runs; only SIGKILL can leave it behind).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from standby import _process
from standby import settings as settings_mod
from standby.bench.snapshot import _Pool
from standby.errors import ServiceError
from standby.snapshot import sets
from standby.snapshot._base import StreamTarget
from standby.snapshot.zfs import ZfsBackend
from standby.store.messages import MessageFactory
from standby.transfer import factory, ship, tarstream

VOLS = ("db", "blob", "index", "redolog")
MB = 1_000_000
PAGE = 16384


class TimedClient:
    """An S3 client that adds up the time spent inside its calls (waiting on the server)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        return timed


def _moto(workdir: Path, say: Callable[[str], None]) -> tuple[int, str]:
    exe = Path(sys.executable).with_name("moto_server")
    prog = str(exe) if exe.exists() else _process.which("moto_server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    pid = _process.daemon(_process.Command.of(prog, "-p", str(port)),
                          log_path=workdir / "moto.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                say(f"moto_server on port {port}")
                return pid, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    _process.terminate(pid)
    raise ServiceError("moto_server did not start within 30 s")


def _pages(rng: random.Random, words: list[str], n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        fill = rng.uniform(0.5, 0.9)
        page = bytearray(rng.randbytes(38))  # the page header
        while len(page) < PAGE * fill:
            page += rng.randbytes(12) + " ".join(rng.choices(words, k=rng.randrange(3, 30))
                                                  ).encode()
        out += page[:PAGE].ljust(PAGE, b"\0")
    return bytes(out)


def make_volumes(root: Path, size_mb: int, seed: int = 1) -> int:
    """Write about `size_mb` MiB of realistic volume data under `root/<volume>`; the bytes."""
    rng = random.Random(seed)
    mf = MessageFactory(rng)
    target = size_mb << 20
    pool = [mf.message(sender=f"user{i % 97}@example.com",
                       recipients=[f"user{(i * 7) % 97}@example.com"],
                       date_ms=1_700_000_000_000 + i * 60_000) for i in range(1500)]
    words = mf.words(4000).split()
    written = 0
    blob_share, db_share = 0.6, 0.3
    item = 0
    while written < target * blob_share:
        msg = pool[rng.randrange(len(pool))]
        mbox = rng.randrange(1, 60)
        item += 1
        p = root / "blob" / "0" / str(mbox) / "msg" / str(item >> 12 & 255) / f"{item}-1.msg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(msg.replace(b"Message-ID: <", f"Message-ID: <{item}.".encode(), 1))
        written += len(msg)
    for vol, share, names in (("db", db_share, ("ibdata1", "mboxgroup{}/mail_item.ibd")),
                              ("index", 1 - blob_share - db_share, ("{}/index.sqlite",))):
        budget = int(target * share)
        n = 0
        while budget > 0:
            name = names[n % len(names)].format(n)
            chunk = min(budget, 8 << 20)
            p = root / vol / "data" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "ab") as f:
                f.write(_pages(rng, words, max(1, chunk // PAGE)))
            budget -= chunk
            written += chunk
            n += 1
    (root / "redolog" / "archive").mkdir(parents=True, exist_ok=True)
    (root / "redolog" / "redo.bin").write_bytes(rng.randbytes(1 << 20))
    return written


def _config(base: Path, url: str, endpoint: str, key: str) -> Path:
    lines = [f'server_id = "bench-{secrets.token_hex(4)}"', f'state_dir = "{base / "state"}"']
    for v in VOLS:
        lines += [f"[volumes.{v}]", f'path = "{base / v}"', 'backend = "dir"']
    lines += ["[snapshot]", f'manifest_key = "{key}"', "stagger_s = 0.0",
              "[target]", f'url = "{url}"', f'endpoint_url = "{endpoint}"',
              'region = "us-east-1"']
    (base / "state").mkdir(exist_ok=True)
    cfg = base / "standby.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@contextmanager
def _signals_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `SystemExit` while in the block (so `finally` clauses run and
    the work folder goes), the handlers before it restored after. Signals reach only the main
    thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    before = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def run(*, size_mb: int = 1024, zfs_size_mb: int = 1024, workdir: Path | None = None,
        keep: bool = False, say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    with _signals_exit():
        return _run(size_mb, zfs_size_mb, workdir, keep, say)


def _run(size_mb: int, zfs_size_mb: int, workdir: Path | None, keep: bool,
         say: Callable[[str], None]) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="standby-bench-ship-", dir=workdir))
    out: dict[str, Any] = {"size_mb": size_mb}
    pid = None
    try:
        pid, endpoint = _moto(base, say)
        s = settings_mod.load(_config(base, "s3://bench/site", endpoint, secrets.token_hex(16)))
        client = factory.s3_client(s, credentials=("bench", "bench"))
        client.create_bucket(Bucket="bench")
        say(f"writing about {size_mb} MiB of mail, database and index files")
        make_volumes(base, size_mb)
        say("taking the set")
        m = sets.take("set", s).manifest
        snap_bytes = sum(int(r.identity.get("bytes", 0)) for r in m.snapshots)
        out["snapshot_bytes"] = snap_bytes
        out.update(_ship_vs_upload(s, client, m, snap_bytes, base, say))
        out.update(_small_increment(s, client, base, say))
        if zfs_size_mb > 0:
            out.update(_zfs_vs_bare(base / "zfs", zfs_size_mb, say))
    finally:
        if pid is not None:
            _process.terminate(pid, timeout=10)
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return out


def _ship_vs_upload(s: settings_mod.Settings, client: Any, m: Any, snap_bytes: int,
                    base: Path, say: Callable[[str], None]) -> dict[str, Any]:
    say("standby ship of the set")
    timed = TimedClient(client)
    t0 = time.perf_counter()
    res = ship.ship(s, factory.open_target(None, s, s3=lambda: timed))
    ship_s = time.perf_counter() - t0
    assert isinstance(res, ship.ShipResult)
    say("an uncompressed tar of the same snapshot, for upload_file")
    tar = base / "snapshot.tar"
    with open(tar, "wb") as f:
        for rec in m.snapshots:
            root = Path(rec.ref)
            for chunk in tarstream.tar_chunks(root, tarstream.scan(root).entries):
                f.write(chunk)
    say("boto3 upload_file of the tar")
    t0 = time.perf_counter()
    client.upload_file(str(tar), "bench", "plain/snapshot.tar")
    upload_s = time.perf_counter() - t0
    tar.unlink()
    ship_rate = snap_bytes / ship_s / MB
    upload_rate = snap_bytes / upload_s / MB
    return {
        "ship_seconds": round(ship_s, 2), "ship_mb_per_s": round(ship_rate, 1),
        "ship_stored_bytes": res.stored_bytes,
        "compression_ratio": round(snap_bytes / max(1, res.stored_bytes), 2),
        "ship_s3_calls": timed.calls, "ship_s3_seconds": round(timed.seconds, 2),
        "upload_file_seconds": round(upload_s, 2), "upload_file_mb_per_s": round(upload_rate, 1),
        "ship_vs_upload_file_ratio": round(ship_rate / upload_rate, 2),
        "ratio_target_met": ship_rate / upload_rate >= 0.8,
    }


def _small_increment(s: settings_mod.Settings, client: Any, base: Path,
                     say: Callable[[str], None]) -> dict[str, Any]:
    say("a small redolog increment, in the library")
    log = base / "redolog" / "redo.bin"
    walls, tools = [], []
    for i in range(3):
        with open(log, "ab") as f:
            f.write(hashlib.sha256(str(i).encode()).digest() * 2048)  # 64 KiB of new records
        sets.take("redolog", s)
        timed = TimedClient(client)
        t0 = time.perf_counter()
        ship.ship(s, factory.open_target(None, s, s3=lambda: timed))
        wall = time.perf_counter() - t0
        walls.append(wall)
        tools.append(wall - timed.seconds)
    say("a small redolog increment, as cron runs `standby ship`")
    with open(log, "ab") as f:
        f.write(b"x" * 65536)
    sets.take("redolog", s)
    exe = Path(sys.executable).with_name("standby")
    t0 = time.perf_counter()
    _process.run(_process.Command(
        (str(exe), "--config", str(s.source), "--log-level", "warning", "ship"),
        env={"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}))
    cli = time.perf_counter() - t0
    return {"increment_wall_s": round(min(walls), 3),
            "increment_tool_overhead_s": round(min(tools), 3),
            "increment_s3_seconds": round(min(walls) - min(tools), 3),
            "increment_cli_wall_s": round(cli, 3),
            "increment_target_met": min(tools) < 1.0}


def _zfs_vs_bare(base: Path, size_mb: int, say: Callable[[str], None]) -> dict[str, Any]:
    base.mkdir()
    # The volumes and one received copy at a time, with room to spare (the file is sparse).
    with _Pool(base, say, size=f"{size_mb * 5 // 2 + 1024}M") as pool:
        lines = [f'server_id = "bench-{secrets.token_hex(4)}"',
                 f'state_dir = "{base / "state"}"']
        for v in VOLS:
            lines += [f"[volumes.{v}]", f'path = "{base / v}"', 'backend = "zfs"',
                      f'dataset = "{pool.name}/sb/{v}"']
        lines += ["[snapshot]", f'manifest_key = "{secrets.token_hex(16)}"', "stagger_s = 0.0",
                  "use_pyzfs = false"]
        (base / "state").mkdir()
        (base / "standby.toml").write_text("\n".join(lines) + "\n")
        s = settings_mod.load(base / "standby.toml")
        say(f"zfs: writing about {size_mb} MiB into the pool's volumes")
        data = make_volumes(base, size_mb, seed=2)
        m = sets.take("set", s).manifest
        be = ZfsBackend(use_lzc=False)

        def bare(n: int) -> str:
            for rec in m.snapshots:
                t = StreamTarget(f"{pool.name}/bare{n}/{rec.volume}")
                be.prepare_receive(t)
                _process.pipe(be.send(ship.as_snapshot(rec)), be.receive(t))
            return f"{pool.name}/bare{n}"

        def shipped(n: int) -> str:
            res = ship.ship(s, factory.open_target(f"zfs://{pool.name}/target{n}", s))
            assert isinstance(res, ship.ShipResult) and len(res.shipped) == len(VOLS)
            return f"{pool.name}/target{n}"

        runs: dict[str, list[float]] = {"bare": [], "ship": []}
        # Each side as often first as second (a receive right after another pays for the
        # writes zfs-fuse is still flushing), every run after a sync into an emptied pool.
        for n, kind in enumerate(("bare", "ship", "ship", "bare", "bare", "ship")):
            say(f"zfs: {'bare zfs send | zfs recv' if kind == 'bare' else 'standby ship'}, "
                f"run {n // 2 + 1}")
            _process.run(_process.Command.of("sync"))
            t0 = time.perf_counter()
            received = (bare if kind == "bare" else shipped)(n)
            runs[kind].append(time.perf_counter() - t0)
            _destroy(received)
        bare_s, ship_s = min(runs["bare"]), min(runs["ship"])
    return {"zfs_data_bytes": data, "zfs_ship_seconds": round(ship_s, 2),
            "zfs_ship_mb_per_s": round(data / ship_s / MB, 1),
            "zfs_bare_seconds": round(bare_s, 2),
            "zfs_bare_mb_per_s": round(data / bare_s / MB, 1),
            "zfs_ship_vs_bare_ratio": round(bare_s / ship_s, 2),
            "zfs_ratio_target_met": bare_s / ship_s >= 0.9,
            "zfs_runs_seconds": {k: [round(x, 2) for x in v] for k, v in runs.items()}}


def _destroy(dataset: str) -> None:
    """`zfs destroy -r`, again while zfs-fuse says the dataset is busy (for a moment after a
    receive), so that the next run meets an emptied pool."""
    deadline = time.monotonic() + 30
    cmd = _process.Command.of("zfs", "destroy", "-r", dataset)
    while _process.run(cmd, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise ServiceError(f"zfs destroy -r {dataset} kept failing for 30 s")
        time.sleep(0.25)
