"""Shipping: snapshot sets and redolog snapshots to a standby site, and back onto its volumes.

- `_base`: target URLs (`parse_url`, `within`), the `Target` and `ObjectStore` interfaces and
  the values a transfer passes around;
- `factory`: the composition root (the S3 client, stores, codecs, catalogs, a target by URL);
- targets: `objects` (snapshots as stored objects) over `s3` and `file` stores, `receive`
  (snapshots received by `zfs recv` / `btrfs receive`, here or over ssh; their catalog through
  `hostdir`);
- what travels: `tarstream` (dir snapshots), `codec` (zstd, AES-256-GCM, sha256), `parts`
  (multipart part sizes), `throttle` (rates);
- the commands' libraries: `ship` (plan, execute, per-target state and resume), `pull` (and
  `landing`, onto the standby's volumes), `verify`, `prune` (retention at a target);
- `s3_calls`: the one table of the S3 calls the S3 target makes, and the IAM policy of each role.

The target's catalog itself (its layout, manifests and shipment records) is
`standby.catalog.target`.
"""
