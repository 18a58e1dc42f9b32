"""The blob store on the `blob` volume, in Zimbra's path layout (`FileBlobStore.getBlobPath`).

    <volume>/<(mbox >> 12) & 255>/<mbox>/msg/<(item >> 12) & 255>/<item>-<mod_content>.msg

with incoming deliveries staged in `<volume>/incoming/`. Blobs larger than the compression
threshold are stored gzipped when compression is on; the digest (SHA-256, file-system-safe
base64, 44 characters, as in `mail_item.blob_digest`) is always of the uncompressed bytes.

Writes go to a temporary name in the target directory and are renamed into place, so a blob file
is either whole or absent. Replay's rule "write a blob only if it is missing or wrong" is
`ensure()`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

INCOMING = "incoming"
_GZIP_MAGIC = b"\x1f\x8b"


def digest(data: bytes) -> str:
    """Zimbra-style blob digest: SHA-256, base64 with '/' and '+' made file-system safe."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode("ascii")


def mailbox_subdir(mailbox_id: int) -> str:
    return f"{(mailbox_id >> 12) & 255}/{mailbox_id}"


def blob_relpath(mailbox_id: int, item_id: int, mod_content: int) -> str:
    return (f"{(mailbox_id >> 12) & 255}/{mailbox_id}/msg/{(item_id >> 12) & 255}/"
            f"{item_id}-{mod_content}.msg")


class BlobStore:
    def __init__(self, root: Path, *, compress: bool = False, threshold: int = 4096) -> None:
        self.root = root
        self.compress = compress
        self.threshold = threshold
        self._dirs: set[str] = set()
        self._dirs_lock = threading.Lock()
        self._tmp_counter = 0

    # -- paths ------------------------------------------------------------------------------
    def path(self, mailbox_id: int, item_id: int, mod_content: int) -> Path:
        return self.root / blob_relpath(mailbox_id, item_id, mod_content)

    def mailbox_dir(self, mailbox_id: int) -> Path:
        return self.root / mailbox_subdir(mailbox_id)

    def incoming_path(self, name: str) -> Path:
        return self.root / INCOMING / name

    # -- writing ----------------------------------------------------------------------------
    def ensure_dir(self, d: str | Path) -> None:
        """Create a blob folder once per process (remembered; safe from several threads)."""
        key = str(d)
        if key in self._dirs:
            return
        os.makedirs(key, exist_ok=True)
        with self._dirs_lock:
            self._dirs.add(key)

    def encode(self, data: bytes) -> bytes:
        """The bytes stored on disk for `data` (gzipped above the threshold if enabled)."""
        if self.compress and len(data) > self.threshold:
            return gzip.compress(data, compresslevel=6, mtime=0)
        return data

    def write(self, path: Path, data: bytes) -> None:
        """Write `data` at `path` atomically (temporary name, then rename)."""
        self.ensure_dir(path.parent)
        with self._dirs_lock:
            self._tmp_counter += 1
            n = self._tmp_counter
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{n}.tmp")
        stored = self.encode(data)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(stored)
            while view:
                w = os.write(fd, view)
                view = view[w:]
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def read(self, path: Path) -> bytes:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
        return raw

    def matches(self, path: Path, want_digest: str) -> bool:
        """True if the blob at `path` exists and its content has digest `want_digest`."""
        try:
            return digest(self.read(path)) == want_digest
        except (FileNotFoundError, NotADirectoryError):
            return False
        except (OSError, EOFError, gzip.BadGzipFile):
            return False

    def ensure(self, path: Path, data: bytes, want_digest: str | None = None) -> bool:
        """Write only if missing or wrong; True if written."""
        if self.matches(path, want_digest or digest(data)):
            return False
        self.write(path, data)
        return True

    def link_or_copy(self, src: Path, dst: Path) -> None:
        """Place `src`'s stored bytes at `dst` (a hard link where possible, as Zimbra links
        an incoming blob into each recipient's mailbox)."""
        self.ensure_dir(dst.parent)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def delete(self, path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def remove_mailbox(self, mailbox_id: int) -> None:
        shutil.rmtree(self.mailbox_dir(mailbox_id), ignore_errors=True)
        with self._dirs_lock:
            prefix = str(self.mailbox_dir(mailbox_id))
            self._dirs = {d for d in self._dirs if not d.startswith(prefix)}

    # -- listing ----------------------------------------------------------------------------
    def mailbox_blobs(self, mailbox_id: int) -> Iterator[Path]:
        """Every blob file of a mailbox (temporary files excluded), in name order."""
        for folder, names in sorted(self.mailbox_blob_names(mailbox_id)):
            for n in sorted(names):
                yield Path(folder) / n

    def mailbox_blob_names(self, mailbox_id: int) -> Iterator[tuple[str, set[str]]]:
        """(folder, names of its blob files) for each blob folder of a mailbox, unordered
        (temporary files excluded)."""
        msg = f"{self.mailbox_dir(mailbox_id)}/msg"
        try:
            buckets = [e.path for e in os.scandir(msg) if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return
        for b in buckets:
            yield b, {n for n in os.listdir(b) if n.endswith(".msg") and not n.startswith(".")}

    def mailbox_ids(self) -> list[int]:
        """Mailboxes that have a directory on this volume."""
        return sorted(m for m, _ in mailbox_dirs(self.root))

    def clear_incoming(self) -> int:
        d = self.root / INCOMING
        if not d.is_dir():
            return 0
        n = 0
        for e in os.scandir(d):
            if e.is_file():
                os.unlink(e.path)
                n += 1
        return n


def mailbox_dirs(root: Path) -> Iterator[tuple[int, Path]]:
    """(mailbox id, folder) of every `<(mbox >> 12) & 255>/<mbox>` folder under a volume root
    (the layout the blob and index volumes share)."""
    if not root.is_dir():
        return
    for top in os.scandir(root):
        if not top.is_dir() or not top.name.isdigit():
            continue
        for mb in os.scandir(top.path):
            if mb.is_dir() and mb.name.isdigit():
                yield int(mb.name), Path(mb.path)


def parse_blob_name(name: str) -> tuple[int, int] | None:
    """`<item>-<mod_content>.msg` -> (item, mod_content)."""
    if not name.endswith(".msg"):
        return None
    stem = name[:-4]
    item, sep, mod = stem.partition("-")
    if not sep or not item.isdigit() or not mod.isdigit():
        return None
    return int(item), int(mod)
