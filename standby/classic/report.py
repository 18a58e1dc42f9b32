"""The backup report: written into the session (`report.txt`) and mailed to the recipients.

As the guide says: success or failure, when the session started and ended, the number of
accounts backed up, the redo log sequence range, and, if it failed, what went wrong. Recipients
are `zimbraBackupReportEmailRecipients`; the SMTP server is `zimbraSmtpHostname` and
`zimbraSmtpPort` (the report is sent over plain SMTP, as Zimbra hands it to its local MTA). A
report that cannot be sent is logged and does not fail the session. A session refused for lack
of free space sends a notification instead.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from standby.classic import target as target_mod
from standby.classic import xmlfiles
from standby.classic.query import zimbra_time
from standby.classic.xmlfiles import Session

if TYPE_CHECKING:  # env builds an SmtpMailer from this module
    from standby.classic.env import Env


def render(env: Env, rec: Session) -> str:
    done = sum(a.status == "COMPLETED" for a in rec.accounts)
    errs = [a for a in rec.accounts if a.status == "ERROR"]
    lines = [f"Server:  {env.server}", f"Label:   {rec.label}", f"Type:    {rec.type}",
             f"Mode:    {rec.mode}", f"Status:  {rec.status}",
             f"Started: {zimbra_time(rec.start_ms)}"]
    if rec.end_ms is not None:
        lines.append(f"Ended:   {zimbra_time(rec.end_ms)}")
    if rec.min_redo_seq is not None:
        lines.append(f"Redo log sequence range: {rec.min_redo_seq} .. {rec.max_redo_seq}")
    lines.append(f"Number of accounts: {done} backed up of {len(rec.accounts)}")
    for a in errs:
        lines.append(f"  error: {a.email}: {a.error}")
    for e in rec.errors:
        lines.append(f"Error: {e}")
    if rec.stats:
        lines.append("Statistics: " + ", ".join(f"{k}={v}" for k, v in sorted(
            rec.stats.items())))
    return "\n".join(lines) + "\n"


def write(root: Path, env: Env, rec: Session) -> None:
    xmlfiles.write_atomic(root / target_mod.REPORT, render(env, rec).encode(), durable=False)


def subject(env: Env, rec: Session) -> str:
    return f"{env.config.subject_prefix}: {env.server}: {rec.label} {rec.status.upper()}"


def mail(env: Env, rec: Session) -> None:
    _send(env, subject(env, rec), render(env, rec))


def notify_refused(env: Env, why: str) -> None:
    _send(env, f"{env.config.subject_prefix}: {env.server}: backup not started", why + "\n")


def _send(env: Env, subject: str, body: str) -> None:
    cfg = env.config
    if not cfg.recipients or env.mailer is None:
        return
    sender = cfg.sender or f"admin@{env.server}"
    try:
        env.mailer.send(sender=sender, recipients=cfg.recipients, subject=subject, body=body)
    except (OSError, smtplib.SMTPException) as e:
        env.log.warning("backup_report_not_sent", error=str(e), host=cfg.smtp_host)


@dataclass(frozen=True)
class SmtpMailer:
    """Plain SMTP to `host:port` (the real one; tests point it at a local server)."""

    host: str
    port: int
    timeout: float = 30.0

    def send(self, *, sender: str, recipients: tuple[str, ...], subject: str,
             body: str) -> None:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as s:
            s.send_message(msg)
