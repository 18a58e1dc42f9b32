"""The directory: accounts, domains, classes of service and the configuration attributes
`zmprov mcf/ms` set (the store's LDAP stand-in).

A small SQLite database outside the four volumes, as Zimbra's LDAP lives outside the mailbox
server's volumes. `zmrestoreldap` restores it from a backup's directory dump (`export`/`load`).
Account ids are zimbraId-style UUID strings; the mailbox row in MariaDB refers to them.

Maintenance mode, across processes. A change to mailbox m happens inside `mailbox_gate(m)`: a
shared lock on byte m of `<directory>.locks`, taken without waiting (an open-file-description
lock, held by the file description rather than the process). A backup or restore working on the
mailbox holds the exclusive lock (`maintenance(m)`): taking it waits for the change in flight,
and while it is held every change is refused, as Zimbra refuses them for a mailbox in
maintenance. The lock dies with its process, so a killed backup leaves no account stuck. The
status an administrator sets (`zmprov ma ACCOUNT zimbraAccountStatus maintenance`, or the
domain's) refuses changes too; `set_status` returns once the change in flight is done. A restore
bumps the mailbox's epoch (`bump_epoch`) so the store reloads what it caches about it.

Accounts and classes of service carry attributes (`zmprov ma` / `zmprov mc`), string values by
Zimbra attribute name; an account's effective value is its own, else its COS's (Zimbra's
"accountInherited"), else the default COS value Zimbra declares. The purge reads the message
lifetimes this way (`lifetimes`, `retention`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from standby.errors import NotFound, StateConflict, UsageError
from standby.store.purge import Lifetimes, Retention

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS domain (name TEXT PRIMARY KEY, id TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'active')",
    "CREATE TABLE IF NOT EXISTS cos (name TEXT PRIMARY KEY, id TEXT NOT NULL,"
    " attrs TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE IF NOT EXISTS account (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    " domain TEXT NOT NULL, cos TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',"
    " mailbox_id INTEGER, created_ms INTEGER NOT NULL, attrs TEXT NOT NULL DEFAULT '{}')",
    # zmprov's configuration attributes: scope "global" (mcf/gcf) or "server:<name>" (ms/gs);
    # a multi-valued attribute has one row per value.
    "CREATE TABLE IF NOT EXISTS attr (scope TEXT NOT NULL, name TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY (scope, name, value))",
    "CREATE INDEX IF NOT EXISTS account_mailbox ON account (mailbox_id)",
    "CREATE TABLE IF NOT EXISTS mailbox_epoch (mailbox_id INTEGER PRIMARY KEY,"
    " epoch INTEGER NOT NULL)",
)
_ACCOUNT_COLS = "id, email, domain, cos, status, mailbox_id, created_ms, attrs"

STATUSES = ("active", "maintenance", "locked", "closed")
DOMAIN_STATUSES = (*STATUSES, "suspended")
MAINTENANCE = "maintenance"


def _range_lock(fd: int, kind: int, offset: int, *, wait: bool = True) -> bool:
    """Lock (F_RDLCK/F_WRLCK) or unlock (F_UNLCK) one byte as an OFD lock; False if `wait`
    is off and another holder conflicts."""
    cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    try:
        fcntl.fcntl(fd, cmd, struct.pack("hhqqi", kind, os.SEEK_SET, offset, 1, 0))
    except OSError as e:
        if not wait and e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    domain: str
    cos: str
    status: str
    mailbox_id: int | None
    created_ms: int
    attrs: str = "{}"  # JSON object: the account's own attributes

    def attributes(self) -> dict[str, str]:
        return dict(json.loads(self.attrs))


class Directory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self._gate_fd = os.open(path.with_name(path.name + ".locks"), os.O_RDWR | os.O_CREAT,
                                0o644)
        for ddl in _SCHEMA:
            self.db.execute(ddl)
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(account)")}
        if "attrs" not in cols:  # a directory made before accounts had attributes
            self.db.execute("ALTER TABLE account ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}'")
        if not self.db.execute("SELECT 1 FROM cos WHERE name = 'default'").fetchone():
            self.db.execute("INSERT INTO cos (name, id) VALUES ('default', ?)",
                            (str(uuid.uuid5(uuid.NAMESPACE_URL, "cos:default")),))

    def close(self) -> None:
        self.db.close()
        os.close(self._gate_fd)

    # -- maintenance mode -------------------------------------------------------------------
    @contextmanager
    def mailbox_gate(self, mailbox_id: int) -> Iterator[int]:
        """Held around a change to a mailbox; StateConflict while it is in maintenance (a
        backup or restore holds it, or its account or domain has that status). Yields the
        mailbox's epoch (see `bump_epoch`)."""
        if not _range_lock(self._gate_fd, fcntl.F_RDLCK, mailbox_id, wait=False):
            raise StateConflict(f"mailbox {mailbox_id} is in maintenance mode (a backup or "
                                "restore is working on it); try again later")
        try:
            with self._lock:
                row = self.db.execute(
                    "SELECT a.email, a.status, d.status, (SELECT epoch FROM mailbox_epoch e"
                    " WHERE e.mailbox_id = ?) FROM account a LEFT JOIN domain d ON"
                    " d.name = a.domain WHERE a.mailbox_id = ?",
                    (mailbox_id, mailbox_id)).fetchone()
            if row is not None and MAINTENANCE in (row[1], row[2]):
                raise StateConflict(f"account {row[0]} is in maintenance mode; it takes no "
                                    "changes until it is active again")
            yield int(row[3] or 0) if row is not None else 0
        finally:
            _range_lock(self._gate_fd, fcntl.F_UNLCK, mailbox_id)

    @contextmanager
    def maintenance(self, mailbox_id: int,
                    on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """The mailbox in maintenance for the block: waits for the change in flight (calling
        `on_wait` first if it has to wait), then refuses changes until the block ends (or
        this process dies)."""
        if not _range_lock(self._gate_fd, fcntl.F_WRLCK, mailbox_id, wait=False):
            if on_wait is not None:
                on_wait()
            _range_lock(self._gate_fd, fcntl.F_WRLCK, mailbox_id)
        try:
            yield
        finally:
            _range_lock(self._gate_fd, fcntl.F_UNLCK, mailbox_id)

    def drain(self, mailbox_id: int) -> None:
        """Return once no change to the mailbox that began before this call is in flight."""
        with self.maintenance(mailbox_id):
            pass

    def bump_epoch(self, *mailbox_ids: int) -> None:
        """Say that these mailboxes' volumes changed behind the store's back (a restore), in
        one transaction."""
        with self._lock:
            self.db.execute("BEGIN")
            try:
                self.db.executemany(
                    "INSERT INTO mailbox_epoch (mailbox_id, epoch) VALUES (?, 1)"
                    " ON CONFLICT (mailbox_id) DO UPDATE SET epoch = epoch + 1",
                    [(m,) for m in mailbox_ids])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # -- domains and classes of service -----------------------------------------------------
    def ensure_domain(self, name: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO domain (name, id) VALUES (?, ?)",
                            (name, str(uuid.uuid5(uuid.NAMESPACE_DNS, name))))

    def domains(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM domain ORDER BY name")]

    def set_domain_status(self, name: str, status: str) -> None:
        if status not in DOMAIN_STATUSES:
            raise UsageError(f"{status!r} is not a domain status",
                             hint="one of " + ", ".join(DOMAIN_STATUSES))
        with self._lock:
            cur = self.db.execute("UPDATE domain SET status = ? WHERE name = ?",
                                  (status, name.lower()))
        if cur.rowcount == 0:
            raise NotFound(f"no domain {name!r} in the directory")
        for a in self.accounts():
            if a.domain == name.lower() and a.mailbox_id is not None:
                self.drain(a.mailbox_id)

    def domain_status(self, name: str) -> str:
        row = self.db.execute("SELECT status FROM domain WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no domain {name!r} in the directory")
        return str(row[0])

    # -- configuration attributes (zmprov mcf/ms/gcf/gs) ------------------------------------
    def attrs(self, scope: str) -> dict[str, list[str]]:
        """The attributes set in `scope`, each with its values in the order they were set."""
        out: dict[str, list[str]] = {}
        for name, value in self.db.execute(
                "SELECT name, value FROM attr WHERE scope = ? ORDER BY name, rowid", (scope,)):
            out.setdefault(name, []).append(value)
        return out

    def set_attr(self, scope: str, name: str, values: list[str]) -> None:
        """Replace the values of one attribute in `scope`; an empty list removes it."""
        with self._lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute("DELETE FROM attr WHERE scope = ? AND name = ?", (scope, name))
                self.db.executemany("INSERT OR IGNORE INTO attr (scope, name, value)"
                                    " VALUES (?, ?, ?)", [(scope, name, v) for v in values])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # -- accounts ---------------------------------------------------------------------------
    def create_account(self, email: str, *, account_id: str | None = None, cos: str = "default",
                       created_ms: int = 0) -> Account:
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise UsageError(f"{email!r} is not an email address")
        domain = email.split("@", 1)[1].lower()
        self.ensure_domain(domain)
        acct_id = account_id or str(uuid.uuid4())
        with self._lock:
            try:
                self.db.execute(
                    "INSERT INTO account (id, email, domain, cos, created_ms) VALUES (?,?,?,?,?)",
                    (acct_id, email.lower(), domain, cos, created_ms))
            except sqlite3.IntegrityError as e:
                raise StateConflict(f"account {email} already exists") from e
        return self.get(acct_id)

    def set_mailbox(self, account_id: str, mailbox_id: int) -> None:
        with self._lock:
            self.db.execute("UPDATE account SET mailbox_id = ? WHERE id = ?",
                            (mailbox_id, account_id))

    def get(self, key: str) -> Account:
        row = self.db.execute(f"SELECT {_ACCOUNT_COLS} FROM account WHERE id = ? OR email = ?",
                              (key, key.lower())).fetchone()
        if not row:
            raise NotFound(f"no account {key!r} in the directory")
        return Account(*row)

    def find(self, key: str) -> Account | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    def accounts(self) -> list[Account]:
        return [Account(*r) for r in self.db.execute(
            f"SELECT {_ACCOUNT_COLS} FROM account ORDER BY email")]

    def set_status(self, key: str, status: str) -> None:
        """Set an account's status; returns once changes in flight to its mailbox are done."""
        _check_status(status)
        acct = self.get(key)
        with self._lock:
            self.db.execute("UPDATE account SET status = ? WHERE id = ?", (status, acct.id))
        if acct.mailbox_id is not None:
            self.drain(acct.mailbox_id)

    def delete_account(self, key: str) -> Account:
        acct = self.get(key)
        with self._lock:
            self.db.execute("DELETE FROM account WHERE id = ?", (acct.id,))
        return acct

    # -- attributes -------------------------------------------------------------------------
    def set_attrs(self, key: str, attrs: Mapping[str, str | None]) -> Account:
        """`zmprov ma`: set an account's attributes (None removes one)."""
        acct = self.get(key)
        with self._lock:
            self.db.execute("UPDATE account SET attrs = ? WHERE id = ?",
                            (_merged(acct.attributes(), attrs), acct.id))
        return self.get(acct.id)

    def set_cos_attrs(self, name: str, attrs: Mapping[str, str | None]) -> None:
        """`zmprov mc`: set a class of service's attributes (None removes one)."""
        with self._lock:
            row = self.db.execute("SELECT attrs FROM cos WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no class of service {name!r} in the directory")
            self.db.execute("UPDATE cos SET attrs = ? WHERE name = ?",
                            (_merged(json.loads(row[0]), attrs), name))

    def cos_attrs(self, name: str) -> dict[str, str]:
        row = self.db.execute("SELECT attrs FROM cos WHERE name = ?", (name,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def effective_attrs(self, account_id: str) -> dict[str, str] | None:
        """The account's attributes over its COS's; None if the account is not here."""
        acct = self.find(account_id)
        if acct is None:
            return None
        return {**self.cos_attrs(acct.cos), **acct.attributes()}

    def lifetimes(self, account_id: str | None) -> Lifetimes:
        """The account's message lifetimes for the purge; an account this directory does not
        hold gets the default COS's (a standby whose directory lacks it purges as Zimbra's
        defaults say)."""
        attrs = self.effective_attrs(account_id) if account_id else None
        return Lifetimes.from_attrs(attrs if attrs is not None else self.cos_attrs("default"))

    def retention(self) -> Retention:
        """Every account's lifetimes, as a value a replay's worker processes can carry."""
        default = Lifetimes.from_attrs(self.cos_attrs("default"))
        cos = {r[0]: json.loads(r[1]) for r in self.db.execute("SELECT name, attrs FROM cos")}
        out = {}
        for a in self.accounts():
            lt = Lifetimes.from_attrs({**cos.get(a.cos, {}), **a.attributes()})
            if lt != default:
                out[a.id] = lt
        return Retention(default, out)

    # -- dump and restore (zmrestoreldap) ---------------------------------------------------
    def export(self) -> dict[str, Any]:
        return {
            "domains": [dict(zip(("name", "id", "status"), r)) for r in
                        self.db.execute("SELECT name, id, status FROM domain ORDER BY name")],
            "cos": [dict(zip(("name", "id", "attrs"), r)) for r in
                    self.db.execute("SELECT name, id, attrs FROM cos ORDER BY name")],
            "accounts": [asdict(a) for a in self.accounts()],
            "attrs": [dict(zip(("scope", "name", "value"), r)) for r in self.db.execute(
                "SELECT scope, name, value FROM attr ORDER BY scope, name, rowid")],
        }

    def load(self, dump: dict[str, Any], *, only: set[str] | None = None) -> int:
        """Restore from `export()` output; `only` limits accounts (by email). Returns count."""
        n = 0
        with self._lock:
            self.db.execute("BEGIN")
            try:
                for d in dump.get("domains", []):
                    self.db.execute("INSERT OR REPLACE INTO domain (name, id, status)"
                                    " VALUES (?, ?, ?)", (d["name"], d["id"], d["status"]))
                for c in dump.get("cos", []):
                    self.db.execute("INSERT OR REPLACE INTO cos (name, id, attrs) VALUES (?,?,?)",
                                    (c["name"], c["id"], c["attrs"]))
                if only is None and "attrs" in dump:
                    self.db.execute("DELETE FROM attr")
                    self.db.executemany(
                        "INSERT OR IGNORE INTO attr (scope, name, value) VALUES (?, ?, ?)",
                        [(a["scope"], a["name"], a["value"]) for a in dump["attrs"]])
                for a in dump.get("accounts", []):
                    if only is not None and a["email"] not in only:
                        continue
                    self.db.execute("DELETE FROM account WHERE email = ? OR id = ?",
                                    (a["email"], a["id"]))
                    self.db.execute(
                        f"INSERT INTO account ({_ACCOUNT_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                        (a["id"], a["email"], a["domain"], a["cos"], a["status"],
                         a["mailbox_id"], a["created_ms"], a.get("attrs", "{}")))
                    n += 1
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return n

    def dumps(self) -> str:
        return json.dumps(self.export(), indent=1, sort_keys=True)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise UsageError(f"{status!r} is not an account status", hint="one of " +
                         ", ".join(STATUSES))


def _merged(old: Mapping[str, str], changes: Mapping[str, str | None]) -> str:
    out = {**old, **changes}
    return json.dumps({k: str(v) for k, v in sorted(out.items()) if v is not None})

