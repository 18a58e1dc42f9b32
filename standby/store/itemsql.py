"""The statement shapes every op's database effect is made of, said once: rows inserted from a
{column: value} map, items updated by id with the op's change number and time stamped on them,
rows selected in `MAIL_ITEM_COLUMNS` order, items hard-deleted with their tags and tombstones,
folder subtrees, tag ids by name, the item id counter raised.

`ItemSQL` is the base of `statements.Statements` (through `mailops.MailOpStatements`); its
methods run inside the op's transaction on the cursor they are given and never commit.
Invariant: an item an op touches has `mod_metadata` and `change_date` set to the op's change
number and time (`update_items(touch=True)`), as Zimbra's `MailItem.markItemModified` does;
only a system flag (\\Copied) and a row rewritten whole (SaveDraft) are written without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from standby.redolog.ops import TYPE_FOLDER
from standby.redolog.record import Record
from standby.store.blobs import BlobStore
from standby.store.schema import MAIL_ITEM_COLUMNS, group_of
from standby.store.shapes import SYSTEM_FOLDER_IDS, Outcome


def marks(n: int | Sequence[Any]) -> str:
    """`%s,%s,...` for n values (or for each value of a sequence)."""
    return ",".join(["%s"] * (n if isinstance(n, int) else len(n)))


def tombstone_ids(cur: Any, groups: int, m: int, change: int) -> list[int]:
    """The ids the op with this change number deleted, as its tombstones record them."""
    cur.execute(f"SELECT ids FROM mboxgroup{group_of(m, groups)}.tombstone WHERE"
                " mailbox_id = %s AND sequence = %s", (m, change))
    return sorted({int(i) for (ids,) in cur.fetchall() for i in (ids or "").split(",") if i})


class ItemSQL:
    """The shared statements (mixed into `effects.Effects`, which sets these attributes)."""

    groups: int
    blobs: BlobStore
    warn: Callable[[str], None]

    def _t(self, mailbox_id: int, table: str) -> str:
        return f"mboxgroup{group_of(mailbox_id, self.groups)}.{table}"

    def insert(self, cur: Any, m: int, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows given as {column: value} (every row with the same columns)."""
        if not rows:
            return
        cols = list(rows[0])
        sql = (f"INSERT INTO {self._t(m, table)} ({', '.join(cols)}) VALUES ({marks(cols)})")
        if len(rows) == 1:
            cur.execute(sql, tuple(rows[0].values()))
        else:
            cur.executemany(sql, [tuple(r[c] for c in cols) for r in rows])

    def update_items(self, cur: Any, rec: Record, ids: Iterable[int],
                     sets: Mapping[str, Any], *, type: int | None = None,
                     touch: bool = True) -> None:
        """Set columns of these items of the op's mailbox (of `type`, if given); with `touch`,
        also their `mod_metadata` and `change_date` (the op's change number and time)."""
        ids = list(ids)
        if touch:
            sets = {**sets, "mod_metadata": rec.change_id, "change_date": rec.tstamp // 1000}
        if not ids or not sets:
            return
        of_type = f" AND type = {int(type)}" if type is not None else ""
        cur.execute(f"UPDATE {self._t(rec.mailbox_id, 'mail_item')} SET"
                    f" {', '.join(f'{k} = %s' for k in sets)} WHERE mailbox_id = %s"
                    f" AND id IN ({marks(ids)}){of_type}",
                    (*sets.values(), rec.mailbox_id, *ids))

    def select_rows(self, cur: Any, m: int, ids: Iterable[int]) -> dict[int, list[Any]]:
        """The rows of these ids, in `MAIL_ITEM_COLUMNS` order, by id."""
        want = sorted(set(ids))
        if not want:
            return {}
        cur.execute(f"SELECT {', '.join(MAIL_ITEM_COLUMNS)} FROM {self._t(m, 'mail_item')}"
                    f" WHERE mailbox_id = %s AND id IN ({marks(want)})", (m, *want))
        return {r[1]: list(r) for r in cur.fetchall()}

    def bump_item_ids(self, cur: Any, m: int, item_id: int) -> None:
        """Raise the mailbox's item id counter to at least `item_id`."""
        cur.execute("UPDATE zimbra.mailbox SET item_id_checkpoint ="
                    " GREATEST(item_id_checkpoint, %s) WHERE id = %s", (item_id, m))

    def subfolders(self, cur: Any, m: int, folder_id: int) -> list[int]:
        """Folders strictly below `folder_id`."""
        out: list[int] = []
        frontier = [folder_id]
        while frontier:
            cur.execute(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                        f" type = {TYPE_FOLDER} AND folder_id IN ({marks(frontier)})"
                        " AND id <> folder_id", (m, *frontier))
            frontier = [r[0] for r in cur.fetchall() if r[0] not in SYSTEM_FOLDER_IDS]
            out.extend(frontier)
        return out

    def items_in(self, cur: Any, m: int, folder_ids: Sequence[int]) -> list[int]:
        """The non-folder items directly in these folders, by id."""
        cur.execute(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                    f" folder_id IN ({marks(folder_ids)}) AND type <> {TYPE_FOLDER} ORDER BY id",
                    (m, *folder_ids))
        return [r[0] for r in cur.fetchall()]

    def hard_delete(self, cur: Any, rec: Record, ids: list[int], out: Outcome) -> None:
        """Delete items by id: rows, tags, tombstones (one per type), blob paths noted."""
        if not ids:
            return
        m = rec.mailbox_id
        items = self._t(m, "mail_item")
        cur.execute(f"SELECT id, type, mod_content, blob_digest FROM {items}"
                    f" WHERE mailbox_id = %s AND id IN ({marks(ids)}) ORDER BY id", (m, *ids))
        rows = cur.fetchall()
        if not rows:
            return
        found = [r[0] for r in rows]
        cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                    f" AND item_id IN ({marks(found)})", (m, *found))
        cur.execute(f"DELETE FROM {items} WHERE mailbox_id = %s AND id IN ({marks(found)})",
                    (m, *found))
        by_type: dict[int, list[int]] = {}
        for iid, typ, mod_content, digest in rows:
            by_type.setdefault(typ, []).append(iid)
            if digest:
                out.blob_deletes.append(self.blobs.path(m, iid, mod_content))
        self.insert(cur, m, "tombstone", [
            {"mailbox_id": m, "sequence": rec.change_id, "date": rec.tstamp // 1000,
             "type": typ, "ids": ",".join(map(str, tids))}
            for typ, tids in sorted(by_type.items())])

    def tag_ids(self, cur: Any, m: int, names: Sequence[str]) -> list[int]:
        if not names:
            return []
        cur.execute(f"SELECT id FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND"
                    f" name IN ({marks(names)})", (m, *names))
        return [r[0] for r in cur.fetchall()]

    def add_tags(self, cur: Any, m: int, names: Sequence[str], item_ids: list[int]) -> None:
        tag_ids = self.tag_ids(cur, m, names)
        if tag_ids and item_ids:
            cur.executemany(f"INSERT IGNORE INTO {self._t(m, 'tagged_item')} (mailbox_id, tag_id,"
                            " item_id) VALUES (%s, %s, %s)",
                            [(m, t, i) for t in tag_ids for i in item_ids])

    def refused(self, rec: Record, why: str, out: Outcome, error: bool = True) -> None:
        """An op Zimbra's redo() would refuse changes nothing; the change number still counts."""
        msg = f"{rec.op.NAME} mailbox {rec.mailbox_id} change {rec.change_id}: {why}"
        self.warn(msg)
        if error:
            out.error = msg
