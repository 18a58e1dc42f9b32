"""Manifests: what a set or redolog snapshot holds, signed with HMAC-SHA256.

A manifest names the server, the set, and per volume the backend, the snapshot's name and
address, the exact times around its `create` call (epoch ms, GMT), its identity (ZFS guid and
createtxg, btrfs uuid, EBS snapshot id, ...), its incremental parent, and the redo position at
that moment (log sequence, offset, the transactions then active and the oldest one's start).
From the first volume's position the manifest derives where replay must start (`replay`).

The file is the canonical JSON serialization (sorted keys, no blanks, ASCII) of the manifest
with an `hmac` field: HMAC-SHA256, under the manifest key, of the canonical bytes of everything
else. Verification refuses, with `IntegrityError` naming the file, anything that is not exactly
that: unparsable bytes, a non-canonical form (so *any* changed byte is caught, even blanks), a
wrong signature, or one made with another key (the `key_id`, a short hash of the key, tells
those two apart in the message).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.errors import ConfigError, FormatError, IntegrityError

FORMAT = "standby-manifest"
VERSION = 1
KINDS = ("set", "redolog")
STATUSES = ("complete", "incomplete")


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of a manifest key."""
    return hashlib.sha256(b"standby-manifest-key:" + key).hexdigest()[:12]


def require_key(key: str | None) -> bytes:
    if not key:
        raise ConfigError("manifests are signed, and no manifest key is configured",
                          hint="set snapshot.manifest_key in the config file, or the "
                               "STANDBY_MANIFEST_KEY environment variable (one of the two)")
    return key.encode("utf-8")


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class RedoPoint:
    """The redo log position at one moment, as the store's writer saw it."""

    seq: int
    offset: int
    active_txns: tuple[tuple[int, int], ...] = ()
    oldest_active_tstamp: int | None = None
    source: str = "store"  # store | disk
    at_ms: int = 0  # when it was read

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "offset": self.offset,
                "active_txns": [list(t) for t in self.active_txns],
                "oldest_active_tstamp": self.oldest_active_tstamp, "source": self.source,
                "at_ms": self.at_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RedoPoint:
        return cls(seq=int(d["seq"]), offset=int(d["offset"]),
                   active_txns=tuple((int(a), int(b)) for a, b in d.get("active_txns", [])),
                   oldest_active_tstamp=_opt_int(d.get("oldest_active_tstamp")),
                   source=str(d.get("source", "store")), at_ms=int(d.get("at_ms", 0)))


@dataclass(frozen=True)
class SnapshotRecord:
    """One volume's snapshot in a manifest."""

    volume: str
    backend: str
    name: str
    ref: str
    dataset: str | None
    path: str
    identity: Mapping[str, Any]
    started_ms: int  # just before the backend call
    taken_at_ms: int  # just after it returned
    redo: RedoPoint
    parent: str | None = None  # "<manifest id>/<volume>" of the previous one in its chain
    group: int = 0  # snapshots of one group were taken by one call, in one instant

    @property
    def key(self) -> str:
        return self.volume

    def as_dict(self) -> dict[str, Any]:
        return {"volume": self.volume, "backend": self.backend, "name": self.name,
                "ref": self.ref, "dataset": self.dataset, "path": self.path,
                "identity": dict(self.identity), "started_ms": self.started_ms,
                "taken_at_ms": self.taken_at_ms, "redo": self.redo.as_dict(),
                "parent": self.parent, "group": self.group}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SnapshotRecord:
        return cls(volume=str(d["volume"]), backend=str(d["backend"]), name=str(d["name"]),
                   ref=str(d["ref"]), dataset=_opt_str(d.get("dataset")), path=str(d["path"]),
                   identity=dict(d.get("identity") or {}), started_ms=int(d["started_ms"]),
                   taken_at_ms=int(d["taken_at_ms"]), redo=RedoPoint.from_dict(d["redo"]),
                   parent=_opt_str(d.get("parent")), group=int(d.get("group", 0)))


@dataclass(frozen=True)
class ReplayStart:
    """Where replay must start for this set: the exact position (plus the transactions active
    there, whose change records lie before it) and, for `--fromTime`, a time."""

    seq: int
    offset: int
    active_txns: tuple[tuple[int, int], ...]
    from_time_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "offset": self.offset,
                "active_txns": [list(t) for t in self.active_txns],
                "from_time_ms": self.from_time_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReplayStart:
        return cls(seq=int(d["seq"]), offset=int(d["offset"]),
                   active_txns=tuple((int(a), int(b)) for a, b in d.get("active_txns", [])),
                   from_time_ms=int(d["from_time_ms"]))


@dataclass(frozen=True)
class Manifest:
    server_id: str
    id: str
    kind: str  # set | redolog
    status: str  # complete | incomplete
    atomic: bool
    stagger_s: float
    quiesced_db: bool
    started_ms: int
    finished_ms: int
    skew_ms: int  # last snapshot's taken-at minus the first's (0 within one atomic group)
    window_ms: int  # last taken-at minus the first call's start: the honest uncertainty
    replay: ReplayStart
    snapshots: tuple[SnapshotRecord, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    key_id: str = ""
    format: str = FORMAT
    version: int = VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def snapshot(self, volume: str) -> SnapshotRecord | None:
        for s in self.snapshots:
            if s.volume == volume:
                return s
        return None

    @property
    def taken_at_ms(self) -> int:
        """When the manifest's first snapshot was taken (for listing and retention)."""
        return min((s.taken_at_ms for s in self.snapshots), default=self.started_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "version": self.version, "server_id": self.server_id,
                "id": self.id, "kind": self.kind, "status": self.status, "atomic": self.atomic,
                "stagger_s": self.stagger_s, "quiesced_db": self.quiesced_db,
                "started_ms": self.started_ms, "finished_ms": self.finished_ms,
                "skew_ms": self.skew_ms, "window_ms": self.window_ms,
                "replay": self.replay.as_dict(),
                "snapshots": [s.as_dict() for s in self.snapshots],
                "errors": list(self.errors), "notes": list(self.notes), "key_id": self.key_id,
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "manifest") -> Manifest:
        try:
            if d.get("format") != FORMAT:
                raise FormatError(f"{where}: not a standby manifest (format "
                                  f"{d.get('format')!r})")
            if int(d.get("version", 0)) > VERSION:
                raise FormatError(f"{where}: manifest version {d.get('version')} is newer than "
                                  f"{VERSION}", hint="upgrade standby on this host")
            kind, status = d["kind"], d["status"]
            if kind not in KINDS or status not in STATUSES:
                raise FormatError(f"{where}: bad kind {kind!r} or status {status!r}")
            return cls(server_id=str(d["server_id"]), id=str(d["id"]), kind=kind,
                       status=status, atomic=bool(d["atomic"]),
                       stagger_s=float(d["stagger_s"]), quiesced_db=bool(d["quiesced_db"]),
                       started_ms=int(d["started_ms"]), finished_ms=int(d["finished_ms"]),
                       skew_ms=int(d["skew_ms"]), window_ms=int(d["window_ms"]),
                       replay=ReplayStart.from_dict(d["replay"]),
                       snapshots=tuple(SnapshotRecord.from_dict(s) for s in d["snapshots"]),
                       errors=tuple(str(e) for e in d.get("errors", [])),
                       notes=tuple(str(n) for n in d.get("notes", [])),
                       key_id=str(d.get("key_id", "")), version=int(d["version"]),
                       extra=dict(d.get("extra") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{where}: manifest field missing or of the wrong type: {e}") from e


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


# --------------------------------------------------------------------------------------------
# Signing


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def sign(m: Manifest, key: bytes) -> bytes:
    """The file bytes of `m`, signed with `key`."""
    body = {**m.as_dict(), "key_id": key_id(key)}
    return canonical({**body, "hmac": _mac(key, body)}) + b"\n"


def verify_bytes(raw: bytes, key: bytes, *, where: str) -> Manifest:
    """Check signature and form; return the manifest or raise IntegrityError naming `where`."""
    what = f"manifest {where}"
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise IntegrityError(f"{what} is not valid JSON ({e}); it was changed or damaged "
                             "after it was signed", hint="restore it, or remove it") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("hmac"), str):
        raise IntegrityError(f"{what} carries no signature", hint="restore it, or remove it")
    body = {k: v for k, v in obj.items() if k != "hmac"}
    try:
        mac = _mac(key, body)
    except ValueError:  # a number changed into one JSON cannot carry (17e0000004000 is inf)
        mac = ""
    good = bool(mac) and hmac.compare_digest(mac, obj["hmac"])
    if not good:
        theirs = body.get("key_id")
        if isinstance(theirs, str) and theirs != key_id(key):
            raise IntegrityError(
                f"{what} was signed with another key (key id {theirs}; this configuration's "
                f"key is {key_id(key)})",
                hint="use the manifest key of the server that wrote it")
        raise IntegrityError(f"{what} does not match its signature: it was changed after it "
                             "was signed", hint="restore it from the standby's copy, or "
                                                "remove it")
    try:
        canon = canonical(obj) + b"\n"
    except ValueError:
        canon = b""
    if raw != canon:
        raise IntegrityError(f"{what} is not byte-for-byte as signed (its form was changed)",
                             hint="restore it, or remove it")
    return Manifest.from_dict(obj, where=str(where))


def read(path: Path, key: bytes) -> Manifest:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        from standby.errors import NotFound

        raise NotFound(f"manifest {path} does not exist") from e
    return verify_bytes(raw, key, where=str(path))


def skew(snapshots: Sequence[SnapshotRecord]) -> tuple[int, int]:
    """(skew_ms, window_ms) of a set: first to last taken-at, and first start to last taken-at."""
    if not snapshots:
        return 0, 0
    taken = [s.taken_at_ms for s in snapshots]
    return max(taken) - min(taken), max(taken) - min(s.started_ms for s in snapshots)
