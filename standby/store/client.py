"""A client of the store service's Unix socket (used by loadgen, tests and the CLI).

One connection per thread; requests are one JSON line each, replies likewise. Errors come back as
the same `StandbyError` subclass the service raised, so callers handle them as if local.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

from standby import errors
from standby.errors import ServiceError, StandbyError


class StoreClient:
    def __init__(self, path: Path, *, timeout: float = 120.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            self.sock.close()
            raise ServiceError(f"the store service is not reachable at {path}",
                               hint="start it with `standby store start`") from e
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, **params: Any) -> Any:
        req = json.dumps({"method": method, "params": params}).encode() + b"\n"
        try:
            self.sock.sendall(req)
            line = self.rfile.readline()
        except OSError as e:
            raise ServiceError(f"lost the connection to the store service: {e}") from e
        if not line:
            raise ServiceError("the store service closed the connection")
        reply = json.loads(line)
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        cls = getattr(errors, err.get("type", ""), None)
        msg = err.get("message", "unknown error")
        exc: StandbyError
        try:
            exc = cls(msg) if isinstance(cls, type) and issubclass(cls, StandbyError) \
                else StandbyError(msg)
        except TypeError:  # an error class with a different constructor (CommandFailed)
            exc = StandbyError(msg)
        exc.exit_code = int(err.get("exit_code", exc.exit_code))
        raise exc

    # Conveniences for binary payloads.
    def deliver(self, raw: bytes, recipients: list[str], **kw: Any) -> Any:
        return self.call("deliver", message=base64.b64encode(raw).decode("ascii"),
                         recipients=recipients, **kw)

    def read_message(self, mailbox_id: int, item_id: int) -> bytes:
        return base64.b64decode(self.call("read_message", mailbox_id=mailbox_id,
                                          item_id=item_id))
