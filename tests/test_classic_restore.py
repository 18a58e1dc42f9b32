"""zmrestore's options on a real store: -rf, -br, -ca -pre, --skipDeletes,
--exclude-search-index, deleted accounts (and -skipDeletedAccounts), zmbackupabort -r."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from standby.classic import backup, control, redo, restore
from standby.classic.env import Env
from standby.fsutil import flock_held as held
from standby.redolog.ops import DeleteItem
from standby.replay.player import Player, Selection
from standby.store import schema
from standby.store.loadgen import run as loadgen
from tests.classic_util import digests, make_env

ITEM_COLS = "id, type, parent_id, folder_id, flags, unread, tags, subject, mod_metadata, " \
            "mod_content, blob_digest, size"


def _rows(env: Env, m: int) -> list[tuple[Any, ...]]:
    conn = env.site.connect()
    cur = conn.cursor()
    cur.execute(f"SELECT {ITEM_COLS} FROM {schema.group_db(m, env.site.groups)}.mail_item"
                " WHERE mailbox_id = %s ORDER BY id", (m,))
    rows = list(cur.fetchall())
    conn.close()
    return rows


def _blob_names(env: Env, m: int) -> set[tuple[str, bytes]]:
    out = set()
    for folder, names in env.site.blobs.mailbox_blob_names(m):
        for n in names:
            out.add((n, env.site.blobs.read(Path(folder) / n)))
    return out


def _load(h: Any, ops: int, seed: int, accounts: int = 4) -> None:
    r = loadgen(h.settings.store_socket, accounts=accounts, ops=ops, seed=seed, workers=2)
    assert r.errors == 0, r.error_samples


def test_restore_options(make_store, tmp_path: Path) -> None:
    h = make_store("primary", sections={"redolog": {"rollover_size_kb": 512}})
    h.start()
    env = make_env(h, tmp_path / "backup")
    _load(h, 200, 1)
    full = backup.run(env, backup.Request("full")).sessions[0]
    at_full = digests(h)
    _load(h, 200, 2)
    backup.run(env, backup.Request("incr"))
    at_incr = digests(h)
    _load(h, 150, 3)  # only in the server's archive and current log
    now = digests(h)
    accts = sorted(env.site.directory.accounts(), key=lambda a: a.email)
    x = accts[0]
    assert x.mailbox_id is not None
    one = (x.email,)

    # -rf: the full backup alone; -br: the redo logs in the backup only; then everything.
    restore.run(env, restore.Request(accounts=one, full_only=True), online=True)
    assert digests(h)[1][x.id] == at_full[1][x.id]
    restore.run(env, restore.Request(accounts=one, backup_redo_only=True), online=True)
    assert digests(h)[1][x.id] == at_incr[1][x.id]
    restore.run(env, restore.Request(accounts=one), online=True)
    assert digests(h) == now
    rows_now = {r[0] for r in _rows(env, x.mailbox_id)}

    # -ca -pre: a new account with the same content.
    out = restore.run(env, restore.Request(accounts=one, create=True, prefix="restored-"),
                      online=True)
    assert out.restored == ["restored-" + x.email]
    new = env.site.directory.get("restored-" + x.email)
    assert new.mailbox_id is not None and new.mailbox_id != x.mailbox_id
    assert _rows(env, new.mailbox_id) == _rows(env, x.mailbox_id)
    assert _blob_names(env, new.mailbox_id) == _blob_names(env, x.mailbox_id)
    with h.client() as c:  # the store serves the new account
        c.deliver(b"Subject: hello copy\r\n\r\nhi\r\n", [new.email])

    # --skipDeletes: what was deleted since the full backup is back.
    logs = redo.log_files(*_all_logs(env))
    deleted = {i for rec, _ in Player(Selection(mailbox_ids=frozenset({x.mailbox_id}))).play(logs)
               if isinstance(rec.op, DeleteItem) and rec.tstamp > full.start_ms
               for i in rec.op.ids}
    assert deleted, "the load deleted nothing to bring back"
    restore.run(env, restore.Request(accounts=one, skip_deletes=True), online=True)
    ids = {r[0] for r in _rows(env, x.mailbox_id)}
    assert deleted & ids and rows_now <= ids

    # --exclude-search-index: the rows come back; the index, marked for reindexing, holds only
    # what the replay indexed after the backup.
    restore.run(env, restore.Request(accounts=one, search_index=False), online=True)
    db = sqlite3.connect(env.site.index.path(x.mailbox_id))
    assert db.execute("SELECT value FROM meta WHERE key = 'reindex'").fetchone() == (1,)
    indexed = {r[0] for r in db.execute("SELECT id FROM items")}
    db.close()
    # Only items the replay wrote a document for (created, changed or indexed after the
    # backup began; a few seconds of margin for the replay's start) are in the index, and the
    # messages from before the backup are not.
    logs = redo.log_files(*_all_logs(env))
    later = set()
    for rec, _ in Player(Selection(mailbox_ids=frozenset({x.mailbox_id}))).play(logs):
        if rec.tstamp >= full.start_ms - 5000:
            op = rec.op
            later.update(i for i in (getattr(op, "msg_id", None), getattr(op, "contact_id", None),
                                     getattr(op, "item_id", None)) if i)
    assert indexed <= later, sorted(indexed - later)
    messages = {r[0] for r in _rows(env, x.mailbox_id) if r[1] == 5}
    assert messages - indexed, "the messages from before the backup must not be indexed"
    restore.run(env, restore.Request(accounts=one), online=True)
    assert digests(h)[1][x.id] == now[1][x.id]

    # A deleted account comes back (unless -skipDeletedAccounts).
    y = accts[1]
    with h.client() as c:
        c.call("delete_account", account=y.email)
    assert env.site.directory.find(y.email) is None
    out = restore.run(env, restore.Request(accounts=(y.email,), skip_deleted_accounts=True),
                      online=True)
    assert out.skipped == [y.email] and env.site.directory.find(y.email) is None
    out = restore.run(env, restore.Request(accounts=(y.email,)), online=True)
    assert out.restored == [y.email]
    assert env.site.directory.get(y.email).mailbox_id == y.mailbox_id
    assert digests(h)[1][y.id] == now[1][y.id]
    # -ra: the directory entry comes back too (here its status, changed since the backup).
    env.site.directory.set_status(y.email, "locked")
    restore.run(env, restore.Request(accounts=(y.email,), restore_account=True), online=True)
    assert env.site.directory.get(y.email).status == "active"

    # zmbackupabort -r: the restore stops after the account in hand and says what is left.
    _load(h, 120, 4, accounts=10)
    backup.run(env, backup.Request("incr"))
    everyone = [a.email for a in env.site.directory.accounts()]
    total, before = digests(h)
    box: dict[str, restore.Outcome] = {}
    t = threading.Thread(target=lambda: box.update(o=restore.run(
        env, restore.Request(accounts=None, continue_on_error=True), online=True)))
    t.start()
    deadline = time.monotonic() + 60
    while not held(env.settings.state_dir / "classic" / control.LOCK):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    left = control.abort_restore(env.settings.state_dir)
    t.join(120)
    out = box["o"]
    assert left and left == out.not_restored
    assert sorted(out.restored + out.not_restored) == sorted(everyone)
    assert digests(h) == (total, before)  # what was restored is whole, the rest untouched


def _all_logs(env: Env) -> tuple[dict[int, Path], list[int]]:
    found = redo.gather([env.target.redologs_dir], env.redolog_dir)
    return found, sorted(found)


def test_a_mailboxs_config_sections_are_backed_up_and_restored(make_store,
                                                                tmp_path: Path) -> None:
    """zimbra.mailbox_metadata (SetConfig's sections) is part of an account's backup: a
    restore of the full backup alone brings back the sections as they were, drops one made
    since, and leaves the other mailbox's alone."""
    h = make_store("primary")
    h.start()
    env = make_env(h, tmp_path / "backup")
    _load(h, 60, 7, accounts=2)
    x, y = sorted(env.site.directory.accounts(), key=lambda a: a.email)
    with h.client() as c:
        c.call("set_config", mailbox_id=x.mailbox_id, section="imap", config={"k": "v1"})
        c.call("set_config", mailbox_id=y.mailbox_id, section="imap", config={"k": "y1"})
    backup.run(env, backup.Request("full"))
    at_full = digests(h)
    with h.client() as c:
        c.call("set_config", mailbox_id=x.mailbox_id, section="imap", config={"k": "v2"})
        c.call("set_config", mailbox_id=x.mailbox_id, section="mobile", config={"a": "b"})
    changed = digests(h)
    assert changed[1][x.id] != at_full[1][x.id]
    restore.run(env, restore.Request(accounts=(x.email,), full_only=True), online=True)
    after = digests(h)
    assert after[1][x.id] == at_full[1][x.id]
    assert after[1][y.id] == changed[1][y.id]
    conn = env.site.connect()
    cur = conn.cursor()
    cur.execute("SELECT section FROM zimbra.mailbox_metadata WHERE mailbox_id = %s",
                (x.mailbox_id,))
    assert [r[0] for r in cur.fetchall()] == ["imap"]
    conn.close()
