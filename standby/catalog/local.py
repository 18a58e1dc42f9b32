"""The catalog of manifests in the state directory (a `CatalogStore`), and the state beside it.

    <state_dir>/catalog/<server_id>/sets/<set id>.json         signed manifests
    <state_dir>/catalog/<server_id>/redolog/<redolog id>.json
    <state_dir>/catalog/<server_id>/state.json                 shipped flags (unsigned)
    <state_dir>/catalog/<server_id>/.lock                      one snapshot run at a time

Manifests are immutable once written (tmp file + fsync + rename); what changes later — whether a
snapshot was shipped — lives in `state.json`, which shipping (a later issue) updates through
`mark_shipped`. Every read of a manifest verifies its signature.

The same layout rooted anywhere (`LocalCatalog.at(root, …)`) reads a catalog that came from a
transfer target (a `file://` folder, a mounted share), so `zmplayredo --set` at the standby can
start from manifests shipped there.

Chains, for incremental shipping: a snapshot's parent is the previous snapshot of the same volume
that is still in the catalog — for the db, blob and index volumes that is the same volume in the
previous set; for the redolog volume, the previous redolog-volume snapshot of either kind.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from standby.catalog import manifest as mf
from standby.catalog.manifest import Manifest
from standby.errors import FormatError, NotFound, StateConflict
from standby.fsutil import write_atomic
from standby.settings import Settings

_DIRS = {"set": "sets", "redolog": "redolog"}


class LocalCatalog:
    """A catalog in a folder; by default `<state_dir>/catalog/<server_id>/`."""

    def __init__(self, state_dir: Path, server_id: str, key: bytes, *,
                 root: Path | None = None) -> None:
        self.root = root if root is not None else state_dir / "catalog" / server_id
        self.server_id = server_id
        self.key = key
        # Verified manifests by path, valid while the file's (mtime_ns, size) is unchanged:
        # planning asks for the newest snapshot of each volume, and each read verifies an HMAC.
        self._cache: dict[Path, tuple[tuple[int, int], Manifest]] = {}

    @classmethod
    def at(cls, root: Path, server_id: str, key: bytes) -> LocalCatalog:
        """The catalog laid out under `root` itself (`root/sets/…`, `root/redolog/…`)."""
        return cls(root, server_id, key, root=root)

    def where(self) -> str:
        return str(self.root)

    # -- manifests --------------------------------------------------------------------------
    def path_for(self, kind: str, manifest_id: str) -> Path:
        return self.root / _DIRS[kind] / f"{manifest_id}.json"

    def location(self, kind: str, manifest_id: str) -> str:
        return str(self.path_for(kind, manifest_id))

    def write(self, m: Manifest) -> str:
        path = self.path_for(m.kind, m.id)
        write_atomic(path, mf.sign(m, self.key))
        return str(path)

    def exists(self, kind: str, manifest_id: str) -> bool:
        return self.path_for(kind, manifest_id).exists()

    def paths(self, kind: str | None = None) -> list[Path]:
        kinds = [kind] if kind else list(_DIRS)
        out: list[Path] = []
        for k in kinds:
            d = self.root / _DIRS[k]
            if d.is_dir():
                out += sorted(p for p in d.glob("*.json") if not p.name.startswith("."))
        return out

    def manifests(self, kind: str | None = None) -> list[Manifest]:
        """Every manifest (verified), oldest first."""
        ms = [self._read(p) for p in self.paths(kind)]
        return sorted(ms, key=lambda m: (m.taken_at_ms, m.id))

    def _read(self, path: Path) -> Manifest:
        try:
            st = path.stat()
        except FileNotFoundError:
            return mf.read(path, self.key)  # raises NotFound
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        m = mf.read(path, self.key)
        self._cache[path] = (stamp, m)
        return m

    def get(self, manifest_id: str) -> Manifest:
        for kind in _DIRS:
            p = self.path_for(kind, manifest_id)
            if p.exists():
                return self._read(p)
        raise NotFound(f"no manifest {manifest_id!r} in {self.root}",
                       hint="`standby snapshot list` shows what there is")

    def remove(self, m: Manifest) -> None:
        self.path_for(m.kind, m.id).unlink(missing_ok=True)
        with self._state() as st:
            for s in m.snapshots:
                st["shipped"].pop(f"{m.id}/{s.volume}", None)

    # -- state: shipped flags ---------------------------------------------------------------
    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "state.json"
        with open(self.root / ".state.lock", "a+") as lk:
            fcntl.flock(lk.fileno(), fcntl.LOCK_EX)
            st = self._read_state(path)
            yield st
            write_atomic(path, json.dumps(st, sort_keys=True, indent=1).encode() + b"\n")

    def _read_state(self, path: Path) -> dict[str, Any]:
        try:
            st = json.loads(path.read_text())
        except FileNotFoundError:
            st = {}
        except ValueError as e:
            raise FormatError(f"{path} is not valid JSON: {e}",
                              hint="fix or remove it; it only holds shipped flags") from e
        st.setdefault("shipped", {})
        return st

    def shipped(self) -> dict[str, int]:
        """{"<manifest id>/<volume>": shipped-at ms} for every shipped snapshot."""
        return dict(self._read_state(self.root / "state.json")["shipped"])

    def mark_shipped(self, manifest_id: str, volume: str, *, at_ms: int | None = None,
                     shipped: bool = True) -> None:
        with self._state() as st:
            k = f"{manifest_id}/{volume}"
            if shipped:
                st["shipped"][k] = at_ms if at_ms is not None else int(time.time() * 1000)
            else:
                st["shipped"].pop(k, None)

    # -- one run at a time ------------------------------------------------------------------
    @contextmanager
    def run_lock(self, *, wait_s: float = 600.0) -> Iterator[None]:
        """Serialize snapshot runs on this server (an hourly set and a 15-minute redolog
        snapshot both fire at :00); wait up to `wait_s` for the other to finish."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lk:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(lk.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateConflict(
                            f"another snapshot run on this server held {self.root / '.lock'} "
                            f"for more than {wait_s:.0f} s", hint="is one hanging? check "
                            "`ps` for `standby snapshot`") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(lk.fileno(), fcntl.LOCK_UN)


def for_settings(s: Settings) -> LocalCatalog:
    """The state directory's catalog of the configured server, with its manifest key."""
    return LocalCatalog(s.state_dir, s.server_id, mf.require_key(s.snapshot.manifest_key))
