"""Durations and sizes in words (`1h 5m`, `3.2 s`, `1.5 MiB`): what people read in status lines
and in the plans of shipping.

Pure functions; never a raw epoch or a Python repr."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """`0.4 s`, `42 s`, `5m 3s`, `2h 5m`, `3d 4h`."""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    n = int(s)
    if n < 3600:
        return f"{n // 60}m {n % 60}s"
    if n < 86400:
        return f"{n // 3600}h {n % 3600 // 60}m"
    return f"{n // 86400}d {n % 86400 // 3600}h"


def size(n: int) -> str:
    """`512 bytes`, `3.0 KiB`, `1.5 MiB`, `2.0 GiB`."""
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} bytes"
