"""The status of a server from its settings: the one part of `status/` that reads the disk.

It reads the local catalog (manifests), the shipped state for the configured target (or what
every target it ever shipped to holds), the sizes and sequences of the redo logs on the
redolog volume, the stream's position and the action journal, and hands them to the pure
`model.build`.
"""

from __future__ import annotations

import os
from pathlib import Path

from standby.catalog import local
from standby.errors import FormatError
from standby.redolog import header as fileheader
from standby.redolog.files import redolog_dir_logs
from standby.settings import Settings
from standby.status import journal
from standby.status.model import Inputs, LogSize, Status, build
from standby.transfer import stream_state
from standby.transfer._base import parse_url


def log_sizes(redolog_dir: Path) -> list[LogSize]:
    """Every redo log on the volume, by the sequence its header holds, with its size now."""
    out = []
    for lf in redolog_dir_logs(redolog_dir):
        try:
            with open(lf.path, "rb") as f:
                head = f.read(fileheader.HEADER_SIZE)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            continue  # rolled over (or pruned) between the listing and the open
        try:
            seq = fileheader.decode(head, path=str(lf.path)).sequence
        except FormatError:
            continue  # a log being created: no header yet
        out.append(LogSize(seq, size))
    return out


def inputs(s: Settings, *, target: str | None = None) -> Inputs:
    cat = local.for_settings(s)
    url = target or s.stream.target or s.target.url
    turl = str(parse_url(url)) if url else None
    shipped = cat.shipped(turl) if turl else cat.shipped()
    streams = stream_state.read_any(s.state_dir)
    stream = None
    if turl is not None:
        stream = next((p for p in streams if p.target == turl), None)
    elif len(streams) == 1:
        stream = streams[0]
    return Inputs(server_id=s.server_id, target=turl, manifests=cat.manifests(),
                  shipped=shipped, logs=log_sizes(s.volumes.redolog.path), stream=stream,
                  journal=journal.read(s.state_dir))


def status(s: Settings, now_ms: int, *, target: str | None = None) -> Status:
    return build(inputs(s, target=target), now_ms)
