"""Pure parts of shipping: URLs, rates, part sizes, the catalog layout, records, the throttle
and how stored bytes pass it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.catalog import manifest as mf
from standby.catalog.target import (
    Listing,
    Shipment,
    StoredObject,
    TargetCatalog,
    data_key,
    manifest_key,
    parse_listing,
    record_key,
    safe_name,
)
from standby.errors import IntegrityError, NotFound, UsageError
from standby.transfer import parts
from standby.transfer._base import TargetUrl, TransferEffects, parse_url, within
from standby.transfer.file import DirStore
from standby.transfer.objects import PACE, ObjectWriter
from standby.transfer.throttle import Throttle, parse_rate, render_rate

word = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)
host = st.from_regex(r"[a-z][a-z0-9-]{0,8}(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)


@st.composite
def urls(draw: st.DrawFn) -> TargetUrl:
    scheme = draw(st.sampled_from(["s3", "file", "zfs", "btrfs"]))
    comps = draw(st.lists(word, min_size=1, max_size=4))
    if scheme == "s3":
        bucket = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}[a-z0-9]", fullmatch=True))
        return TargetUrl("s3", "/".join(comps[1:]), bucket=bucket)
    remote = scheme in ("zfs", "btrfs") and draw(st.booleans())
    user = draw(st.one_of(st.none(), word)) if remote else None
    h = draw(host) if remote else None
    port = draw(st.one_of(st.none(), st.integers(1, 65535))) if remote else None
    path = "/".join(comps) if scheme == "zfs" else "/" + "/".join(comps)
    return TargetUrl(scheme, path, user=user, host=h, port=port)


@settings(max_examples=300)
@given(u=urls())
def test_url_round_trip(u: TargetUrl) -> None:
    assert parse_url(str(u)) == u
    assert within(u, [str(u)]) and within(u, [])


@pytest.mark.parametrize("bad,match", [
    ("ftp://x/y", "unknown target scheme 'ftp'"),
    ("/srv/standby", "not a target URL"),
    ("s3://Bad_Bucket/x", "not an S3 bucket name"),
    ("file://relative/path", "absolute path"),
    ("file:///srv/../etc", "'..'"),
    ("file:///srv//x", "empty"),
    ("s3://bucket/a/../b", "'..'"),
    ("zfs://pool/../x", "not a ZFS dataset"),
    ("zfs://root@host:99999/pool", "out of range"),
    ("file://root@host/srv", "a folder on this host"),
    ("btrfs:///", "root folder"),
    ("s3://bucket/x?versionId=1", "no query"),
])
def test_bad_urls_are_refused_with_a_reason(bad: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_url(bad)


def test_within_is_component_wise() -> None:
    assert within(parse_url("file:///srv/standby/a"), ["file:///srv/standby"])
    assert not within(parse_url("file:///srv/standby2"), ["file:///srv/standby"])
    assert not within(parse_url("s3://other/x"), ["s3://bucket", "file:///srv"])
    assert within(parse_url("zfs://root@h/tank/sb/x"), ["zfs://root@h/tank/sb"])


@given(n=st.integers(1, 1 << 50))
def test_rate_round_trip(n: int) -> None:
    assert parse_rate(render_rate(n)) == n


def test_rates_read_like_rsync() -> None:
    assert parse_rate("500") == 500 * 1024
    assert parse_rate("20M") == 20 << 20
    assert parse_rate("1.5g") == int(1.5 * (1 << 30))
    for bad in ("fast", "-1", "0", "1T"):
        with pytest.raises(UsageError, match="--bwlimit"):
            parse_rate(bad)


@settings(max_examples=200)
@given(base=st.integers(parts.MIN_PART, parts.MAX_PART))
def test_part_schedule_holds_5_tib_within_s3_limits(base: int) -> None:
    s = parts.schedule(base)
    sizes = [s.size(n) for n in sorted({1, s.step, min(s.step + 1, parts.MAX_PARTS), 5000,
                                        parts.MAX_PARTS})]
    assert all(parts.MIN_PART <= x <= parts.MAX_PART for x in sizes)
    assert sizes == sorted(sizes) and sizes[0] == base
    assert s.capacity() >= parts.MAX_OBJECT


def test_throttle_paces_with_the_given_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(t: float) -> None:
        slept.append(t)
        now[0] += t

    th = Throttle(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        th.take(500)
    assert now[0] == pytest.approx(4.0)  # 5000 bytes at 1000/s, a second's burst allowed
    Throttle(None, clock=lambda: 0.0, sleep=sleep).take(10**9)


mids = st.from_regex(r"(set|redolog)-2026(0[1-9]|1[0-2])(0[1-9]|1[0-9])\.[01][0-9][0-5][0-9]"
                     r"[0-5][0-9]\.[0-9]{3}", fullmatch=True)
vols = st.sampled_from(["db", "blob", "index", "redolog"])


@settings(max_examples=200)
@given(manifests=st.dictionaries(mids, st.sampled_from(["set", "redolog"]), max_size=6),
       records=st.dictionaries(st.tuples(vols, mids), st.one_of(st.none(), mids), max_size=10),
       objects=st.lists(st.tuples(vols, mids, st.sampled_from(["stream.tar.zst", "index.x"]),
                                  st.integers(0, 10**9)), max_size=6))
def test_listing_round_trip(manifests: dict, records: dict, objects: list) -> None:
    keys = {manifest_key(k, mid): 100 for mid, k in manifests.items()}
    keys.update({record_key(v, m, p): 10 for (v, m), p in records.items()})
    keys.update({data_key(v, m, n): size for v, m, n, size in objects})
    keys["stray/thing"] = 1
    got = parse_listing(keys)
    assert got.manifests == manifests
    assert got.records == records
    assert got.objects == {data_key(v, m, n): size for v, m, n, size in objects}
    assert got.strays == ("stray/thing",)


def test_a_chain_names_its_missing_link_and_names_stay_inside() -> None:
    li = Listing(records={("db", "set-20260101.000000.000"): None,
                          ("db", "set-20260102.000000.000"): "set-20260101.000000.000",
                          ("db", "set-20260104.000000.000"): "set-20260103.000000.000"})
    assert li.chain("db", "set-20260102.000000.000") == ["set-20260101.000000.000",
                                                         "set-20260102.000000.000"]
    with pytest.raises(IntegrityError, match="set-20260103.000000.000.*not at the target.*"
                                             "standby ship --full"):
        li.chain("db", "set-20260104.000000.000")
    for bad in ("..", ".x", "a/b", "", "-x", "a b"):
        with pytest.raises(UsageError):
            safe_name(bad, "volume")


def _record() -> Shipment:
    return Shipment(server_id="srv", manifest_id="set-20260101.000000.000", kind="set",
                    volume="db", backend="dir", name="standby-x", stream_format="tar",
                    stream_id="u-1", taken_at_ms=1, parent=None,
                    objects=(StoredObject("data/db/set-20260101.000000.000/stream.tar.zst", 10,
                                          "ab" * 32, 20),))


def test_records_are_signed_checked_and_must_sit_where_they_belong(tmp_path: Path) -> None:
    key = b"k" * 20
    store = DirStore(tmp_path, "srv", url="file:///t")
    cat = TargetCatalog(store, "srv", key)
    r = _record()
    cat.write_record(r)
    assert cat.record("db", r.manifest_id) == r
    with pytest.raises(NotFound):
        cat.record("blob", r.manifest_id)
    # a record moved to another snapshot's key is refused
    other = record_key("db", "set-20260102.000000.000", None)
    store.put(other, store.get(r.key))
    with pytest.raises(IntegrityError, match="not where it belongs"):
        TargetCatalog(store, "srv", key).record("db", "set-20260102.000000.000")
    # any changed byte, or another key
    raw = store.get(r.key)
    store.put(r.key, raw.replace(b'"size":10', b'"size":11'))
    with pytest.raises(IntegrityError, match="changed after it was signed"):
        TargetCatalog(store, "srv", key).record("db", r.manifest_id)
    store.put(r.key, mf.sign_document(r.as_dict(), b"x" * 20))
    with pytest.raises(IntegrityError, match="another key"):
        TargetCatalog(store, "srv", key).record("db", r.manifest_id)


def test_target_settings_secret_from_one_source_and_left_out_of_toml(tmp_path: Path) -> None:
    from standby import settings as settings_mod
    from standby.errors import ConfigError
    from tests.test_snapshot_support import VOLS, site_config

    cfg = site_config(tmp_path, {v: (tmp_path / v, "dir", None) for v in VOLS},
                      sections={"target": {"url": "s3://bucket/x", "encryption_key": "ab" * 32,
                                           "bwlimit": "20M", "kms_key_id": "k"}})
    s = settings_mod.load(cfg)
    assert s.target.encryption_key == "ab" * 32 and s.target.bwlimit == "20M"
    text = settings_mod.to_toml(s)
    assert "ab" * 32 not in text and 'url = "s3://bucket/x"' in text
    for bad, match in (({"sse": "AES256", "kms_key_id": "k"}, "kms_key_id goes with SSE-KMS"),
                       ({"bwlimit": "fast"}, "target.bwlimit"),
                       ({"part_size_mb": 4}, "part_size_mb"),
                       ({"ssh_options": ["-oProxyCommand=x"]}, "not an ssh option")):
        with pytest.raises(ConfigError, match=match):
            settings_mod.with_overrides(s, {f"target.{k}": v for k, v in bad.items()})


def test_stored_bytes_are_paced_in_pieces_not_in_zstd_bursts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zstd's workers hand over output in bursts (all of it at `finish` when they lag): every
    piece passes the throttle before it is written, none larger than `PACE`."""
    paced: list[int] = []
    written: list[int] = []
    store = DirStore(tmp_path, "srv", url=f"file://{tmp_path}")
    fx = TransferEffects(now_ms=lambda: 0, throttle=paced.append)
    w = ObjectWriter(store, "data/db/s1/stream.tar.zst", level=3, enc_key=None, fx=fx,
                     what="db")
    sink_write = w.sink.write

    def write(data: bytes) -> None:
        assert paced and sum(paced) == sum(written) + len(data)  # paced before it went out
        written.append(len(data))
        sink_write(data)

    monkeypatch.setattr(w.sink, "write", write)
    plain = random.Random(7).randbytes(3 << 20)  # incompressible: output as big as input
    w.write(plain)
    out = w.close()
    assert sum(paced) == sum(written) == out.size > 3 << 20
    assert max(paced) <= PACE and len(paced) >= (3 << 20) // PACE
    assert (tmp_path / "srv" / out.key).stat().st_size == out.size
