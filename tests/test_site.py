"""The `Site`, flags merged at the edge, logging from the configuration, and `--set` read from a
catalog that came from a target (issue: make room for shipping and classic backups)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from standby import settings as settings_mod
from standby.catalog import local
from standby.errors import ConfigError, StateConflict
from standby.snapshot import sets
from standby.store.digest import digest_settings
from standby.store.site import LOCK_NAME, Site
from tests.replay_util import standby_cli, zmplayredo
from tests.services import write_config

SNAP = {"snapshot": {"manifest_key": "k" * 32}}


def _holder(cfg: Path) -> subprocess.Popen[bytes]:
    """Another process that opens a Site on the volumes and holds them."""
    code = textwrap.dedent(f"""
        import sys, time
        from standby import settings
        from standby.store.site import Site
        site = Site.open(settings.load({str(cfg)!r}))
        with site.exclusive():
            print("held", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_a_site_held_by_another_process_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "a")
    s = settings_mod.load(cfg)
    holder = _holder(cfg)
    try:
        site = Site.open(s)
        assert site.locked()
        with pytest.raises(StateConflict) as ei, site.exclusive():
            pass
        assert ei.value.exit_code == 5 and f"pid {holder.pid}" in ei.value.message
        # A second configuration naming the same volumes (another state dir) conflicts too.
        other = settings_mod.with_overrides(s, {"state_dir": str(tmp_path / "other-state")})
        with pytest.raises(StateConflict), Site.open(other).exclusive():
            pass
        # zmplayredo on the held volumes is refused with exit 5, applying nothing.
        r = zmplayredo(cfg, "--json")
        assert r.rc == 5, r.describe()
        assert not Site(s).replay_interrupted()
    finally:
        holder.kill()
        holder.wait()
    with Site.open(s).exclusive():  # free again once the holder is gone
        pass


def test_the_replay_marker_stays_when_the_replay_fails(tmp_path: Path) -> None:
    site = Site.open(settings_mod.load(write_config(tmp_path / "a")))
    with pytest.raises(RuntimeError), site.replaying():
        assert site.replay_interrupted()
        raise RuntimeError("killed half way")
    assert site.replay_interrupted()
    with site.replaying():
        pass
    assert not site.replay_interrupted()


def test_flags_are_validated_like_config_keys(tmp_path: Path) -> None:
    """--stagger outside 0..3600 was merged inside the library without the check."""
    cfg = write_config(tmp_path / "a", sections=SNAP)
    r = standby_cli(cfg, "snapshot", "set", "--stagger", "4000", "--dry-run")
    assert r.rc == 2, r.describe()
    assert "stagger_s must be within 0..3600" in r.err and "Traceback" not in r.err
    ok = standby_cli(cfg, "snapshot", "set", "--stagger", "2.5", "--dry-run", "--json")
    assert ok.rc == 0, ok.describe()
    steps = json.loads(ok.out)["steps"]
    assert [st["at_s"] for st in steps if "at_s" in st] == [0.0, 2.5, 5.0, 7.5]


def test_with_overrides_checks_key_and_value(tmp_path: Path) -> None:
    s = settings_mod.load(write_config(tmp_path / "a"))
    assert settings_mod.with_overrides(s, {"snapshot.stagger_s": None}) == s
    assert settings_mod.with_overrides(s, {"snapshot.atomic": True}).snapshot.atomic
    with pytest.raises(ConfigError, match="unknown configuration key snapshot.nope"):
        settings_mod.with_overrides(s, {"snapshot.nope": 1})
    with pytest.raises(ConfigError, match="must be true or false"):
        settings_mod.with_overrides(s, {"snapshot.atomic": "yes"})


def _info_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if '"level": "info"' in ln or "[info" in ln]


def test_log_level_from_the_file_and_the_environment_is_honoured(tmp_path: Path) -> None:
    quiet = write_config(tmp_path / "q", sections={**SNAP, "log": {"level": "warning"}})
    loud = write_config(tmp_path / "l", sections=SNAP)
    r = standby_cli(loud, "snapshot", "redolog", "--json")
    assert r.rc == 0, r.describe()
    assert _info_lines(r.err), "a snapshot logs its steps at info"
    r = standby_cli(quiet, "snapshot", "redolog", "--json")
    assert r.rc == 0, r.describe()
    assert not _info_lines(r.err), r.err
    env = {**os.environ, "STANDBY_LOG_LEVEL": "error", "TZ": "UTC"}
    p = subprocess.run([str(Path(sys.executable).parent / "standby"), "-c", str(loud),
                        "snapshot", "redolog"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert not _info_lines(p.stderr), p.stderr


def test_replay_set_reads_a_catalog_that_came_from_a_target(make_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`zmplayredo --set latest --catalog DIR` at a standby whose own catalog is empty."""
    p = make_store("primary", sections=SNAP)
    p.start()
    with p.client() as c:
        mbox = c.call("create_account", email="a@example.com")["mailbox_id"]
        c.call("create_folder", mailbox_id=mbox, name="in the set")
    m = sets.take("set", settings_mod.with_overrides(p.settings, {"snapshot.stagger_s": 0}))
    with p.client() as c:
        c.call("create_folder", mailbox_id=mbox, name="after the set, in the log")
    p.stop()
    want = digest_settings(p.settings).total
    shipped = tmp_path / "target-catalog"
    shutil.copytree(local.for_settings(p.settings).root, shipped)
    sb = make_store("standby", server_id=p.settings.server_id, sections=SNAP)
    for vol in ("db", "blob", "index", "redolog"):
        src = Path(m.manifest.snapshot(vol).ref)  # type: ignore[union-attr]
        dst = getattr(sb.settings.volumes, vol).path
        shutil.rmtree(dst)
        shutil.copytree(src, dst)
        (dst / ".standby-snapshot").unlink(missing_ok=True)
    (sb.settings.volumes.db.path / "data" / "standby-owner.pid").unlink(missing_ok=True)
    assert local.for_settings(sb.settings).manifests() == []
    none = zmplayredo(sb.cfg, "--set", "latest", "--dry-run")
    assert none.rc == 9, none.describe()
    # The set's redolog snapshot lacks the last folder: replay the primary's whole log.
    shutil.rmtree(sb.settings.volumes.redolog.path)
    shutil.copytree(p.settings.volumes.redolog.path, sb.settings.volumes.redolog.path)
    (sb.settings.volumes.redolog.path / LOCK_NAME).unlink(missing_ok=True)
    r = zmplayredo(sb.cfg, "--set", "latest", "--catalog", str(shipped), "--json")
    assert r.rc == 0, r.describe()
    assert digest_settings(sb.settings).total == want
    bad = zmplayredo(sb.cfg, "--catalog", str(shipped), "--dry-run")
    assert bad.rc == 2 and "--catalog goes with --set" in bad.err, bad.describe()
