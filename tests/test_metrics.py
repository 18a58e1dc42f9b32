"""The Prometheus textfile: parsed by prometheus_client's own parser, HELP and TYPE on every
metric, Prometheus names; written atomically after actions when `[metrics] textfile` is set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from standby import metrics
from standby import settings as settings_mod
from standby.redolog.header import FileHeader
from standby.status import monitor
from standby.status.model import build
from standby.settings import MonitorSettings
from standby.transfer.stream_state import StreamPosition
from tests.status_util import cli, config
from tests.test_status import MIN, T, URL, inputs

NAME = re.compile(r"standby_[a-z_]+\Z")


def parsed(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def help_and_type_before_every_sample(text: str) -> None:
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert doc.strip(), f"{name} has an empty HELP"
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter"), line
            typed[name] = kind
        elif line:
            m = re.match(r"[a-z_]+", line)
            assert m is not None, line
            name = m.group(0)
            assert name in helped and name in typed, f"{name} without HELP/TYPE before it"
    for name, kind in typed.items():
        assert NAME.match(name), name
        assert name.endswith("_total") == (kind == "counter"), name
        assert name in helped


def test_the_textfile_parses_and_says_what_the_status_says() -> None:
    now = T + 20 * MIN
    pos = StreamPosition(URL, seq=1, offset=256, caught_up_ms=now - 1500, heartbeat_ms=now - 200,
                         segments=12, puts=14, bytes_shipped=9000)
    inp = inputs(stream=pos, journal={
        "actions": {"replay": {"ok_ms": now - MIN, "detail": {"ops_per_s": 4321}},
                    "ship": {"ok_ms": now - 2 * MIN, "fail_ms": now - MIN, "error": "x"},
                    "drill": {"ok_ms": now - 5 * MIN, "detail": {"rpo_s": 0.7, "rto_s": 19}}},
        "totals": {"ship_bytes": 1000, "replay_ops": 777}})
    s = build(inp, now)
    fams = metrics.families(s, inp.journal, monitor.evaluate(s, MonitorSettings()))
    metrics.stream_counters(fams, target=URL, segments=12, puts=14, stream_bytes=9000)
    text = metrics.render(fams)
    help_and_type_before_every_sample(text)
    got = parsed(text)
    assert {f"standby_{n}" for n in ("rpo_seconds", "set_skew_seconds", "drill_success")} <= set(
        got)

    def value(name: str, **labels: str) -> float:
        fam = got[name]
        vals = [smp.value for smp in fam.samples
                if all(smp.labels.get(k) == v for k, v in labels.items())]
        assert len(vals) == 1, (name, labels, vals)
        return float(vals[0])

    assert value("standby_rpo_seconds") == 1.5  # 256 bytes of redo.log unshipped, 1.5 s old
    assert value("standby_stream_lag_bytes", target=URL) == 512 - 256
    assert value("standby_set_skew_seconds") == 1.5
    assert value("standby_snapshot_age_seconds", volume="db") == 20 * 60
    assert value("standby_last_success_timestamp_seconds", action="snapshot",
                 volume="redolog") == (T + 10 * MIN) / 1000
    assert value("standby_action_failing", action="ship") == 1
    assert value("standby_replay_ops_per_second") == 4321
    # counters: the parser names the family without _total, the sample with it
    assert value("standby_shipped_bytes") == 1000 + 9000
    assert value("standby_replay_ops") == 777
    assert value("standby_stream_puts", target=URL) == 14
    assert value("standby_drill_success") == 1 and value("standby_drill_rpo_seconds") == 0.7
    assert value("standby_monitor_state") == monitor.WARNING  # the failed ship


@given(label=st.text(max_size=30), v=st.floats(allow_nan=False, allow_infinity=False,
                                                 width=32))
def test_labels_and_values_survive_the_parser(label: str, v: float) -> None:
    fam = metrics.Family("standby_x_seconds", "gauge", "A test metric.",
                         [({"target": label}, v)])
    (back,) = text_string_to_metric_families(metrics.render([fam]))
    (smp,) = back.samples
    assert smp.labels == {"target": label} and smp.value == pytest.approx(v)


def test_cli_writes_the_textfile_and_actions_refresh_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prom = tmp_path / "textfile" / "standby.prom"
    cfg = config(tmp_path / "srv", metrics={"textfile": str(prom)})
    s = settings_mod.load(cfg)
    (s.volumes.redolog.path / "redo.log").write_bytes(
        FileHeader(sequence=1, server_id=s.server_id, create_time=T).encode())
    code, out, err = cli(["-c", str(cfg), "snapshot", "redolog"], capsys)
    assert code == 0, err
    text = prom.read_text()  # written by the snapshot, with no `standby metrics` run
    help_and_type_before_every_sample(text)
    ok = [smp for smp in parsed(text)["standby_last_success_timestamp_seconds"].samples
          if smp.labels == {"action": "snapshot", "volume": "redolog"}]
    assert len(ok) == 1
    assert not list(prom.parent.glob(".*.tmp"))  # atomic: no temporary file left beside it
    # a failed ship is in the next textfile
    code, _, err = cli(["-c", str(cfg), "ship", "--target", f"file://{tmp_path / 'absent'}"],
                       capsys)
    assert code == 4, err
    fam = parsed(prom.read_text())["standby_action_failing"]
    assert [smp.value for smp in fam.samples
            if smp.labels["action"] == "ship"] == [1.0]
    # `standby metrics --textfile` writes another file, the same families
    other = tmp_path / "other.prom"
    code, out, err = cli(["-c", str(cfg), "metrics", "--textfile", str(other)], capsys)
    assert code == 0 and out.strip() == f"wrote {other}", err
    assert set(parsed(other.read_text())) == set(parsed(prom.read_text()))
