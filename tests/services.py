"""Real services for tests, started and cleaned up by their own ids.

- `require(name, ok, why)`: with STANDBY_REQUIRE_SERVICES=1 (CI) a missing service fails the
  test; otherwise it is skipped with the reason.
- `ZfsFuse`: the zfs-fuse daemon (started if not running, stopped at the end only if we started
  it) and file-backed pools named by the test.
- `BtrfsLoop`: a btrfs file system on a loop device, mounted under a temporary folder.
- `MotoServer`: `moto_server` on a free port (real HTTP S3/EC2 for boto3).
- `make_store`: `standby store init` + tuned config in a folder, optionally on given volume paths.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REQUIRED = os.environ.get("STANDBY_REQUIRE_SERVICES") == "1"


def require(name: str, ok: bool, why: str) -> None:
    if ok:
        return
    if REQUIRED:
        pytest.fail(f"{name} is required (STANDBY_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def have(program: str) -> bool:
    return shutil.which(program) is not None or any(
        os.access(os.path.join(d, program), os.X_OK) for d in ("/usr/sbin", "/sbin"))


def _run(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, timeout=timeout)


class ZfsFuse:
    """The zfs-fuse daemon; one per machine, shared by tests."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started_pid: int | None = None

    def available(self) -> tuple[bool, str]:
        for p in ("zfs-fuse", "zpool", "zfs"):
            if not have(p):
                return False, f"{p} not installed (apt-get install zfs-fuse)"
        if not os.path.exists("/dev/fuse"):
            return False, "/dev/fuse is missing"
        return True, ""

    def ensure_daemon(self) -> None:
        if _run("zpool", "list", check=False).returncode == 0:
            return
        pidfile = self.workdir / "zfs-fuse.pid"
        _run("zfs-fuse", "--pidfile", str(pidfile))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _run("zpool", "list", check=False).returncode == 0:
                try:
                    self.started_pid = int(pidfile.read_text().strip())
                except (FileNotFoundError, ValueError):
                    self.started_pid = None
                return
            time.sleep(0.2)
        raise RuntimeError("zfs-fuse did not come up")

    def create_pool(self, name: str, size: str = "1G") -> tuple[str, Path]:
        img = self.workdir / f"{name}.img"
        _run("truncate", "-s", size, str(img))
        _run("zpool", "create", "-f", "-m", str(self.workdir / name), name, str(img))
        return name, img

    def destroy_pool(self, name: str, img: Path) -> None:
        # zfs-fuse answers "pool is busy" for a moment after use: retry before giving up.
        for _ in range(40):
            if _run("zpool", "destroy", "-f", name, check=False).returncode == 0:
                break
            if _run("zpool", "list", name, check=False).returncode != 0:
                break
            time.sleep(0.25)
        img.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the daemon if this session started it and no other session's pool is online."""
        listed = _run("zpool", "list", "-H", "-o", "health", check=False).stdout.split()
        if self.started_pid and b"ONLINE" not in listed:
            try:
                os.kill(self.started_pid, 15)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(self.started_pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


class BtrfsLoop:
    def __init__(self, workdir: Path, size: str = "512M") -> None:
        self.workdir = workdir
        self.img = workdir / f"btrfs-{uuid.uuid4().hex[:8]}.img"
        self.mnt = workdir / f"mnt-{uuid.uuid4().hex[:8]}"
        self.size = size
        self.mounted = False

    @staticmethod
    def available() -> tuple[bool, str]:
        for p in ("mkfs.btrfs", "btrfs", "mount", "losetup"):
            if not have(p):
                return False, f"{p} not installed (apt-get install btrfs-progs)"
        if os.geteuid() != 0:
            return False, "mounting a loop device needs root"
        return True, ""

    def __enter__(self) -> Path:
        _run("truncate", "-s", self.size, str(self.img))
        _run("mkfs.btrfs", "-q", str(self.img))
        self.mnt.mkdir()
        _run("mount", "-o", "loop", str(self.img), str(self.mnt))
        self.mounted = True
        return self.mnt

    def __exit__(self, *exc: object) -> None:
        if self.mounted:
            for _ in range(20):
                if _run("umount", str(self.mnt), check=False).returncode == 0:
                    break
                time.sleep(0.25)
        shutil.rmtree(self.mnt, ignore_errors=True)
        self.img.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> tuple[bool, str]:
        exe = Path(sys.executable).with_name("moto_server")
        if exe.exists() or shutil.which("moto_server"):
            return True, ""
        return False, "moto_server not installed (pip install 'moto[server]')"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe) if exe.exists() else "moto_server", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def write_config(root: Path, *, volumes: dict[str, Path] | None = None, groups: int = 4,
                 sections: dict[str, dict[str, object]] | None = None,
                 server_id: str | None = None) -> Path:
    """A store config for tests: small groups, a small buffer pool, quick rollover bounds.

    `sections` adds or overrides keys, e.g. {"redolog": {"rollover_size_kb": 64}}.
    """
    root.mkdir(parents=True, exist_ok=True)
    vols = volumes or {n: root / n for n in ("db", "blob", "index", "redolog")}
    for p in vols.values():
        p.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    conf: dict[str, dict[str, object]] = {
        "mariadb": {"buffer_pool": "64M", "log_file_size": "48M"},
        "store": {"mailbox_groups": groups},
        "redolog": {"rollover_min_age_s": 0},
    }
    for sec, kv in (sections or {}).items():
        conf.setdefault(sec, {}).update(kv)
    lines = [f'server_id = "{server_id or uuid.uuid4()}"', f'state_dir = "{root / "state"}"']
    for name, p in vols.items():
        lines += [f"[volumes.{name}]", f'path = "{p}"', 'backend = "dir"']
    for sec, kv in conf.items():
        lines.append(f"[{sec}]")
        for k, v in kv.items():
            lines.append(f"{k} = {_toml(v)}")
    cfg = root / "standby.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


class IamMotoServer(MotoServer):
    """`moto_server` that enforces IAM after its first `free_actions` requests.

    moto's INITIAL_NO_AUTH_ACTION_COUNT: the first requests (the bootstrap of an admin user and
    its key) pass unsigned; every later one must be signed by a known access key and allowed by
    that user's policies. What moto evaluates of a policy is its Action and Resource elements;
    conditions it does not understand (StringLike, Bool, ...) count as met.
    """

    def __init__(self, free_actions: int) -> None:
        super().__init__()
        self.free_actions = free_actions

    def __enter__(self) -> IamMotoServer:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe) if exe.exists() else "moto_server", "-p", str(self.port)]
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(self.free_actions)}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("moto_server (IAM enforcing) did not start")
