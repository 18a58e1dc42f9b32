"""The reference mailbox store: the primary that writes the four volumes (DESIGN.md §1).

- `site`: the open handles of one set of volumes (MariaDB, blobs, index, directory, op effects,
  the volumes lock, the replay marker) — what every process working on a store opens;
- `mariadb`, `schema`: the private MariaDB on the db volume and Zimbra's schema;
- `blobs`, `index`, `directory`: the blob store, the per-mailbox full-text indexes, the accounts;
- `effects`: the one definition of each redo op's effect on the volumes, shared by the store,
  crash recovery and both replay engines; its database side in `statements` (the change number
  gate and the ops the store writes), `mailops` (Zimbra's other mail-item ops), `itemsql` (the
  statement shapes they share) and `shapes` (the rows the fast engine's model writes too); the
  rules both engines apply in `itemrules` (copies, drafts), `mailbox_config` (config sections)
  and `purge` (message lifetimes); `mime`, `messages`: message parsing and generation;
- `mailbox`: the Mailbox API (log, apply, commit); `service`: the store process (the mailboxd
  analog) serving it on a socket; `client`, `control`: talking to and starting/stopping it;
- `recovery`: crash recovery at start-up; `loadgen`: realistic traffic; `digest`: a canonical
  digest of a store, to compare two.
"""
