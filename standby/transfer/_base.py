"""The interfaces of shipping, and target URLs.

A **target** is where snapshots go, named by a URL:

    s3://bucket[/prefix]                 objects in a bucket (any S3-compatible endpoint)
    file:///path                         objects in a folder (an NFS share, a USB disk)
    zfs://[user@host[:port]/]pool/ds     received ZFS snapshots, here or over ssh
    btrfs://[user@host[:port]]/path      received btrfs snapshots, here or over ssh

`parse_url` reads one (pure; Hypothesis round trip with `TargetUrl.__str__`); `within` checks it
against `[target] allowed` prefixes. Every target implements `Target`: the object targets
(s3, file) through `objects.ObjectTarget` over an `ObjectStore`, the receiving ones (zfs, btrfs)
through `receive.ReceiveTarget`. The composition root (`factory.py`) builds them.

An `ObjectStore` keeps whole objects under keys relative to the server's prefix. Big objects are
written through a `Sink` that may resume an earlier, interrupted write of the same key: its
store-specific state (an S3 upload id and the parts done) is handed to `save` as it changes, and
handed back on the next attempt. A sink that finds the earlier attempt cannot be continued
raises `ResumeImpossible`, and the caller starts the object again from its first byte.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from standby.catalog.manifest import SnapshotRecord
from standby.catalog.target import KeyStore, Shipment, TargetCatalog
from standby.errors import StandbyError, UsageError
from standby.snapshot._base import Snapshot, SnapshotBackend, StreamingBackend, Volume

SCHEMES = ("s3", "file", "zfs", "btrfs")


@dataclass(frozen=True)
class TargetUrl:
    scheme: str
    path: str  # s3: the key prefix ("" or "a/b"); file, btrfs: absolute path; zfs: pool/dataset
    bucket: str = ""
    user: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def remote(self) -> bool:
        return self.host is not None

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}" + (f"/{self.path}" if self.path else "")
        who = ""
        if self.host is not None:
            who = (f"{self.user}@" if self.user else "@") + self.host
            who += f":{self.port}" if self.port is not None else ""
        if self.scheme == "zfs":
            return f"zfs://{who}/{self.path}" if who else f"zfs://{self.path}"
        return f"{self.scheme}://{who}{self.path}"


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*\Z")
_HOST = re.compile(r"(?:([A-Za-z0-9_.][A-Za-z0-9_.-]*)?@)([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])"
                   r"(?::(\d{1,5}))?\Z")


def _clean_path(path: str, url: str) -> str:
    """`path` if it has no empty, `.` or `..` component (nothing that could step outside)."""
    parts = path.strip("/").split("/")
    if path.strip("/") and any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"{url}: the path {path!r} has an empty, '.' or '..' component",
                         hint="write the path plainly, without '..' or '//'")
    return path


def parse_url(url: str) -> TargetUrl:
    """A target URL -> its parts; `UsageError` naming what is wrong (exit 2)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UsageError(f"{url!r} is not a target URL",
                         hint="e.g. s3://bucket/prefix, file:///srv/standby, zfs://pool/standby, "
                              "zfs://user@host/pool/standby, btrfs:///mnt/standby")
    if scheme not in SCHEMES:
        raise UsageError(f"unknown target scheme {scheme!r} in {url!r}",
                         hint="use one of " + ", ".join(f"{s}://" for s in SCHEMES))
    if any(c in rest for c in "?#\\") or any(c.isspace() for c in rest):
        raise UsageError(f"{url}: a target URL has no query, fragment, backslash or blank")
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise UsageError(f"{url}: {bucket!r} is not an S3 bucket name",
                             hint="3 to 63 lower-case letters, digits, dots and hyphens")
        return TargetUrl("s3", _clean_path(prefix, url).strip("/"), bucket=bucket)
    user = host = None
    port: int | None = None
    first, slash, tail = rest.partition("/")
    if "@" in first:
        m = _HOST.match(first)
        if not m:
            raise UsageError(f"{url}: {first!r} is not user@host[:port]")
        user, host = m.group(1), m.group(2)
        port = int(m.group(3)) if m.group(3) else None
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"{url}: port {port} is out of range", hint="use 1-65535")
        rest = "/" + tail if slash else ""
    if scheme == "file" and host is not None:
        raise UsageError(f"{url}: a file target is a folder on this host",
                         hint="mount the share here, or use btrfs:// or zfs:// over ssh")
    if scheme == "zfs":
        ds = rest.strip("/") if host is not None else rest
        if not _DATASET.match(ds) or ".." in ds.split("/"):
            raise UsageError(f"{url}: {ds!r} is not a ZFS dataset (pool/dataset)",
                             hint="e.g. zfs://tank/standby or zfs://root@host/tank/standby")
        return TargetUrl("zfs", ds, user=user, host=host, port=port)
    if host is None and first:
        raise UsageError(f"{url}: a {scheme} target needs an absolute path",
                         hint=f"{scheme}:///path here, or {scheme}://user@host/path over ssh")
    path = rest if rest.startswith("/") else "/" + rest
    if path == "/":
        raise UsageError(f"{url}: the target cannot be the root folder")
    return TargetUrl(scheme, posixpath.normpath(_clean_path(path, url)), user=user, host=host,
                     port=port)


def within(url: TargetUrl, allowed: Sequence[str]) -> bool:
    """True when `allowed` is empty or `url` is one of, or under one of, the allowed URLs
    (component by component: `file:///srv/standby` allows `file:///srv/standby/a`, not
    `file:///srv/standby2`)."""
    if not allowed:
        return True
    mine = str(url).rstrip("/") + "/"
    for a in allowed:
        base = str(parse_url(a)).rstrip("/") + "/"
        if mine.startswith(base):
            return True
    return False


def quoted(url: TargetUrl) -> str:
    """A file-name-safe form of the URL (local state per target)."""
    return quote(str(url), safe="")


# --------------------------------------------------------------------------------------------
# Object stores


class ResumeImpossible(StandbyError):
    """An interrupted upload cannot be continued; the object must start again."""

    exit_code = 7


@dataclass
class WriteStats:
    parts_sent: int = 0
    parts_skipped: int = 0  # parts of an earlier attempt that did not travel again
    bytes_sent: int = 0
    resumed: bool = False
    restarted: str = ""  # why an earlier attempt could not be continued


class Sink(Protocol):
    """One object being written. Nothing is visible under its key before `commit` returns."""

    stats: WriteStats

    def write(self, data: bytes) -> None:
        ...

    def commit(self) -> None:
        """Make the object whole and visible."""
        ...

    def abort(self) -> None:
        """Give the object up; its key stays as it was. Safe to call more than once."""
        ...


class ObjectStore(KeyStore, Protocol):
    """Whole objects under keys relative to the server's prefix (s3, file)."""

    def read(self, key: str) -> Iterator[bytes]:
        """The object's stored bytes in chunks; `NotFound` if it is not there."""
        ...

    def open_write(self, key: str, *, resume: Mapping[str, Any] | None = None,
                   save: Callable[[dict[str, Any]], None] = lambda st: None) -> Sink:
        """A sink for `key`. `resume` is what an earlier attempt handed to `save`."""
        ...

    def check(self, *, write: bool) -> None:
        """Raise a clear `StandbyError` unless the store is reachable with these credentials
        (and writable, with `write`); no other side effect."""
        ...


@dataclass(frozen=True)
class Progress:
    """What a transfer reports as it goes: bytes so far of `total` (None: not known)."""

    what: str
    done: int
    total: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Source:
    """One volume's snapshot on the primary, to send: the record in its manifest, the backend
    that took it, and the snapshot value that backend knows it by."""

    manifest_id: str
    kind: str  # set | redolog
    record: SnapshotRecord
    backend: SnapshotBackend
    snapshot: Snapshot

    @property
    def volume(self) -> str:
        return self.record.volume


@dataclass
class SendJob:
    """What `Target.send` needs: the source, the parent at the target (None: a full stream) and
    that parent's local snapshot (for zfs/btrfs `send -i/-p`), and the effects of the run."""

    source: Source
    parent: Shipment | None
    parent_snapshot: Snapshot | None
    effects: TransferEffects


@dataclass
class TransferEffects:
    """The side effects a transfer uses, passed in: time, pacing, progress, resume state."""

    now_ms: Callable[[], int]
    throttle: Callable[[int], None] = lambda n: None  # called with each chunk's size
    progress: Callable[[Progress], None] = lambda p: None
    totals: bool = False  # someone shows the progress: worth asking for a stream's size
    resume_get: Callable[[str], Mapping[str, Any] | None] = lambda key: None
    resume_put: Callable[[str, dict[str, Any]], None] = lambda key, st: None
    stats: dict[str, WriteStats] = field(default_factory=dict)  # object key -> how it went


@dataclass(frozen=True)
class Landing:
    """Where a pulled volume goes at the standby: its settings' volume and backend, and for
    zfs/btrfs volumes that backend (receiving streams, and checking the volume after)."""

    volume: Volume
    backend: str  # dir | zfs | btrfs (of the standby's volume)
    streaming: StreamingBackend | None = None
    check: Callable[[Volume], None] = lambda v: None

    def backend_check(self, v: Volume) -> None:
        self.check(v)


class Target(Protocol):
    """A place snapshots are shipped to and pulled from (s3, file, zfs, btrfs)."""

    url: TargetUrl

    @property
    def catalog(self) -> TargetCatalog:
        """The target's catalog: manifests, records, the listing."""
        ...

    def check(self, *, write: bool) -> None:
        """Raise a clear `StandbyError` unless the target can be used (reachable, credentials,
        bucket or dataset there, writable with `write`)."""
        ...

    def refuses(self, backend: str) -> str | None:
        """Why this target cannot take snapshots of `backend`, or None when it can."""
        ...

    def needs_local_parent(self, backend: str) -> bool:
        """True when an incremental of `backend` needs the parent snapshot on the primary
        (zfs and btrfs streams), False when the target's record of it is enough (`dir`)."""
        ...

    def estimate(self, source: Source,
                 parent: tuple[Shipment | None, Snapshot | None] | None) -> int | None:
        """About how many plain bytes sending `source` takes, full (`parent` None) or from
        the parent (its record here, None when it is only planned, and its local snapshot);
        None when that cannot be told without sending."""
        ...

    def send(self, job: SendJob) -> Shipment:
        """Send one volume's snapshot (full, or incremental from `job.parent`, which must still
        be whole at the target: `NotFound` offering a full send if it is not) and return its
        record, which the caller writes once every object is in place."""
        ...

    def check_snapshot(self, r: Shipment, *, deep: bool,
                       progress: Callable[[Progress], None] = lambda p: None) -> list[str]:
        """What is wrong with `r`'s data at the target (objects missing, of the wrong size, or,
        with `deep`, whose bytes do not hash to the record's sha256); empty when nothing is."""
        ...

    def stage(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
              fx: TransferEffects) -> None:
        """Pull, step 1: bring the chain (full first) to the standby without touching its
        volume: extract `dir` streams into `staging`; check every stream volume's objects."""
        ...

    def land(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
             fx: TransferEffects) -> None:
        """Pull, step 2: put the chain onto the standby's volume (swap `staging` in, or
        receive the streams into the volume's dataset)."""
        ...

    def discard(self, r: Shipment) -> None:
        """Remove `r`'s data from the target (retention; its record is removed after)."""
        ...
