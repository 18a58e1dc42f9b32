"""The classic tools as a user runs them: zmprov and zmlocalconfig, the backup report by SMTP,
and the bad-input list — each a clear error with its documented exit code, and nothing
half-written outside sessions_tmp/."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from standby.cli.classic import _main
from standby.errors import StateConflict
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.conftest import StoreHandle


def zm(capsys: pytest.CaptureFixture[str], tool: str, *args: str) -> tuple[int, str, str]:
    try:
        _main(tool, list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    c = Controller(inbox, hostname="127.0.0.1", port=port)
    c.start()
    yield inbox, port
    c.stop()


def _files(root: Path) -> set[str]:
    out = set()
    for d, _dirs, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def test_tools_and_bad_input(make_store, tmp_path: Path, capsys, smtp) -> None:
    inbox, port = smtp
    h = make_store("primary")
    h.start()
    cfg = str(h.cfg)
    r = loadgen(h.settings.store_socket, accounts=3, ops=120, seed=3, workers=2)
    assert r.errors == 0
    user = sorted(a for a in _accounts(h))[0]
    t = str(tmp_path / "backup")

    # zmprov: the guide's attributes, global and per server; gcf/gs show them.
    assert zm(capsys, "zmprov", "mcf", "zimbraBackupReportEmailRecipients", "ops@example.com",
              "zimbraSmtpHostname", "127.0.0.1", "zimbraSmtpPort", str(port),
              "--config", cfg)[0] == 0
    code, out, _ = zm(capsys, "zmprov", "--config", cfg, "gcf", "zimbraSmtpPort")
    assert (code, out) == (0, f"zimbraSmtpPort: {port}\n")
    me = socket.gethostname()
    assert zm(capsys, "zmprov", "--config", cfg, "ms", me, "zimbraBackupAutoGroupedNumGroups",
              "3")[0] == 0
    code, out, _ = zm(capsys, "zmprov", "--config", cfg, "gs", me,
                      "zimbraBackupAutoGroupedNumGroups", "zimbraBackupMode")
    assert out.splitlines() == [f"# name {me}", "zimbraBackupAutoGroupedNumGroups: 3",
                                "zimbraBackupMode: Standard"]
    code, _, err = zm(capsys, "zmprov", "--config", cfg, "mcf", "zimbraBackupMode", "Weekly")
    assert code == 2 and "zimbraBackupMode" in err

    # zmprov ma: maintenance refuses changes to the account, active takes them again.
    assert zm(capsys, "zmprov", "--config", cfg, "ma", user, "zimbraAccountStatus",
              "maintenance")[0] == 0
    with h.client() as c, pytest.raises(StateConflict, match="maintenance"):
        c.deliver(b"Subject: x\r\n\r\nx\r\n", [user])
    assert zm(capsys, "zmprov", "--config", cfg, "ma", user, "zimbraAccountStatus",
              "active")[0] == 0
    with h.client() as c:
        c.deliver(b"Subject: x\r\n\r\nx\r\n", [user])
    domain = user.split("@")[1]
    assert zm(capsys, "zmprov", "--config", cfg, "md", domain, "zimbraDomainStatus",
              "maintenance")[0] == 0
    with h.client() as c, pytest.raises(StateConflict):
        c.deliver(b"Subject: x\r\n\r\nx\r\n", [user])
    assert zm(capsys, "zmprov", "--config", cfg, "md", domain, "zimbraDomainStatus",
              "active")[0] == 0

    # zmlocalconfig, as the guide writes it.
    assert zm(capsys, "zmlocalconfig", "--config", cfg, "-e",
              "backup_archived_redolog_keep_time=7200")[0] == 0
    assert zm(capsys, "zmlocalconfig", "--config", cfg, "edit", "mysql_backup_retention=1")[0] \
        == 0
    code, out, _ = zm(capsys, "zmlocalconfig", "--config", cfg, "-m", "nokey",
                      "backup_archived_redolog_keep_time")
    assert out == "7200\n"
    assert zm(capsys, "zmlocalconfig", "--config", cfg, "-e",
              "mysql_backup_retention=lots")[0] == 2

    # A full backup, in sync; the report goes to the recipients.
    code, out, err = zm(capsys, "zmbackup", "-f", "-a", "all", "-sync", "-t", t,
                        "--config", cfg)
    assert code == 0, err
    label = out.strip()
    assert label.startswith("full-")
    assert inbox.messages and inbox.messages[-1][0] == ["ops@example.com"]
    assert label in inbox.messages[-1][1] and "Redo log sequence range" in inbox.messages[-1][1]
    assert list((Path(t) / "mysql").glob("mysql-*.sql.gz"))
    code, out, _ = zm(capsys, "zmbackupquery", "-t", t, "--config", cfg, "-lb", label)
    assert code == 0 and f"Label:   {label}" in out and "Status:  completed" in out
    before = _files(Path(t))
    # The guide's disaster-recovery line parses as Zimbra's (-c: --continueOnError).
    code, out, err = zm(capsys, "zmrestoreoffline", "-sys", "-a", "all", "-c", "-br",
                        "--dry-run", "-t", t, "--config", cfg)
    assert code == 0 and out.count("would restore") == 3, err

    bad: list[tuple[int, str, tuple[str, ...]]] = [
        (9, "no such account", ("zmbackup", "-f", "-a", "nobody@example.com", "-sync")),
        (9, "no backup session", ("zmrestore", "-a", user, "-lb",
                                  "full-20200101.000000.000")),
        (9, "no backup session", ("zmbackupquery", "-lb", "full-20200101.000000.000")),
        (2, "not valid", ("zmrestore", "-a", user, "-lb", "../../etc")),
        (2, "not valid", ("zmbackupquery", "-lb", "full-20210712.155951.123/..")),
        (2, "not valid", ("zmbackupabort", "-lb", "..")),
        (2, "exclude each other", ("zmbackup", "-f", "-a", "all", "--zip", "--noZip")),
        (2, "exactly one", ("zmbackup", "-f", "-i")),
        (2, "-ca and -pre", ("zmrestore", "-a", user, "-ca")),
        (2, "cannot parse", ("zmrestore", "-a", user, "-restoreToTime", "next tuesday")),
        (2, "needs -a", ("zmbackup", "-f")),
        (9, "no backup of", ("zmrestore", "-a", "nobody@example.com")),
    ]
    for code_want, msg, (tool, *args) in bad:
        code, _, err = zm(capsys, tool, *args, "-t", t, "--config", cfg)
        assert code == code_want and msg in err, (tool, args, code, err)
    assert _files(Path(t)) == before

    # Not enough free space (zimbraBackupMinFreeSpace): refused, a notification mailed.
    sent = len(inbox.messages)
    assert zm(capsys, "zmprov", "--config", cfg, "mcf", "zimbraBackupMinFreeSpace",
              "100%")[0] == 0
    code, _, err = zm(capsys, "zmbackup", "-f", "-a", "all", "-sync", "-t", t, "--config", cfg)
    assert code == 4 and "zimbraBackupMinFreeSpace" in err
    assert len(inbox.messages) == sent + 1 and "not started" in inbox.messages[-1][1]
    assert _files(Path(t)) == before
    assert zm(capsys, "zmprov", "--config", cfg, "mcf", "zimbraBackupMinFreeSpace", "0")[0] == 0

    # A target that is not writable (a read-only file system) and one that fills up.
    ro = tmp_path / "ro"
    small = tmp_path / "small"
    ro.mkdir()
    small.mkdir()
    with ExitStack() as mounts:
        for path, opts in ((ro, "ro,size=1m"), (small, "size=192k")):
            _mount(path, opts)
            mounts.callback(_umount, path)
        code, _, err = zm(capsys, "zmbackup", "-f", "-a", "all", "-sync", "-t", str(ro),
                          "--config", cfg)
        assert code == 4 and "not writable" in err, err
        code, _, err = zm(capsys, "zmbackup", "-f", "-a", "all", "-sync", "-t", str(small),
                          "--config", cfg)
        assert code == 4 and "ran out of space" in err, err
        left = _files(small)
        assert not any(f.startswith(("sessions/full", "sessions_tmp/full")) for f in left), left
        assert "accounts.xml" not in left


def _accounts(h: StoreHandle) -> list[str]:
    return [a.email for a in Site(h.settings).directory.accounts()]


def _mount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)


def _umount(path: Path) -> None:
    r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, f"umount {path}: {r.stderr}"
