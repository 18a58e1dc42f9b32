"""zmplayredo: replaying redo logs onto the standby's volumes (DESIGN.md §4).

- `player`: Zimbra's selection and commit semantics (an op runs when its CommitTxn is read);
- `engine`: the files a selection reads, the dry-run plan, and a replay run on a `Site`;
- `fast` (with `model`, `worker`, `bulk`): fold each mailbox's ops per batch and apply them in
  bulk from worker processes; `naive`: one op per transaction, the baseline;
- `result`: what a replay did, per volume, and its two phases;
- `catchup`: phase two of a failover, the index catch-up from the blob volume.
"""

# The fast engine's ops per chunk. Peak memory is set by it, not by the length of the log: about
# 0.75 GB plus 0.4 GB per 100,000 ops of loadgen's mix (mostly the text of the chunk's surviving
# messages waiting for the index). It also sets how much folds away: an item created and deleted
# within one chunk is never written, and a row touched many times in it is written once. On this
# project's 2-core machine 400,000 replays loadgen's mix about 1.5 times as fast as 100,000.
DEFAULT_CHUNK_OPS = 400_000
