"""Bulk database access for the fast engine: reading pre-state, writing folded changes.

Reads (`DbRowSource`) fetch a mailbox's rows by id, by folder, its folders, tags and tag
membership in a few statements. Writes (`BulkWriter`) take the `Changes` of many mailboxes and
apply them in one transaction: deletes of the touched pre-existing rows by primary key, then the
final rows with `LOAD DATA LOCAL INFILE` from tab-separated files on a RAM disk (`/dev/shm` when
there is one), then the mailbox rows' change and item checkpoints, then the config sections' statements in log
order (`store.mailbox_config`). The session runs at READ COMMITTED so two workers loading into
the same tables take no gap locks from each other.
"""

from __future__ import annotations

import json
import time
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pymysql

from standby.replay.model import Changes
from standby.store import mailbox_config
from standby.store.statements import FIRST_USER_ID, tombstone_ids
from standby.store.schema import (
    INDEX_VOLUME_ID,
    MAIL_ITEM_COLUMNS,
    SCHEMA_VERSION,
    TAG_COLUMNS,
    TOMBSTONE_COLUMNS,
    group_of,
)

_ITEM_COLS = ", ".join(MAIL_ITEM_COLUMNS)
_TAG_COLS = ", ".join(TAG_COLUMNS)
_ESC = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\0": "\\0", "\r": "\\r"})


def _field(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, str):
        return v.translate(_ESC)
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def tsv(rows: Iterable[Sequence[Any]]) -> str:
    """Rows in LOAD DATA's default text format (tab, newline, backslash escapes, \\N): the
    pure-Python reference of `tsv_bytes`."""
    out = []
    for r in rows:
        # The common types inline (ints and plain strings); the rest through `_field`.
        out.append("\t".join([
            v.translate(_ESC) if type(v) is str else
            str(v) if type(v) is int else _field(v) for v in r]))
    out.append("")
    return "\n".join(out)


def _tsv_py_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    return tsv(rows).encode("utf-8")


# The same rows as UTF-8 bytes, formatted in C when the extension was built (`setup.py`; it is
# a quarter of a worker's Python time in pure Python), else by the reference above.
try:
    from standby.replay._ctsv import tsv as tsv_bytes
    TSV_ENGINE = "c"
except ImportError:  # a source tree without the built extension: same output, slower
    tsv_bytes = _tsv_py_bytes
    TSV_ENGINE = "python"


T = TypeVar("T")


def _chunks(ids: Sequence[T], n: int = 1000) -> Iterable[Sequence[T]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


class DbRowSource:
    """`model.RowSource` over a pymysql connection.

    Rows asked for by id come back as one JSON array per statement of at most 1,000 ids
    (`JSON_ARRAYAGG` of a `JSON_ARRAY` per row), decoded by the C JSON parser: a replay reloads
    every row its ops touch, and pymysql's column-by-column decoding in Python costs several
    times more."""

    def __init__(self, conn: Any, groups: int) -> None:
        self.conn = conn
        self.groups = groups
        cur = conn.cursor()
        cur.execute("SET SESSION group_concat_max_len = 1073741824")  # JSON_ARRAYAGG's limit

    def _t(self, m: int, table: str) -> str:
        return f"mboxgroup{group_of(m, self.groups)}.{table}"

    def _rows(self, sql: str, args: Sequence[Any]) -> list[list[Any]]:
        cur = self.conn.cursor()
        cur.execute(sql, args)
        return [list(r) for r in cur.fetchall()]

    def items(self, m: int, ids: Iterable[int]) -> list[list[Any]]:
        out: list[list[Any]] = []
        cur = self.conn.cursor()
        for part in _chunks(sorted(set(ids))):
            q = ",".join(["%s"] * len(part))
            cur.execute(f"SELECT JSON_ARRAYAGG(JSON_ARRAY({_ITEM_COLS})) FROM"
                        f" {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND id IN ({q})",
                        (m, *part))
            row = cur.fetchone()
            if row and row[0]:
                out += json.loads(row[0])
        return out

    # A folder's items can be any number of rows, more than one JSON value may hold
    # (max_allowed_packet): these come back row by row.
    def items_in_folders(self, m: int, folder_ids: list[int]) -> list[list[Any]]:
        q = ",".join(["%s"] * len(folder_ids))
        return self._rows(f"SELECT {_ITEM_COLS} FROM {self._t(m, 'mail_item')} WHERE"
                          f" mailbox_id = %s AND folder_id IN ({q})", (m, *folder_ids))

    def folders(self, m: int) -> list[list[Any]]:
        return self._rows(f"SELECT {_ITEM_COLS} FROM {self._t(m, 'mail_item')} WHERE"
                          " mailbox_id = %s AND type = 1", (m,))

    def tagged(self, m: int, item_ids: Iterable[int]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for part in _chunks(sorted(set(item_ids))):
            q = ",".join(["%s"] * len(part))
            out += [(r[0], r[1]) for r in self._rows(
                f"SELECT tag_id, item_id FROM {self._t(m, 'tagged_item')} WHERE"
                f" mailbox_id = %s AND item_id IN ({q})", (m, *part))]
        return out

    def tags(self, m: int) -> list[list[Any]]:
        return self._rows(f"SELECT {_TAG_COLS} FROM {self._t(m, 'tag')} WHERE"
                          " mailbox_id = %s", (m,))

    def mailbox_states(self, ids: Sequence[int]) -> dict[int, tuple[int, int, str]]:
        """id -> (change_checkpoint, item_id_checkpoint, account_id) for existing mailboxes."""
        out: dict[int, tuple[int, int, str]] = {}
        for part in _chunks(sorted(set(ids))):
            q = ",".join(["%s"] * len(part))
            for r in self._rows("SELECT id, change_checkpoint, item_id_checkpoint, account_id"
                                f" FROM zimbra.mailbox WHERE id IN ({q})", part):
                out[r[0]] = (r[1], r[2], r[3])
        return out

    def tombstone_ids(self, m: int, change: int) -> list[int]:
        return tombstone_ids(self.conn.cursor(), self.groups, m, change)

    def deleted_mailboxes(self, ids: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for part in _chunks(sorted(set(ids))):
            q = ",".join(["%s"] * len(part))
            out |= {r[0] for r in self._rows(
                f"SELECT mailbox_id FROM zimbra.deleted_account WHERE mailbox_id IN ({q})",
                part)}
        return out


class PrefetchedRows:
    """`model.RowSource` for one chunk: the rows its ops name, their tags and every mailbox's
    tag table are read up front for all the chunk's mailboxes at once — a few statements that
    span the mboxgroup databases (`UNION ALL`) instead of several per mailbox, each of which
    costs a round trip to MariaDB. What was not read up front (folder trees, folder contents,
    rows found through them) is asked of the underlying `DbRowSource` as before. Valid while
    the database does not change, i.e. for one chunk's fold."""

    PART = 2000  # (mailbox, id) pairs per statement

    def __init__(self, base: DbRowSource) -> None:
        self.base = base
        self._items: dict[int, dict[int, list[Any]]] = {}  # mailbox -> id -> row
        self._asked: dict[int, set[int]] = {}  # mailbox -> ids read up front (found or not)
        self._tagged: dict[int, dict[int, list[tuple[int, int]]]] = {}  # m -> item -> pairs
        self._tags: dict[int, list[list[Any]]] = {}

    def load(self, wanted: dict[int, set[int]]) -> None:
        """Read the rows with these ids (per mailbox), their tag memberships and the mailboxes'
        tags."""
        t = self.base._t
        pairs = [(m, i) for m in sorted(wanted) for i in sorted(wanted[m])]
        for m in wanted:
            self._items[m] = {}
            self._asked[m] = set(wanted[m])
            self._tagged[m] = {}
            self._tags[m] = []
        cur = self.base.conn.cursor()
        for part in _chunks(pairs, self.PART):
            by_m: dict[int, list[int]] = {}
            for m, i in part:
                by_m.setdefault(m, []).append(i)
            sql, args = [], []
            for m, ids in by_m.items():
                sql.append(f"SELECT JSON_ARRAY({_ITEM_COLS}) AS j FROM {t(m, 'mail_item')}"
                           f" WHERE mailbox_id = %s AND id IN ({','.join(['%s'] * len(ids))})")
                args += [m, *ids]
            cur.execute(f"SELECT JSON_ARRAYAGG(j) FROM ({' UNION ALL '.join(sql)}) AS x", args)
            row = cur.fetchone()
            found: list[list[Any]] = json.loads(row[0]) if row and row[0] else []
            for r in found:
                self._items[r[0]][r[1]] = r
            tsql, targs = [], []
            for m, ids in by_m.items():
                tsql.append(f"SELECT mailbox_id, tag_id, item_id FROM {t(m, 'tagged_item')}"
                            f" WHERE mailbox_id = %s AND item_id IN"
                            f" ({','.join(['%s'] * len(ids))})")
                targs += [m, *ids]
            cur.execute(" UNION ALL ".join(tsql), targs)
            for m, tag_id, item_id in cur.fetchall():
                self._tagged[m].setdefault(item_id, []).append((tag_id, item_id))
        ms = sorted(wanted)
        for part_m in _chunks(ms, 500):
            cur.execute(" UNION ALL ".join(
                f"SELECT {_TAG_COLS} FROM {t(m, 'tag')} WHERE mailbox_id = %s" for m in part_m),
                list(part_m))
            for r in cur.fetchall():
                self._tags[r[0]].append(list(r))

    def items(self, m: int, ids: Iterable[int]) -> list[list[Any]]:
        asked = self._asked.get(m, set())
        have = self._items.get(m, {})
        want = set(ids)
        out = [have[i] for i in sorted(want & asked) if i in have]
        rest = want - asked
        return out + (self.base.items(m, rest) if rest else [])

    def items_in_folders(self, m: int, folder_ids: list[int]) -> list[list[Any]]:
        return self.base.items_in_folders(m, folder_ids)

    def folders(self, m: int) -> list[list[Any]]:
        return self.base.folders(m)

    def tagged(self, m: int, item_ids: Iterable[int]) -> list[tuple[int, int]]:
        asked = self._asked.get(m, set())
        pre = self._tagged.get(m, {})
        ids = set(item_ids)
        out = [p for i in sorted(ids & asked) for p in pre.get(i, ())]
        rest = ids - asked
        return out + (self.base.tagged(m, rest) if rest else [])

    def tags(self, m: int) -> list[list[Any]]:
        if m in self._tags:
            return [list(r) for r in self._tags[m]]
        return self.base.tags(m)


DEADLOCK_RETRIES = 5
RETRIED_ERRORS = frozenset({1213, 1205})  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
CONFIG_LOCK = "standby-replay-config"  # a MariaDB named lock: one worker's config step at once
CONFIG_LOCK_WAIT_S = 120


class BulkWriter:
    """Applies many mailboxes' `Changes` in one transaction."""

    def __init__(self, conn: Any, groups: int, tmpdir: Path | None = None) -> None:
        self.conn = conn
        self.groups = groups
        shm = Path("/dev/shm")
        self.tmpdir = tmpdir or (shm if shm.is_dir() and os.access(shm, os.W_OK)
                                 else Path(tempfile.gettempdir()))
        self._config_locked = False
        cur = conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.execute("SET SESSION unique_checks = 1, foreign_key_checks = 0")
        self.rows_loaded = 0

    def _load(self, cur: Any, table: str, columns: Sequence[str],
              rows: list[Sequence[Any]]) -> None:
        if not rows:
            return
        fd, name = tempfile.mkstemp(prefix="standby-load-", suffix=".tsv", dir=self.tmpdir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(tsv_bytes(rows))
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4"
                        f" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'"
                        f" LINES TERMINATED BY '\\n' ({', '.join(columns)})", (name,))
            self.rows_loaded += len(rows)
        finally:
            os.unlink(name)

    def write(self, changes: list[Changes]) -> None:
        """All of `changes` in one transaction. A deadlock with another worker's transaction
        (InnoDB rolls the victim back whole) is retried from the start, as InnoDB asks, a few
        times, after a pause that lets the other transaction finish."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            cur = self.conn.cursor()
            loaded = self.rows_loaded
            try:
                try:
                    self._write(cur, changes)
                    self.conn.commit()
                finally:
                    self._unlock_config(cur)
                return
            except pymysql.err.OperationalError as e:
                self.conn.rollback()
                self.rows_loaded = loaded
                if e.args[0] not in RETRIED_ERRORS or attempt == DEADLOCK_RETRIES:
                    raise
                time.sleep(0.2 * 2 ** attempt)
            except BaseException:
                self.conn.rollback()
                raise

    def _config(self, cur: Any, changes: list[Changes]) -> None:
        """The config sections' statements, in log order per mailbox, last but one in the
        transaction and one worker at a time (`CONFIG_LOCK`, held until the commit): their
        REPLACE and DELETE take next-key locks on the shared `mailbox_metadata` even at READ
        COMMITTED, so two workers doing them at once deadlock. Taken after every load, the lock
        is never waited for while this transaction holds a row another worker can be waiting
        for in its own config step."""
        todo = [(ch.mailbox_id, op) for ch in changes for op in ch.config]
        if not todo:
            return
        cur.execute("SELECT GET_LOCK(%s, %s)", (CONFIG_LOCK, CONFIG_LOCK_WAIT_S))
        if cur.fetchone()[0] != 1:
            raise pymysql.err.OperationalError(1205, f"lock {CONFIG_LOCK} not granted within "
                                                     f"{CONFIG_LOCK_WAIT_S} s")
        self._config_locked = True
        for m, op in todo:
            mailbox_config.apply(cur, m, op)

    def _unlock_config(self, cur: Any) -> None:
        if self._config_locked:
            self._config_locked = False
            try:
                cur.execute("SELECT RELEASE_LOCK(%s)", (CONFIG_LOCK,))
                cur.fetchall()
            except pymysql.err.Error:
                pass  # a session that is gone has released it (and the error is raised above)

    def _write(self, cur: Any, changes: list[Changes]) -> None:
        by_group: dict[int, list[Changes]] = {}
        for ch in changes:
            by_group.setdefault(group_of(ch.mailbox_id, self.groups), []).append(ch)
        next_mailbox = 0
        for g, chs in sorted(by_group.items()):
            db = f"mboxgroup{g}"
            items: list[Sequence[Any]] = []
            tagged: list[Sequence[Any]] = []
            tags: list[Sequence[Any]] = []
            tombs: list[Sequence[Any]] = []
            for ch in chs:
                m = ch.mailbox_id
                if ch.created:
                    next_mailbox = max(next_mailbox, m + 1)
                if ch.wipe:
                    for table in ("tagged_item", "tag", "tombstone", "revision", "mail_item"):
                        cur.execute(f"DELETE FROM {db}.{table} WHERE mailbox_id = %s", (m,))
                    cur.execute(f"DELETE FROM {mailbox_config.TABLE} WHERE mailbox_id = %s", (m,))
                    cur.execute("DELETE FROM zimbra.mailbox WHERE id = %s", (m,))
                    cur.execute("INSERT INTO zimbra.deleted_account (email, account_id,"
                                " mailbox_id, deleted_at) VALUES (NULL, %s, %s, %s)",
                                (ch.account_id, m, ch.deleted_at))
                    continue
                for part in _chunks(ch.delete_items):
                    q = ",".join(["%s"] * len(part))
                    cur.execute(f"DELETE FROM {db}.mail_item WHERE mailbox_id = %s AND id IN"
                                f" ({q})", (m, *part))
                for part in _chunks(ch.delete_tagged_for):
                    q = ",".join(["%s"] * len(part))
                    cur.execute(f"DELETE FROM {db}.tagged_item WHERE mailbox_id = %s AND"
                                f" item_id IN ({q})", (m, *part))
                for part in _chunks(ch.delete_tags):
                    q = ",".join(["%s"] * len(part))
                    cur.execute(f"DELETE FROM {db}.tag WHERE mailbox_id = %s AND id IN ({q})",
                                (m, *part))
                items.extend(ch.rows)
                tagged.extend(ch.tagged)
                tags.extend(ch.tags)
                tombs.extend(ch.tombstones)
                if ch.create_mailbox is not None:
                    cur.execute(
                        "INSERT INTO zimbra.mailbox (id, group_id, account_id, index_volume_id,"
                        " item_id_checkpoint, change_checkpoint, version) VALUES"
                        " (%s,%s,%s,%s,%s,%s,%s)",
                        (m, g, ch.create_mailbox[0], INDEX_VOLUME_ID,
                         max(ch.item_ckpt, FIRST_USER_ID), ch.hwm, SCHEMA_VERSION))
                elif ch.hwm_changed:
                    cur.execute("UPDATE zimbra.mailbox SET change_checkpoint = %s,"
                                " item_id_checkpoint = GREATEST(item_id_checkpoint, %s)"
                                " WHERE id = %s", (ch.hwm, ch.item_ckpt, m))
            self._load(cur, f"{db}.mail_item", MAIL_ITEM_COLUMNS, items)
            self._load(cur, f"{db}.tagged_item", ("mailbox_id", "tag_id", "item_id"), tagged)
            self._load(cur, f"{db}.tag", TAG_COLUMNS, tags)
            self._load(cur, f"{db}.tombstone", TOMBSTONE_COLUMNS, tombs)
        self._config(cur, changes)
        if next_mailbox:
            cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id ="
                        " GREATEST(next_mailbox_id, %s)", (next_mailbox,))
