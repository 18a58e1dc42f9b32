"""The streamer's position in the state dir: what `standby stream` has shipped, and how it goes.

    <state_dir>/stream/<quoted target URL>/position.json

`StreamPosition` is written (atomically, `write_atomic`) by the streamer after every segment the
target acknowledged and on every heartbeat; `standby status` and `standby metrics` read it. The
invariant it keeps: `(seq, offset)` is never ahead of what the target holds as complete,
contiguous segments — it is written only after the target acknowledged the segment that ends
there, so a crash leaves it at or behind the target, and the streamer verifies it against the
target's listing on start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from standby.errors import FormatError
from standby.fsutil import write_atomic
from standby.transfer._base import TargetUrl, parse_url, quoted

FILE = "position.json"


@dataclass(frozen=True)
class StreamPosition:
    target: str
    seq: int = -1  # the log sequence the last shipped byte belongs to (-1: nothing yet)
    offset: int = 0  # just past the last complete record shipped, in that log
    shipped_ms: int = 0  # when the target acknowledged the last segment
    caught_up_ms: int = 0  # the last moment everything redo.log held was at the target
    heartbeat_ms: int = 0  # the last time the streamer looked at redo.log
    source_seq: int = -1  # redo.log's sequence and size as last seen
    source_size: int = 0
    buffered_bytes: int = 0  # segments waiting in the state dir for the target
    buffer_max_bytes: int = 0
    segments: int = 0  # segments the target acknowledged, in total
    bytes_shipped: int = 0
    puts: int = 0  # objects written at the target, in total
    error: str | None = None  # the target's last error, while buffering

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str) -> StreamPosition:
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:
            raise FormatError(f"{where}: not a stream position: {e}") from e


def folder(state_dir: Path, target: TargetUrl) -> Path:
    return state_dir / "stream" / quoted(target)


def write(state_dir: Path, pos: StreamPosition) -> None:
    path = folder(state_dir, parse_url(pos.target)) / FILE
    write_atomic(path, json.dumps(pos.as_dict(), sort_keys=True, indent=1) + "\n")


def read(state_dir: Path, target: TargetUrl) -> StreamPosition | None:
    path = folder(state_dir, target) / FILE
    return _read(path)


def read_any(state_dir: Path) -> list[StreamPosition]:
    """Every stream position in the state dir (one per target streamed to), by target."""
    root = state_dir / "stream"
    if not root.is_dir():
        return []
    out = [_read(d / FILE) for d in sorted(root.iterdir()) if (d / FILE).is_file()]
    return [p for p in out if p is not None]


def _read(path: Path) -> StreamPosition | None:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise FormatError(f"{path} is not valid JSON: {e}",
                          hint="remove it: the stream then verifies its position at the target "
                               "again") from e
    if not isinstance(raw, dict):
        raise FormatError(f"{path} is not a stream position")
    return StreamPosition.from_dict(raw, where=str(path))
