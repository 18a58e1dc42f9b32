"""`standby status`: the pure model at an injected clock, `--monitor` against `[monitor]`
(WARNING and CRITICAL when snapshots, shipping or streaming are overdue), and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby import settings as settings_mod
from standby import timefmt
from standby.catalog import local
from standby.settings import MonitorSettings
from standby.status import journal, monitor
from standby.status.model import Inputs, LogSize, build, unshipped_bytes
from standby.transfer import stream_state
from standby.transfer.stream_state import StreamPosition
from tests.status_util import cli, config, manifest

T = 1_800_000_000_000  # the set's time
MIN = 60_000
TH = MonitorSettings()  # set 1h30m/3h, redolog 30m/1h, ship 1h/2h, stream 5 s/30 s
URL = "file:///srv/site"


def inputs(*, shipped_redo: bool = True, stream: StreamPosition | None = None,
           logs: tuple[LogSize, ...] = (LogSize(1, 512),), redo_at: int = T + 10 * MIN,
           journal: dict[str, Any] | None = None) -> Inputs:
    s = manifest("set-a", "set", T)
    r = manifest("redolog-b", "redolog", redo_at, offset=512)
    shipped = {f"set-a/{v}": T + 1000 for v in ("db", "blob", "index", "redolog")}
    if shipped_redo:
        shipped["redolog-b/redolog"] = redo_at + 1000
    return Inputs(server_id="srv-1", target=URL, manifests=(s, r), shipped=shipped, logs=logs,
                  stream=stream, journal=journal or {})


def state_of(inp: Inputs, now: int) -> tuple[int, dict[str, int], str]:
    v = monitor.evaluate(build(inp, now), TH)
    return v.state, {f.check: f.state for f in v.findings}, v.line


def test_fresh_snapshots_everything_shipped_is_ok() -> None:
    state, checks, line = state_of(inputs(), T + 20 * MIN)
    assert state == monitor.OK, line
    assert line.startswith("STANDBY OK - newest set 20m 0s old")
    assert "rpo=0.000s" in line and "unshipped=0B" in line


def test_an_overdue_set_warns_then_is_critical() -> None:
    # the redolog volume is kept fresh, so only the set check can turn
    fresh_redo = T + 100 * MIN
    state, checks, line = state_of(inputs(redo_at=fresh_redo), T + 100 * MIN)
    assert (state, checks["set"]) == (monitor.WARNING, monitor.WARNING), line
    assert "newest set 1h 40m old (warning after 1h 30m)" in line
    state, checks, line = state_of(inputs(redo_at=T + 181 * MIN), T + 181 * MIN)
    assert (state, checks["set"]) == (monitor.CRITICAL, monitor.CRITICAL), line
    assert line.startswith("STANDBY CRITICAL - newest set 3h 1m old (critical after 3h 0m)")


def test_an_overdue_redolog_snapshot_warns_then_is_critical() -> None:
    _, checks, line = state_of(inputs(), T + 45 * MIN)  # redolog taken at +10m: 35 min old
    assert checks["redolog"] == monitor.WARNING and checks["set"] == monitor.OK, line
    _, checks, line = state_of(inputs(), T + 75 * MIN)
    assert checks["redolog"] == monitor.CRITICAL, line
    assert "newest redolog snapshot 1h 5m old (critical after 1h 0m)" in line


def test_overdue_shipping_warns_then_is_critical() -> None:
    inp = inputs(shipped_redo=False, redo_at=T + 80 * MIN)
    _, checks, line = state_of(inp, T + 81 * MIN)
    assert checks["ship"] == monitor.OK
    _, checks, line = state_of(inputs(shipped_redo=False), T + 80 * MIN)
    assert checks["ship"] == monitor.WARNING, line
    assert "redolog snapshot redolog-b unshipped for 1h 10m (warning after 1h 0m)" in line
    _, checks, line = state_of(inputs(shipped_redo=False), T + 140 * MIN)
    assert checks["ship"] == monitor.CRITICAL, line


def streaming(now: int, *, heartbeat_ago: int, caught_up_ago: int, shipped_to: int,
              buffered: int = 0) -> Inputs:
    pos = StreamPosition(URL, seq=2, offset=shipped_to, shipped_ms=now - caught_up_ago,
                         caught_up_ms=now - caught_up_ago, heartbeat_ms=now - heartbeat_ago,
                         buffered_bytes=buffered, buffer_max_bytes=1 << 20,
                         error="connection refused" if buffered else None)
    return inputs(stream=pos, logs=(LogSize(1, 9000), LogSize(2, 4096)),
                  redo_at=now - 5 * MIN)


def test_stream_lag_warns_then_is_critical_and_a_silent_stream_is_critical() -> None:
    now = T + 30 * MIN
    state, checks, line = state_of(streaming(now, heartbeat_ago=200, caught_up_ago=200,
                                             shipped_to=4096), now)
    assert state == monitor.OK and "stream lag 0.0 s (0 bytes)" in line, line
    _, checks, line = state_of(streaming(now, heartbeat_ago=300, caught_up_ago=8000,
                                         shipped_to=1024), now)
    assert checks["stream"] == monitor.WARNING, line
    assert "stream lag 8.0 s (3.0 KiB) (warning after 5.0 s)" in line
    _, checks, line = state_of(streaming(now, heartbeat_ago=300, caught_up_ago=40_000,
                                         shipped_to=1024), now)
    assert checks["stream"] == monitor.CRITICAL, line
    _, checks, line = state_of(streaming(now, heartbeat_ago=45_000, caught_up_ago=45_000,
                                         shipped_to=4096), now)
    assert checks["stream"] == monitor.CRITICAL and "stream silent for 45 s" in line, line
    _, checks, line = state_of(streaming(now, heartbeat_ago=100, caught_up_ago=100,
                                         shipped_to=4096, buffered=1 << 20), now)
    assert checks["stream"] == monitor.CRITICAL and "stream buffer full" in line, line


def test_rpo_and_unshipped_bytes_follow_the_shipped_position() -> None:
    now = T + 30 * MIN
    st = build(streaming(now, heartbeat_ago=100, caught_up_ago=2500, shipped_to=1000), now)
    assert st.shipped_position == (2, 1000)
    assert st.unshipped_bytes == 4096 - 1000 and st.rpo_s == 2.5
    # without a stream: the newest shipped redolog snapshot's redo point (seq 1, offset 512)
    st = build(inputs(logs=(LogSize(1, 2512), LogSize(2, 700))), T + 20 * MIN)
    assert st.shipped_position == (1, 512) and st.unshipped_bytes == 2000 + 700
    assert st.rpo_s == 10 * 60  # the redolog snapshot was taken 10 minutes before "now"


def test_failed_actions_and_a_failed_drill_warn() -> None:
    j = {"actions": {"ship": {"ok_ms": T, "fail_ms": T + MIN, "error": "bucket gone"},
                     "drill": {"fail_ms": T + MIN, "error": "2 committed ops lost",
                               "detail": {"rpo_s": 1.5, "rto_s": 20.0}}}}
    state, checks, line = state_of(inputs(journal=j), T + 20 * MIN)
    assert checks["actions"] == monitor.WARNING and checks["drill"] == monitor.WARNING
    assert "ship failed: bucket gone" in line and "last drill failed: 2 committed ops" in line


@given(sizes=st.lists(st.integers(512, 10**6), min_size=1, max_size=5),
       a=st.tuples(st.integers(0, 6), st.integers(0, 10**6)),
       b=st.tuples(st.integers(0, 6), st.integers(0, 10**6)))
def test_a_later_position_never_leaves_more_unshipped(sizes: list[int], a: tuple[int, int],
                                                      b: tuple[int, int]) -> None:
    logs = [LogSize(i + 1, n) for i, n in enumerate(sizes)]
    lo, hi = sorted([a, b])
    assert unshipped_bytes(logs, hi) <= unshipped_bytes(logs, lo) <= unshipped_bytes(logs, None)
    assert unshipped_bytes(logs, None) == sum(sizes)
    assert unshipped_bytes(logs, (len(sizes), sizes[-1])) == 0


@given(now=st.integers(0, 2 * T))
def test_ages_are_never_negative(now: int) -> None:
    st_ = build(inputs(), now)
    d = st_.as_dict()
    for v in d["volumes"]:
        for k in ("last_snapshot_age_s", "last_shipped_age_s"):
            assert v[k] is None or v[k] >= 0
    assert st_.rpo_s is None or st_.rpo_s >= 0


# --------------------------------------------------------------------------------------------
# The CLI, on a real state dir


def _server(tmp_path: Path, set_age_min: float, redo_age_min: float) -> Path:
    cfg = config(tmp_path / "srv", target={"url": f"file://{tmp_path / 'site'}"})
    s = settings_mod.load(cfg)
    now = timefmt.now_ms()
    cat = local.for_settings(s)
    for m in (manifest("set-20260101.000000.000", "set", now - int(set_age_min * MIN)),
              manifest("redolog-20260101.000500.000", "redolog",
                       now - int(redo_age_min * MIN))):
        cat.write(m)
        for rec in m.snapshots:
            cat.mark_shipped(m.id, rec.volume, at_ms=now, target=f"file://{tmp_path / 'site'}")
    return cfg


def test_cli_monitor_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _server(tmp_path / "a", 20, 5)
    code, out, err = cli(["-c", str(cfg), "status", "--monitor"], capsys)
    assert (code, out.count("\n")) == (0, 1) and out.startswith("STANDBY OK - "), (out, err)
    cfg = _server(tmp_path / "b", 50, 40)
    code, out, _ = cli(["-c", str(cfg), "status", "--monitor"], capsys)
    assert code == 1 and out.startswith("STANDBY WARNING - newest redolog snapshot"), out
    cfg = _server(tmp_path / "c", 200, 5)
    code, out, _ = cli(["-c", str(cfg), "status", "--monitor"], capsys)
    assert code == 2 and out.startswith("STANDBY CRITICAL - newest set 3h 20m old"), out


def test_cli_status_in_words_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    cfg = _server(tmp_path, 20, 5)
    s = settings_mod.load(cfg)
    journal.record(s.state_dir, "drill", ok=True, at_ms=timefmt.now_ms(),
                   detail={"rpo_s": 0.8, "rto_s": 21.5})
    stream_state.write(s.state_dir, StreamPosition(
        f"file://{tmp_path / 'site'}", seq=1, offset=0, heartbeat_ms=timefmt.now_ms(),
        caught_up_ms=timefmt.now_ms()))
    code, out, err = cli(["-c", str(cfg), "status"], capsys)
    assert code == 0, err
    assert "None" not in out and "{" not in out
    assert "db       last snapshot set-20260101.000000.000, " in out and " GMT (20m " in out
    assert "last set       set-20260101.000000.000, skew 1500 ms" in out
    assert "last drill     ok, RPO 0.8 s, RTO 21.5 s" in out
    assert "stream         to file://" in out
    code, out, err = cli(["-c", str(cfg), "status", "--json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["last_set_skew_ms"] == 1500 and d["drill"]["ok"] is True
    assert [v["volume"] for v in d["volumes"]] == ["db", "blob", "index", "redolog"]
    assert d["volumes"][3]["last_shipped"] == "redolog-20260101.000500.000"
    assert d["stream"]["seq"] == 1
