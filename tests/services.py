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
from typing import Any

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
    """`moto_server` on a free port; `env` adds to its environment (e.g.
    INITIAL_NO_AUTH_ACTION_COUNT, after which moto checks every request's credentials)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.env = env or {}
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
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **self.env})
        if not wait_port(self.port):
            self.__exit__()
            raise RuntimeError("moto_server did not start")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: its state (buckets, uploads) is gone with it."""
        kill_now(self)

    def objects(self, client: object = None) -> int:
        """How many objects moto holds, over all buckets: listed with `client` when given,
        else from moto's state dump (which needs no credentials even when moto checks them,
        but fails once it holds multipart uploads)."""
        if client is not None:
            c: Any = client
            return sum(len(c.list_objects_v2(Bucket=b["Name"]).get("Contents", []))
                       for b in c.list_buckets()["Buckets"])
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as r:
            return len(json.loads(r.read())["s3"]["FakeKey"])

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Sshd:
    """`sshd` on 127.0.0.1 and a free port, with a throwaway host key and a throwaway client
    key authorized for root (as a standby site's host is reached), run by the test in the
    foreground and stopped by its pid. `identity`, `known_hosts` and `port` are what the
    client needs; `ssh_options` the `-o` options for `target.ssh_options`."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.identity = workdir / "client_key"
        self.known_hosts = workdir / "known_hosts"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> tuple[bool, str]:
        for p in ("sshd", "ssh", "ssh-keygen"):
            if not have(p):
                return False, f"{p} not installed (apt-get install openssh-server openssh-client)"
        if os.geteuid() != 0:
            return False, "the test logs in as root over ssh"
        return True, ""

    @property
    def ssh_options(self) -> list[str]:
        return ["BatchMode=yes", "StrictHostKeyChecking=yes",
                f"UserKnownHostsFile={self.known_hosts}", "ConnectTimeout=10"]

    def __enter__(self) -> Sshd:
        self.dir.mkdir(parents=True, exist_ok=True)
        host_key = self.dir / "host_key"
        for key in (host_key, self.identity):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (self.dir / "authorized_keys").write_text(
            Path(f"{self.identity}.pub").read_text())
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {Path(f'{host_key}.pub').read_text()}")
        cfg = self.dir / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            f"PidFile {self.dir / 'sshd.pid'}", "LogLevel ERROR", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        with open(self.dir / "sshd.log", "wb") as log:
            self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        if not wait_port(self.port):
            self.__exit__()
            raise RuntimeError(f"sshd did not start: {(self.dir / 'sshd.log').read_text()}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def kill_now(service: MotoServer | CountingProxy) -> None:
    """SIGKILL a service started by a test, and reap it."""
    if service.proc:
        service.proc.kill()
        service.proc.wait(10)
        service.proc = None


def wait_port(port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class CountingProxy:
    """An HTTP proxy in its own process between a client and an S3 endpoint: it forwards every
    request and logs each one the server answered (method, path with query, status, body size)
    to a file, so a test can count what the server received — and kill the proxy (SIGKILL) to
    cut the client off mid-transfer, as a dead endpoint does, while the server keeps its state.
    Run by `python -m tests.services proxy PORT UPSTREAM LOG`."""

    def __init__(self, upstream: str, log: Path) -> None:
        self.upstream = upstream
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.services", "proxy", str(self.port), self.upstream,
             str(self.log)], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            self.kill()
            raise RuntimeError("the counting proxy did not start")
        return self

    def kill(self) -> None:
        kill_now(self)

    def requests(self) -> list[tuple[str, str, int, int]]:
        """(method, path?query, status, request body bytes), in the order answered."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            m, path, status, size = line.split(" ")
            out.append((m, path, int(status), int(size)))
        return out

    def parts(self) -> list[int]:
        """Part numbers of every UploadPart the server answered with 200, in order."""
        import re

        out = []
        for m, p, st, _n in self.requests():
            found = re.search(r"partNumber=(\d+)", p)
            if m == "PUT" and found and st == 200:
                out.append(int(found.group(1)))
        return out


def _proxy_main(port: int, upstream: str, log_path: str) -> None:
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    up = urlsplit(upstream)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "expect")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            head = self.command == "HEAD"
            for k, v in resp.getheaders():
                if k.lower() in ("transfer-encoding", "connection") or (
                        k.lower() == "content-length" and not head):
                    continue
                self.send_header(k, v)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            with lock, open(log_path, "a") as f:
                f.write(f"{self.command} {self.path} {resp.status} {n}\n")
                f.flush()
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


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
        super().__init__(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(free_actions)})
        self.free_actions = free_actions


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "proxy":
        _proxy_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: python -m tests.services proxy PORT UPSTREAM LOG")
