"""Bad input to `standby ship/pull/verify/prune`, through the CLI's edge: each is a clear error
naming what was wrong and what to do, with its documented exit code, and leaves nothing at the
target that a later pull could take for complete."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from standby import settings as settings_mod
from standby.store.site import Site
from standby.transfer import ship
from tests.services import MotoServer
from tests.test_transfer_support import (
    ENC_KEY,
    Rig,
    aws_env,
    cli,
    config_of,
    fill,
    make_rig,
)


def _file_rig(tmp_path: Path, request: pytest.FixtureRequest, *, encrypt: bool = False) -> Rig:
    r = make_rig("file", tmp_path, request, encrypt=encrypt)
    fill(r)
    r.take("set")
    return r


def test_unknown_scheme_and_paths_that_step_outside(tmp_path: Path,
                                                    request: pytest.FixtureRequest,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    r = _file_rig(tmp_path, request)
    c = ["-c", config_of(r.primary)]
    code, _out, err = cli([*c, "ship", "--target", "ftp://host/x"], capsys)
    assert code == 2 and "unknown target scheme 'ftp'" in err and "s3://" in err
    code, _out, err = cli([*c, "ship", "--target", f"file://{tmp_path}/target/../../etc"],
                          capsys)
    assert code == 2 and "'..'" in err
    # target.allowed: a target must be under one of the allowed URLs
    allowed = tmp_path / "allowed.toml"
    allowed.write_text(Path(config_of(r.primary)).read_text().replace(
        "[target]\n", f'[target]\nallowed = ["{r.url}"]\n'))
    (tmp_path / "elsewhere").mkdir()
    code, _out, err = cli(["-c", str(allowed), "ship", "--target",
                           f"file://{tmp_path}/elsewhere"], capsys)
    assert code == 3 and "outside the allowed targets" in err and "target.allowed" in err
    assert list((tmp_path / "elsewhere").iterdir()) == []
    code, out, _ = cli(["-c", str(allowed), "ship", "--target", r.url, "--json"], capsys)
    assert code == 0 and len(json.loads(out)["shipped"]) == 4
    code, _out, err = cli([*c, "ship", "--target", f"file://{tmp_path}/not-mounted"], capsys)
    assert code == 4 and "does not exist" in err and "mount" in err
    assert not (tmp_path / "not-mounted").exists()
    code, _out, err = cli([*c, "ship"], capsys)  # neither --target nor target.url
    assert code == 3 and "--target URL" in err


def test_a_bucket_that_does_not_exist(tmp_path: Path, request: pytest.FixtureRequest,
                                      moto: MotoServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    r = make_rig("s3", tmp_path, request)
    fill(r)
    r.take("set")
    before = moto.objects(r.s3)
    code, _out, err = cli(["-c", config_of(r.primary), "ship", "--target",
                           "s3://no-such-bucket-here/standby"], capsys)
    assert code == 9 and "'no-such-bucket-here' does not exist" in err and "create it" in err
    code, _out, err = cli(["-c", config_of(r.primary), "pull", "--target",
                           "s3://no-such-bucket-here/standby"], capsys)
    assert code == 9 and moto.objects(r.s3) == before


def test_wrong_credentials(tmp_path: Path, request: pytest.FixtureRequest,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    aws_env(monkeypatch)
    # moto checks every request's credentials after its first one (which makes the bucket)
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "1"}) as strict:
        bucket = "sb-strict"
        boto3.client("s3", endpoint_url=strict.url, region_name="us-east-1").create_bucket(
            Bucket=bucket)
        r = make_rig("file", tmp_path, request,
                     sections={"target": {"endpoint_url": strict.url, "region": "us-east-1",
                                          "retries": 1}})
        fill(r)
        r.take("set")
        url = f"s3://{bucket}/standby"
        for verb in ("ship", "pull", "verify"):
            code, _out, err = cli(["-c", config_of(r.primary), verb, "--target", url], capsys)
            assert code == 3, (verb, err)
            assert "refused the credentials" in err and "AWS_ACCESS_KEY_ID" in err
        assert strict.objects() == 0


def test_a_wrong_encryption_key_at_pull(tmp_path: Path, request: pytest.FixtureRequest,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    r = _file_rig(tmp_path, request, encrypt=True)
    assert isinstance(ship.ship(r.primary, r.target()), ship.ShipResult)
    keys = r.keys()
    (r.standby.volumes.db.path / "mine").write_text("standby's")
    # the standby's config has the right key; the environment gives a second one: refused
    monkeypatch.setenv("STANDBY_TARGET_KEY", "cd" * 32)
    code, _out, err = cli(["-c", config_of(r.standby), "pull", "--target", r.url], capsys)
    assert code == 3 and "set twice" in err
    # a standby config without a key, the wrong one from the environment
    text = Path(config_of(r.standby)).read_text().replace(f'encryption_key = "{ENC_KEY}"', "")
    cfg = tmp_path / "standby-nokey.toml"
    cfg.write_text(text)
    code, _out, err = cli(["-c", str(cfg), "pull", "--target", r.url], capsys)
    assert code == 3 and "another key" in err and "STANDBY_TARGET_KEY" in err
    monkeypatch.delenv("STANDBY_TARGET_KEY")
    code, _out, err = cli(["-c", str(cfg), "pull", "--target", r.url], capsys)
    assert code == 3 and "no target encryption key" in err
    assert (r.standby.volumes.db.path / "mine").read_text() == "standby's"
    assert r.keys() == keys
    code, out, _ = cli(["-c", config_of(r.standby), "pull", "--target", r.url, "--json"],
                       capsys)
    assert code == 0 and json.loads(out)["set"]


def test_pull_refuses_volumes_a_running_store_owns(tmp_path: Path,
                                                   request: pytest.FixtureRequest,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    r = _file_rig(tmp_path, request)
    ship.ship(r.primary, r.target())
    sb = settings_mod.load(config_of(r.standby))
    with Site(sb).exclusive():  # what a running store service holds
        code, _out, err = cli(["-c", config_of(r.standby), "pull", "--target", r.url],
                              capsys)
    assert code == 5 and "Stop mailboxd" in err
    code, out, _ = cli(["-c", config_of(r.standby), "pull", "--target", r.url, "--dry-run"],
                       capsys)
    assert code == 0 and "pull from" in out
    code, out, _ = cli(["-c", config_of(r.standby), "verify", "--target", r.url], capsys)
    assert code == 0 and "everything checks out" in out
