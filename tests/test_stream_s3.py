"""`standby stream` to S3 (moto_server): the target cut mid-stream and back 20 s later (no
segment lost or duplicated, the lag recovers, status CRITICAL then OK), and the loss window of
drills killed at random moments, with the stream's PUTs counted at a proxy in front of moto.

The kill count is CI-sized (3); `make soak` runs the same test with STANDBY_RPO_KILLS=10."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from standby import drill
from standby.settings import TargetSettings
from standby.status import monitor
from standby.status.model import build
from standby.status.gather import inputs
from standby.transfer import stream_keys
from tests.services import CountingProxy, MotoServer
from tests.stream_util import Primary

BUCKET = "standby-stream"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def proxy(tmp_path: Path, moto: MotoServer, aws: None) -> Iterator[CountingProxy]:
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    p = CountingProxy(moto.url, tmp_path / "requests.log").start()
    yield p
    p.kill()


def segments_at(moto: MotoServer, prefix: str) -> list[stream_keys.Segment]:
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    keys = [o["Key"].split("/", 2)[2] for o in s3.list_objects_v2(
        Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return sorted(s for v in stream_keys.parse(keys).segments.values() for s in v)


def test_the_target_cut_mid_stream_loses_and_duplicates_nothing(
        tmp_path: Path, moto: MotoServer, proxy: CountingProxy) -> None:
    url = f"s3://{BUCKET}/cut"
    p = Primary(tmp_path / "primary", stream={"interval_ms": 500},
                target={"url": url, "endpoint_url": proxy.url, "region": "us-east-1",
                        "retries": 1})
    sm = p.streamer(url)
    sm.start()

    def stream_state(now_ms: int) -> int:
        st = build(inputs(p.s), now_ms)
        return {f.check: f.state for f in monitor.evaluate(st, p.s.monitor).findings}["stream"]

    for _ in range(4):
        p.txns(20)
        p.clock.advance(600)
        sm.step()
    assert sm.pos.buffered_bytes == 0 and stream_state(p.clock.ms) == monitor.OK
    proxy.kill()  # the target goes away mid-stream
    for _ in range(20):  # 20 s of the store writing on
        p.txns(20)
        p.clock.advance(1000)
        sm.step()
    assert sm.pos.error and sm.pos.buffered_bytes > 0
    assert stream_state(p.clock.ms) == monitor.WARNING  # 20 s behind: over 5 s
    p.clock.advance(15_000)  # ... and beyond 30 s
    sm.step()
    assert stream_state(p.clock.ms) == monitor.CRITICAL
    proxy.start()  # back
    p.clock.advance(600)
    sm.step()
    assert sm.pos.buffered_bytes == 0 and sm.pos.error is None
    assert stream_state(p.clock.ms) == monitor.OK
    assert sm.pos.offset == p.redo.stat().st_size
    segs = segments_at(moto, "cut/")
    assert stream_keys.chain(segs) == segs  # contiguous: nothing lost
    assert sum(s.size for s in segs) == p.redo.stat().st_size  # nothing twice
    puts = [r for r in proxy.requests() if r[0] == "PUT" and "/stream/" in r[1]]
    assert len(puts) == len(segs)  # once each after the cut, too


def test_rpo_of_drills_killed_at_random_moments_streaming_to_s3(
        moto: MotoServer, proxy: CountingProxy, mariadb_available: None) -> None:
    kills = int(os.environ.get("STANDBY_RPO_KILLS", "3"))
    short = Path(tempfile.mkdtemp(prefix="sbd-"))
    ts = TargetSettings(endpoint_url=proxy.url, region="us-east-1", retries=2)
    reports = []
    try:
        for i in range(kills):
            rep = drill.run(workdir=short, accounts=4, seed=100 + i, workers=2,
                            set_every_s=60.0, redolog_every_s=60.0, kill_window_s=(5.0, 12.0),
                            groups=4, target=f"s3://{BUCKET}/rpo{i}", target_settings=ts)
            assert rep.ok and rep.equal, {k: v for k, v in rep.as_dict().items() if k in (
                "ok", "equal", "equal_mail", "digest_equal", "committed_ops_lost",
                "divergent_mailboxes", "gap", "notes", "reached", "seed", "errors")}
            assert rep.committed_ops_lost == 0 and rep.divergent_mailboxes == 0
            reports.append(rep)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    rpos = [r.rpo_s for r in reports]
    streamed = sum(1 for r in proxy.requests() if r[0] == "PUT" and "/stream/" in r[1])
    window = sum(_stream_seconds(r) for r in reports)
    print(f"RPO over {kills} kills: median {statistics.median(rpos):.3f} s, max "
          f"{max(rpos):.3f} s; stream PUTs {streamed} in {window:.1f} s "
          f"({streamed / window:.2f}/s)")
    assert statistics.median(rpos) <= 1.0 and max(rpos) <= 2.0, rpos
    assert streamed / window <= 2.0 + 0.5  # 2 a second, and a rollover's marker at most


def _stream_seconds(r: drill.DrillReport) -> float:
    for n in r.notes:
        if n.startswith("streamed for "):
            return float(n.split()[2])
    raise AssertionError(f"no stream note in {r.notes}")
