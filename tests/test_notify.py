"""`[notify]`: failed and overdue work and drill results mailed through SMTP, against a real
SMTP server (aiosmtpd) on 127.0.0.1 that the fixture starts and stops."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from standby import notify
from standby import settings as settings_mod
from standby import timefmt
from standby.catalog import local
from standby.errors import ServiceError
from tests.services import free_port
from tests.status_util import cli, config, manifest

MIN = 60_000


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def wait(self, n: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.mails) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return [m for _f, _t, m in self.mails]


def subject(msg: EmailMessage) -> str:
    # a long subject is folded; the parser keeps the blank the fold began with
    return str(msg["Subject"]).strip()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def server(tmp_path: Path, port: int, **notify_keys: object) -> Path:
    keys: dict[str, object] = {"smtp_host": "127.0.0.1", "smtp_port": port,
                               "sender": "standby@primary.test", "to": ["oncall@site.test"]}
    keys.update(notify_keys)
    return config(tmp_path, notify=keys, target={"url": f"file://{tmp_path / 'site'}"})


def test_a_failed_action_is_mailed(tmp_path: Path, smtp: tuple[Inbox, int],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    inbox, port = smtp
    cfg = server(tmp_path, port)
    code, _, err = cli(["-c", str(cfg), "ship"], capsys)  # the target folder does not exist
    assert code == 4, err
    inbox.wait(2)
    # the failure, and the verdict it changed (no set at all: CRITICAL)
    events = {str(m["X-Standby-Event"]): (to, m) for _f, to, m in inbox.mails}
    assert set(events) == {"failure", "overdue"}
    to, msg = events["failure"]
    assert to == ["oncall@site.test"] and msg["From"] == "standby@primary.test"
    assert subject(msg) == "[standby] ship failed on srv-1"
    body = msg.get_content()
    assert f"the target folder {tmp_path / 'site'} does not exist" in body and " GMT " in body


def test_overdue_work_is_mailed_once_per_change(tmp_path: Path, smtp: tuple[Inbox, int],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    inbox, port = smtp
    cfg = server(tmp_path, port)
    s = settings_mod.load(cfg)
    cat = local.for_settings(s)
    now = timefmt.now_ms()
    cat.write(manifest("set-20260101.000000.000", "set", now - 200 * MIN))  # 3h 20m: CRITICAL
    code, out, _ = cli(["-c", str(cfg), "status", "--monitor"], capsys)
    assert code == 2
    (msg,) = inbox.wait(1)
    assert subject(msg).startswith("[standby] srv-1 is CRITICAL: newest set 3h 20m old")
    assert msg["X-Standby-Event"] == "overdue" and "CRITICAL set:" in msg.get_content()
    code, _, _ = cli(["-c", str(cfg), "status", "--monitor"], capsys)  # still CRITICAL: no mail
    assert code == 2
    time.sleep(0.3)
    assert len(inbox.mails) == 1
    cat.write(manifest("set-20260101.010000.000", "set", timefmt.now_ms() - MIN))
    for m in cat.manifests():
        for rec in m.snapshots:
            cat.mark_shipped(m.id, rec.volume, target=f"file://{tmp_path / 'site'}")
    code, out, _ = cli(["-c", str(cfg), "status", "--monitor"], capsys)
    assert code == 0, out
    mails = inbox.wait(2)
    assert len(mails) == 2 and subject(mails[1]) == "[standby] srv-1 is OK again"


def test_drill_results_are_mailed_and_events_can_be_left_out(
        tmp_path: Path, smtp: tuple[Inbox, int], capsys: pytest.CaptureFixture[str]) -> None:
    inbox, port = smtp
    s = settings_mod.load(server(tmp_path / "a", port))
    assert notify.drill_result(s, {"ok": False, "committed_ops_lost": 3, "rpo_s": 1.2,
                                   "rto_s": 30.5, "notes": ["gap: segment 7 missing"]})
    (msg,) = inbox.wait(1)
    assert subject(msg) == "[standby] drill FAILED on srv-1"
    assert "committed_ops_lost   3" in msg.get_content()
    assert "gap: segment 7 missing" in msg.get_content()
    only_drills = server(tmp_path / "b", port, events=["drill"])
    code, _, _ = cli(["-c", str(only_drills), "ship"], capsys)
    assert code == 4
    time.sleep(0.3)
    assert len(inbox.mails) == 1  # neither the failure nor the verdict: not among the events


def test_an_unreachable_smtp_server_is_a_service_error_and_not_the_actions_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nobody listens
    s = settings_mod.load(server(tmp_path, port))
    with pytest.raises(ServiceError, match=f"cannot mail through the SMTP server 127.0.0.1:"
                                           f"{port}"):
        notify.send_event(s, "failure", "x", "y")
    code, _, err = cli(["-c", str(s.source), "ship"], capsys)
    assert code == 4 and "the target folder" in err  # the ship's own error and exit code
