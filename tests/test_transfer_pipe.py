"""`_process.pipe(..., on_count=...)`, as the receiving targets stream `zfs send | zfs recv`: the
bytes move from pipe to pipe in the kernel (`os.splice`) and are still counted and paced; every
byte arrives; an exception from the callback stops both processes; a receiver that fails early
is the error. With small real processes."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

import pytest

from standby import _process
from standby.errors import CommandFailed

SIZE = 9 << 20 | 12345  # not a multiple of anything


def py(code: str, *args: object) -> _process.Command:
    return _process.Command((sys.executable, "-c", code, *map(str, args)))


SEND = """import random, sys
data = random.Random(3).randbytes(int(sys.argv[1]))
for i in range(0, len(data), 65536):
    sys.stdout.buffer.write(data[i:i + 65536])
"""
RECV = """import hashlib, os, sys
open(sys.argv[2], "a").write(f"{os.getpid()}\\n")
h = hashlib.sha256()
for chunk in iter(lambda: sys.stdin.buffer.read(65536), b""):
    h.update(chunk)
open(sys.argv[1], "w").write(h.hexdigest())
"""


def test_counted_in_the_kernel_every_byte_arrives(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spliced: list[int] = []
    real = os.splice

    def splice(src: int, dst: int, count: int) -> int:
        spliced.append(n := real(src, dst, count))
        return n

    monkeypatch.setattr(os, "splice", splice)
    sizes: list[int] = []
    res = _process.pipe(py(SEND, SIZE), py(RECV, tmp_path / "sha", tmp_path / "pids"),
                        on_count=sizes.append)
    want = hashlib.sha256(random.Random(3).randbytes(SIZE)).hexdigest()
    assert (tmp_path / "sha").read_text() == want
    assert res.nbytes == sum(sizes) == SIZE and max(sizes) <= 1 << 20 and len(sizes) > 9
    assert sum(spliced) == SIZE  # no byte through Python


def test_an_exception_from_the_count_stops_both(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    src = py(f"import os, sys; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
             "while True: sys.stdout.buffer.write(b'x' * 65536)")

    class Stop(Exception):
        pass

    def count(n: int) -> None:
        if len(pids.read_text().split()) == 2:  # both running
            raise Stop
        time.sleep(0.01)

    with pytest.raises(Stop):
        _process.pipe(src, py(RECV, tmp_path / "sha", pids), on_count=count, timeout=60)
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2 and not any(_process.alive(p) for p in started)
    assert not (tmp_path / "sha").exists()  # the receiver never saw an end of stream


def test_a_receiver_that_fails_early_is_the_error(tmp_path: Path) -> None:
    sink = py("import sys; sys.stdin.buffer.read(10); sys.stderr.write('disk full'); "
              "sys.exit(4)")
    with pytest.raises(CommandFailed) as ei:
        _process.pipe(py(SEND, SIZE), sink, on_count=lambda n: None, timeout=60)
    assert ei.value.returncode == 4 and "disk full" in ei.value.stderr
