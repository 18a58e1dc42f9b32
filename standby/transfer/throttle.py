"""Rates (`--bwlimit`, `target.bwlimit`) and the throttle that keeps a transfer under one.

A rate is written as rsync writes `--bwlimit`: a number of KiB per second, or a number with a
unit `K`, `M` or `G` (binary: 1024, 1024², 1024³ bytes per second), e.g. `500`, `20M`, `1.5G`.
`parse_rate` is pure (Hypothesis round trip with `render_rate`). `Throttle` takes the clock and
the sleep as arguments, so its pacing is tested without waiting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from standby.errors import UsageError

_UNITS = {"": 1024, "k": 1024, "m": 1024**2, "g": 1024**3}
_RATE = re.compile(r"(\d+(?:\.\d+)?)([kmg]?)(?:i?b?(?:/s)?)?\Z", re.IGNORECASE)


def parse_rate(text: str, *, option: str = "--bwlimit") -> int:
    """Bytes per second from `500`, `20M`, `1.5G` (`UsageError` naming `option` otherwise)."""
    m = _RATE.match(text.strip())
    if not m:
        raise UsageError(f"{option}: {text!r} is not a rate",
                         hint="KiB per second, or a number with K, M or G, e.g. 20M")
    n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if n < 1:
        raise UsageError(f"{option}: {text!r} is less than one byte per second")
    return int(n)


def render_rate(bytes_per_s: int) -> str:
    """A rate `parse_rate` reads back to the same number of bytes per second."""
    for unit in ("G", "M", "K"):
        div = _UNITS[unit.lower()]
        if bytes_per_s % div == 0:
            return f"{bytes_per_s // div}{unit}"
    return f"{bytes_per_s / 1024!r}"


class Throttle:
    """Keeps the bytes passed through `take` under `rate` bytes per second on average, allowing
    a burst of one second's worth."""

    def __init__(self, rate: int | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._sent = 0

    def take(self, n: int) -> None:
        if not self.rate:
            return
        self._sent += n
        ahead = self._sent / self.rate - (self._clock() - self._start) - 1.0
        if ahead > 0:
            self._sleep(ahead)
