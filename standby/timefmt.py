"""Zimbra's date-time formats: parsing user input, and the GMT stamps in labels and file names.

Input times (zmplayredo `--fromTime`, zmrestore `-restoreToTime`, zmbackupquery `--from`) are
parsed as Zimbra's `SoapCLI` does: in local time, non-lenient, the whole string must match one of
the nine formats, tried in order. The guide also writes `"2021/10/17 08:00:00:000"` (milliseconds
after a colon), which Zimbra itself would reject; users copy it from the guide, so it is accepted.

Output stamps:
- `echo(ms)`: how Zimbra echoes a parsed time, `yyyy/MM/dd HH:mm:ss`, local time;
- `gmt_stamp(ms)`: `yyyyMMdd.HHmmss.SSS` in GMT, used in backup labels and redo archive names;
- `verify_stamp(ms)`: `yyyy/MM/dd HH:mm:ss.SSS z`, local time, as zmredodump prints it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from standby.errors import UsageError

# (pattern name as in Zimbra, regex). Delimited numeric fields accept one or two digits as
# SimpleDateFormat does; abutting fields are fixed-width.
_D = r"(?P<y>\d{4})/(?P<mo>\d{1,2})/(?P<d>\d{1,2})"
_T = r"(?P<h>\d{1,2}):(?P<mi>\d{1,2}):(?P<s>\d{1,2})"
_ABUT = r"(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
_ABUT_T = r"(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})"

FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx + r"\Z"))
    for name, rx in (
        ("yyyy/MM/dd HH:mm:ss", _D + " " + _T),
        ("yyyy/MM/dd HH:mm:ss SSS", _D + " " + _T + r" (?P<ms>\d{1,3})"),
        ("yyyy/MM/dd HH:mm:ss.SSS", _D + " " + _T + r"\.(?P<ms>\d{1,3})"),
        ("yyyy/MM/dd-HH:mm:ss-SSS", _D + "-" + _T + r"-(?P<ms>\d{1,3})"),
        ("yyyy/MM/dd-HH:mm:ss", _D + "-" + _T),
        ("yyyyMMdd.HHmmss.SSS", _ABUT + r"\." + _ABUT_T + r"\.(?P<ms>\d{3})"),
        ("yyyyMMdd.HHmmss", _ABUT + r"\." + _ABUT_T),
        ("yyyyMMddHHmmssSSS", _ABUT + _ABUT_T + r"(?P<ms>\d{3})"),
        ("yyyyMMddHHmmss", _ABUT + _ABUT_T),
        # The guide's own spelling (not in Zimbra's list).
        ("yyyy/MM/dd HH:mm:ss:SSS", _D + " " + _T + r":(?P<ms>\d{1,3})"),
    )
)

FORMAT_NAMES = tuple(name for name, _ in FORMATS)


@dataclass(frozen=True)
class ParsedTime:
    epoch_ms: int
    format: str


def parse(text: str, *, option: str = "time") -> int:
    """Parse a user-supplied time in local time; return epoch milliseconds.

    Raises UsageError naming the option and listing the accepted formats.
    """
    return parse_detail(text, option=option).epoch_ms


def parse_detail(text: str, *, option: str = "time") -> ParsedTime:
    s = text.strip()
    for name, rx in FORMATS:
        m = rx.match(s)
        if not m:
            continue
        g = m.groupdict()
        ms = int(g["ms"]) if g.get("ms") is not None else 0
        try:
            dt = datetime(
                int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]), int(g["s"])
            )
        except ValueError as e:
            raise UsageError(f"{option}: {text!r} is not a valid date-time ({e})") from e
        # A naive datetime's timestamp() is interpreted in local time, as Zimbra does.
        secs = int(dt.timestamp())
        if datetime.fromtimestamp(secs) != dt:
            # Non-lenient, as Zimbra's SimpleDateFormat: a wall-clock time skipped by a
            # daylight-saving change does not exist here.
            raise UsageError(f"{option}: {text!r} does not exist in the local time zone "
                             "(it falls in a daylight-saving gap)")
        return ParsedTime(secs * 1000 + ms, name)
    raise UsageError(
        f"{option}: cannot parse {text!r} as a date-time",
        hint="use one of: " + ", ".join(f'"{n}"' for n in FORMAT_NAMES),
    )


def echo(epoch_ms: int) -> str:
    """Zimbra's echo of a parsed time: local `yyyy/MM/dd HH:mm:ss`."""
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(epoch_ms / 1000))


def gmt_stamp(epoch_ms: int) -> str:
    """`yyyyMMdd.HHmmss.SSS` in GMT (labels, redo archive names)."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return dt.strftime("%Y%m%d.%H%M%S") + f".{epoch_ms % 1000:03d}"


_GMT_RX = re.compile(r"(\d{4})(\d{2})(\d{2})\.(\d{2})(\d{2})(\d{2})\.(\d{3})\Z")


def parse_gmt_stamp(stamp: str) -> int:
    """Inverse of `gmt_stamp`; raises UsageError on a malformed stamp."""
    m = _GMT_RX.match(stamp)
    if not m:
        raise UsageError(f"{stamp!r} is not a yyyyMMdd.HHmmss.SSS stamp")
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    try:
        dt = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError as e:
        raise UsageError(f"{stamp!r} is not a valid date-time ({e})") from e
    return int(dt.timestamp()) * 1000 + ms


def verify_stamp(epoch_ms: int) -> str:
    """`yyyy/MM/dd HH:mm:ss.SSS z` in local time, as zmredodump prints op times."""
    t = time.localtime(epoch_ms / 1000)
    return time.strftime("%Y/%m/%d %H:%M:%S", t) + f".{epoch_ms % 1000:03d} " + time.strftime(
        "%Z", t
    )


def iso_utc(epoch_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, for JSON output."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
