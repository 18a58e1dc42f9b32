"""The 512-byte redo log file header (Zimbra `FileHeader`, format version 1.42).

| off | size | field |
| 0   | 7    | magic `ZM_REDO`                 | 7   | 1 | open (1 = open or crashed)  |
| 8   | 8    | fileSize (on close/truncate)    | 16  | 8 | sequence                    |
| 24  | 1    | serverId length (<= 127)        | 25  | 127 | serverId, zero-padded     |
| 152 | 8    | firstOpTstamp (epoch ms)        | 160 | 8 | lastOpTstamp (on close)     |
| 168 | 2+2  | version major, minor            | 172 | 8 | createTime (epoch ms)       |
| 180 | 332  | zero padding

All integers are big-endian. A header of version 0.0 is read as 1.0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from standby.errors import FormatError, UnsupportedVersion

HEADER_SIZE = 512
MAGIC = b"ZM_REDO"
SERVER_ID_MAX = 127
VERSION = (1, 42)

_S = struct.Struct(">7sBqqB127sqqhhq")
assert _S.size == 180


@dataclass(frozen=True, slots=True)
class FileHeader:
    sequence: int
    server_id: str
    create_time: int
    open: bool = True
    file_size: int = 0
    first_op_tstamp: int = 0
    last_op_tstamp: int = 0
    version: tuple[int, int] = VERSION

    def encode(self) -> bytes:
        sid = self.server_id.encode("utf-8")
        if len(sid) > SERVER_ID_MAX:
            raise ValueError(f"server id of {len(sid)} bytes exceeds {SERVER_ID_MAX}")
        head = _S.pack(MAGIC, 1 if self.open else 0, self.file_size, self.sequence, len(sid),
                       sid.ljust(SERVER_ID_MAX, b"\0"), self.first_op_tstamp,
                       self.last_op_tstamp, self.version[0], self.version[1], self.create_time)
        return head + bytes(HEADER_SIZE - len(head))

    def with_(self, **changes: object) -> FileHeader:
        return replace(self, **changes)  # type: ignore[arg-type]


def decode(buf: bytes, *, path: str = "redo log") -> FileHeader:
    """Parse a header; FormatError if it is short or not a redo log, UnsupportedVersion if newer."""
    if len(buf) < HEADER_SIZE:
        raise FormatError(f"{path}: file is {len(buf)} bytes, shorter than the 512-byte header",
                          hint="an empty or truncated file is not a redo log")
    (magic, is_open, size, seq, sid_len, sid, first, last, vmaj, vmin,
     created) = _S.unpack_from(buf, 0)
    if magic != MAGIC:
        raise FormatError(f"{path}: not a Zimbra redo log (magic {magic!r}, expected {MAGIC!r})")
    if sid_len > SERVER_ID_MAX:
        raise FormatError(f"{path}: header server id length {sid_len} exceeds 127")
    version = (vmaj, vmin) if (vmaj, vmin) != (0, 0) else (1, 0)
    if version > VERSION:
        raise UnsupportedVersion(
            f"{path}: written by redo log format {version[0]}.{version[1]}, newer than the "
            f"{VERSION[0]}.{VERSION[1]} this tool reads",
            hint="upgrade standby on this host",
        )
    return FileHeader(
        sequence=seq,
        server_id=sid[:sid_len].decode("utf-8", "replace"),
        create_time=created,
        open=bool(is_open),
        file_size=size,
        first_op_tstamp=first,
        last_op_tstamp=last,
        version=version,
    )
