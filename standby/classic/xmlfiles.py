"""The XML files of a backup target, and the one way they are written.

`accounts.xml` (email -> zimbraId -> latest full label), `session.xml` (a session: type, times,
status, redo sequence range, accounts, errors, stats), each account's `meta.xml` (what its
backup holds and the redo position it was taken at) and `ldap.xml` (its directory entry), and
`sys/ldap.xml` (the whole directory). Each has a frozen record type with `to_xml`/`from_xml`;
`from_xml(to_xml(r)) == r` for every record (Hypothesis-tested). A file that does not parse is
a `FormatError` naming it.

Every file is written to a temporary name in its folder and renamed into place
(`write_atomic`), so a reader sees the old file or the new one, never a part. Files that must
survive a crash on their own (accounts.xml, localconfig.xml) are fsynced with their folder
(`durable`); the files of a session being written are not: the session is made durable once,
with `syncfs`, before it is renamed out of `sessions_tmp/`.
"""

from __future__ import annotations

import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import fsutil
from standby.errors import FormatError, VolumeError

ACCOUNT_STATUSES = ("NOTSTARTED", "INPROGRESS", "COMPLETED", "ERROR")


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data`: durable, through `fsutil.write_atomic` (fsync of the file
    and its folder); else only a temporary name and a rename (a session's own files, synced
    with the whole session)."""
    if durable:
        return fsutil.write_atomic(path, data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except FileNotFoundError as e:
        raise VolumeError(f"cannot write {path}: its folder does not exist") from e
    finally:
        tmp.unlink(missing_ok=True)


def to_bytes(root: ET.Element, *, indent: bool = True) -> bytes:
    if indent:
        ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") \
        + b"\n"


def write_xml(path: Path, root: ET.Element, *, durable: bool = True) -> None:
    write_atomic(path, to_bytes(root), durable=durable)


def parse_bytes(data: bytes, *, where: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise FormatError(f"{where} is not valid XML: {e}") from e


def read_xml(path: Path, *, root: str) -> ET.Element:
    el = parse_bytes(path.read_bytes(), where=str(path))
    if el.tag != root:
        raise FormatError(f"{path}: expected a <{root}> document, found <{el.tag}>")
    return el


def _set(el: ET.Element, attrs: Mapping[str, object]) -> ET.Element:
    for k, v in attrs.items():
        if v is None:
            continue
        el.set(k, ("true" if v else "false") if isinstance(v, bool) else str(v))
    return el


def _int(el: ET.Element, key: str, *, where: str) -> int | None:
    v = el.get(key)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise FormatError(f"{where}: {key}={v!r} is not a number") from None


def _req(el: ET.Element, key: str, *, where: str) -> str:
    v = el.get(key)
    if v is None:
        raise FormatError(f"{where}: <{el.tag}> has no {key}")
    return v


def _bool(el: ET.Element, key: str) -> bool:
    return el.get(key) == "true"


# ---------------------------------------------------------------------------------------------
# accounts.xml


@dataclass(frozen=True)
class AccountEntry:
    zimbra_id: str
    email: str
    latest_full: str | None = None


def accounts_to_xml(entries: list[AccountEntry]) -> ET.Element:
    root = ET.Element("accounts")
    for e in sorted(entries, key=lambda e: e.email):
        _set(ET.SubElement(root, "account"), {"zimbraId": e.zimbra_id, "name": e.email,
                                              "latestFullBackupLabel": e.latest_full})
    return root


def accounts_from_xml(root: ET.Element, *, where: str = "accounts.xml") -> list[AccountEntry]:
    return [AccountEntry(_req(a, "zimbraId", where=where), _req(a, "name", where=where),
                         a.get("latestFullBackupLabel")) for a in root.iter("account")]


# ---------------------------------------------------------------------------------------------
# session.xml


@dataclass(frozen=True)
class SessionAccount:
    zimbra_id: str
    email: str
    status: str = "NOTSTARTED"
    mailbox_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Session:
    label: str
    type: str  # full | incremental
    start_ms: int
    status: str  # in progress | completed | aborted | failed
    server: str = ""
    server_id: str = ""
    mode: str = "Standard"
    zip: str = "zipStore"
    end_ms: int | None = None
    min_redo_seq: int | None = None
    max_redo_seq: int | None = None
    skip_search_index: bool = False
    skip_blobs: bool = False
    skip_hsm_blobs: bool = False
    sys: bool = True
    accounts: tuple[SessionAccount, ...] = ()
    errors: tuple[str, ...] = ()
    redologs: tuple[str, ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)


def session_to_xml(s: Session) -> ET.Element:
    root = _set(ET.Element("backupSession"), {
        "label": s.label, "type": s.type, "status": s.status, "server": s.server,
        "serverId": s.server_id, "mode": s.mode, "zip": s.zip, "startTime": s.start_ms,
        "endTime": s.end_ms, "minRedoSeq": s.min_redo_seq, "maxRedoSeq": s.max_redo_seq,
        "skipSearchIndex": s.skip_search_index, "skipBlobs": s.skip_blobs,
        "skipHsmBlobs": s.skip_hsm_blobs, "sys": s.sys})
    accts = ET.SubElement(root, "accounts")
    for a in s.accounts:
        _set(ET.SubElement(accts, "account"), {"zimbraId": a.zimbra_id, "name": a.email,
                                               "status": a.status, "mailboxId": a.mailbox_id,
                                               "error": a.error})
    errs = ET.SubElement(root, "errors")
    for e in s.errors:
        ET.SubElement(errs, "error").text = e
    logs = ET.SubElement(root, "redologs")
    for name in s.redologs:
        _set(ET.SubElement(logs, "redolog"), {"name": name})
    _set(ET.SubElement(root, "stats"), dict(sorted(s.stats.items())))
    return root


def session_from_xml(root: ET.Element, *, where: str = "session.xml") -> Session:
    accounts = []
    for a in root.iterfind("accounts/account"):
        status = a.get("status", "NOTSTARTED")
        if status not in ACCOUNT_STATUSES:
            raise FormatError(f"{where}: account status {status!r} is unknown")
        accounts.append(SessionAccount(_req(a, "zimbraId", where=where),
                                       _req(a, "name", where=where), status,
                                       _int(a, "mailboxId", where=where), a.get("error")))
    stats_el = root.find("stats")
    stats: dict[str, int] = {}
    if stats_el is not None:
        for k in stats_el.attrib:
            v = _int(stats_el, k, where=where)
            assert v is not None
            stats[k] = v
    start = _int(root, "startTime", where=where)
    if start is None:
        raise FormatError(f"{where}: the session has no startTime")
    return Session(
        label=_req(root, "label", where=where), type=_req(root, "type", where=where),
        start_ms=start, status=_req(root, "status", where=where),
        server=root.get("server", ""), server_id=root.get("serverId", ""),
        mode=root.get("mode", "Standard"), zip=root.get("zip", "zipStore"),
        end_ms=_int(root, "endTime", where=where),
        min_redo_seq=_int(root, "minRedoSeq", where=where),
        max_redo_seq=_int(root, "maxRedoSeq", where=where),
        skip_search_index=_bool(root, "skipSearchIndex"), skip_blobs=_bool(root, "skipBlobs"),
        skip_hsm_blobs=_bool(root, "skipHsmBlobs"), sys=root.get("sys") != "false",
        accounts=tuple(accounts),
        errors=tuple(e.text or "" for e in root.iterfind("errors/error")),
        redologs=tuple(_req(r, "name", where=where) for r in root.iterfind("redologs/redolog")),
        stats=stats)


# ---------------------------------------------------------------------------------------------
# meta.xml (one account in one session)


@dataclass(frozen=True)
class AccountMeta:
    zimbra_id: str
    email: str
    mailbox_id: int
    change_checkpoint: int
    start_ms: int
    end_ms: int
    redo_seq: int  # the redo log sequence current when the mailbox entered maintenance
    blobs: int = 0
    blob_bytes: int = 0
    blob_buckets: int = 1
    index: str = "zip"  # zip | file | none
    zip: str = "zipStore"
    skip_blobs: bool = False
    skip_search_index: bool = False


_META_KEYS = (("zimbraId", "zimbra_id"), ("name", "email"), ("mailboxId", "mailbox_id"),
              ("changeCheckpoint", "change_checkpoint"), ("startTime", "start_ms"),
              ("endTime", "end_ms"), ("redoSeq", "redo_seq"), ("blobs", "blobs"),
              ("blobBytes", "blob_bytes"), ("blobBuckets", "blob_buckets"),
              ("index", "index"), ("zip", "zip"), ("skipBlobs", "skip_blobs"),
              ("skipSearchIndex", "skip_search_index"))
_META_INTS = {"mailbox_id", "change_checkpoint", "start_ms", "end_ms", "redo_seq", "blobs",
              "blob_bytes", "blob_buckets"}
_META_BOOLS = {"skip_blobs", "skip_search_index"}


def meta_to_xml(m: AccountMeta) -> ET.Element:
    return _set(ET.Element("accountBackup"), {k: getattr(m, f) for k, f in _META_KEYS})


def meta_from_xml(root: ET.Element, *, where: str = "meta.xml") -> AccountMeta:
    kw: dict[str, Any] = {}
    for k, f in _META_KEYS:
        if f in _META_INTS:
            v = _int(root, k, where=where)
            if v is None:
                raise FormatError(f"{where}: <accountBackup> has no {k}")
            kw[f] = v
        elif f in _META_BOOLS:
            kw[f] = _bool(root, k)
        else:
            kw[f] = _req(root, k, where=where)
    return AccountMeta(**kw)


# ---------------------------------------------------------------------------------------------
# The directory: one account (ldap.xml) or all of it (sys/ldap.xml)

_DIR_ITEMS = {"domain": ("name", "id", "status"), "cos": ("name", "id", "attrs"),
              "account": ("id", "email", "domain", "cos", "status", "mailbox_id",
                          "created_ms"),
              "attr": ("scope", "name", "value")}
_DIR_SECTIONS = {"domains": "domain", "cos": "cos", "accounts": "account", "attrs": "attr"}
_DIR_INTS = {"mailbox_id", "created_ms"}


def _entry_to_xml(tag: str, d: Mapping[str, Any]) -> ET.Element:
    return _set(ET.Element(tag), {k: d.get(k) for k in _DIR_ITEMS[tag]})


def _entry_from_xml(el: ET.Element, *, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in _DIR_ITEMS[el.tag]:
        if k in _DIR_INTS:
            out[k] = _int(el, k, where=where)
        else:
            out[k] = _req(el, k, where=where)
    return out


def account_ldap_to_xml(entry: Mapping[str, Any]) -> ET.Element:
    return _entry_to_xml("account", entry)


def account_ldap_from_xml(root: ET.Element, *, where: str = "ldap.xml") -> dict[str, Any]:
    if root.tag != "account":
        raise FormatError(f"{where}: expected an <account> entry")
    return _entry_from_xml(root, where=where)


def directory_to_xml(dump: Mapping[str, list[Mapping[str, Any]]]) -> ET.Element:
    """`Directory.export()` as XML."""
    root = ET.Element("directory")
    for section, tag in _DIR_SECTIONS.items():
        for d in dump.get(section, []):
            root.append(_entry_to_xml(tag, d))
    return root


def directory_from_xml(root: ET.Element, *,
                       where: str = "ldap.xml") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in _DIR_SECTIONS}
    by_tag = {t: s for s, t in _DIR_SECTIONS.items()}
    for el in root:
        if el.tag not in by_tag:
            raise FormatError(f"{where}: unknown entry <{el.tag}>")
        out[by_tag[el.tag]].append(_entry_from_xml(el, where=where))
    return out
