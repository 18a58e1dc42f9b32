"""Shared pieces of the shipping tests (no tests here): a *rig* is a primary and a standby whose
volumes are on one backend, and a target of one kind between them, all real and torn down by
their own ids:

- `file`: dir volumes (folders), a `file://` folder;
- `s3`: dir volumes, a bucket of its own in the session's `moto_server`, over HTTP;

The primary's volumes hold files the test writes itself (no store runs), so what each snapshot
holds is known exactly: `Rig.take` records it, `Rig.expect` says it, `tree` reads a folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from standby import log as slog
from standby import settings as settings_mod
from standby.catalog.manifest import Manifest
from standby.cli import common
from standby.cli.main import app
from standby.settings import Settings
from standby.snapshot import sets
from standby.transfer import factory
from standby.transfer._base import Target
from standby.transfer.pull import STAGING
from tests.test_snapshot_support import KEY, VOLS, site_config

RUNTIME = {".standby-snapshot", ".standby-store.lock", STAGING}
ENC_KEY = "ab" * 32


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes), folder ("d") and symlink ("-> target") under `root`, leaving
    out the runtime files that never travel."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if not (base == "" and d in RUNTIME)]
        for d in dirs:
            out[base + d] = "d"
        for f in files:
            if base == "" and f in RUNTIME:
                continue
            p = Path(dirpath) / f
            out[base + f] = f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes()
    return out


@dataclass
class Rig:
    kind: str
    root: Path
    primary: Settings
    standby: Settings
    url: str
    s3: Any = None  # a boto3 client, to look at and tamper with the bucket
    bucket: str = ""
    expected: dict[str, dict[str, dict[str, bytes | str]]] = field(default_factory=dict)

    def path(self, vol: str) -> Path:
        return getattr(self.primary.volumes, vol).path

    def write(self, vol: str, rel: str, data: bytes) -> None:
        p = self.path(vol) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def remove(self, vol: str, rel: str) -> None:
        (self.path(vol) / rel).unlink()

    def take(self, kind: str = "set") -> Manifest:
        m = sets.take(kind, self.primary).manifest
        self.expected[m.id] = {s.volume: tree(self.path(s.volume)) for s in m.snapshots}
        return m

    def expect(self, m: Manifest, vol: str) -> dict[str, bytes | str]:
        return self.expected[m.id][vol]

    def target(self, side: str = "primary") -> Target:
        return factory.open_target(self.url, self.primary if side == "primary" else
                                   self.standby)

    def standby_tree(self, vol: str) -> dict[str, bytes | str]:
        return tree(getattr(self.standby.volumes, vol).path)

    def with_target(self, **kw: Any) -> None:
        """Change `[target]` on both sides (as both config files would)."""
        keys = {f"target.{k}": v for k, v in kw.items()}
        self.primary = settings_mod.with_overrides(self.primary, keys)
        self.standby = settings_mod.with_overrides(self.standby, keys)

    # -- tampering at the target ------------------------------------------------------------
    def keys(self) -> dict[str, int]:
        return self.target().catalog.store.list("")

    def read_object(self, key: str) -> bytes:
        return self.target().catalog.store.get(key)

    def replace_object(self, key: str, data: bytes) -> None:
        """Overwrite an object at the target behind standby's back."""
        if self.s3 is not None:
            root = self.target().catalog.store.root  # type: ignore[attr-defined]
            self.s3.put_object(Bucket=self.bucket, Key=root + key, Body=data)
        else:
            p = self.target().catalog.store.root / key  # type: ignore[attr-defined]
            p.write_bytes(data)

    def delete_object(self, key: str) -> None:
        self.target().catalog.store.delete(key)


def make_rig(kind: str, root: Path, request: pytest.FixtureRequest, *,
             encrypt: bool = False, sections: dict[str, dict[str, object]] | None = None
             ) -> Rig:
    sid = str(uuid.uuid4())
    target: dict[str, object] = {"encryption_key": ENC_KEY} if encrypt else {}
    extra: dict[str, Any] = {}
    if kind == "s3":
        moto = request.getfixturevalue("moto")
        aws_env(request.getfixturevalue("monkeypatch"))
        import boto3

        bucket = f"sb-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/standby"
        target.update(endpoint_url=moto.url, region="us-east-1", part_size_mb=5,
                      retries=2)
        extra = {"s3": s3, "bucket": bucket}
    elif kind == "file":
        (root / "target").mkdir(parents=True)
        url = f"file://{root / 'target'}"
    else:
        raise AssertionError(f"no rig of kind {kind}")
    secs = {"snapshot": {"stagger_s": 0.0}, "target": target, **(sections or {})}
    if sections and "target" in sections:
        secs["target"] = {**target, **sections["target"]}
    p = settings_mod.load(site_config(root / "primary", {v: (root / "primary" / v, "dir", None)
                                                          for v in VOLS},
                                      sections=secs, server_id=sid))
    sb = settings_mod.load(site_config(root / "standby", {v: (root / "standby" / v, "dir", None)
                                                           for v in VOLS},
                                       sections=secs, server_id=sid))
    return Rig(kind, root, p, sb, url, **extra)


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto in the environment, for this test (botocore reads them; standby
    never does)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`standby ARGS` through the CLI's edge: (exit code, stdout, stderr)."""
    try:
        common.run(app, argv=["--log-format", "json", "--log-level", "warning", *args],
                   prog="standby")
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        slog.configure("json", "info", stream=sys.__stderr__)
    out, err = capsys.readouterr()
    return code, out, err


def config_of(s: Settings) -> str:
    assert s.source is not None
    return str(s.source)


def fill(rig: Rig, seed: int = 0) -> None:
    """Volumes with a little of everything: a database file, blobs, an index, redo logs."""
    rng = __import__("random").Random(seed)
    rig.write("db", "data/ibdata1", rng.randbytes(300_000))
    rig.write("db", "data/zimbra/mail_item.ibd", bytes(200_000))
    for i in range(30):
        rig.write("blob", f"0/{i % 3}/msg/{i}-1.msg", b"Subject: hi\r\n\r\n" + rng.randbytes(
            rng.randrange(100, 5000)))
    rig.write("index", "0/1/index/1.sqlite", rng.randbytes(50_000))
    rig.write("redolog", "logs/redo.bin", rng.randbytes(4096))
    os.symlink("logs/redo.bin", rig.path("redolog") / "current")
    (rig.path("blob") / "incoming").mkdir()


def rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


Setup = Callable[..., Rig]


def rig_fixture(kinds: list[str]) -> Callable[..., Iterator[Setup]]:
    """A fixture factory: `rig(encrypt=False, sections=None)` for each of `kinds`."""

    @pytest.fixture(params=kinds)
    def _rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
        made: list[Rig] = []

        def make(**kw: Any) -> Rig:
            r = make_rig(request.param, tmp_path / f"r{len(made)}", request, **kw)
            made.append(r)
            return r

        yield make

    return _rig


__all__ = ["KEY", "Rig", "cli", "config_of", "fill", "make_rig", "rig_fixture", "tree"]
