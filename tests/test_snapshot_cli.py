"""`standby snapshot ...` end to end through the CLI's edge (exit codes, stdout), on `dir`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from standby import log as slog
from standby.cli import common
from standby.cli.main import app
from tests.test_snapshot_support import VOLS, site_config


@pytest.fixture(autouse=True)
def _logs_to_a_stream_that_stays_open() -> Iterator[None]:
    # The root command configures structlog with the current sys.stderr, which is pytest's
    # capture here and closed after the test; later tests would log into a closed file.
    yield
    slog.configure("json", "info", stream=sys.__stderr__)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        common.run(app, argv=["--log-format", "json", "--log-level", "warning", *args],
                   prog="standby")
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return site_config(tmp_path, {v: (tmp_path / v, "dir", None) for v in VOLS},
                       sections={"retention": {"hourly": 1, "daily": 0, "weekly": 0,
                                               "monthly": 0, "redolog_keep": 1}})


def test_set_list_redolog_verify_prune(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg.parent / "blob" / "x.msg").write_text("hello")
    c = ["--config", str(cfg)]
    code, out, _ = run([*c, "snapshot", "set", "--dry-run"], capsys)
    assert code == 0 and "snapshot db [dir]" in out and "write the signed manifest" in out
    code, out, _ = run([*c, "snapshot", "set", "--stagger", "0", "--json"], capsys)
    assert code == 0
    first = json.loads(out)
    assert first["kind"] == "set" and len(first["snapshots"]) == 4
    code, out, _ = run([*c, "snapshot", "set", "--stagger", "0"], capsys)
    assert code == 0 and out.startswith("set set-")
    code, out, _ = run([*c, "snapshot", "redolog"], capsys)
    assert code == 0 and out.startswith("redolog redolog-")
    code, out, _ = run([*c, "snapshot", "list", "--json"], capsys)
    rows = json.loads(out)
    assert [r["kind"] for r in rows] == ["set", "set", "redolog"]
    assert all("skew_ms" in r and r["taken_at"] for r in rows)
    code, out, _ = run([*c, "snapshot", "list"], capsys)
    assert "SKEW ms" in out and first["id"] in out
    code, out, _ = run([*c, "snapshot", "verify-manifest", first["manifest"]], capsys)
    assert code == 0 and "intact" in out
    # Nothing is shipped yet: everything is held, nothing pruned.
    code, out, _ = run([*c, "snapshot", "prune", "--dry-run", "--json"], capsys)
    plan = json.loads(out)
    assert code == 0 and plan["prune"] == [] and first["id"] in plan["held"]


def test_tampered_manifest_exits_8_naming_the_file(cfg: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(cfg)]
    code, out, _ = run([*c, "snapshot", "redolog", "--json"], capsys)
    path = Path(json.loads(out)["manifest"])
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"status":"complete"', b'"status":"incomplete"'))
    code, out, err = run([*c, "snapshot", "verify-manifest", str(path)], capsys)
    assert code == 8 and str(path) in err and "changed after it was signed" in err
    code, _, err = run([*c, "snapshot", "list"], capsys)
    assert code == 8 and str(path) in err
    # Signed with another key.
    path.write_bytes(raw)
    other = cfg.read_text().replace("test-manifest-key-0123456789", "another-key-0123456789")
    (cfg.parent / "other.toml").write_text(other)
    code, _, err = run(["--config", str(cfg.parent / "other.toml"), "snapshot",
                        "verify-manifest", str(path)], capsys)
    assert code == 8 and "signed with another key" in err


def test_atomic_on_dir_is_a_usage_error(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--config", str(cfg), "snapshot", "set", "--atomic"], capsys)
    assert code == 2 and "cannot take db, blob, index, redolog in one instant" in err


def test_help_lists_the_commands() -> None:
    res = CliRunner().invoke(app, ["snapshot", "--help"])
    assert res.exit_code == 0
    for cmd in ("set", "redolog", "list", "prune", "verify-manifest"):
        assert cmd in res.output
