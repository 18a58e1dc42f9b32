"""Redo log file names and ordering (Zimbra `RolloverManager`).

The current log is `redo.log`; rolled-over logs are `archive/redo-<yyyyMMdd.HHmmss.SSS>-seq<N>.log`
with the rollover time in GMT. Rollover writes the next file as `~tmp-redo-<stamp>-seq<N>.log`
first. Listing accepts any `redo-*.log`; the sequence is parsed between the last `-seq` and `.log`;
order is by sequence, then by the name's time stamp. `redolog_dir_logs` is the one listing of a
redolog directory that zmredodump, zmplayredo and the replay use: archives in that order, then the
current log, which is always the newest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from standby import timefmt

CURRENT = "redo.log"
ARCHIVE_DIR = "archive"
TMP_PREFIX = "~tmp-redo-"
_SEQ_RX = re.compile(r"-seq(\d+)\.log\Z")
_STAMP_RX = re.compile(r"redo-(\d{8}\.\d{6}\.\d{3})-seq")


def archive_name(rollover_ms: int, seq: int) -> str:
    return f"redo-{timefmt.gmt_stamp(rollover_ms)}-seq{seq}.log"


def tmp_name(now_ms: int, seq: int) -> str:
    return f"{TMP_PREFIX}{timefmt.gmt_stamp(now_ms)}-seq{seq}.log"


def seq_of(name: str) -> int:
    """The sequence in an archive or tmp name; -1 for `redo.log` or a name without one."""
    i = name.rfind("-seq")
    if i < 0 or not name.endswith(".log"):
        return -1
    digits = name[i + 4:-4]
    return int(digits) if digits.isdigit() else -1


def is_archive_name(name: str) -> bool:
    return name.startswith("redo-") and name.endswith(".log") and seq_of(name) >= 0


def _stamp_of(name: str) -> str:
    m = _STAMP_RX.match(name)
    return m.group(1) if m else ""


@dataclass(frozen=True, order=True)
class LogFile:
    seq: int
    stamp: str
    path: Path


def list_archive(archive_dir: Path) -> list[LogFile]:
    """Archived logs in `archive_dir`, in sequence order (then time stamp)."""
    if not archive_dir.is_dir():
        return []
    out = [LogFile(seq_of(p.name), _stamp_of(p.name), p)
           for p in archive_dir.iterdir() if p.is_file() and is_archive_name(p.name)]
    out.sort()
    return out


def redolog_dir_logs(directory: Path) -> list[LogFile]:
    """The logs of a redolog directory in sequence order: the archived ones (in `archive/`, and
    any directly in `directory`, as in a copied archive folder), then `redo.log`, the current log,
    whose sequence is only in its header (`seq` -1 here) and is always the highest."""
    out = sorted(list_archive(directory / ARCHIVE_DIR) + list_archive(directory))
    current = directory / CURRENT
    if current.is_file():
        out.append(LogFile(-1, "", current))
    return out
