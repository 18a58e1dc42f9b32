"""The object targets (s3, file): snapshots as stored objects, through any `ObjectStore`.

Shipping one volume's snapshot writes, under `data/<volume>/<manifest id>/`,

- for a `dir` snapshot: `index.json.zst` (its file index) and `stream.tar.zst` (a tar of what
  changed since the parent's index, `tarstream`);
- for a zfs or btrfs snapshot: `stream.zfs.zst` / `stream.btrfs.zst`, the backend's own send
  stream (`zfs send [-i parent]`, `btrfs send [-p parent]`), read from the command the backend
  builds;

each through `codec.Encoder` (zstd, optionally AES-256-GCM: the names then end in `.sbx`),
paced by the throttle, into a `Sink` that resumes an interrupted upload where it can. The
record returned lists every object with its stored size and sha256.

Reading back (pull) checks as it goes and refuses before anything is applied: a stream's bytes
are released to the reader only until the last piece, which waits until the whole object hashed
to its record's sha256 — so a receiver (`zfs recv`, tar extraction) never sees the end of a
stream that did not check out. `dir` volumes are staged and swapped in only when every object
of every volume checked out; stream volumes are read and checked in full before the first
receive.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from standby import _process
from standby import log as slog
from standby.catalog.target import (
    Shipment,
    StoredObject,
    TargetCatalog,
    data_key,
)
from standby.errors import IntegrityError, NotFound, UsageError
from standby.errors import CommandFailed
from standby.snapshot._base import Snapshot, StreamingBackend, StreamTarget
from standby.transfer import codec, tarstream
from standby.transfer._base import (
    Landing,
    ObjectStore,
    Progress,
    ResumeImpossible,
    SendJob,
    Source,
    TargetUrl,
    TransferEffects,
)
from standby.transfer.landing import receive_chain, swap_in
from standby.transfer.s3 import UploadInterrupted

STREAM_FORMATS = {"dir": "tar", "zfs": "zfs", "btrfs": "btrfs"}
PACE = 256 << 10  # stored bytes written between two calls of the throttle


class ObjectWriter:
    """Plain bytes of one object in; encoded, paced, stored; its `StoredObject` at `close`."""

    def __init__(self, store: ObjectStore, key: str, *, level: int, enc_key: bytes | None,
                 fx: TransferEffects, what: str, total: int | None = None) -> None:
        self.key = key
        self.fx = fx
        self.what = what
        self.total = total
        before = fx.resume_get(key) or {}
        salt_hex = str(before.get("salt") or "")

        def save(st: dict[str, object]) -> None:
            fx.resume_put(key, {"salt": self.encoder.salt.hex(), "sink": st} if st else {})

        self.sink = store.open_write(key, resume=before.get("sink") or None, save=save)
        # A continued upload must re-encode exactly as before: same salt. A new one gets its own.
        salt = bytes.fromhex(salt_hex) if self.sink.stats.resumed and salt_hex else None
        self.encoder = codec.Encoder(level=level, key=enc_key, salt=salt)
        fx.stats[key] = self.sink.stats

    def write(self, plain: bytes) -> None:
        self._store(self.encoder.write(plain))
        self.fx.progress(Progress(self.what, self.encoder.plain_bytes, self.total))

    def close(self) -> StoredObject:
        self._store(self.encoder.finish())
        self.sink.commit()
        self.fx.resume_put(self.key, {})
        return StoredObject(self.key, self.encoder.stored_bytes, self.encoder.sha256,
                            self.encoder.plain_bytes)

    def abort(self) -> None:
        self.sink.abort()
        self.fx.resume_put(self.key, {})

    def _store(self, out: bytes) -> None:
        """Paced in pieces: zstd's workers hand over their output in bursts (a job of
        megabytes, all the rest at `finish`), which must not go out at full speed after one
        long pause."""
        if len(out) <= PACE:
            if out:
                self.fx.throttle(len(out))
                self.sink.write(out)
            return
        view = memoryview(out)
        for i in range(0, len(view), PACE):
            piece = view[i:i + PACE]
            self.fx.throttle(len(piece))
            self.sink.write(bytes(piece))


class ObjectTarget:
    """A `Target` whose snapshots are objects in `store` (see the module docstring)."""

    def __init__(self, url: TargetUrl, store: ObjectStore, catalog: TargetCatalog, *,
                 level: int = 3, enc_key: bytes | None = None) -> None:
        self.url = url
        self.store = store
        self.catalog = catalog
        self.level = level
        self.enc_key = enc_key
        self.log = slog.get("standby.transfer", target=str(url))

    # -- Target -----------------------------------------------------------------------------
    def check(self, *, write: bool) -> None:
        self.store.check(write=write)

    def refuses(self, backend: str) -> str | None:
        if backend in STREAM_FORMATS:
            return None
        return (f"{backend} snapshots cannot be streamed (only dir, zfs and btrfs ones can); "
                "an EBS or LVM volume is replicated by its own means")

    def needs_local_parent(self, backend: str) -> bool:
        return backend != "dir"

    def _ext(self, name: str) -> str:
        return name + (".sbx" if self.enc_key is not None else "")

    def _encryption(self) -> dict[str, str] | None:
        if self.enc_key is None:
            return None
        return {"alg": "AES-256-GCM", "key_id": codec.key_id(self.enc_key)}

    def send(self, job: SendJob) -> Shipment:
        for attempt in (1, 2):
            try:
                return self._send_once(job)
            except ResumeImpossible as e:
                if attempt == 2:
                    raise
                self.log.warning("resume_impossible_restarting", error=e.message,
                                 volume=job.source.volume, set_id=job.source.manifest_id)
        raise AssertionError("unreachable")

    def _send_once(self, job: SendJob) -> Shipment:
        src = job.source
        fmt = STREAM_FORMATS.get(src.record.backend)
        if fmt is None:
            raise UsageError(self.refuses(src.record.backend) or "")
        what = f"{src.volume} of {src.manifest_id}"
        key = data_key(src.volume, src.manifest_id, self._ext(f"stream.{fmt}.zst"))
        if fmt == "tar":
            objects = self._send_tar(job, key, what)
            stream_id = str(src.record.identity.get("uuid", ""))
        else:
            objects = self._send_stream(job, key, what)
            stream_id = self._streaming(src).stream_id(src.snapshot)
        return Shipment(
            server_id=self.catalog.server_id, manifest_id=src.manifest_id, kind=src.kind,
            volume=src.volume, backend=src.record.backend, name=src.record.name,
            stream_format=fmt, stream_id=stream_id, taken_at_ms=src.record.taken_at_ms,
            parent=job.parent.manifest_id if job.parent else None, objects=objects,
            compression={"alg": "zstd", "level": self.level}, encryption=self._encryption(),
            shipped_ms=job.effects.now_ms())

    def _send_tar(self, job: SendJob, key: str, what: str) -> tuple[StoredObject, ...]:
        src = job.source
        root = Path(src.snapshot.ref)
        if not root.is_dir():
            raise NotFound(f"the {src.volume} snapshot {src.snapshot.ref} of {src.manifest_id} "
                           "is not on this host any more", hint="it was pruned; it cannot be "
                           "shipped (`standby snapshot list` shows what there is)")
        parent_index = self._parent_index(job.parent) if job.parent is not None else None
        index = tarstream.scan(root)
        send, index = tarstream.diff(index, parent_index)
        total = sum(e.size for e in send if e.type == "f")

        def tar(write: Callable[[bytes], None]) -> None:
            for chunk in tarstream.tar_chunks(root, send):
                write(chunk)

        stream = self._write(key, tar, job.effects, what, total)
        idx = self._write(data_key(src.volume, src.manifest_id, self._ext("index.json.zst")),
                          lambda write: write(index.to_json()), job.effects, f"index of {what}",
                          None)
        return stream, idx

    def _streaming(self, src: Source) -> StreamingBackend:
        be = src.backend
        if not isinstance(be, StreamingBackend):
            raise UsageError(f"the {src.record.backend} backend cannot send streams")
        return be

    def _send_stream(self, job: SendJob, key: str, what: str) -> tuple[StoredObject, ...]:
        src = job.source
        be = self._streaming(src)
        parent = None
        if job.parent is not None:
            obj = job.parent.object("stream")
            if obj is None or obj.key not in self.catalog.listing().objects or \
                    job.parent_snapshot is None:
                raise NotFound(
                    f"the {src.volume} snapshot of {job.parent.manifest_id} at {self.url}, the "
                    "parent of this incremental, is not whole there",
                    hint="send a full stream instead: `standby ship --full`")
            parent = job.parent_snapshot
        cmd = be.send(src.snapshot, parent)
        total = be.estimate(src.snapshot, parent) if job.effects.totals else None

        def stream(write: Callable[[bytes], None]) -> None:
            try:
                _process.read_from(cmd, write)
            except CommandFailed as e:
                raise be.stream_error(e, StreamTarget(str(self.url))) from e

        return (self._write(key, stream, job.effects, what, total),)

    def estimate(self, source: Source,
                 parent: tuple[Shipment | None, Snapshot | None] | None) -> int | None:
        if source.record.backend != "dir":
            return None
        if parent is None:
            b = source.record.identity.get("bytes")
            return int(b) if isinstance(b, int) else None
        record, local_parent = parent
        if not Path(source.snapshot.ref).is_dir():
            return None
        if record is not None:
            base = self._parent_index(record)
        elif local_parent is not None and Path(local_parent.ref).is_dir():
            base = tarstream.scan(Path(local_parent.ref))  # a parent this run ships first
        else:
            return None
        send, _ = tarstream.diff(tarstream.scan(Path(source.snapshot.ref)), base)
        return sum(e.size for e in send if e.type == "f")

    def _parent_index(self, p: Shipment) -> tarstream.Index:
        there = self.catalog.listing().objects  # the plan's listing: no request per object
        missing = [o.key for o in p.objects if o.key not in there]
        obj = p.object("index")
        if missing or obj is None:
            raise NotFound(
                f"the {p.volume} snapshot of {p.manifest_id} at {self.url}, the parent of this "
                f"incremental, is not whole there (missing: {', '.join(missing) or 'its index'})",
                hint="send a full stream instead: `standby ship --full`")
        return tarstream.Index.from_json(b"".join(self.plain(p, obj)),
                                         where=f"{self.url} {obj.key}")

    def _write(self, key: str, feed: Callable[[Callable[[bytes], None]], None],
               fx: TransferEffects, what: str, total: int | None) -> StoredObject:
        w = ObjectWriter(self.store, key, level=self.level, enc_key=self.enc_key, fx=fx,
                         what=what, total=total)
        try:
            feed(w.write)
            out = w.close()
        except UploadInterrupted:
            raise  # the upload stays at the server; the next ship continues it
        except BaseException:
            w.abort()
            raise
        st = w.sink.stats
        self.log.info("object_shipped", key=key, stored_bytes=out.size,
                      plain_bytes=out.plain_bytes, sha256=out.sha256, parts=st.parts_sent,
                      parts_skipped=st.parts_skipped, resumed=st.resumed)
        return out

    # -- reading back -----------------------------------------------------------------------
    def plain(self, r: Shipment, o: StoredObject) -> Iterator[bytes]:
        """`o`'s plain bytes, checked: the last piece comes only once the stored bytes hashed
        to the record's sha256 (`IntegrityError` naming the object otherwise)."""
        what = f"object {self.store.where().rstrip('/')}/{o.key}"
        dec = codec.Decoder(key=self.enc_key, encrypted=r.encryption is not None, what=what)
        held = b""
        for out in dec.plain(self.store.read(o.key)):
            if held:
                yield held
            held = out
        if (dec.sha256, dec.stored_bytes, dec.plain_bytes) != (o.sha256, o.size,
                                                                o.plain_bytes):
            raise IntegrityError(f"{what} does not match its record: {dec.stored_bytes} bytes "
                                 f"with sha256 {dec.sha256[:16]}…, the record says {o.size} "
                                 f"bytes with sha256 {o.sha256[:16]}…",
                                 hint="it was changed or damaged at the target; ship that "
                                      "snapshot again (`standby ship --full`)")
        if held:
            yield held

    def check_snapshot(self, r: Shipment, *, deep: bool,
                       progress: Callable[[Progress], None] = lambda p: None) -> list[str]:
        sizes = self.catalog.listing().objects
        problems: list[str] = []
        for o in r.objects:
            where = f"{self.store.where().rstrip('/')}/{o.key}"
            if o.key not in sizes:
                problems.append(f"{where} is missing")
            elif sizes[o.key] != o.size:
                problems.append(f"{where} is {sizes[o.key]} bytes, its record says {o.size}")
            elif deep:
                # The stored bytes' hash: no decoding, so no encryption key is needed.
                h, n = hashlib.sha256(), 0
                for chunk in self.store.read(o.key):
                    h.update(chunk)
                    n += len(chunk)
                    progress(Progress(o.key, n, o.size))
                if (h.hexdigest(), n) != (o.sha256, o.size):
                    problems.append(f"{where} does not match its record: sha256 "
                                    f"{h.hexdigest()[:16]}…, the record says "
                                    f"{o.sha256[:16]}…")
        return problems

    def stage(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
              fx: TransferEffects) -> None:
        fmt = chain[-1].stream_format
        if any(r.stream_format != fmt for r in chain):
            raise IntegrityError(f"the {chain[-1].volume} chain mixes stream formats")
        if fmt != "tar":
            # A stream is received as it is read: read and check every object first.
            problems = [p for r in chain for p in self.check_snapshot(r, deep=True,
                                                                        progress=fx.progress)]
            if problems:
                raise IntegrityError("; ".join(problems[:5]),
                                     hint="ship those snapshots again (`standby ship --full`)")
            return
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        index: tarstream.Index | None = None
        for i, r in enumerate(chain):
            obj, idx_obj = r.object("stream"), r.object("index")
            if obj is None or idx_obj is None:
                raise IntegrityError(f"the record of the {r.volume} snapshot of {r.manifest_id} "
                                     "lists no stream or no index")
            index = tarstream.Index.from_json(b"".join(self.plain(r, idx_obj)),
                                              where=f"{self.url} {idx_obj.key}")
            tarstream.apply(staging, self._counted(r, obj, fx), index, incremental=i > 0)
        assert index is not None
        problems = tarstream.check_applied(staging, index)
        if problems:
            raise IntegrityError(f"the pulled {chain[-1].volume} volume does not match the "
                                 f"index of {chain[-1].manifest_id}: " + "; ".join(problems[:5]),
                                 hint="verify the target (`standby verify`)")

    def _counted(self, r: Shipment, o: StoredObject, fx: TransferEffects) -> Iterator[bytes]:
        done = 0
        for c in self.plain(r, o):
            done += len(c)
            fx.progress(Progress(f"{r.volume} of {r.manifest_id}", done, o.plain_bytes))
            yield c

    def land(self, chain: Sequence[Shipment], landing: Landing, staging: Path,
             fx: TransferEffects) -> None:
        if chain[-1].stream_format == "tar":
            swap_in(staging, landing.volume.path)
            return
        be = landing.streaming
        if be is None or landing.backend != chain[-1].stream_format:
            raise UsageError(f"the {chain[-1].volume} snapshots are {chain[-1].stream_format} "
                             f"streams, and the standby's volume uses {landing.backend}",
                             hint=f"make volumes.{chain[-1].volume} a "
                                  f"{chain[-1].stream_format} volume here")
        def feed(i: int, r: Shipment, receiver: _process.Command) -> None:
            _process.write_into(receiver, self._counted(r, r.object("stream") or _no_stream(r),
                                                        fx))

        receive_chain(chain, landing, staging, feed)

    def discard(self, r: Shipment) -> None:
        for o in r.objects:
            self.store.delete(o.key)


def _no_stream(r: Shipment) -> StoredObject:
    raise IntegrityError(f"the record of the {r.volume} snapshot of {r.manifest_id} lists no "
                         "stream")
