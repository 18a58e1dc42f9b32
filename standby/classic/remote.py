"""Backups kept off the machine: `-t s3://bucket/prefix`, in the object store of a transfer URL.

A session is written, as for a folder target, into a local copy of the target (a folder under
the state folder, one per URL), and each finished session is then sent to the store through
the transfer package's objects (`ObjectWriter`: zstd, and AES-256-GCM with
`target.encryption_key`, as shipping; multipart and retried as shipping). Keys, under the
store's prefix for this server:

    classic/accounts.xml<ext>
    classic/sessions/<label>/index.json<ext>     the session folder's file index (tarstream)
    classic/sessions/<label>/data.tar<ext>       the session folder as one tar stream
    classic/sessions/<label>/sums.json<ext>      stored size and sha256 of the two above, and
                                                 the files sent with an earlier session
    classic/sessions/<label>/session.xml<ext>    its record, written last
    classic/redologs/<name><ext>  classic/mysql/<name><ext>

`<ext>` is `.zst`, or `.sbx` when encrypted. Before a command the local copy is brought up to
date (`pull`: accounts.xml, every session's record as a stub folder holding only its
session.xml, the redo logs); a restore fetches the data of the sessions it reads (`fetch`).

Invariants: a session's `session.xml` object is written only once its data, index and sums are
whole, so the store never lists a session whose data is missing; accounts.xml only after the
sessions it names. A fetched session is extracted into `sessions_tmp/` and checked against its
sums before it replaces its stub, so a half-fetched session is never taken for a whole one.
Once sent, sessions older than the newest full one are cut back to stubs locally (the newest
full stays whole: the next full links its unchanged containers). A file of a session that is a
link to a file of an earlier session the store holds is not sent again: the session's sums
name that file (at its origin: the session whose stream carries its bytes), a fetch takes it
from there, and a session's data stays in the store while a session kept links to it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from standby import fsutil
from standby import log as slog
from standby.classic import redo
from standby.classic.target import ACCOUNTS_XML, SESSION_XML, Target
from standby.errors import FormatError, IntegrityError, NotFound
from standby.transfer import codec, tarstream
from standby.transfer._base import ObjectStore, TargetUrl, TransferEffects, quoted
from standby.transfer.objects import ObjectWriter

ROOT = "classic"
STUB = ".remote"  # in a session folder holding only its session.xml
INDEX, DATA, SUMS = "index.json", "data.tar", "sums.json"
LINKS = "links"  # in sums.json: path -> [label, path] of a file sent with an earlier session
_EXTS = (".zst", ".sbx")


def cache_dir(state_dir: Path, url: TargetUrl) -> Path:
    """The local copy of the target at `url`."""
    return state_dir / "backup-cache" / quoted(url)


class Remote:
    """The object store behind a local `Target` copy (see the module docstring)."""

    def __init__(self, url: TargetUrl, store: ObjectStore, local: Target, *, level: int,
                 key: bytes | None, now_ms: Callable[[], int]) -> None:
        self.url = url
        self.store = store
        self.local = local
        self.level = level
        self.key = key
        self.ext = ".sbx" if key is not None else ".zst"
        self.fx = TransferEffects(now_ms=now_ms)
        self.log = slog.get("standby.classic", target=str(url))

    # -- objects ----------------------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return "/".join((ROOT, *parts)) + self.ext

    def _put(self, key: str, data: bytes) -> None:
        self.store.put(key, codec.encode(data, level=self.level, key=self.key)[0])

    def _get(self, key: str) -> bytes:
        return codec.decode(self.store.get(key), key=self.key, encrypted=None,
                            what=f"{self.url} {key}")

    def _send(self, key: str, chunks: Iterable[bytes]) -> tuple[int, str]:
        """One object from `chunks`, through `ObjectWriter`; its (stored size, sha256)."""
        w = ObjectWriter(self.store, key, level=self.level, enc_key=self.key, fx=self.fx,
                         what=key)
        try:
            for chunk in chunks:
                w.write(chunk)
            o = w.close()
        except BaseException:
            w.abort()
            raise
        return o.size, o.sha256

    def _file_chunks(self, path: Path) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(tarstream.CHUNK):
                yield chunk

    def _plain(self, key: str, size: int, sha256: str) -> Iterator[bytes]:
        """The object's plain bytes; `IntegrityError` after the last unless its stored bytes
        are `size` long and hash to `sha256`."""
        dec = codec.Decoder(key=self.key, encrypted=None, what=f"{self.url} {key}")
        yield from dec.plain(self.store.read(key))
        if (dec.stored_bytes, dec.sha256) != (size, sha256):
            raise IntegrityError(f"{self.url} {key} is not the object that was sent "
                                 f"({dec.stored_bytes} bytes, sha256 {dec.sha256[:16]}…)",
                                 hint="it was changed or damaged in the store; restore "
                                 "from another session")

    def _names(self, listing: dict[str, int], folder: str) -> dict[str, str]:
        """Plain name -> key of the objects directly in `classic/<folder>/`."""
        head = f"{ROOT}/{folder}/"
        out = {}
        for k in listing:
            if k.startswith(head) and "/" not in k[len(head):]:
                name = k[len(head):]
                for ext in _EXTS:
                    if name.endswith(ext):
                        out[name[:-len(ext)]] = k
        return out

    # -- the local copy up to date --------------------------------------------------------------
    def pull(self) -> None:
        """accounts.xml, every session's record (a stub for those not here) and every redo log
        of the store into the local copy."""
        t = self.local
        t.check_usable(create=True)
        listing = self.store.list(ROOT + "/")
        acc = [k for k in listing if k.startswith(f"{ROOT}/{ACCOUNTS_XML}.")]
        if acc:
            fsutil.write_atomic(t.root / ACCOUNTS_XML, self._get(acc[0]))
        for label in sorted(self._sessions(listing)):
            d = t.session_dir(label)
            if not d.is_dir():
                k = next(k for k in listing if k.startswith(f"{ROOT}/sessions/{label}/"
                                                            f"{SESSION_XML}."))
                tmp = t.tmp_dir / f".stub-{label}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                (tmp / SESSION_XML).write_bytes(self._get(k))
                (tmp / STUB).write_bytes(b"")
                os.rename(tmp, d)
        have = redo.in_dir(t.redologs_dir)
        for name, k in sorted(self._names(listing, "redologs").items()):
            if name not in have:
                fsutil.write_atomic(t.redologs_dir / name, self._get(k))

    def is_stub(self, label: str) -> bool:
        return (self.local.session_dir(label) / STUB).exists()

    def fetch(self, labels: Iterable[str]) -> None:
        """The data of each session of `labels` that is a stub here, from the store."""
        for label in sorted(set(labels)):
            if self.is_stub(label):
                self._fetch(label)

    def _sums(self, label: str) -> dict[str, Any]:
        try:
            sums: dict[str, Any] = json.loads(self._get(self._key("sessions", label, SUMS)))
        except NotFound:
            raise NotFound(f"the data of session {label} is missing at {self.url}",
                           hint="restore from another session") from None
        except ValueError as e:
            raise FormatError(f"{self.url}: the sums of session {label} are unreadable: {e}") \
                from e
        return sums

    def _extract(self, label: str, dest: Path) -> tarstream.Index:
        """The session's data from the store into the new folder `dest`, checked against its
        index: its own stream, and the files it links to in earlier sessions' streams."""
        sums = self._sums(label)
        try:
            index = tarstream.Index.from_json(
                b"".join(self._plain(self._key("sessions", label, INDEX), *sums[INDEX])),
                where=f"{self.url} session {label} {INDEX}")
            data, links = sums[DATA], sums.get(LINKS, {})
        except (KeyError, TypeError) as e:
            raise FormatError(f"{self.url}: the sums of session {label} are unreadable: {e}") \
                from e
        tarstream.apply(dest, self._plain(self._key("sessions", label, DATA), *data), index,
                        incremental=False)
        self._borrow(dest, links)
        problems = tarstream.check_applied(dest, index)
        if problems:
            raise IntegrityError(f"session {label} from {self.url} does not match its "
                                 f"index: {'; '.join(problems[:5])}")
        return index

    def _borrow(self, dest: Path, links: dict[str, list[str]]) -> None:
        """Each linked file into `dest`, from the local copy of the session that holds it when
        that copy is whole, else from that session's data in the store."""
        by_label: dict[str, list[tuple[str, str]]] = {}
        for path, (label, there) in links.items():
            by_label.setdefault(label, []).append((path, there))
        for label, files in sorted(by_label.items()):
            src = self.local.session_dir(label)
            scratch = self.local.tmp_dir / f".borrow-{dest.name}-{label}"
            shutil.rmtree(scratch, ignore_errors=True)
            try:
                if not src.is_dir() or self.is_stub(label):
                    self._extract(label, scratch)
                    src = scratch
                for path, there in files:
                    fsutil.link_or_copy(src / there, dest / path)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _fetch(self, label: str) -> None:
        t = self.local
        tmp = t.tmp_dir / f".fetch-{label}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            index = self._extract(label, tmp)
            d = t.session_dir(label)
            old = t.tmp_dir / f".stale-{label}"
            os.rename(d, old)
            os.rename(tmp, d)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.log.info("backup_session_fetched", label=label, files=len(index.entries))

    # -- the store up to date ---------------------------------------------------------------
    def push(self) -> None:
        """Send every finished session the store lacks (this run's, and any an earlier run
        failed to send), then the redo logs and database dumps it lacks, then accounts.xml;
        then cut the local copy back (see the module docstring)."""
        t = self.local
        listing = self.store.list(ROOT + "/")
        sent = self._sessions(listing)
        for i in t.sessions():
            label = str(i.label)
            if i.finished and label not in sent and not self.is_stub(label):
                self._send_session(label, i.path, sent)
                sent.add(label)
        for folder, local in (("redologs", t.redologs_dir), ("mysql", t.mysql_dir)):
            there = self._names(listing, folder)
            if local.is_dir():
                for p in sorted(local.iterdir()):
                    if p.is_file() and not p.name.startswith(".") and p.name not in there:
                        self._send(self._key(folder, p.name), self._file_chunks(p))
        if (t.root / ACCOUNTS_XML).is_file():
            self._put(self._key(ACCOUNTS_XML), (t.root / ACCOUNTS_XML).read_bytes())
        self.trim(sent)

    def _sessions(self, listing: dict[str, int]) -> set[str]:
        """The labels of the sessions whole in the store (their record is there)."""
        head = f"{ROOT}/sessions/"
        out = set()
        for k in listing:
            label, _, name = (k[len(head):] if k.startswith(head) else "").partition("/")
            if any(name == SESSION_XML + e for e in _EXTS):
                out.add(label)
        return out

    def _send_session(self, label: str, d: Path, sent: set[str]) -> None:
        """The session's index, its data and its sums, then its record. A file that is a link
        to one of an earlier session the store holds (an unchanged blob container of the last
        full backup) is not sent again: the sums name where it is."""
        index = tarstream.scan(d)
        links = self._links_into(d, sent - {label})
        sums: dict[str, Any] = {
            INDEX: self._send(self._key("sessions", label, INDEX), [index.to_json()]),
            DATA: self._send(self._key("sessions", label, DATA), tarstream.tar_chunks(
                d, [e for e in index.entries if e.path not in links]))}
        if links:
            sums[LINKS] = links
        self._put(self._key("sessions", label, SUMS), json.dumps(sums).encode())
        self._put(self._key("sessions", label, SESSION_XML), (d / SESSION_XML).read_bytes())
        self.log.info("backup_session_sent", label=label, files=len(index.entries),
                      linked=len(links))

    def _links_into(self, d: Path, sent: set[str]) -> dict[str, list[str]]:
        """path -> [label, path] for each file of the folder `d` that is the same file (a hard
        link) as one of a whole local session the store holds, named where its bytes were
        sent (a linked file's own origin)."""
        shared = {}
        for p in _files(d):
            st = os.stat(d / p)
            if st.st_nlink > 1:
                shared[(st.st_dev, st.st_ino)] = p
        if not shared:
            return {}
        out: dict[str, list[str]] = {}
        for i in self.local.sessions():
            label = str(i.label)
            if label not in sent or self.is_stub(label) or i.path == d:
                continue
            origins: dict[str, list[str]] | None = None
            for p in _files(i.path):
                st = os.stat(i.path / p)
                mine = shared.get((st.st_dev, st.st_ino))
                if mine is None or mine in out:
                    continue
                if origins is None:
                    origins = self._sums(label).get(LINKS, {})
                out[mine] = list(origins.get(p, [label, p]))
        return out

    def trim(self, sent: set[str]) -> None:
        """Cut the sessions older than the newest full one back to stubs, those the store
        holds (`sent`) only."""
        infos = [i for i in self.local.sessions() if i.finished]
        fulls = [i for i in infos if i.label.kind == "full" and not self.is_stub(str(i.label))]
        if not fulls:
            return
        newest = fulls[-1].label
        for i in infos:
            label = str(i.label)
            if i.label < newest and label in sent and not self.is_stub(label):
                for p in i.path.iterdir():
                    if p.name != SESSION_XML:
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                (i.path / STUB).write_bytes(b"")

    def forget(self) -> None:
        """Remove from the store the sessions and redo logs the local copy no longer has
        (after `zmbackup -del`)."""
        t = self.local
        listing = self.store.list(ROOT + "/")
        here = {str(i.label) for i in t.sessions()}
        head = f"{ROOT}/sessions/"
        gone = [k for k in listing if k.startswith(head)
                and k[len(head):].partition("/")[0] not in here]
        # The data of a session gone that a session kept links to stays (without its record,
        # the session is no longer listed), until no session links to it.
        linked = {origin[0] for label in self._sessions(listing) & here
                  for origin in self._sums(label).get(LINKS, {}).values()}
        # A session's record first: the store never lists a session whose data is gone.
        for k in sorted(gone, key=lambda k: SESSION_XML not in k.rsplit("/", 1)[-1]):
            record = k.rsplit("/", 1)[-1].startswith(SESSION_XML)
            if record or k[len(head):].partition("/")[0] not in linked:
                self.store.delete(k)
        logs = redo.in_dir(t.redologs_dir)
        for name, k in self._names(listing, "redologs").items():
            if name not in logs:
                self.store.delete(k)


def _files(root: Path) -> Iterator[str]:
    """The regular files under `root`, as "/"-separated relative paths."""
    for dirpath, _dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield n if rel == "." else f"{rel.replace(os.sep, '/')}/{n}"
