"""The per-mailbox full-text index: its merge setting and that documents stay searchable."""

from __future__ import annotations

from pathlib import Path

from standby.store.index import AUTOMERGE, Doc, MailboxIndex


def _automerge(idx: MailboxIndex) -> int | None:
    row = idx.db.execute("SELECT v FROM docs_config WHERE k = 'automerge'").fetchone()
    return None if row is None else int(row[0])


def test_new_index_merges_eight_segments_at_a_time_and_keeps_its_setting(tmp_path: Path) -> None:
    p = tmp_path / "index.sqlite"
    idx = MailboxIndex(p)
    assert _automerge(idx) == AUTOMERGE == 8
    idx.db.execute("INSERT INTO docs (docs, rank) VALUES ('automerge', 2)")  # an operator's
    idx.close()
    again = MailboxIndex(p)
    assert _automerge(again) == 2, "reopening an index does not reset its merge setting"
    again.close()


def test_documents_inserted_in_many_transactions_are_all_found(tmp_path: Path) -> None:
    idx = MailboxIndex(tmp_path / "index.sqlite")
    for t in range(40):  # more segments than one merge level holds
        idx.begin()
        for i in range(5):
            n = t * 5 + i + 300
            idx.put(Doc(n, 5, 2, n, f"subject {n}", "a@example.com", "b@example.com",
                        f"quarterly budget word{n} meeting"))
        idx.set_hwm(t + 1)
        idx.commit()
    assert sorted(idx.search("budget", limit=1000)) == list(range(300, 500))
    assert idx.search("word417") == [417]
    assert idx.hwm == 40
    idx.close()
