"""Manifests: canonical signed form, refusal of any change or another key, the catalog, and the
manifest key's configuration (exactly one source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby import settings as settings_mod
from standby.catalog import manifest as mf
from standby.catalog._base import latest
from standby.catalog.local import LocalCatalog
from standby.catalog.manifest import Manifest, RedoPoint, ReplayStart, SnapshotRecord
from standby.errors import ConfigError, FormatError, IntegrityError, NotFound
from tests.services import write_config

KEY = b"k" * 32


def sample(mid: str = "set-20261129.010203.004", kind: str = "set", t: int = 1_700_000_000_000,
           volumes: tuple[str, ...] = ("db", "blob", "index", "redolog")) -> Manifest:
    recs = tuple(SnapshotRecord(
        volume=v, backend="zfs", name=f"standby-{mid}", ref=f"tank/{v}@standby-{mid}",
        dataset=f"tank/{v}", path=f"/srv/{v}",
        identity={"guid": str(12345678901234567890 + i), "createtxg": 100 + i},
        started_ms=t + 1000 * i, taken_at_ms=t + 1000 * i + 7,
        redo=RedoPoint(3, 4096 + 100 * i, ((1700000000, i),), t - 5, "store", t + 1000 * i - 1),
        parent=None, group=i) for i, v in enumerate(volumes))
    sk, win = mf.skew(recs)
    return Manifest(server_id="srv-1", id=mid, kind=kind, status="complete", atomic=False,
                    stagger_s=1.0, quiesced_db=True, started_ms=t - 10,
                    finished_ms=t + 4000, skew_ms=sk, window_ms=win,
                    replay=ReplayStart(3, 4096, ((1700000000, 0),), t - 1005), snapshots=recs)


def test_round_trip_is_canonical_and_signed() -> None:
    m = sample()
    raw = mf.sign(m, KEY)
    assert raw.endswith(b"\n") and b" " not in raw.strip()
    obj = json.loads(raw)
    assert obj["hmac"] and obj["key_id"] == mf.key_id(KEY)
    assert list(obj) == sorted(obj)
    back = mf.verify_bytes(raw, KEY, where="x.json")
    assert back == Manifest.from_dict(obj) and back.as_dict() == {**m.as_dict(),
                                                                  "key_id": mf.key_id(KEY)}
    assert back.skew_ms == 3000 and back.window_ms == 3007


_RAW = mf.sign(sample(), KEY)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(_RAW) - 1), byte=st.integers(0, 255))
def test_any_changed_byte_is_refused(pos: int, byte: int) -> None:
    if _RAW[pos] == byte:
        return
    bad = bytearray(_RAW)
    bad[pos] = byte
    with pytest.raises(IntegrityError) as ei:
        mf.verify_bytes(bytes(bad), KEY, where="/cat/sets/x.json")
    assert "/cat/sets/x.json" in str(ei.value)


def test_a_number_changed_into_infinity_is_refused() -> None:
    """One changed byte can turn a number into one too large for a float (found by the
    property above): refused as a changed manifest, not a crash."""
    assert b"1700000004000" in _RAW
    bad = _RAW.replace(b"1700000004000", b"17e0000004000", 1)
    with pytest.raises(IntegrityError, match="does not match its signature"):
        mf.verify_bytes(bad, KEY, where="/cat/sets/x.json")


def test_reformatted_but_equal_json_is_refused() -> None:
    pretty = json.dumps(json.loads(_RAW), indent=2, sort_keys=True).encode() + b"\n"
    with pytest.raises(IntegrityError, match="byte-for-byte"):
        mf.verify_bytes(pretty, KEY, where="p.json")


def test_another_key_is_named_as_such() -> None:
    with pytest.raises(IntegrityError, match="signed with another key"):
        mf.verify_bytes(_RAW, b"another key of 16+ bytes", where="k.json")


def test_a_forged_signature_with_our_key_id_is_a_mismatch() -> None:
    obj = json.loads(_RAW)
    obj["skew_ms"] = 0
    forged = mf.canonical(obj) + b"\n"
    with pytest.raises(IntegrityError, match="changed after it was signed"):
        mf.verify_bytes(forged, KEY, where="f.json")


def test_newer_version_or_wrong_format_is_a_format_error() -> None:
    d = {**sample().as_dict(), "version": 99}
    with pytest.raises(FormatError, match="newer"):
        Manifest.from_dict(d)
    with pytest.raises(FormatError, match="not a standby manifest"):
        Manifest.from_dict({**d, "format": "other"})
    with pytest.raises(FormatError, match="missing"):
        Manifest.from_dict({k: v for k, v in sample().as_dict().items() if k != "replay"})


def test_catalog_writes_atomically_lists_and_tracks_shipped(tmp_path: Path) -> None:
    cat = LocalCatalog(tmp_path, "srv-1", KEY)
    a = sample("set-20261129.010000.000", t=1_000)
    b = sample("redolog-20261129.011500.000", kind="redolog", t=10_000, volumes=("redolog",))
    pa, pb = Path(cat.write(a)), Path(cat.write(b))
    assert pa == tmp_path / "catalog/srv-1/sets/set-20261129.010000.000.json"
    assert pb.parent.name == "redolog"
    assert not list(pa.parent.glob(".*tmp"))
    assert [m.id for m in cat.manifests()] == [a.id, b.id]
    assert [m.id for m in cat.manifests("redolog")] == [b.id]
    assert cat.get(b.id).kind == "redolog"
    with pytest.raises(NotFound):
        cat.get("set-nope")
    found = latest(cat, "redolog", ("set", "redolog"))
    assert found is not None and found[0].id == b.id
    found = latest(cat, "redolog", ("set",))
    assert found is not None and found[0].id == a.id
    cat.mark_shipped(a.id, "db", at_ms=5)
    assert cat.shipped() == {f"{a.id}/db": 5}
    cat.remove(a)
    assert cat.shipped() == {} and [m.id for m in cat.manifests()] == [b.id]
    other = LocalCatalog(tmp_path, "srv-1", b"x" * 20)
    with pytest.raises(IntegrityError):
        other.manifests()


def _load(tmp_path: Path, key: str | None) -> settings_mod.Settings:
    sections = {"snapshot": {"manifest_key": key}} if key else {}
    cfg = write_config(tmp_path / "c", sections=sections)  # type: ignore[arg-type]
    s = settings_mod.load(cfg)
    assert s is not None
    return s


def test_manifest_key_from_exactly_one_source(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STANDBY_MANIFEST_KEY", raising=False)
    assert _load(tmp_path, "from-the-file-0123456").snapshot.manifest_key == \
        "from-the-file-0123456"
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        _load(tmp_path, "short")
    s = _load(tmp_path, None)
    assert s.snapshot.manifest_key is None
    with pytest.raises(ConfigError, match="no manifest key"):
        mf.require_key(s.snapshot.manifest_key)
    monkeypatch.setenv("STANDBY_MANIFEST_KEY", "from-the-env-01234567")
    assert _load(tmp_path, None).snapshot.manifest_key == "from-the-env-01234567"
    with pytest.raises(ConfigError, match="set twice"):
        _load(tmp_path, "from-the-file-0123456")


def test_store_init_defaults_still_load(tmp_path: Path) -> None:
    from standby.store import control

    cfg = control.init(tmp_path / "s")
    s = settings_mod.load(cfg)
    assert s is not None and s.snapshot.stagger_s == 1.0 and s.retention.hourly == 48
    assert all(v.backend == "dir" for _, v in s.volumes.items())
