"""The store service: the `mailboxd` analog, the one process that owns the redo log writer.

Run as `python -m standby.store.service --config FILE` (the CLI's `store start` does this, in the
background). It locks the redo log volume (a second service on the same volumes is refused), runs
crash recovery, then serves the Mailbox API on a Unix socket: one JSON object per line each way,
`{"method": ..., "params": {...}}` -> `{"ok": true, "result": ...}` or
`{"ok": false, "error": {"type", "message", "exit_code"}}`. Message bytes travel base64-encoded.
SIGTERM (or the `shutdown` method) stops it cleanly: in-flight requests finish, the log is rolled
over and closed.

If the index volume says documents are pending (a failover replay with `--index defer`), the
service starts the index catch-up at start-up, in the background: its own process
(`python -m standby.replay.catchup`, one worker per core at the lowest CPU priority), stopped
with the service. Mail is served meanwhile; a search on a mailbox still behind catches that
mailbox up first, or, with `"wait": false`, answers flagged incomplete (`Store.search`).
`index_status` reports the catch-up and what is still pending.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from standby import _process
from standby import log as slog
from standby import settings as settings_mod
from standby.errors import StandbyError, StateConflict, UsageError
from standby.fsutil import syncfs
from standby.redolog.writer import RedoLogWriter, WriterConfig
from standby.settings import Settings
from standby.store import recovery
from standby.store.index import CATCHUP_MARKER
from standby.store.mailbox import Store
from standby.store.schema import FLUSH_TABLE
from standby.store.site import SERVICE_PID, Site


def build_store(site: Site) -> tuple[Store, RedoLogWriter]:
    """Compose the store on an open site (the service's composition root)."""
    s, db = site.settings, site.db

    def flush_db() -> None:
        # Make every committed transaction durable before the log that holds its CommitTxn is
        # archived: crash recovery scans only the current redo.log. With
        # innodb_flush_log_at_trx_commit=0, MariaDB's FLUSH ENGINE LOGS writes nothing, but a
        # DDL commit flushes the InnoDB log up to it (Zimbra's MySQL.flushToDisk does the same
        # with a fake table).
        c = db.connect(autocommit=True)
        try:
            cur = c.cursor()
            cur.execute(f"CREATE TABLE IF NOT EXISTS {FLUSH_TABLE} (i INT) ENGINE=InnoDB")
            cur.execute(f"DROP TABLE IF EXISTS {FLUSH_TABLE}")
        finally:
            c.close()
        for vol in (s.volumes.blob.path, s.volumes.index.path):
            syncfs(vol)

    writer = RedoLogWriter(s.volumes.redolog.path, server_id=s.server_id,
                           config=WriterConfig.from_settings(s.redolog), before_rollover=flush_db)
    store = Store(writer=writer, connect=db.connect, effects=site.effects,
                  directory=site.directory, groups=s.store.mailbox_groups)
    return store, writer


# --------------------------------------------------------------------------------------------
# Request handling


def _b64(data: str) -> bytes:
    return base64.b64decode(data.encode("ascii"), validate=True)


def _redo_position(store: Store) -> dict[str, Any]:
    pos, active, oldest = store.writer.snapshot_state()
    return {"seq": pos.seq, "offset": pos.offset, "active_txns": [list(t) for t in active],
            "oldest_active_tstamp": oldest}


_NEEDS_MAILBOX = frozenset({
    "create_folder", "rename_folder", "empty_folder", "create_tag", "rename_tag", "set_tags",
    "alter_tag", "move", "delete", "create_contact", "modify_contact", "index_item", "items",
    "read_message", "search", "tags", "set_color", "set_date", "reset_imap_uids",
    "create_saved_search", "modify_saved_search", "rename_item", "set_custom_data", "copy",
    "create_draft", "save_draft", "set_config", "delete_config", "purge"})


def dispatch(store: Store, method: str, p: dict[str, Any]) -> Any:
    """Map one request to the Mailbox API. Unknown methods and bad params are UsageErrors."""
    if method in _NEEDS_MAILBOX and p.get("mailbox_id") is None:
        raise UsageError(f"{method} needs mailbox_id")
    try:
        m = int(p.get("mailbox_id") or 0)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{method}: mailbox_id must be an integer") from e
    table: dict[str, Callable[[], Any]] = {
        "ping": lambda: {"pid": os.getpid(), "position": store.writer.position.__dict__},
        "redo_position": lambda: _redo_position(store),
        "create_account": lambda: store.create_account(p["email"],
                                                       account_id=p.get("account_id")),
        "delete_account": lambda: store.delete_account(p["account"]),
        "mailbox_id": lambda: store.mailbox_id(p["account"]),
        "mailboxes": store.mailboxes,
        "deliver": lambda: store.deliver(_b64(p["message"]), list(p["recipients"]),
                                         folder_id=int(p.get("folder_id", 2)),
                                         flags=int(p.get("flags", 0x200)),
                                         tags=tuple(p.get("tags", ()))),
        "create_folder": lambda: store.create_folder(m, p["name"],
                                                     parent_id=int(p.get("parent_id", 1))),
        "rename_folder": lambda: store.rename_folder(m, int(p["folder_id"]), p["name"],
                                                     p.get("parent_id")),
        "empty_folder": lambda: store.empty_folder(m, int(p["folder_id"]),
                                                   subfolders=bool(p.get("subfolders", True))),
        "create_tag": lambda: store.create_tag(m, p["name"], color=int(p.get("color", 0))),
        "rename_tag": lambda: store.rename_tag(m, int(p["tag_id"]), p["name"]),
        "set_tags": lambda: store.set_tags(m, [int(i) for i in p["ids"]],
                                           flags=int(p.get("flags", -0x80000000)),
                                           tags=tuple(p["tags"]) if p.get("tags") is not None
                                           else None),
        "alter_tag": lambda: store.alter_tag(m, [int(i) for i in p["ids"]], p["tag"],
                                             bool(p["tagged"])),
        "move": lambda: store.move(m, [int(i) for i in p["ids"]], int(p["dest_id"])),
        "delete": lambda: store.delete(m, [int(i) for i in p["ids"]]),
        "create_contact": lambda: store.create_contact(
            m, dict(p["attrs"]), folder_id=int(p.get("folder_id", 7)),
            data=_b64(p.get("data", ""))),
        "modify_contact": lambda: store.modify_contact(m, int(p["contact_id"]), dict(p["attrs"]),
                                                       data=_b64(p.get("data", ""))),
        "index_item": lambda: store.index_item(m, int(p["item_id"])),
        "set_color": lambda: store.set_color(m, [int(i) for i in p["ids"]], int(p["color"]),
                                             tags=bool(p.get("tags", False))),
        "set_date": lambda: store.set_date(m, int(p["item_id"]), int(p["date_ms"])),
        "set_custom_data": lambda: store.set_custom_data(
            m, int(p["item_id"]), p["section"], {str(k): str(v) for k, v in
                                                 dict(p.get("data") or {}).items()}),
        "reset_imap_uids": lambda: {str(k): v for k, v in store.reset_imap_uids(
            m, [int(i) for i in p["ids"]]).items()},
        "create_saved_search": lambda: store.create_saved_search(
            m, p["name"], p["query"], types=p.get("types", "message"),
            sort=p.get("sort", "dateDesc"), parent_id=int(p.get("parent_id", 1))),
        "modify_saved_search": lambda: store.modify_saved_search(
            m, int(p["search_id"]), p["query"], types=p.get("types", "message"),
            sort=p.get("sort", "dateDesc")),
        "rename_item": lambda: store.rename_item(
            m, int(p["item_id"]), p["name"],
            folder_id=int(p["folder_id"]) if p.get("folder_id") is not None else None),
        "copy": lambda: {str(k): v for k, v in store.copy(
            m, [int(i) for i in p["ids"]], int(p["dest_id"])).items()},
        "create_draft": lambda: store.create_draft(m, _b64(p["message"])),
        "save_draft": lambda: store.save_draft(m, int(p["draft_id"]), _b64(p["message"])),
        "set_config": lambda: store.set_config(
            m, p["section"], dict(p["config"]) if p.get("config") is not None else None),
        "delete_config": lambda: store.delete_config(m, p["section_part"]),
        "purge": lambda: store.purge(m),
        "set_account_attrs": lambda: store.set_account_attrs(
            p["account"], {str(k): None if v is None else str(v)
                           for k, v in dict(p["attrs"]).items()}),
        "items": lambda: store.items(m, folder_id=p.get("folder_id"), type=p.get("type"),
                                     limit=int(p.get("limit", 1000))),
        "read_message": lambda: base64.b64encode(
            store.read_message(m, int(p["item_id"]))).decode("ascii"),
        "search": lambda: store.search(m, p["query"], int(p.get("limit", 50)),
                                       wait=bool(p.get("wait", True))),
        "tags": lambda: store.tags(m),
        "rollover": lambda: store.writer.rollover(force=True),
        "index_status": lambda: store.index_status(),
    }
    fn = table.get(method)
    if fn is None:
        raise UsageError(f"unknown method {method!r}")
    try:
        return fn()
    except KeyError as e:
        raise UsageError(f"{method}: missing parameter {e.args[0]!r}") from e
    except (TypeError, ValueError) as e:
        raise UsageError(f"{method}: bad parameter: {e}") from e


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        for line in self.rfile:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                method = req.get("method", "")
                if method == "shutdown":
                    self._reply({"ok": True, "result": "stopping"})
                    threading.Thread(target=self.server.stop_service, daemon=True).start()
                    return
                if method == "freeze":
                    timeout = float((req.get("params") or {}).get("timeout_s", 300))
                    self.server.freeze(self, timeout)
                    self._reply({"ok": True, "result": self.server.frozen_position()})
                    continue
                if method == "thaw":
                    self.server.thaw(self)
                    self._reply({"ok": True, "result": "thawed"})
                    continue
                with self.server.inflight():
                    result = dispatch(self.server.store, method, req.get("params") or {})
                self._reply({"ok": True, "result": result})
            except StandbyError as e:
                self._reply({"ok": False, "error": {"type": type(e).__name__,
                                                    "message": str(e),
                                                    "exit_code": e.exit_code}})
            except json.JSONDecodeError as e:
                self._reply({"ok": False, "error": {"type": "UsageError",
                                                    "message": f"bad JSON: {e}",
                                                    "exit_code": 2}})

    def finish(self) -> None:
        self.server.thaw(self)  # a freeze never outlives the connection that asked for it
        super().finish()

    def _reply(self, obj: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(obj).encode() + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, path: str, store: Store, on_stop: Callable[[], None]) -> None:
        self.store = store
        self._on_stop = on_stop
        self._busy = 0
        self._busy_cond = threading.Condition()
        self._frozen_by: object | None = None
        self.stopping = False
        super().__init__(path, _Handler)

    def freeze(self, owner: object, timeout_s: float) -> None:
        """Block new changes and wait for those in flight (a store-level fsfreeze), until
        `thaw` from the same connection, its disconnection, or `timeout_s`."""
        with self._busy_cond:
            while self._frozen_by is not None and self._frozen_by is not owner:
                self._busy_cond.wait(0.5)
            self._frozen_by = owner
            deadline = time.monotonic() + 60
            while self._busy and time.monotonic() < deadline:
                self._busy_cond.wait(0.5)
            if self._busy:
                self._frozen_by = None
                self._busy_cond.notify_all()
                raise StateConflict("could not freeze the store: changes still in flight")
        self.store.writer.flush()
        timer = threading.Timer(timeout_s, self.thaw, args=(owner,))
        timer.daemon = True
        timer.start()

    def thaw(self, owner: object) -> None:
        with self._busy_cond:
            if self._frozen_by is owner:
                self._frozen_by = None
                self._busy_cond.notify_all()

    def frozen_position(self) -> dict[str, Any]:
        return _redo_position(self.store)

    def inflight(self) -> Any:
        server = self

        class _Ctx:
            def __enter__(self) -> None:
                with server._busy_cond:
                    if server.stopping:
                        raise StateConflict("the store is shutting down")
                    while server._frozen_by is not None:
                        server._busy_cond.wait(0.5)
                    server._busy += 1

            def __exit__(self, *exc: object) -> None:
                with server._busy_cond:
                    server._busy -= 1
                    server._busy_cond.notify_all()

        return _Ctx()

    def stop_service(self) -> None:
        with self._busy_cond:
            self.stopping = True
            deadline = time.monotonic() + 60
            while self._busy and time.monotonic() < deadline:
                self._busy_cond.wait(0.5)
        self.shutdown()
        self._on_stop()


class BackgroundCatchup:
    """The index catch-up the service starts when the index volume is behind: a child process
    (so its workers are forked from a process with one thread), stopped with the service."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        """Start it if the index volume says documents are pending; True if started."""
        s = self.settings
        if s.source is None or not (s.volumes.index.path / CATCHUP_MARKER).exists():
            return False
        # Under `nice` from its first instruction; it adds SCHED_IDLE itself.
        cmd = _process.Command.of("nice", "-n", "19", sys.executable, "-m",
                                  "standby.replay.catchup", "--config", s.source, "--priority",
                                  "idle", "--parent", str(os.getpid()))
        self.proc = _process.spawn(cmd, stdout=None, stderr=None)  # into the service's log
        return True

    def state(self) -> str:
        if self.proc is None:
            return "not needed"
        rc = self.proc.poll()
        if rc is None:
            return "running"
        return "done" if rc == 0 else f"failed (exit {rc})"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # crash-safe: whatever it had not committed is redone later
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve(s: Settings) -> int:
    log = slog.get("standby.store.service")
    site = Site.open(s)
    with site.exclusive():
        site.ensure_schema()
        return _serve(site, log)


def _serve(site: Site, log: Any) -> int:
    s = site.settings
    store, writer = build_store(site)
    conn0 = site.connect()
    try:
        report = recovery.recover(s.volumes.redolog.path, writer=writer, effects=site.effects,
                                  conn=conn0,
                                  lookback_ms=s.redolog.crash_recovery_lookback_s * 1000)
    finally:
        conn0.close()
    sock = s.store_socket
    sock.unlink(missing_ok=True)
    pidfile = s.state_dir / SERVICE_PID
    stopped = threading.Event()
    catchup = BackgroundCatchup(s)
    store.catchup_state = catchup.state

    def on_stop() -> None:
        try:
            catchup.stop()
            writer.rollover(force=False)
        finally:
            writer.close()
            store.close()
            stopped.set()

    server = _Server(str(sock), store, on_stop)
    pidfile.write_text(f"{os.getpid()}\n")

    def on_signal(signum: int, frame: object) -> None:
        threading.Thread(target=server.stop_service, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("store_serving", socket=str(sock), pid=os.getpid(),
             recovered=report.redone, truncated=report.truncated_bytes)
    if catchup.start():
        log.info("index_catchup_started", pid=catchup.proc.pid if catchup.proc else None)
    try:
        server.serve_forever(poll_interval=0.2)
        stopped.wait(120)
    finally:
        server.server_close()
        sock.unlink(missing_ok=True)
        pidfile.unlink(missing_ok=True)
    log.info("store_stopped", ops=store.ops_done)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="standby-store-service")
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    try:
        s = settings_mod.load(args.config)
        slog.configure("json", s.log.level)
        return serve(s)
    except StandbyError as e:
        slog.get("standby.store.service").error("store_failed", error=str(e),
                                                exit_code=e.exit_code)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
