"""A transfer target's catalog (a `CatalogStore`): manifests, shipment records, and their layout.

Everything of one server at a target lives under one prefix (`<target prefix>/<server id>/`),
so one listing finds every set and redolog snapshot, every volume's chain and every object:

    catalog/sets/<set id>.json                     the set's manifest, as signed on the primary
    catalog/redolog/<redolog id>.json              a redolog snapshot's manifest
    snapshots/<volume>/<manifest id>/full.json     a shipment record: one volume's snapshot,
    snapshots/<volume>/<manifest id>/from-<parent manifest id>.json   ...full or incremental
    data/<volume>/<manifest id>/<object>           its stored objects (stream, file index)

The record's key names its parent, so the listing alone gives the chains. A record is written
only after its objects are complete, and a manifest only after the records of all its volumes:
a snapshot counts as shipped when its record is there, a set can be pulled when its manifest
is. Everything that cleans up unfinished uploads (a bucket's lifecycle rule for stale multipart
uploads) can name `data/`.

Catalog documents are signed JSON (`manifest.sign_document`) under the manifest key; `seal` and
`unseal` (the target's encryption, identity by default) wrap their stored bytes, so that without
encryption the `catalog/` folder of a `file://` target reads as a `LocalCatalog`.

Invariant: every key is built here from checked names (`safe_name`), so none escapes the
server's prefix; anything in a listing that does not parse is reported, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from standby.catalog import manifest as mf
from standby.catalog.manifest import Manifest
from standby.errors import FormatError, IntegrityError, NotFound, UsageError
from standby.timefmt import parse_gmt_stamp

RECORD_FORMAT = "standby-shipment"
RECORD_VERSION = 1
_DIRS = {"set": "sets", "redolog": "redolog"}
_KIND_OF_DIR = {v: k for k, v in _DIRS.items()}
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}\Z")


def safe_name(value: str, what: str) -> str:
    """`value` if it can be one component of a key (letters, digits, `._-`, not `.`/`..`, not
    starting with a dot or dash); `UsageError` otherwise."""
    if not _SAFE.match(value) or value in (".", ".."):
        raise UsageError(f"{what} {value!r} cannot name an object at a target",
                         hint="use letters, digits, '.', '_' and '-' only")
    return value


def taken_ms_of(manifest_id: str) -> int:
    """The GMT stamp a manifest id carries (`set-20260101.120000.000`), as epoch ms."""
    _, _, stamp = manifest_id.partition("-")
    return parse_gmt_stamp(stamp)


# --------------------------------------------------------------------------------------------
# Keys


def manifest_key(kind: str, manifest_id: str) -> str:
    return f"catalog/{_DIRS[kind]}/{safe_name(manifest_id, 'manifest id')}.json"


def record_key(volume: str, manifest_id: str, parent: str | None) -> str:
    tail = "full" if parent is None else f"from-{safe_name(parent, 'parent id')}"
    return (f"snapshots/{safe_name(volume, 'volume')}/"
            f"{safe_name(manifest_id, 'manifest id')}/{tail}.json")


def data_key(volume: str, manifest_id: str, name: str) -> str:
    return (f"data/{safe_name(volume, 'volume')}/{safe_name(manifest_id, 'manifest id')}/"
            f"{safe_name(name, 'object name')}")


@dataclass(frozen=True)
class Listing:
    """What one listing of a server's prefix says: manifests, records (with parents), objects."""

    manifests: dict[str, str] = field(default_factory=dict)  # id -> kind
    records: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (vol, id) -> parent
    objects: dict[str, int] = field(default_factory=dict)  # data key -> stored size
    strays: tuple[str, ...] = ()  # keys that fit no layout (reported by verify)

    def chain(self, volume: str, manifest_id: str) -> list[str]:
        """Manifest ids from the full stream to `manifest_id`, oldest first; `IntegrityError`
        naming the missing link when a parent is not there."""
        out = [manifest_id]
        seen = {manifest_id}
        parent = self.records[(volume, manifest_id)]
        while parent is not None:
            if (volume, parent) not in self.records:
                raise IntegrityError(
                    f"the {volume} snapshot of {out[-1]} is incremental from {parent}, which is "
                    "not at the target: the chain is broken",
                    hint="ship a full stream again (`standby ship --full`)")
            if parent in seen:
                raise IntegrityError(f"the {volume} chain loops at {parent}")
            seen.add(parent)
            out.append(parent)
            parent = self.records[(volume, parent)]
        out.reverse()
        return out

    def volume_ids(self, volume: str) -> list[str]:
        """Manifest ids with a record of `volume`, oldest first."""
        return sorted((mid for v, mid in self.records if v == volume), key=_age)


def _age(manifest_id: str) -> tuple[int, str]:
    try:
        return (taken_ms_of(manifest_id), manifest_id)
    except UsageError:
        return (0, manifest_id)


_MANIFEST_RX = re.compile(r"catalog/(sets|redolog)/([^/]+)\.json\Z")
_RECORD_RX = re.compile(r"snapshots/([^/]+)/([^/]+)/(full|from-([^/]+))\.json\Z")
_DATA_RX = re.compile(r"data/([^/]+)/([^/]+)/([^/]+)\Z")


def parse_listing(entries: Mapping[str, int]) -> Listing:
    """Keys under a server's prefix (relative to it) with their sizes -> `Listing`."""
    out = Listing()
    strays: list[str] = []
    for key, size in entries.items():
        if m := _MANIFEST_RX.match(key):
            out.manifests[m.group(2)] = _KIND_OF_DIR[m.group(1)]
        elif m := _RECORD_RX.match(key):
            vol, mid, parent = m.group(1), m.group(2), m.group(4)
            if (vol, mid) in out.records:
                strays.append(key)  # two records for one snapshot: verify says so
            else:
                out.records[(vol, mid)] = parent
        elif _DATA_RX.match(key):
            out.objects[key] = size
        elif key.startswith("stream/"):
            pass  # streamed redo segments: their own layout (transfer/stream_keys.py)
        else:
            strays.append(key)
    return Listing(out.manifests, out.records, out.objects, tuple(sorted(strays)))


# --------------------------------------------------------------------------------------------
# Shipment records


@dataclass(frozen=True)
class StoredObject:
    """One object a record lists: its key (under the server's prefix), stored size, sha256 of
    the stored bytes, and the plain bytes it decodes to."""

    key: str
    size: int
    sha256: str
    plain_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256,
                "plain_bytes": self.plain_bytes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoredObject:
        return cls(str(d["key"]), int(d["size"]), str(d["sha256"]), int(d["plain_bytes"]))


@dataclass(frozen=True)
class Shipment:
    """A shipment record: one volume's snapshot as it is at a target."""

    server_id: str
    manifest_id: str
    kind: str  # set | redolog: the kind of the manifest it belongs to
    volume: str
    backend: str  # the primary's snapshot backend (dir, zfs, btrfs)
    name: str  # the snapshot's name on the primary
    stream_format: str  # tar | zfs | btrfs
    stream_id: str  # what the stream carries as its identity (guid, uuid, the dir uuid)
    taken_at_ms: int
    parent: str | None  # manifest id of the snapshot this one is incremental from, here
    objects: tuple[StoredObject, ...] = ()  # stream (and index for tar), object targets
    received: str | None = None  # its address at a receiving target (zfs, btrfs)
    compression: Mapping[str, Any] = field(default_factory=dict)
    encryption: Mapping[str, Any] | None = None
    shipped_ms: int = 0

    @property
    def key(self) -> str:
        return record_key(self.volume, self.manifest_id, self.parent)

    def object(self, role: str) -> StoredObject | None:
        """The object whose name starts with `role` (`stream`, `index`)."""
        for o in self.objects:
            if o.key.rsplit("/", 1)[-1].startswith(role):
                return o
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION,
                "server_id": self.server_id, "manifest_id": self.manifest_id, "kind": self.kind,
                "volume": self.volume, "backend": self.backend, "name": self.name,
                "stream_format": self.stream_format, "stream_id": self.stream_id,
                "taken_at_ms": self.taken_at_ms, "parent": self.parent,
                "objects": [o.as_dict() for o in self.objects], "received": self.received,
                "compression": dict(self.compression),
                "encryption": dict(self.encryption) if self.encryption else None,
                "shipped_ms": self.shipped_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str) -> Shipment:
        try:
            if d.get("format") != RECORD_FORMAT:
                raise FormatError(f"{where}: not a shipment record")
            if int(d["version"]) > RECORD_VERSION:
                raise FormatError(f"{where}: shipment record version {d['version']} is newer "
                                  f"than {RECORD_VERSION}", hint="upgrade standby on this host")
            enc = d.get("encryption")
            return cls(server_id=str(d["server_id"]), manifest_id=str(d["manifest_id"]),
                       kind=str(d["kind"]), volume=str(d["volume"]), backend=str(d["backend"]),
                       name=str(d["name"]), stream_format=str(d["stream_format"]),
                       stream_id=str(d["stream_id"]), taken_at_ms=int(d["taken_at_ms"]),
                       parent=None if d.get("parent") is None else str(d["parent"]),
                       objects=tuple(StoredObject.from_dict(o) for o in d.get("objects", [])),
                       received=None if d.get("received") is None else str(d["received"]),
                       compression=dict(d.get("compression") or {}),
                       encryption=dict(enc) if enc else None,
                       shipped_ms=int(d.get("shipped_ms", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{where}: record field missing or of the wrong type: {e}") from e


# --------------------------------------------------------------------------------------------
# The catalog


class KeyStore(Protocol):
    """Where a target catalog keeps its documents: keys relative to the server's prefix."""

    def where(self) -> str:
        """The store, for messages (a URL)."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically (a reader sees all of it or nothing)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under `key`; `NotFound` if there are none."""
        ...

    def exists(self, key: str) -> bool:
        ...

    def list(self, prefix: str = "") -> dict[str, int]:
        """Every key under `prefix`, with its stored size."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; one already gone is not an error."""
        ...


def _same(data: bytes) -> bytes:
    return data


def _same_named(data: bytes, what: str) -> bytes:
    return data


class TargetCatalog:
    """The catalog of one server at a target (a `CatalogStore`, plus its shipment records)."""

    def __init__(self, store: KeyStore, server_id: str, key: bytes, *,
                 seal: Callable[[bytes], bytes] = _same,
                 unseal: Callable[[bytes, str], bytes] = _same_named) -> None:
        self.store = store
        self.server_id = server_id
        self.key = key
        self._seal = seal
        self._unseal = unseal
        self._listing: Listing | None = None
        self._docs: dict[str, Any] = {}

    def where(self) -> str:
        return self.store.where()

    def location(self, kind: str, manifest_id: str) -> str:
        return f"{self.store.where().rstrip('/')}/{manifest_key(kind, manifest_id)}"

    # -- the listing ------------------------------------------------------------------------
    def listing(self, *, fresh: bool = False) -> Listing:
        """One listing of the server's prefix (kept until something is written or removed)."""
        if self._listing is None or fresh:
            self._listing = parse_listing(self.store.list(""))
        return self._listing

    def _changed(self) -> None:
        self._listing = None

    # -- manifests (CatalogStore) -----------------------------------------------------------
    def write(self, m: Manifest) -> str:
        k = manifest_key(m.kind, m.id)
        self.store.put(k, self._seal(mf.sign(m, self.key)))
        self._changed()
        return self.location(m.kind, m.id)

    def exists(self, kind: str, manifest_id: str) -> bool:
        return self.store.exists(manifest_key(kind, manifest_id))

    def get(self, manifest_id: str) -> Manifest:
        kind = self.listing().manifests.get(manifest_id)
        if kind is None:
            raise NotFound(f"no manifest {manifest_id!r} at {self.where()}",
                           hint="`standby verify --target URL` lists what is there")
        return self._manifest(kind, manifest_id)

    def _manifest(self, kind: str, manifest_id: str) -> Manifest:
        k = manifest_key(kind, manifest_id)
        hit = self._docs.get(k)
        if isinstance(hit, Manifest):
            return hit
        where = self.location(kind, manifest_id)
        m = mf.verify_bytes(self._unseal(self.store.get(k), f"manifest {where}"), self.key,
                            where=where)
        if m.id != manifest_id or m.kind != kind or m.server_id != self.server_id:
            raise IntegrityError(f"manifest {where} holds {m.kind} {m.id} of server "
                                 f"{m.server_id}: it is not where it belongs",
                                 hint="it was copied or renamed at the target; remove it")
        self._docs[k] = m
        return m

    def manifests(self, kind: str | None = None) -> list[Manifest]:
        ms = [self._manifest(k, mid) for mid, k in self.listing().manifests.items()
              if kind is None or k == kind]
        return sorted(ms, key=lambda m: (m.taken_at_ms, m.id))

    def remove(self, m: Manifest) -> None:
        k = manifest_key(m.kind, m.id)
        self.store.delete(k)
        self._docs.pop(k, None)
        self._changed()

    # -- shipment records -------------------------------------------------------------------
    def write_record(self, r: Shipment) -> None:
        self.store.put(r.key, self._seal(mf.sign_document(r.as_dict(), self.key)))
        self._changed()

    def record(self, volume: str, manifest_id: str) -> Shipment:
        """The verified record of `volume` in `manifest_id`; `NotFound` if it is not here."""
        listing = self.listing()
        if (volume, manifest_id) not in listing.records:
            raise NotFound(f"the {volume} snapshot of {manifest_id} is not at {self.where()}")
        k = record_key(volume, manifest_id, listing.records[(volume, manifest_id)])
        hit = self._docs.get(k)
        if isinstance(hit, Shipment):
            return hit
        what = f"shipment record {self.store.where().rstrip('/')}/{k}"
        body = mf.verify_document(self._unseal(self.store.get(k), what), self.key, what=what)
        r = Shipment.from_dict(body, where=what)
        if (r.volume, r.manifest_id, r.parent, r.server_id) != (
                volume, manifest_id, listing.records[(volume, manifest_id)], self.server_id):
            raise IntegrityError(f"{what} describes the {r.volume} snapshot of {r.manifest_id} "
                                 f"(parent {r.parent}) of server {r.server_id}: it is not "
                                 "where it belongs", hint="remove it, and ship again")
        self._docs[k] = r
        return r

    def remove_record(self, r: Shipment) -> None:
        self.store.delete(r.key)
        self._docs.pop(r.key, None)
        self._changed()
