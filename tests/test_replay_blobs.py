"""The fast engine's blob writes: file-to-file copies out of the log, and their fallback.

A worker creates a new blob by copying its bytes from the log file inside the kernel
(`copy_file_range`); where the kernel refuses (log and blob volumes on different file systems,
FUSE), it copies through the process instead, from the start of the file, and stops trying.
An existing blob is never overwritten by the create path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from standby.replay import worker as wmod


def _worker(log: Path) -> Any:
    w = wmod.Worker.__new__(wmod.Worker)  # only the blob-writing state, no database
    w.blobs = wmod._Blobs()
    w.blobs.set_files([str(log)])
    w._kernel_copy = hasattr(os, "copy_file_range")
    return w


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, bytes, int]:
    body = os.urandom(300_000)  # larger than one copy_file_range call may move
    head = b"record header bytes" * 7
    p = tmp_path / "redo.log"
    p.write_bytes(head + body + b"trailer")
    return p, body, len(head)


def test_new_blob_is_copied_exactly_from_its_offset(tmp_path: Path, log: Any) -> None:
    path, body, off = log
    w = _worker(path)
    dst = tmp_path / "1-5.msg"
    assert w._copy_new(str(dst), (0, off, len(body))) is True
    assert dst.read_bytes() == body
    w.blobs.close()


def test_existing_blob_is_left_alone(tmp_path: Path, log: Any) -> None:
    path, body, off = log
    w = _worker(path)
    dst = tmp_path / "1-5.msg"
    dst.write_bytes(b"already here")
    assert w._copy_new(str(dst), (0, off, len(body))) is False
    assert dst.read_bytes() == b"already here"
    w.blobs.close()


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS])
def test_kernel_refusal_mid_copy_falls_back_to_a_whole_copy(tmp_path: Path, log: Any,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          code: int) -> None:
    path, body, off = log
    real = os.copy_file_range
    calls = []

    def refuse_after_first(src: int, dst: int, count: int, offset_src: int | None = None,
                           *a: Any) -> int:
        calls.append(count)
        if len(calls) == 1:  # part of the file is written before the refusal
            return real(src, dst, min(count, 4096), offset_src)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", refuse_after_first)
    w = _worker(path)
    first = tmp_path / "1-5.msg"
    assert w._copy_new(str(first), (0, off, len(body))) is True
    assert first.read_bytes() == body
    assert w._kernel_copy is False
    n = len(calls)
    second = tmp_path / "2-6.msg"
    assert w._copy_new(str(second), (0, off, 1000)) is True
    assert second.read_bytes() == body[:1000]
    assert len(calls) == n, "after a refusal the kernel copy is not tried again"
    w.blobs.close()


def test_other_errors_are_not_hidden(tmp_path: Path, log: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path, body, off = log

    def no_space(*a: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "copy_file_range", no_space)
    w = _worker(path)
    dst = tmp_path / "1-5.msg"
    with pytest.raises(OSError) as e:
        w._copy_new(str(dst), (0, off, len(body)))
    assert e.value.errno == errno.ENOSPC
    assert not dst.exists()
    w.blobs.close()


def test_a_blob_past_the_end_of_the_log_is_an_error(tmp_path: Path, log: Any) -> None:
    path, body, off = log
    w = _worker(path)
    size = path.stat().st_size
    dst = tmp_path / "1-5.msg"
    with pytest.raises(OSError, match="short read"):
        w._copy_new(str(dst), (0, size - 10, 100))
    assert not dst.exists(), "a blob that could not be finished is removed"
    w.blobs.close()
