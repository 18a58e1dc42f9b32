"""The part sizes of a multipart upload whose length is not known when it starts.

S3 allows 10,000 parts of 5 MiB to 5 GiB (the last may be smaller) and 5 TiB per object. A ZFS
stream's length is not known in advance, and a fixed part size either caps the stream (8 MiB
parts: 78 GiB) or makes every small stream pay for huge parts (525 MiB for 5 TiB). So the part
size starts at the configured `base` and doubles every `step` parts, with `step` the largest that
still lets 10,000 parts hold 5 TiB: small streams use small parts, and the memory an upload
needs, (concurrency + 1) parts, grows only with the stream.

Invariants (Hypothesis in tests/test_transfer_units.py): for every base from 5 MiB to 5 GiB,
every part is within S3's limits, sizes never shrink, and 10,000 parts hold 5 TiB. The sizes
depend on the base alone, so a resumed upload cuts its parts where the first run did.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from standby.errors import ConfigError

MiB = 1 << 20
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_OBJECT = 5 * (1 << 40)


@dataclass(frozen=True)
class PartSchedule:
    base: int
    step: int

    def size(self, number: int) -> int:
        """The size of part `number` (1-based)."""
        return min(MAX_PART, self.base << ((number - 1) // self.step))

    def capacity(self) -> int:
        return _capacity(self.base, self.step)


def _capacity(base: int, step: int) -> int:
    total, n, size = 0, 0, base
    while n < MAX_PARTS:
        k = min(step, MAX_PARTS - n)
        total += k * min(size, MAX_PART)
        n += k
        size <<= 1
    return total


@lru_cache(maxsize=16)
def schedule(base: int) -> PartSchedule:
    """The schedule for parts starting at `base` bytes; `ConfigError` outside S3's limits."""
    if not MIN_PART <= base <= MAX_PART:
        raise ConfigError(f"target.part_size must be within 5 MiB and 5 GiB, not {base} bytes")
    lo, hi = 1, MAX_PARTS
    while lo < hi:  # the largest step whose capacity is still enough
        mid = (lo + hi + 1) // 2
        if _capacity(base, mid) >= MAX_OBJECT:
            lo = mid
        else:
            hi = mid - 1
    return PartSchedule(base, lo)
