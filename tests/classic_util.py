"""Shared helpers of the classic module's tests: an Env on a test store, load in the
background, per-mailbox digests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from standby.classic import env as env_mod
from standby.classic.env import Env
from standby.store.digest import digest_settings
from standby.store.loadgen import LoadResult
from standby.store.loadgen import run as loadgen
from standby.store.site import Site


class Outbox:
    """A mailer that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, *, sender: str, recipients: tuple[str, ...], subject: str,
             body: str) -> None:
        self.sent.append({"sender": sender, "recipients": recipients, "subject": subject,
                          "body": body})


def make_env(handle: Any, target: Path, **kw: Any) -> Env:
    site = Site.open(handle.settings)
    return env_mod.build(site, target=target, mailer=kw.pop("mailer", Outbox()), **kw)


@contextmanager
def load_running(handle: Any, *, accounts: int, seed: int, workers: int = 2,
                 rate: float | None = 60) -> Iterator[LoadResult]:
    """loadgen against the store for the duration of the block."""
    stop = threading.Event()
    box: dict[str, LoadResult] = {}

    def body() -> None:
        box["r"] = loadgen(handle.settings.store_socket, accounts=accounts, ops=10 ** 9,
                           seed=seed, workers=workers, rate=rate, stop=stop)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    result = LoadResult()
    try:
        yield result
    finally:
        stop.set()
        t.join(60)
        r = box.get("r")
        if r is not None:
            result.actions, result.errors = r.actions, r.errors
            result.error_samples = r.error_samples
            result.by_type = r.by_type


def digests(handle: Any) -> tuple[str, dict[str, str]]:
    """(store total, account id -> mailbox digest)."""
    d = digest_settings(handle.settings)
    return d.total, {m.account_id or str(m.mailbox_id): m.digest for m in d.mailboxes}
