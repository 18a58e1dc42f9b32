"""The fast engine's database access on a real MariaDB: rows read back as JSON equal the rows
pymysql reads column by column, and rows written with LOAD DATA come back unchanged — with
NULLs, tabs, newlines, backslashes, quotes, four-byte characters and large numbers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from standby.replay.bulk import BulkWriter, DbRowSource, PrefetchedRows
from standby.replay.model import Changes
from standby.store.schema import MAIL_ITEM_COLUMNS
from standby.store.site import Site

pytestmark = pytest.mark.services

_TRICKY = ["plain", "tab\there", "new\nline", "back\\slash", 'quote " and \'', "emoji \U0001F600",
           "\\N", "NULL", "", "caf\u00e9 \u4e2d\u6587", "cr\r\nlf", "ends with \\"]


def _row(m: int, i: int, text: str | None) -> list[Any]:
    r: list[Any] = [None] * len(MAIL_ITEM_COLUMNS)
    c = {n: k for k, n in enumerate(MAIL_ITEM_COLUMNS)}
    r[c["mailbox_id"]], r[c["id"]], r[c["type"]] = m, i, 5
    r[c["folder_id"]], r[c["date"]], r[c["size"]] = 2, 1_700_000_000, 2**40 + i
    r[c["flags"]], r[c["tags"]] = -3 if i % 2 else 0, 2**62 + i
    r[c["mod_metadata"]], r[c["mod_content"]] = i, i
    r[c["blob_digest"]] = None if text is None else "A" * 43 + "="
    r[c["subject"]] = text
    r[c["sender"]] = None if text is None else text[:100]
    r[c["metadata"]] = text
    r[c["name"]] = None if text is None else f"{i}:{text}"
    return r


def test_rows_written_in_bulk_read_back_exactly(make_store) -> None:  # type: ignore[no-untyped-def]
    h = make_store("bulk")
    s = h.settings
    db = Site(s).db
    db.start()
    try:
        Site(s).ensure_schema()
        conn = db.connect()
        m = 7
        rows = [_row(m, 300 + k, t) for k, t in enumerate([*_TRICKY, None])]
        ch = Changes(m, rows=rows)
        BulkWriter(conn, s.store.mailbox_groups).write([ch])
        src = DbRowSource(conn, s.store.mailbox_groups)
        ids = [r[1] for r in rows]
        by_json = sorted(src.items(m, ids), key=lambda r: r[1])
        by_columns = sorted(src._rows(f"SELECT {', '.join(MAIL_ITEM_COLUMNS)} FROM"
                                      f" {src._t(m, 'mail_item')} WHERE mailbox_id = %s",
                                      (m,)), key=lambda r: r[1])
        assert by_json == by_columns == rows
        assert sorted(src.items_in_folders(m, [2]), key=lambda r: r[1]) == rows
        assert src.items(m, [999_999]) == []
        assert src.folders(m) == []
        conn.close()
    finally:
        db.stop()


def test_prefetched_rows_answer_as_the_database_does(make_store: Any) -> None:
    """Rows of many mailboxes over several mboxgroup databases, with tags: what `PrefetchedRows`
    read up front (and what it asks the database for afterwards) equals `DbRowSource`'s
    answer to each question, for ids asked up front, ids not asked, and ids that do not
    exist."""
    h = make_store("prefetch")
    s = h.settings
    db = Site(s).db
    db.start()
    try:
        Site(s).ensure_schema()
        conn = db.connect()
        groups = s.store.mailbox_groups
        boxes = list(range(1, 3 * groups + 2))  # every group, some twice or more
        changes = []
        for m in boxes:
            rows = [_row(m, 300 + k, t) for k, t in enumerate(_TRICKY[: 3 + m % 5])]
            tags: list[list[Any]] = [[m, 260 + t, f"tag{t}", t, 0, 0, 0, 1, None]
                                     for t in range(m % 3)]
            tagged = [(m, 260 + t, 300 + k) for t in range(m % 3) for k in range(2)]
            changes.append(Changes(m, rows=rows, tags=tags, tagged=tagged))
        BulkWriter(conn, groups).write(changes)
        base = DbRowSource(conn, groups)
        pre = PrefetchedRows(base)
        asked = {m: {300, 301, 302, 999} for m in boxes[::2]}
        pre.load(asked)
        for m in boxes:
            for ids in ([300, 301], [302, 303, 304], [999, 300], list(range(300, 320))):
                got = sorted(pre.items(m, ids), key=lambda r: r[1])
                assert got == sorted(base.items(m, ids), key=lambda r: r[1]), (m, ids)
                assert sorted(pre.tagged(m, ids)) == sorted(base.tagged(m, ids)), (m, ids)
            assert sorted(pre.tags(m)) == sorted(base.tags(m)), m
            assert pre.folders(m) == base.folders(m)
        conn.close()
    finally:
        db.stop()


class _Conn:
    """Counts commits and rollbacks (the retry logic only; the statements are faked)."""

    def __init__(self) -> None:
        self.commits = self.rollbacks = 0

    def cursor(self) -> Any:
        return self

    def execute(self, sql: str, args: Any = None) -> None:
        pass  # the session settings BulkWriter makes

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        self.rollbacks += 1


@pytest.mark.parametrize("errno_", [1213, 1205, 1062])
def test_a_deadlocked_chunk_is_retried_whole_other_errors_are_not(
        errno_: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _Conn()
    w = BulkWriter(conn, groups=1, tmpdir=tmp_path)
    calls: list[int] = []

    def flaky(cur: object, changes: list[object]) -> None:
        calls.append(w.rows_loaded)
        w.rows_loaded += 10  # what a load counted before InnoDB rolled the victim back
        if len(calls) < 3:
            raise pymysql.err.OperationalError(errno_, "Deadlock found when trying to get lock")

    monkeypatch.setattr(w, "_write", flaky)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    if errno_ == 1062:
        with pytest.raises(pymysql.err.OperationalError):
            w.write([])
        assert (len(calls), conn.commits, conn.rollbacks) == (1, 0, 1)
        return
    w.write([])
    assert calls == [0, 0, 0], "each attempt starts from the rows counted before the chunk"
    assert (conn.commits, conn.rollbacks, w.rows_loaded) == (1, 2, 10)
