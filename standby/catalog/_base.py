"""The one interface every catalog implements, and the queries any catalog answers.

A catalog holds the signed manifests of one server: the local state directory's (written by
`standby snapshot …`), or a transfer target's (written by shipping, read at the standby). Every
manifest a catalog returns has been verified (signature and form); a bad one raises
`IntegrityError` naming it (exit 8), a missing one `NotFound` (exit 9).

Invariants every implementation keeps:

- `write` is atomic: a reader sees the whole manifest or none of it (temporary name, then
  rename, or a store's atomic put);
- manifests are immutable once written: `write` of an id that exists replaces it only with the
  same bytes' meaning (the executor writes a manifest once);
- `manifests()` is ordered oldest first by (taken-at time, id).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from standby.catalog.manifest import Manifest, SnapshotRecord
from standby.errors import NotFound

KINDS = ("set", "redolog")


@runtime_checkable
class CatalogStore(Protocol):
    """Signed manifests of one server: read, write, list, remove."""

    #: the server whose manifests these are
    server_id: str

    def where(self) -> str:
        """Where this catalog lives, for messages (a folder, a URL)."""
        ...

    def location(self, kind: str, manifest_id: str) -> str:
        """Where the manifest of `kind` with this id is, or would be, stored."""
        ...

    def write(self, m: Manifest) -> str:
        """Sign and store `m` atomically; return where it was written."""
        ...

    def exists(self, kind: str, manifest_id: str) -> bool:
        """True if a manifest of `kind` with this id is stored (not verified)."""
        ...

    def get(self, manifest_id: str) -> Manifest:
        """The verified manifest with this id, of either kind; `NotFound` if there is none."""
        ...

    def manifests(self, kind: str | None = None) -> list[Manifest]:
        """Every manifest (of `kind`, or all), verified, oldest first."""
        ...

    def remove(self, m: Manifest) -> None:
        """Remove `m`'s manifest; one already gone is not an error."""
        ...


def latest(catalog: CatalogStore, volume: str,
           kinds: tuple[str, ...] = KINDS) -> tuple[Manifest, SnapshotRecord] | None:
    """The newest complete snapshot of `volume` among manifests of `kinds`."""
    best: tuple[Manifest, SnapshotRecord] | None = None
    for m in catalog.manifests():
        if m.kind not in kinds or m.status != "complete":
            continue
        s = m.snapshot(volume)
        if s is not None and (best is None or s.taken_at_ms >= best[1].taken_at_ms):
            best = (m, s)
    return best


def find_set(catalog: CatalogStore, set_id: str) -> Manifest:
    """The complete set `set_id`, or the newest complete set for "latest"; `NotFound` else."""
    if set_id == "latest":
        sets = [m for m in catalog.manifests("set") if m.status == "complete"]
        if not sets:
            raise NotFound(f"there is no complete snapshot set in the catalog at "
                           f"{catalog.where()}",
                           hint="`standby snapshot list` shows what there is")
        return max(sets, key=lambda x: (x.taken_at_ms, x.id))
    m = catalog.get(set_id)
    if m.kind != "set" or m.status != "complete":
        raise NotFound(f"{set_id} is not a complete snapshot set (it is an {m.status} "
                       f"{'set' if m.kind == 'set' else 'redolog snapshot'})")
    return m
