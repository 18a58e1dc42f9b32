"""A copy whose source is replaced later in the same chunk (fast engine, one large batch).

The source's first version is never written as a file by the fast engine (only what survives
the chunk is), so the copy's bytes must come from the log: for a contact (CreateContact, copied,
then ModifyContact) and for a draft (CreateMessage, copied, then SaveDraft). Both engines, with
`--index defer` and `--index now`, must leave the copy's blob with the source's first version,
and the same store as the naive engine's (the digest after the catch-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from standby.redolog.ops import (
    BODY_INLINE,
    FLAG_DRAFT,
    FLAG_FROM_ME,
    TYPE_CONTACT,
    TYPE_MESSAGE,
    CopyItem,
    CreateContact,
    CreateMessage,
    ModifyContact,
    SaveDraft,
)
from standby.store import blobs as blobmod
from standby.store.site import Site
from tests.replay_util import Lab, LogBuilder, digest, expected_store, zmplayredo

pytestmark = pytest.mark.services

V1 = b"BEGIN:VCARD\r\nFN:Ann Lee\r\nEND:VCARD\r\n"
V2 = b"BEGIN:VCARD\r\nFN:Ann Lee-Smith\r\nEND:VCARD\r\n"
D1 = b"From: a@x.org\r\nSubject: draft one\r\n\r\nqqone\r\n"
D2 = b"From: a@x.org\r\nSubject: draft two\r\n\r\nqqtwo\r\n"


def _build(logdir: Path) -> tuple[LogBuilder, dict[str, int]]:
    b = LogBuilder(logdir, seed=3)
    b.create_mailbox(1)
    ids: dict[str, int] = {}
    ids["contact"] = b.new_id(1)
    b.op(1, CreateContact(ids["contact"], 7, (("fullName", "Ann Lee"),), None, V1))
    ids["contact_copy"] = b.new_id(1)
    b.op(1, CopyItem(TYPE_CONTACT, 13, ((ids["contact"], ids["contact_copy"], "u-c"),)))
    b.op(1, ModifyContact(ids["contact"], (("fullName", "Ann Lee-Smith"),), V2))
    ids["draft"] = b.new_id(1)
    b.op(1, CreateMessage(":API:", b.now, False, blobmod.digest(D1), len(D1), ids["draft"], 6,
                          flags=FLAG_DRAFT | FLAG_FROM_ME, no_ical=True, body_type=BODY_INLINE,
                          data=D1))
    ids["draft_copy"] = b.new_id(1)
    b.op(1, CopyItem(TYPE_MESSAGE, 2, ((ids["draft"], ids["draft_copy"], "u-d"),)))
    b.op(1, SaveDraft(b.new_id(1), ":API:", b.now, False, blobmod.digest(D2), len(D2),
                      ids["draft"], -1, no_ical=True, body_type=BODY_INLINE, data=D2))
    b.close()
    return b, ids


def _blob(site: Site, item: int) -> bytes:
    (p,) = [p for p in site.blobs.mailbox_blobs(1) if p.name.startswith(f"{item}-")]
    return site.blobs.read(p)


@pytest.mark.parametrize("index", ["defer", "now"])
def test_copy_of_a_source_replaced_in_the_same_chunk(make_store, index: str) -> None:
    with Lab(make_store) as lab:
        logdir = lab.store("log").root / "crafted"
        logdir.mkdir()
        b, ids = _build(logdir)
        _, want = expected_store(lab, "expected", b.txns)
        t = lab.store(f"fast-{index}")
        s = zmplayredo(t.cfg, "--json", "--log-dir", logdir, "--index", index).assert_ok()\
            .summary
        assert s["engine"] == "fast" and s["errors"] == 0, s
        assert "missing-source" not in s["blob"], s["blob"]
        site = Site.open(t.settings)
        try:
            assert _blob(site, ids["contact_copy"]) == V1
            assert _blob(site, ids["contact"]) == V2
            assert _blob(site, ids["draft_copy"]) == D1
            assert _blob(site, ids["draft"]) == D2
        finally:
            site.close()
        got = digest(t)
        assert got.equal(want)["all"], (got.as_dict(), want.as_dict())
