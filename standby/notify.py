"""Mail about failed and overdue work and drill results, through SMTP (`[notify]`).

Three events (`notify.events` chooses): `failure` (an action raised), `overdue` (the monitor's
verdict changed to WARNING or CRITICAL, or back to OK: mailed once per change, not on every
check), `drill` (every drill's result). Build, then send: `message` is pure (an
`EmailMessage`), `send` talks SMTP through an `smtp` factory that tests may replace, and turns
every SMTP or socket failure into a `ServiceError` naming the server.

The last verdict mailed is kept in `<state_dir>/status/notified.json`, so a monitor run from
cron every minute mails a change once.
"""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from standby import timefmt
from standby.errors import FormatError, ServiceError
from standby.fsutil import write_atomic
from standby.settings import NotifySettings, Settings
from standby.status import monitor

NOTIFIED = "status/notified.json"


def message(n: NotifySettings, server_id: str, event: str, subject: str, body: str, *,
            now_ms: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = n.sender
    msg["To"] = ", ".join(n.to)
    msg["Subject"] = f"{n.subject_prefix} {subject}".strip()
    msg["Date"] = formatdate(now_ms / 1000, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="standby.local")
    msg["X-Standby-Event"] = event
    msg["X-Standby-Server"] = server_id
    msg.set_content(body)
    return msg


def send(n: NotifySettings, msg: EmailMessage, *,
         smtp: Callable[..., Any] = smtplib.SMTP) -> None:
    """Deliver `msg` to `n.smtp_host`; `ServiceError` (exit 7) if the server cannot be reached
    or refuses it."""
    where = f"{n.smtp_host}:{n.smtp_port}"
    try:
        with smtp(n.smtp_host, n.smtp_port, timeout=n.timeout_s) as conn:
            if n.starttls:
                conn.starttls()
            if n.username:
                conn.login(n.username, n.password or "")
            refused = conn.send_message(msg)
    except (smtplib.SMTPException, OSError, socket.timeout) as e:
        raise ServiceError(f"cannot mail through the SMTP server {where}: {e}",
                           hint="check notify.smtp_host, smtp_port and the credentials") from e
    if refused:
        raise ServiceError(f"the SMTP server {where} refused "
                           + ", ".join(sorted(refused)))


def send_event(s: Settings, event: str, subject: str, body: str, *,
               now_ms: Callable[[], int] = timefmt.now_ms,
               smtp: Callable[..., Any] = smtplib.SMTP) -> bool:
    """Mail `event` if `[notify]` has a server and asks for this event; True if mailed."""
    n = s.notify
    if n.smtp_host is None or event not in n.events:
        return False
    send(n, message(n, s.server_id, event, subject, body, now_ms=now_ms()), smtp=smtp)
    return True


def overdue(s: Settings, verdict: monitor.Verdict, *, now_ms: Callable[[], int] = timefmt.now_ms,
            smtp: Callable[..., Any] = smtplib.SMTP) -> bool:
    """Mail the verdict if it differs from the last one mailed (a first OK is not mailed);
    True if mailed."""
    path = s.state_dir / NOTIFIED
    try:
        last = json.loads(path.read_text()).get("state", "OK")
    except FileNotFoundError:
        last = "OK"
    except ValueError as e:
        raise FormatError(f"{path} is not valid JSON: {e}", hint="remove it") from e
    if verdict.name == last:
        return False
    bad = [f for f in verdict.findings if f.state != monitor.OK]
    if verdict.state == monitor.OK:
        subject = f"{s.server_id} is OK again"
        body = f"standby on {s.server_id} is back to OK (it was {last}).\n\n{verdict.line}\n"
    else:
        subject = f"{s.server_id} is {verdict.name}: " + bad[0].reason
        body = (f"standby on {s.server_id} is {verdict.name} (it was {last}):\n\n"
                + "".join(f"  {monitor.NAMES[f.state]:8s} {f.check}: {f.reason}\n"
                          for f in bad) + f"\n{verdict.line}\n")
    mailed = send_event(s, "overdue", subject, body, now_ms=now_ms, smtp=smtp)
    if mailed or s.notify.smtp_host is None or "overdue" not in s.notify.events:
        write_atomic(path, json.dumps({"state": verdict.name,
                                       "at": timefmt.iso_utc(now_ms())}) + "\n")
    return mailed


def drill_result(s: Settings, report: dict[str, Any], *,
                 now_ms: Callable[[], int] = timefmt.now_ms,
                 smtp: Callable[..., Any] = smtplib.SMTP) -> bool:
    ok = bool(report.get("ok"))
    subject = (f"drill passed on {s.server_id}: RPO {report.get('rpo_s')} s, "
               f"RTO {report.get('rto_s')} s" if ok else f"drill FAILED on {s.server_id}")
    keys = ("ok", "committed_ops_lost", "divergent_mailboxes", "rpo_s", "ops_after_cut",
            "rto_s", "replay_ops_per_s")
    body = "".join(f"  {k:20s} {report.get(k)}\n" for k in keys if k in report)
    notes = report.get("notes") or []
    body += "".join(f"  note                 {n}\n" for n in notes)
    return send_event(s, "drill", subject, body, now_ms=now_ms, smtp=smtp)
