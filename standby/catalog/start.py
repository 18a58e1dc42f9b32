"""Where a replay onto a set must start, derived from the set's manifest.

Every transaction active at the set's recorded position has its change record in the file of
that sequence (a rollover re-logs active transactions), so reading from that file with the
recorded time is exact; the replay's per-volume idempotency absorbs any op before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from standby.catalog._base import CatalogStore, find_set
from standby.catalog.manifest import Manifest


@dataclass(frozen=True)
class SetStart:
    """A set and the selection a replay onto it starts with."""

    manifest: Manifest
    from_time_ms: int
    from_seq: int


def replay_start(catalog: CatalogStore, set_id: str) -> SetStart:
    """The replay start of set `set_id` (or "latest") in `catalog`."""
    m = find_set(catalog, set_id)
    return SetStart(m, m.replay.from_time_ms, m.replay.seq)
