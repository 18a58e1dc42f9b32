"""End-to-end: a real store, traffic, a replay from empty into a second store, equal digests."""

from __future__ import annotations

from standby.replay import naive
from standby.replay.player import Selection, select_files
from standby.store.blobs import BlobStore
from standby.store.digest import digest_settings, store_digest
from standby.store.directory import Directory
from standby.store.effects import Effects
from standby.store.index import IndexStore
from standby.store.loadgen import run as loadgen
from standby.store.site import Site


def test_replay_from_empty_gives_primary_digest(make_store) -> None:
    primary = make_store("primary", sections={"redolog": {"rollover_size_kb": 256}})
    primary.start()
    res = loadgen(primary.settings.store_socket, accounts=6, ops=600, seed=7, workers=3)
    assert res.errors == 0, res.error_samples
    primary.stop()
    want = digest_settings(primary.settings)

    standby = make_store("standby")
    s = standby.settings
    db = Site(s).db
    db.start()
    Site(s).ensure_schema()
    conn = db.connect()
    # The primary's directory holds the accounts' message lifetimes the purges used.
    effects = Effects(groups=s.store.mailbox_groups, blobs=BlobStore(s.volumes.blob.path),
                      index=IndexStore(s.volumes.index.path),
                      retention=Directory(primary.settings.directory_path).retention())
    logs, _ = select_files(primary.settings.volumes.redolog.path, Selection())
    assert len(logs) > 1, "the test wants at least one rollover"
    out = naive.replay(logs, Selection(), conn=conn, effects=effects)
    assert not out.errors
    got = store_digest(conn, groups=s.store.mailbox_groups, blobs=effects.blobs,
                       index=IndexStore(s.volumes.index.path))
    conn.close()
    assert got.total == want.total
    assert len(got.mailboxes) == 6
