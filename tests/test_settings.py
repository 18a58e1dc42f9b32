"""`standby.settings`: the file, environment and override layers, validation, and the errors
(exit 3 for configuration, 4 for volumes) each naming what is wrong."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from standby import settings as sm
from standby.errors import ConfigError, VolumeError


def _write(root: Path, extra: str = "", *, volumes: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    vols = volumes if volumes is not None else "".join(
        f'[volumes.{n}]\npath = "{n}"\n' for n in sm.VOLUME_NAMES)
    cfg = root / "standby.toml"
    cfg.write_text(f'server_id = "srv-1"\nstate_dir = "state"\n{extra}\n{vols}')
    return cfg


def test_a_minimal_file_with_relative_paths(tmp_path: Path) -> None:
    s = sm.load(_write(tmp_path / "store"))
    assert s is not None
    assert s.server_id == "srv-1"
    assert s.state_dir == tmp_path / "store" / "state"
    assert s.volumes.redolog.path == tmp_path / "store" / "redolog"
    assert s.source == (tmp_path / "store" / "standby.toml").resolve()
    assert s.redolog == sm.RedologSettings() and s.mariadb.flush_log_at_trx_commit == 0
    assert s.store_socket == s.state_dir / "store.sock"
    assert s.mariadb_socket == s.state_dir / "mariadb.sock"


@pytest.mark.parametrize("extra,key,where", [
    ("colour = 1", "colour", "the top level"),
    ("[redolog]\nrollover_sise_kb = 64", "redolog.rollover_sise_kb", "[redolog]"),
    ("[mariadb]\nbufferpool = '1G'", "mariadb.bufferpool", "[mariadb]"),
    ("[snapshots]\nevery = 1", "snapshots", "the top level"),
])
def test_unknown_keys_are_errors_that_name_the_key(tmp_path: Path, extra: str, key: str,
                                                   where: str) -> None:
    with pytest.raises(ConfigError) as e:
        sm.load(_write(tmp_path, extra))
    assert e.value.exit_code == 3
    assert e.value.message == f"unknown configuration key {key} in {where}"
    assert e.value.hint and e.value.hint.startswith("valid keys here: ")


def test_unknown_key_inside_a_volume(tmp_path: Path) -> None:
    vols = "".join(f'[volumes.{n}]\npath = "{n}"\n' for n in sm.VOLUME_NAMES)
    vols += "size = 10\n"
    with pytest.raises(ConfigError, match=r"unknown configuration key volumes\.redolog\.size"):
        sm.load(_write(tmp_path, volumes=vols))
    with pytest.raises(ConfigError, match=r"unknown configuration key volumes\.scratch"):
        sm.load(_write(tmp_path, volumes=vols.replace("size = 10\n", "") +
                       '[volumes.scratch]\npath = "x"\n'))


@pytest.mark.parametrize("extra,fragment", [
    ('[redolog]\nrollover_size_kb = "big"', "redolog.rollover_size_kb must be an integer"),
    ("[redolog]\ndelete_on_rollover = 1", "redolog.delete_on_rollover must be true or false"),
    ("[mariadb]\nstart_timeout_s = 'soon'", "mariadb.start_timeout_s must be a number"),
    ("[store]\nsocket = 5", "store.socket must be a path string"),
    ("[mariadb]\nextra_args = '--x'", "mariadb.extra_args must be a list"),
    ("redolog = 5", "redolog must be a table"),
])
def test_wrong_types(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as e:
        sm.load(_write(tmp_path, extra))
    assert e.value.exit_code == 3


def test_missing_keys_and_bad_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('state_dir = "s"\n')
    with pytest.raises(ConfigError, match="missing configuration key server_id"):
        sm.load(cfg)
    cfg.write_text('server_id = "x"\nstate_dir = "s"\n[volumes.db]\npath = "db"\n')
    with pytest.raises(ConfigError, match="missing configuration key volumes.blob"):
        sm.load(cfg)
    cfg.write_text("server_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        sm.load(cfg)


@pytest.mark.parametrize("extra,fragment", [
    ("[redolog]\nrollover_size_kb = 0", "rollover_size_kb"),
    ("[redolog]\nrollover_size_kb = 100\nrollover_hard_max_kb = 50", "rollover_hard_max_kb"),
    ("[redolog]\nfsync_interval_ms = 1001", "fsync_interval_ms must be within 0..1000"),
    ("[store]\nmailbox_groups = 0", "mailbox_groups must be at least 1"),
    ("[mariadb]\nflush_log_at_trx_commit = 3", "flush_log_at_trx_commit must be 0, 1 or 2"),
])
def test_validation(tmp_path: Path, extra: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        sm.load(_write(tmp_path, extra))


def test_volume_rules(tmp_path: Path) -> None:
    same = "".join(f'[volumes.{n}]\npath = "same"\n' for n in sm.VOLUME_NAMES)
    with pytest.raises(ConfigError, match="four different paths"):
        sm.load(_write(tmp_path, volumes=same))
    vols = "".join(f'[volumes.{n}]\npath = "{n}"\n' for n in sm.VOLUME_NAMES)
    with pytest.raises(ConfigError, match=r"volumes\.db\.backend: 'nfs' is not a backend"):
        sm.load(_write(tmp_path, volumes=vols.replace('path = "db"\n',
                                                      'path = "db"\nbackend = "nfs"\n')))
    with pytest.raises(ConfigError, match="the zfs backend needs `dataset`"):
        sm.load(_write(tmp_path, volumes=vols.replace('path = "db"\n',
                                                      'path = "db"\nbackend = "zfs"\n')))
    cfg = tmp_path / "standby.toml"
    cfg.write_text(cfg.read_text().replace('server_id = "srv-1"', f'server_id = "{"é" * 64}"'))
    with pytest.raises(ConfigError, match="server_id must be 1 to 127 bytes"):
        sm.load(cfg)


def test_check_volumes(tmp_path: Path) -> None:
    s = sm.load(_write(tmp_path))
    assert s is not None
    with pytest.raises(VolumeError, match=r"volume db: .*/db does not exist") as e:
        sm.check_volumes(s)
    assert e.value.exit_code == 4 and "volumes.db.path" in (e.value.hint or "")
    for n in sm.VOLUME_NAMES:
        (tmp_path / n).mkdir()
    sm.check_volumes(s)
    (tmp_path / "index").rmdir()
    (tmp_path / "index").write_text("a file")
    with pytest.raises(VolumeError, match="volume index: .* is not a directory"):
        sm.check_volumes(s)


def test_layers_file_environment_overrides(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path, '[log]\nformat = "console"\nlevel = "debug"')
    monkeypatch.setenv("STANDBY_LOG_LEVEL", "warning")
    s = sm.load(cfg, overrides={"redolog.rollover_size_kb": 64, "log.format": None})
    assert s is not None
    assert (s.log.format, s.log.level) == ("console", "warning")
    assert s.redolog.rollover_size_kb == 64
    monkeypatch.setenv("STANDBY_LOG_FORMAT", "json")
    s2 = sm.load(cfg, overrides={"log.level": "error"})
    assert s2 is not None and (s2.log.format, s2.log.level) == ("json", "error")
    with pytest.raises(ConfigError, match="unknown configuration key redolog.nope"):
        sm.load(cfg, overrides={"redolog.nope": 1})


def test_where_the_config_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="does not exist") as e:
        sm.load(tmp_path / "missing.toml")
    assert e.value.exit_code == 3
    cfg = _write(tmp_path / "env")
    monkeypatch.setenv("STANDBY_CONFIG", str(cfg))
    s = sm.load(None)
    assert s is not None and s.source == cfg.resolve()
    monkeypatch.setenv("STANDBY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="STANDBY_CONFIG names"):
        sm.load(None)
    monkeypatch.delenv("STANDBY_CONFIG")
    here = _write(tmp_path / "cwd")
    monkeypatch.chdir(here.parent)
    s = sm.load(None)
    assert s is not None and s.source == here.resolve()
    monkeypatch.chdir(tmp_path)
    if not Path("/etc/standby/standby.toml").exists():
        assert sm.find_config(None) is None
        with pytest.raises(ConfigError, match="no configuration found"):
            sm.load(None)


def test_to_toml_round_trips(tmp_path: Path) -> None:
    cfg = _write(tmp_path, '[mariadb]\nextra_args = ["--a", "--b=\\"q\\""]\n'
                 '[redolog]\nrollover_size_kb = 64\ndelete_on_rollover = true\n'
                 '[store]\nsocket = "/run/x.sock"')
    s = sm.load(cfg)
    assert s is not None
    text = sm.to_toml(s)
    back = sm.from_mapping(tomllib.loads(text), base_dir=tmp_path, source=s.source)
    assert back == s
    assert os.path.isabs(str(back.store.socket))
