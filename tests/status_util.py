"""Helpers of the status, metrics and notification tests: manifests at chosen times, a server's
config with a manifest key, and `standby ARGS` through the CLI's edge."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from standby import log as slog
from standby.catalog import manifest as mf
from standby.catalog.manifest import Manifest, RedoPoint, ReplayStart, SnapshotRecord
from standby.cli import common
from standby.cli.main import app
from tests.services import write_config

KEY = "k" * 32
VOLS = ("db", "blob", "index", "redolog")


def manifest(mid: str, kind: str, t: int, *, stagger_ms: int = 500, seq: int = 1,
             offset: int = 512, server_id: str = "srv-1") -> Manifest:
    vols = VOLS if kind == "set" else ("redolog",)
    recs = tuple(SnapshotRecord(
        volume=v, backend="dir", name=f"standby-{mid}", ref=f"/snap/{v}/{mid}", dataset=None,
        path=f"/srv/{v}", identity={}, started_ms=t + stagger_ms * i - 2,
        taken_at_ms=t + stagger_ms * i, redo=RedoPoint(seq, offset, (), None, "store", t),
        group=i) for i, v in enumerate(vols))
    sk, win = mf.skew(recs)
    return Manifest(server_id=server_id, id=mid, kind=kind, status="complete", atomic=False,
                    stagger_s=stagger_ms / 1000, quiesced_db=False, started_ms=t - 3,
                    finished_ms=t + 2000, skew_ms=sk, window_ms=win,
                    replay=ReplayStart(seq, offset, (), t), snapshots=recs)


def config(root: Path, **sections: dict[str, object]) -> Path:
    secs: dict[str, dict[str, object]] = {"snapshot": {"manifest_key": KEY}}
    for k, v in sections.items():
        secs.setdefault(k, {}).update(v)
    return write_config(root, sections=secs, server_id="srv-1")


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`standby ARGS` through the CLI's edge: (exit code, stdout, stderr)."""
    try:
        common.run(app, argv=["--log-format", "json", "--log-level", "warning", *args],
                   prog="standby")
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        # The root command logs to pytest's capture, closed after the test.
        slog.configure("json", "info", stream=sys.__stderr__)
    out, err = capsys.readouterr()
    return code, out, err
