"""Zimbra's database schema, the subset the store uses, with Zimbra's names (zm-db-conf `db.sql`).

`zimbra`: `volume`, `current_volumes`, `mailbox`, `mailbox_metadata`, `deleted_account`, `config`.
`mboxgroupN` (N = (mailbox_id - 1) % groups + 1): `mail_item`, `tag`, `tagged_item`, `tombstone`,
`revision`.

Two departures, both documented in README: `mailbox.change_checkpoint` holds the exact highest
change number applied to the mailbox (Zimbra rounds it up to a checkpoint), because replay uses it
to skip ops the database has already seen; and cached counters (folder/tag item and unread counts)
are left at zero, since they are derivable.
"""

from __future__ import annotations

from typing import Any

ZIMBRA_DB = "zimbra"

ZIMBRA_TABLES = (
    """CREATE TABLE IF NOT EXISTS volume (
  id                     TINYINT NOT NULL PRIMARY KEY,
  type                   TINYINT NOT NULL,
  name                   VARCHAR(255) NOT NULL UNIQUE,
  path                   TEXT NOT NULL,
  file_bits              SMALLINT NOT NULL,
  file_group_bits        SMALLINT NOT NULL,
  mailbox_bits           SMALLINT NOT NULL,
  mailbox_group_bits     SMALLINT NOT NULL,
  compress_blobs         BOOLEAN NOT NULL,
  compression_threshold  BIGINT NOT NULL,
  metadata               MEDIUMTEXT,
  store_type             TINYINT NOT NULL DEFAULT 1,
  store_manager_class    VARCHAR(255)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS current_volumes (
  message_volume_id            TINYINT NOT NULL,
  secondary_message_volume_id  TINYINT,
  index_volume_id              TINYINT NOT NULL,
  next_mailbox_id              INTEGER UNSIGNED NOT NULL
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS mailbox (
  id                  INTEGER UNSIGNED NOT NULL PRIMARY KEY,
  group_id            INTEGER UNSIGNED NOT NULL,
  account_id          VARCHAR(127) NOT NULL,
  index_volume_id     TINYINT NOT NULL,
  item_id_checkpoint  INTEGER UNSIGNED NOT NULL DEFAULT 0,
  contact_count       INTEGER UNSIGNED DEFAULT 0,
  size_checkpoint     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  change_checkpoint   INTEGER UNSIGNED NOT NULL DEFAULT 0,
  tracking_sync       INTEGER UNSIGNED NOT NULL DEFAULT 0,
  tracking_imap       BOOLEAN NOT NULL DEFAULT 0,
  last_backup_at      INTEGER UNSIGNED,
  comment             VARCHAR(255),
  last_soap_access    INTEGER UNSIGNED NOT NULL DEFAULT 0,
  new_messages        INTEGER UNSIGNED NOT NULL DEFAULT 0,
  version             VARCHAR(16),
  last_purge_at       INTEGER UNSIGNED NOT NULL DEFAULT 0,
  itemcache_checkpoint INTEGER UNSIGNED NOT NULL DEFAULT 0,
  UNIQUE INDEX i_account_id (account_id)
) ENGINE = InnoDB""",
    # A mailbox's config sections (SetConfig). Zimbra's `zimbra` database defaults to utf8's
    # case-insensitive collation and Mailbox.setConfig relies on it (it deletes a section by
    # its upper-case name), so the section column keeps that collation here.
    """CREATE TABLE IF NOT EXISTS mailbox_metadata (
  mailbox_id  INTEGER UNSIGNED NOT NULL,
  section     VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,
  metadata    MEDIUMTEXT,
  PRIMARY KEY (mailbox_id, section)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS deleted_account (
  email        VARCHAR(255),
  account_id   VARCHAR(127) NOT NULL,
  mailbox_id   INTEGER UNSIGNED NOT NULL PRIMARY KEY,
  deleted_at   INTEGER UNSIGNED NOT NULL
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS config (
  name         VARCHAR(255) NOT NULL PRIMARY KEY,
  value        TEXT,
  description  TEXT,
  modified     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE = InnoDB""",
)

GROUP_TABLES = (
    """CREATE TABLE IF NOT EXISTS mail_item (
  mailbox_id    INTEGER UNSIGNED NOT NULL,
  id            INTEGER UNSIGNED NOT NULL,
  type          TINYINT NOT NULL,
  parent_id     INTEGER UNSIGNED,
  folder_id     INTEGER UNSIGNED,
  prev_folders  TEXT,
  index_id      INTEGER UNSIGNED,
  imap_id       INTEGER UNSIGNED,
  date          INTEGER UNSIGNED NOT NULL,
  size          BIGINT UNSIGNED NOT NULL,
  locator       VARCHAR(1024),
  blob_digest   VARCHAR(44) BINARY,
  unread        INTEGER UNSIGNED,
  flags         INTEGER NOT NULL DEFAULT 0,
  tags          BIGINT NOT NULL DEFAULT 0,
  tag_names     TEXT,
  sender        VARCHAR(128),
  recipients    VARCHAR(128),
  subject       TEXT,
  name          VARCHAR(255),
  metadata      MEDIUMTEXT,
  mod_metadata  INTEGER UNSIGNED NOT NULL,
  change_date   INTEGER UNSIGNED,
  mod_content   INTEGER UNSIGNED NOT NULL,
  uuid          VARCHAR(127),
  PRIMARY KEY (mailbox_id, id),
  INDEX i_folder_id_date (mailbox_id, folder_id, date),
  INDEX i_mod_metadata (mailbox_id, mod_metadata),
  UNIQUE INDEX i_name_folder_id (mailbox_id, folder_id, name)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS tag (
  mailbox_id    INTEGER UNSIGNED NOT NULL,
  id            INTEGER NOT NULL,
  name          VARCHAR(128) NOT NULL,
  color         BIGINT,
  item_count    INTEGER NOT NULL DEFAULT 0,
  unread        INTEGER NOT NULL DEFAULT 0,
  listed        BOOLEAN NOT NULL DEFAULT FALSE,
  sequence      INTEGER UNSIGNED NOT NULL,
  policy        VARCHAR(1024),
  PRIMARY KEY (mailbox_id, id),
  UNIQUE INDEX i_tag_name (mailbox_id, name)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS tagged_item (
  mailbox_id    INTEGER UNSIGNED NOT NULL,
  tag_id        INTEGER NOT NULL,
  item_id       INTEGER UNSIGNED NOT NULL,
  PRIMARY KEY (mailbox_id, tag_id, item_id),
  INDEX i_tagged_item (mailbox_id, item_id)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS tombstone (
  mailbox_id    INTEGER UNSIGNED NOT NULL,
  sequence      INTEGER UNSIGNED NOT NULL,
  date          INTEGER UNSIGNED NOT NULL,
  type          TINYINT,
  ids           TEXT,
  INDEX i_sequence (mailbox_id, sequence)
) ENGINE = InnoDB""",
    """CREATE TABLE IF NOT EXISTS revision (
  mailbox_id    INTEGER UNSIGNED NOT NULL,
  item_id       INTEGER UNSIGNED NOT NULL,
  version       INTEGER UNSIGNED NOT NULL,
  date          INTEGER UNSIGNED NOT NULL,
  size          BIGINT UNSIGNED NOT NULL,
  locator       VARCHAR(1024),
  blob_digest   VARCHAR(44) BINARY,
  name          VARCHAR(255),
  metadata      MEDIUMTEXT,
  mod_metadata  INTEGER UNSIGNED NOT NULL,
  change_date   INTEGER UNSIGNED,
  mod_content   INTEGER UNSIGNED NOT NULL,
  PRIMARY KEY (mailbox_id, item_id, version)
) ENGINE = InnoDB""",
)

# Columns in table order, used by digest and bulk loaders.
MAIL_ITEM_COLUMNS = (
    "mailbox_id", "id", "type", "parent_id", "folder_id", "prev_folders", "index_id", "imap_id",
    "date", "size", "locator", "blob_digest", "unread", "flags", "tags", "tag_names", "sender",
    "recipients", "subject", "name", "metadata", "mod_metadata", "change_date", "mod_content",
    "uuid",
)
TAG_COLUMNS = ("mailbox_id", "id", "name", "color", "item_count", "unread", "listed", "sequence",
               "policy")
TAGGED_ITEM_COLUMNS = ("mailbox_id", "tag_id", "item_id")
TOMBSTONE_COLUMNS = ("mailbox_id", "sequence", "date", "type", "ids")
REVISION_COLUMNS = ("mailbox_id", "item_id", "version", "date", "size", "locator", "blob_digest",
                    "name", "metadata", "mod_metadata", "change_date", "mod_content")
MAILBOX_METADATA_COLUMNS = ("mailbox_id", "section", "metadata")
MAILBOX_COLUMNS = ("id", "group_id", "account_id", "index_volume_id", "item_id_checkpoint",
                   "contact_count", "size_checkpoint", "change_checkpoint", "tracking_sync",
                   "tracking_imap", "last_backup_at", "comment", "last_soap_access",
                   "new_messages", "version", "last_purge_at", "itemcache_checkpoint")
# Operational columns that do not describe mailbox content (left out of digests).
MAILBOX_VOLATILE = ("last_backup_at", "last_soap_access", "last_purge_at", "itemcache_checkpoint")

GROUP_TABLE_COLUMNS = {
    "mail_item": MAIL_ITEM_COLUMNS,
    "tag": TAG_COLUMNS,
    "tagged_item": TAGGED_ITEM_COLUMNS,
    "tombstone": TOMBSTONE_COLUMNS,
    "revision": REVISION_COLUMNS,
}

# Volume ids as Zimbra seeds them.
MESSAGE_VOLUME_ID = 1
INDEX_VOLUME_ID = 2
SCHEMA_VERSION = "standby-1"
# A table the store creates and drops to make InnoDB flush its log before a rollover (Zimbra's
# MySQL.flushToDisk trick); it comes and goes, so dumps leave it out.
FLUSH_TABLE = "zimbra.standby_flush_marker"


def group_of(mailbox_id: int, groups: int) -> int:
    """Zimbra's `DbMailbox.calculateMailboxGroupId`."""
    return (mailbox_id - 1) % groups + 1


def group_db(mailbox_id: int, groups: int) -> str:
    return f"mboxgroup{group_of(mailbox_id, groups)}"


def create(conn: Any, *, groups: int, blob_path: str, index_path: str,
           compress_blobs: bool = False, compression_threshold: int = 4096) -> bool:
    """Create the schema if missing; True if it was created now. Idempotent."""
    cur = conn.cursor()
    cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                (ZIMBRA_DB,))
    if cur.fetchone():
        cur.execute(f"SELECT value FROM {ZIMBRA_DB}.config WHERE name = 'db.groups'")
        row = cur.fetchone()
        existing = int(row[0]) if row else None
        if existing is not None and existing != groups:
            from standby.errors import ConfigError

            raise ConfigError(
                f"store.mailbox_groups is {groups} but the database was created with {existing}",
                hint=f"set store.mailbox_groups = {existing}")
        for ddl in ZIMBRA_TABLES:  # tables added since the database was made
            cur.execute(ddl.replace("IF NOT EXISTS ", f"IF NOT EXISTS {ZIMBRA_DB}.", 1))
        conn.commit()
        return False
    cur.execute(f"CREATE DATABASE {ZIMBRA_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    cur.execute(f"USE {ZIMBRA_DB}")
    for ddl in ZIMBRA_TABLES:
        cur.execute(ddl)
    cur.executemany(
        "INSERT INTO volume (id, type, name, path, file_bits, file_group_bits, mailbox_bits,"
        " mailbox_group_bits, compress_blobs, compression_threshold) VALUES"
        " (%s, %s, %s, %s, 12, 8, 12, 8, %s, %s)",
        [(MESSAGE_VOLUME_ID, 1, "message1", blob_path, compress_blobs, compression_threshold),
         (INDEX_VOLUME_ID, 10, "index1", index_path, False, 0)],
    )
    cur.execute("INSERT INTO current_volumes VALUES (%s, NULL, %s, 1)",
                (MESSAGE_VOLUME_ID, INDEX_VOLUME_ID))
    cur.executemany("INSERT INTO config (name, value) VALUES (%s, %s)",
                    [("db.version", SCHEMA_VERSION), ("db.groups", str(groups))])
    for g in range(1, groups + 1):
        cur.execute(f"CREATE DATABASE mboxgroup{g} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cur.execute(f"USE mboxgroup{g}")
        for ddl in GROUP_TABLES:
            cur.execute(ddl)
    conn.commit()
    return True
