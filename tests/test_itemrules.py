"""The row rules of CopyItem and SaveDraft (`store.itemrules`) and the config statements
(`store.mailbox_config`), as pure functions.

- prev_folders grows as `DbMailItem.findPrevFolders` (Hypothesis: at most six entries, the
  newest last, the older ones kept in order).
- A copy takes the source's row with Zimbra's changes, shares the index entry only for an
  immutable message outside Junk, and a refusal names the first thing Zimbra trips on.
- A rewritten draft takes the new body's size, digest and time, its own id as imap id.
- SetConfig stores `new Metadata(text).toString()` (Hypothesis round trip), deletes by the
  upper-cased name; DeleteConfig deletes LIKE its pattern; undecodable metadata and too long
  names change nothing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from standby.redolog import metadata
from standby.redolog.ops import (
    FLAG_ATTACHED,
    FLAG_DRAFT,
    FLAG_FLAGGED,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    TYPE_TAG,
    TYPE_UNKNOWN,
    CopyItem,
    DeleteConfig,
    SetConfig,
)
from standby.store import itemrules, mailbox_config
from standby.store.itemrules import C, FLAG_COPIED
from standby.store.schema import MAIL_ITEM_COLUMNS


def _row(**kw: Any) -> list[Any]:
    r: list[Any] = [None] * len(MAIL_ITEM_COLUMNS)
    base = dict(mailbox_id=1, id=300, type=TYPE_MESSAGE, folder_id=2, index_id=300, imap_id=300,
                date=1000, size=5, locator="1", blob_digest="dg", unread=1, flags=FLAG_FLAGGED,
                tags=0, sender="a@x", recipients="b@x", subject="hi", metadata="d1:ci3ee",
                mod_metadata=7, change_date=1000, mod_content=7, uuid="u")
    base.update(kw)
    for k, v in base.items():
        r[C[k]] = v
    return r


@given(changes=st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 999)), max_size=12))
def test_prev_folders_keep_the_last_six(changes: list[tuple[int, int]]) -> None:
    prev: str | None = None
    seen: list[str] = []
    for change, folder in changes:
        prev = itemrules.prev_folders(prev, change, folder)
        seen.append(f"{change}:{folder}")
        assert prev.split(";") == seen[-6:]


def test_a_copy_is_the_source_row_with_zimbras_changes() -> None:
    src = _row()
    copy = itemrules.copy_row(src, 400, "u-400", 262, 50, 1_700_000_123_456)
    want = dict(zip(MAIL_ITEM_COLUMNS, src))
    want.update(id=400, parent_id=None, folder_id=262, prev_folders="50:2", index_id=300,
                imap_id=400, flags=FLAG_FLAGGED | FLAG_COPIED, recipients=None, uuid="u-400",
                mod_metadata=50, change_date=1_700_000_123, mod_content=50)
    assert dict(zip(MAIL_ITEM_COLUMNS, copy)) == want
    assert itemrules.source_flags(src, 262) == FLAG_FLAGGED | FLAG_COPIED
    # Into Junk, a draft, a contact: an index entry of its own, no \Copied.
    for s, dest in ((src, 4), (_row(flags=FLAG_DRAFT | FLAG_COPIED), 262),
                    (_row(type=TYPE_CONTACT), 7)):
        c = itemrules.copy_row(s, 401, None, dest, 51, 0)
        assert c[C["index_id"]] == 401 and not c[C["flags"]] & FLAG_COPIED
        assert itemrules.source_flags(s, dest) == s[C["flags"]]


def test_copy_refusals_in_zimbras_order() -> None:
    rows = {2: _row(id=2, type=TYPE_FOLDER), 300: _row(), 301: _row(id=301),
            302: _row(id=302, type=TYPE_TAG), 303: _row(id=303, type=TYPE_CONTACT)}
    types = itemrules.row_types(rows)

    def why(typ: int, dest: int, *entries: tuple[int, int]) -> tuple[str, bool]:
        return itemrules.copy_refusal(CopyItem(typ, dest, tuple((s, c, None)
                                                                for s, c in entries)), types)

    assert why(TYPE_MESSAGE, 2, (300, 400), (301, 401)) == ("", False)
    assert why(TYPE_UNKNOWN, 2, (300, 400), (303, 401)) == ("", False)
    assert why(TYPE_MESSAGE, 9, (300, 400)) == ("no folder 9", True)
    assert why(TYPE_MESSAGE, 300, (301, 400)) == ("no folder 300", True)
    assert why(TYPE_MESSAGE, 2, (300, 400), (999, 401)) == ("no item 999 of type 5", True)
    assert why(TYPE_CONTACT, 2, (300, 400)) == ("no item 300 of type 6", True)
    assert why(TYPE_UNKNOWN, 2, (302, 400)) == ("item 302 cannot be copied", True)
    # A copy id taken: Zimbra's ALREADY_EXISTS, which its redo() lets pass.
    assert why(TYPE_MESSAGE, 2, (300, 301)) == ("item 301 already exists", False)
    # A missing source is found before a taken copy id (getItemById of all sources first).
    assert why(TYPE_MESSAGE, 2, (300, 301), (998, 402))[0] == "no item 998 of type 5"


def test_a_draft_takes_its_new_body() -> None:
    d = _row(flags=FLAG_DRAFT | FLAG_ATTACHED, imap_id=999)
    assert itemrules.is_draft(d) and not itemrules.is_draft(_row()) \
        and not itemrules.is_draft(None)
    new = itemrules.draft_row(d, size=77, digest="new", change=60, tstamp=1_700_000_555_000,
                              has_attachment=False)
    want = dict(zip(MAIL_ITEM_COLUMNS, d))
    want.update(size=77, blob_digest="new", locator="1", date=1_700_000_555, imap_id=300,
                flags=FLAG_DRAFT, mod_metadata=60, change_date=1_700_000_555, mod_content=60)
    assert dict(zip(MAIL_ITEM_COLUMNS, new)) == want
    kept = itemrules.draft_row(d, size=1, digest="x", change=61, tstamp=0, has_attachment=None)
    assert kept[C["flags"]] == FLAG_DRAFT | FLAG_ATTACHED


values = st.recursive(st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                      lambda v: st.lists(v, max_size=3)
                      | st.dictionaries(st.text(min_size=1, max_size=4), v, max_size=3),
                      max_leaves=6)


@given(section=st.text(min_size=1, max_size=64),
       meta=st.dictionaries(st.text(min_size=1, max_size=5).filter(lambda k: k != "v"),
                            values, max_size=4))
def test_set_config_stores_zimbras_metadata_text(section: str, meta: dict[str, Any]) -> None:
    st_ = mailbox_config.statement(7, SetConfig(section, metadata.encode(meta)))
    assert not isinstance(st_, str)
    sql, args = st_
    assert sql.startswith("REPLACE INTO zimbra.mailbox_metadata")
    assert args[:2] == (7, section)
    assert args[2] == metadata.to_string(meta) and metadata.parse(args[2]) == meta


def test_config_deletes_and_refusals() -> None:
    assert mailbox_config.statement(7, SetConfig("imap", "")) == (
        "DELETE FROM zimbra.mailbox_metadata WHERE mailbox_id = %s AND section = %s",
        (7, "IMAP"))
    assert mailbox_config.statement(7, DeleteConfig("dev1%")) == (
        "DELETE FROM zimbra.mailbox_metadata WHERE mailbox_id = %s AND section LIKE %s",
        (7, "dev1%"))
    assert "not Zimbra metadata" in str(mailbox_config.statement(7, SetConfig("s", "i5e")))
    assert "longer than 64" in str(mailbox_config.statement(7, SetConfig("s" * 65, "de")))
