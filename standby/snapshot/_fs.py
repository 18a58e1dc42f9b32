"""Which file system a path is on, read from /proc/self/mountinfo (parser kept pure).

Used to refuse a backend the volume's file system cannot serve (btrfs on ext4, say) with a
message that names the file system, and by the `dir` backend to report reflink support.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal `\040` etc.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Lines of /proc/self/mountinfo -> mounts (mount point, fs type, source)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        mounts.append(Mount(_unescape(lf[4]), rf[0], _unescape(rf[1])))
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding `path` (the longest mount point that is a prefix; the last one wins
    when several are stacked on the same point)."""
    p = os.path.realpath(path)
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point
        inside = p == mp or p.startswith(mp.rstrip("/") + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    return best


def fs_type(path: Path) -> str:
    """The file system type of `path` ("btrfs", "ext4", "fuse", ...), "unknown" if unreadable."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return "unknown"
    m = mount_of(path, parse_mountinfo(text))
    return m.fstype if m else "unknown"
