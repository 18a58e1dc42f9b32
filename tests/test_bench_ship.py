"""`standby bench ship` at a tiny size (figures are the benchmark's business, never asserted
here): it reports every figure the issue asks for, and leaves no work folder behind, whether it
finishes or is stopped with SIGTERM in the middle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

FIGURES = {"ship_mb_per_s", "upload_file_mb_per_s", "ship_vs_upload_file_ratio",
           "compression_ratio", "increment_wall_s", "increment_tool_overhead_s",
           "increment_cli_wall_s", "ratio_target_met", "increment_target_met"}


def _bench(workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("standby")
    return subprocess.Popen([str(exe), "--log-level", "warning", "bench", "ship",
                             "--workdir", str(workdir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_bench_ship_reports_its_figures_and_removes_its_folder(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "--size-mb", "2", "--zfs-size-mb", "0", "--json")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    got = json.loads(out.decode().splitlines()[-1])
    assert FIGURES <= got.keys(), sorted(FIGURES - got.keys())
    assert got["snapshot_bytes"] > 2 << 20 and got["ship_stored_bytes"] > 0
    assert list(tmp_path.iterdir()) == []


def test_bench_ship_stopped_with_sigterm_removes_its_folder(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "--size-mb", "64", "--zfs-size-mb", "0")
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("*/blob")):  # writing the volumes
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the bench wrote no volume"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-3000:]
    assert list(tmp_path.iterdir()) == []
