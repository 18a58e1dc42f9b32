"""Snapshot sets and redolog snapshots of the store's four volumes (DESIGN.md §2).

- `_base`: the `SnapshotBackend` interface and the values backends exchange, and the optional
  `StreamingBackend` (send/receive streams, for shipping) that zfs and btrfs implement;
- `zfs` (with `zfs_cli`, its pure argv builders and parsers), `btrfs`, `lvm`, `ebs`, `dir`: one
  module per technology;
- `factory`: picks the backends a configuration needs (the composition root for boto3);
- `redo`: the redo position at a snapshot's moment (from the running store, or from disk);
- `quiesce`: holding the store's MariaDB still (BACKUP STAGE) and making its commits durable;
- `hooks`: pre/post hooks with a timeout;
- `plan`, `execute`: a set or redolog snapshot as a list of frozen steps, then running them;
  manifests go to a catalog (`standby/catalog/`);
- `sets`: the library entry points the CLI calls (plan or take, list, verify);
- `prune`: retention applied (the decision is `retention.plan_retention`, written beside it);
- `_fs`: which file system a path is on.
"""
