"""A mailbox's config sections (Zimbra's `zimbra.mailbox_metadata`): what SetConfig and
DeleteConfig do, as the one statement each runs, for both engines.

`Mailbox.setConfig` -> `DbMailbox.updateConfig`: a config stores the section's Metadata as
`new Metadata(text).toString()` writes it (REPLACE INTO); an empty config deletes the section,
matched against `section.toUpperCase()` (Zimbra's table compares case-insensitively, and so
does this one's `section` column, so that delete finds the section). `Mailbox.deleteConfig` ->
`DbMailbox.deleteConfig`: every section LIKE the op's pattern (ActiveSync's
"<device id>%"). Config metadata that does not decode fails the op in Zimbra; here it changes
nothing and is reported.

The statements are not folded: the table's case-insensitive collation decides what a section
name matches, so the fast engine runs them in log order too, in its chunk's transaction.
"""

from __future__ import annotations

from typing import Any

from standby.redolog import metadata
from standby.redolog.ops import DeleteConfig, SetConfig

TABLE = "zimbra.mailbox_metadata"
SECTION_MAX = 64  # the column's width: a longer name fails Zimbra's statement too
ConfigOp = SetConfig | DeleteConfig


def statement(mailbox_id: int, op: ConfigOp) -> tuple[str, tuple[Any, ...]] | str:
    """(SQL, args) for the op, or why it changes nothing."""
    if isinstance(op, DeleteConfig):
        return (f"DELETE FROM {TABLE} WHERE mailbox_id = %s AND section LIKE %s",
                (mailbox_id, op.section))
    if len(op.section) > SECTION_MAX:
        return f"SetConfig: section name longer than {SECTION_MAX} characters, left unchanged"
    if not op.config:
        return (f"DELETE FROM {TABLE} WHERE mailbox_id = %s AND section = %s",
                (mailbox_id, op.section.upper()))
    meta = metadata.parse_or_none(op.config)
    if meta is None:
        return f"SetConfig {op.section!r}: the config is not Zimbra metadata, left unchanged"
    return (f"REPLACE INTO {TABLE} (mailbox_id, section, metadata) VALUES (%s, %s, %s)",
            (mailbox_id, op.section, metadata.to_string(meta)))


def apply(cur: Any, mailbox_id: int, op: ConfigOp) -> str:
    """Run the op's statement; returns "" or why it changed nothing."""
    st = statement(mailbox_id, op)
    if isinstance(st, str):
        return st
    cur.execute(*st)
    return ""
