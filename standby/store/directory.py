"""The directory: accounts, domains and classes of service (the store's LDAP stand-in).

A small SQLite database outside the four volumes, as Zimbra's LDAP lives outside the mailbox
server's volumes. `zmrestoreldap` restores it from a backup's `ldap.json` dump (`export`/`load`).
Account ids are zimbraId-style UUID strings; the mailbox row in MariaDB refers to them.

Accounts and classes of service carry attributes (`zmprov ma` / `zmprov mc`), string values by
Zimbra attribute name; an account's effective value is its own, else its COS's (Zimbra's
"accountInherited"), else the default COS value Zimbra declares. The purge reads the message
lifetimes this way (`lifetimes`, `retention`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Mapping
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
)
_ACCOUNT_COLS = "id, email, domain, cos, status, mailbox_id, created_ms, attrs"

STATUSES = ("active", "maintenance", "locked", "closed")


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

    # -- domains and classes of service -----------------------------------------------------
    def ensure_domain(self, name: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO domain (name, id) VALUES (?, ?)",
                            (name, str(uuid.uuid5(uuid.NAMESPACE_DNS, name))))

    def domains(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM domain ORDER BY name")]

    def set_domain_status(self, name: str, status: str) -> None:
        _check_status(status)
        with self._lock:
            self.db.execute("UPDATE domain SET status = ? WHERE name = ?", (status, name))

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
        _check_status(status)
        acct = self.get(key)
        with self._lock:
            self.db.execute("UPDATE account SET status = ? WHERE id = ?", (status, acct.id))

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


def _merged(old: Mapping[str, str], changes: Mapping[str, str | None]) -> str:
    out = {**old, **changes}
    return json.dumps({k: str(v) for k, v in sorted(out.items()) if v is not None})


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise UsageError(f"{status!r} is not an account status", hint="one of " +
                         ", ".join(STATUSES))
