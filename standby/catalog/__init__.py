"""The catalog: signed manifests of snapshot sets and redolog snapshots, wherever they are kept.

- `manifest`: the manifest values, their canonical form, HMAC signing and checking;
- `_base`: the `CatalogStore` interface every catalog implements (read, write, list, remove
  verified manifests), and the queries derived from any catalog (the newest snapshot of a
  volume, a set by id or `latest`);
- `local`: the catalog in the state directory (`<state_dir>/catalog/<server_id>/`), with the
  per-snapshot shipped state beside it and the one-run-at-a-time lock; the same layout rooted
  anywhere else reads manifests that came from a transfer target;
- `start`: where a replay must start for a set, derived from its manifest.

Nothing here knows how snapshots are taken or moved: `snapshot/` writes manifests through a
`CatalogStore`, shipping (`transfer/`) adds a target's catalog, replay reads one.
"""
