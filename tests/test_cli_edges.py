"""The rough edges a new user hit (issue 8), each pinned by a test that failed before the fix.

1. `-c/--config` is accepted before and after every sub-command, of `standby` and the zm* tools.
2. A redolog directory (archive and current log) is read in sequence order by zmredodump and
   by `zmplayredo --logfiles DIR`; a header time of 0 is "none", not 1970.
3. Human output says things in words: no `None`, no dict or list repr, no raw epoch ms.
4. A replay's summary tells applied, skipped (already present) and not selected apart.
5. Exit codes: `store status` on missing volumes 4, a missing config 3 (as README's table
   says), zmredodump on a missing file 9.
6. `--help`: no `<bool>` placeholder, docstrings re-wrapped by paragraph.
7. pyproject.toml's licence is an SPDX string (no setuptools deprecation warning).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from standby.cli import common, main, zm
from standby.drill import DrillReport
from standby.redolog import files
from tests.conftest import StoreHandle
from tests.replay_util import BIN, LogBuilder, Run, run_cli
from tests.services import write_config
from tests.test_snapshot_support import KEY

ROOT = Path(__file__).resolve().parent.parent
STANDBY = BIN / "standby"
ZMREDODUMP = BIN / "zmredodump"
ZMPLAYREDO = BIN / "zmplayredo"
MakeStore = Callable[..., StoreHandle]
APPS = {"standby": main.app, "zmredodump": zm.redodump_app, "zmplayredo": zm.playredo_app}


def cli(prog: Path, *args: str | Path) -> Run:
    r = run_cli([str(prog), *map(str, args)])
    r.assert_no_traceback()
    return r


def crafted_log(d: Path) -> LogBuilder:
    """Two archived logs and a current one: mailboxes 1 and 2, a few messages each."""
    d.mkdir(parents=True, exist_ok=True)
    b = LogBuilder(d)
    for m in (1, 2):
        b.create_mailbox(m)
    b.rollover()
    for m in (1, 2, 1):
        b.op(m, b.message(m))
    b.rollover()
    b.op(2, b.message(2))
    b.close()
    return b


# --------------------------------------------------------------------------------------------
# 1. -c/--config before and after every sub-command


def test_config_option_is_accepted_after_every_command(tmp_path: Path) -> None:
    cfg = tmp_path / "some.toml"
    seen = []
    for prog, app in APPS.items():
        for path, cmd in common.walk(common.command(app)):
            # Resilient: a command's other required parameters are not the point here.
            ctx = cmd.make_context(" ".join((prog, *path)), ["-c", str(cfg)],
                                   resilient_parsing=True)
            assert isinstance(ctx.obj, common.Context), (prog, path)
            assert ctx.obj.config == cfg, (prog, path)
            assert [set(p.opts) for p in cmd.params if "--config" in p.opts] == [
                {"-c", "--config"}], (prog, path)
            seen.append((prog, *path))
    # Every verb group and command is walked, the zm* tools included.
    assert {("standby", "store", "stop"), ("standby", "store"), ("standby", "replay"),
            ("standby", "snapshot", "set"), ("standby", "schedule"), ("zmplayredo",),
            ("zmredodump",), ("standby",)} <= set(seen)
    assert len(seen) >= 25


def test_config_before_or_after_the_sub_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "site")
    placements: list[list[str | Path]] = [
        ["-c", cfg, "store", "stop"], ["store", "-c", cfg, "stop"],
        ["store", "stop", "-c", cfg], ["store", "stop", "--config", cfg]]
    for args in placements:
        r = cli(STANDBY, *args)
        assert (r.rc, r.out) == (0, "nothing was running\n"), r.describe()
    # Honoured, not only parsed: a config named after the command that does not exist is
    # the error, even with a valid one named before it.
    missing = tmp_path / "nope.toml"
    honoured: list[tuple[Path, list[str | Path]]] = [
        (STANDBY, ["-c", cfg, "snapshot", "list", "-c", missing]),
        (STANDBY, ["replay", "--dry-run", "-c", missing]),
        (ZMPLAYREDO, ["--dry-run", "-c", missing])]
    for prog, argv in honoured:
        r = cli(prog, *argv)
        assert r.rc == 3 and f"config file '{missing}' does not exist" in r.err, r.describe()
    r = cli(ZMPLAYREDO, "--dry-run", "-c", cfg)
    assert r.rc == 0 and r.out.startswith("would replay no ops"), r.describe()


# --------------------------------------------------------------------------------------------
# 2. A redolog directory, in sequence order


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 3)), min_size=0, max_size=12,
                unique=True), st.booleans(), st.booleans())
def test_redolog_dir_logs_is_in_sequence_order(tmp_path_factory: pytest.TempPathFactory,
                                               archives: list[tuple[int, int]], flat: bool,
                                               current: bool) -> None:
    d = tmp_path_factory.mktemp("rl")
    where = d if flat else d / files.ARCHIVE_DIR
    where.mkdir(exist_ok=True)
    for seq, sec in archives:
        (where / files.archive_name(1_700_000_000_000 + sec * 1000, seq)).write_bytes(b"")
    (d / "notes.txt").write_text("not a log")
    (where / files.tmp_name(1_700_000_000_000, 999)).write_bytes(b"")  # rollover in progress
    if current:
        (d / files.CURRENT).write_bytes(b"")
    got = files.redolog_dir_logs(d)
    assert [lf.seq for lf in got if lf.path.name != files.CURRENT] == sorted(
        s for s, _ in archives)
    assert len(got) == len(archives) + current
    if current:
        assert got[-1].path == d / files.CURRENT


def test_zmredodump_reads_a_redolog_volume_archive_first(tmp_path: Path) -> None:
    d = tmp_path / "redolog"
    crafted_log(d)
    archived = sorted((d / files.ARCHIVE_DIR).iterdir(), key=lambda p: files.seq_of(p.name))
    want = [p.resolve() for p in (*archived, d / files.CURRENT)]
    assert [files.seq_of(p.name) for p in archived] == [0, 1]
    r = cli(ZMREDODUMP, "-q", d)
    assert r.rc == 0, r.describe()
    assert r.out.splitlines() == [f"VERIFYING: {p}" for p in want]
    full = cli(ZMREDODUMP, d)
    assert full.rc == 0 and full.out.count("HEADER\n") == 3
    assert [ln for ln in full.out.splitlines() if ln.startswith("VERIFYING")] == [
        f"VERIFYING DIRECTORY: {d.resolve()}", *(f"VERIFYING: {p}" for p in want)]
    headers = [ln for ln in full.out.splitlines()
               if ln.startswith(("created:", "first op:", "last op:"))]
    assert headers and not [ln for ln in headers if "1970" in ln], headers


def test_a_log_without_ops_has_no_first_op(tmp_path: Path) -> None:
    d = tmp_path / "redolog"
    d.mkdir()
    b = LogBuilder(d)
    b.create_mailbox(1)
    b.rollover()  # the new redo.log has no op yet: its header's first-op time is 0
    r = cli(ZMREDODUMP, d / files.CURRENT)
    assert "first op: none (0)\n" in r.out and "1970" not in r.out, r.describe()
    b.close()


def test_zmplayredo_logfiles_takes_a_redolog_directory(tmp_path: Path) -> None:
    d = tmp_path / "redolog"
    b = crafted_log(d)
    cfg = write_config(tmp_path / "target")
    by_dir = cli(ZMPLAYREDO, "-c", cfg, "--dry-run", "--json", "--logfiles", d)
    assert by_dir.rc == 0, by_dir.describe()
    plan = by_dir.summary
    assert plan["ops"] == len(b.txns)
    assert [Path(f["path"]) for f in plan["files"]] == [lf.path for lf in
                                                        files.redolog_dir_logs(d)]
    assert [f["seq"] for f in plan["files"]] == [0, 1, 2]
    by_vol = cli(ZMPLAYREDO, "-c", cfg, "--dry-run", "--json", "--log-dir", d)
    assert by_vol.summary["files"] == plan["files"] and by_vol.summary["ops"] == plan["ops"]


# --------------------------------------------------------------------------------------------
# 3. and 4. Human output in words; applied, skipped, not selected


# A Python value that leaked into human output: None/True/False, a dict or list repr, or a
# 13-digit number (epoch milliseconds) standing on its own.
LEAK = re.compile(r"\b(None|True|False)\b|[{\[]['\"]|\{\}|\[\]|\[\d+(, \d+)+\]|\{\w+:"
                  r"|(?<![\w.])\d{13}(?![\w.])")


def leaks(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if LEAK.search(ln)]


def test_leak_detector_catches_the_reported_leaks() -> None:
    for bad in ("redo log: sequence None, None bytes; 0 archived", "  db {'skipped': 3067}",
                "would replay 0 ops from 1 files (None .. None)",
                "  db       dir    /x/y  taken 1796157352132 (3 ms)",
                "standby == primary     True (abc)", "by mailbox [1, 2]"):
        assert leaks(bad), bad
    for good in ("redo log: sequence 3, 4096 bytes; 2 archived",
                 "set set-20261201.212603.123: 4 snapshot(s), skew 12 ms",
                 "mailbox 1 a1b2 3fa91234567890123bcd rows=4"):
        assert not leaks(good), good


@pytest.mark.services
def test_human_output_has_no_python_values(make_store: MakeStore, tmp_path: Path) -> None:
    outputs: dict[str, str] = {}

    def human(name: str, prog: Path, *args: str | Path) -> str:
        r = cli(prog, *args)
        assert r.rc == 0, r.describe()
        outputs[name] = r.out
        return r.out

    primary = make_store("primary", sections={"snapshot": {"manifest_key": KEY}})
    c: list[str | Path] = ["-c", primary.cfg]
    human("store init", STANDBY, "store", "init", tmp_path / "fresh")
    human("store status, no redo log yet", STANDBY, *c, "store", "status")
    raw = json.loads(cli(STANDBY, *c, "store", "status", "--json").out)
    human("snapshot list, empty", STANDBY, *c, "snapshot", "list")
    human("store start", STANDBY, *c, "store", "start")
    human("store status, running", STANDBY, *c, "store", "status")
    human("store loadgen", STANDBY, *c, "store", "loadgen", "--accounts", "3", "--ops", "40",
          "--workers", "2")
    human("store loadgen, no ops", STANDBY, *c, "store", "loadgen", "--accounts", "3",
          "--ops", "0")
    human("store digest", STANDBY, *c, "store", "digest")
    human("store stop", STANDBY, *c, "store", "stop")
    human("store status, stopped", STANDBY, *c, "store", "status")
    human("snapshot set --dry-run", STANDBY, *c, "snapshot", "set", "--dry-run")
    human("snapshot set", STANDBY, *c, "snapshot", "set", "--stagger", "0")
    human("snapshot redolog", STANDBY, *c, "snapshot", "redolog")
    listing = json.loads(cli(STANDBY, *c, "snapshot", "list", "--json").out)
    human("snapshot list", STANDBY, *c, "snapshot", "list")
    manifest = json.loads(cli(STANDBY, *c, "snapshot", "redolog", "--json").out)["manifest"]
    human("snapshot verify-manifest", STANDBY, *c, "snapshot", "verify-manifest", manifest)
    human("snapshot prune --dry-run", STANDBY, *c, "snapshot", "prune", "--dry-run")
    human("snapshot prune", STANDBY, *c, "snapshot", "prune")

    log_dir = primary.settings.volumes.redolog.path
    target = make_store("standby")
    t: list[str | Path] = ["-c", target.cfg, "replay", "--log-dir", log_dir]
    human("replay --dry-run", STANDBY, *t, "--dry-run")
    human("replay --dry-run, no ops", STANDBY, *t, "--dry-run", "--fromTime",
          "2099/01/01 00:00:00")
    human("replay", STANDBY, *t)
    human("replay again", ZMPLAYREDO, "-c", target.cfg, "--log-dir", log_dir)
    human("redolog dump", STANDBY, "redolog", "dump", "-q", log_dir)

    found = {name: bad for name, text in outputs.items() if (bad := leaks(text))}
    assert not found, "\n".join(f"{name}: {line}" for name, bad in found.items()
                                for line in bad)

    # The reported cases, in words; --json keeps the raw values.
    assert ("redo log: no readable redo.log yet; 0 archived"
            in outputs["store status, no redo log yet"])
    assert raw["redo_seq"] is None and raw["redo_size"] is None
    assert re.search(r"taken \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3} UTC \(\d+ ms\)",
                     outputs["snapshot set"]), outputs["snapshot set"]
    assert all(isinstance(r["taken_at_ms"], int) for r in listing)
    assert outputs["replay --dry-run, no ops"].startswith("would replay no ops from")
    first, again = outputs["replay"], outputs["replay again"]
    head = re.match(r"read (\d+) selected ops", first)
    assert head, first
    n = int(head[1])
    assert n > 0 and f"\n  {n} applied, 0 skipped (already present), 0 not selected" in first
    assert f"\n  0 applied, {n} skipped (already present), 0 not selected" in again, again

    # zmredodump keeps Zimbra's shape (raw ms in its header and op lines, Zimbra's array
    # form in op data), but no Python value and no 1970 for a zero header time.
    dump = cli(ZMREDODUMP, log_dir)
    assert dump.rc == 0 and not re.search(r"\bNone\b|\{'", dump.out)
    assert not [ln for ln in dump.out.splitlines()
                if ln.startswith(("first op:", "last op:", "created:")) and "1970" in ln]


def test_drill_report_in_words() -> None:
    from standby.cli.drill import report_lines

    same = DrillReport(sets=3, redolog_snapshots=4, killed_at="2026-12-01T10:00:00.000Z",
                       equal=True, standby_digest="ab" * 32, reference_digest="ab" * 32)
    differ = DrillReport(equal=False, standby_digest="ab" * 32, reference_digest="cd" * 32,
                         notes=["a note"])
    for rep in (same, differ):
        assert not leaks("\n".join(report_lines(rep))), report_lines(rep)
    assert f"standby == primary     yes (digest {'ab' * 8})" in report_lines(same)
    assert (f"standby == primary     NO: standby {'ab' * 8}, primary {'cd' * 8}"
            in report_lines(differ))


@pytest.mark.services
@pytest.mark.parametrize("engine", ["fast", "naive"])
def test_replay_counts_applied_skipped_and_not_selected(make_store: MakeStore, tmp_path: Path,
                                                        engine: str) -> None:
    d = tmp_path / "redolog"
    b = crafted_log(d)
    n = len(b.txns)
    of_two = sum(1 for t in b.txns if t.start.mailbox_id == 2)
    target = make_store(f"target-{engine}")
    args: list[str | Path] = ["-c", target.cfg, "replay", "--log-dir", d]
    if engine == "naive":
        args.append("--naive")
    fresh = cli(STANDBY, *args, "--json")
    assert fresh.rc == 0, fresh.describe()
    s = fresh.summary
    assert s["ops"] == {"selected": n, "applied": n, "skipped": 0, "missing": 0, "failed": 0,
                        "not_selected": 0}
    assert s["ops_applied"] == n and s["db"] == {"applied": n}  # the keys of before, kept

    again = cli(STANDBY, *args)
    assert again.rc == 0, again.describe()
    lines = again.out.splitlines()
    assert lines[0].startswith(f"read {n} selected ops in ")
    assert lines[1] == f"  0 applied, {n} skipped (already present), 0 not selected"
    assert lines[2].startswith(f"  db: {n} already there; ")

    one = cli(STANDBY, *args, "--mailboxId", "1", "--json").summary
    assert one["ops"] == {"selected": n - of_two, "applied": 0, "skipped": n - of_two,
                          "missing": 0, "failed": 0, "not_selected": of_two}
    assert one["player"]["filtered_mailbox"] == of_two


# --------------------------------------------------------------------------------------------
# 5. Exit codes


def _readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_store_status_on_missing_volumes_exits_4(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "index").rmdir()
    for args in (["store", "status"], ["store", "status", "--json"], ["store", "start"]):
        r = cli(STANDBY, "-c", cfg, *args)
        assert r.rc == 4, r.describe()
        assert f"error: volume index: {tmp_path / 'index'} does not exist" in r.err
    assert "volume" in _readme_exit_codes()[4]


def test_missing_config_exit_code_is_the_one_readme_gives(tmp_path: Path) -> None:
    r = cli(STANDBY, "-c", tmp_path / "nope.toml", "store", "status")
    assert r.rc == 3 and "does not exist" in r.err
    meaning = _readme_exit_codes()[r.rc]
    assert "missing configuration" in meaning and "does not exist" in meaning, meaning
    # No config at all (none named, none in the default places).
    env_free = run_cli(["env", "-u", "STANDBY_CONFIG", "-C", str(tmp_path), str(STANDBY),
                        "store", "status"])
    assert env_free.rc == 3 and "no configuration found" in env_free.err


def test_zmredodump_on_a_missing_file_exits_9(tmp_path: Path) -> None:
    d = tmp_path / "redolog"
    crafted_log(d)
    missing = tmp_path / "nope.log"
    for args in ([missing], [d / files.CURRENT, missing]):
        r = cli(ZMREDODUMP, *args)
        assert r.rc == 9, r.describe()
        assert r.out == "" and "Exception while verifying" not in r.out + r.err
        assert f"error: no such redolog file or directory: {missing}" in r.err
    assert "does not exist" in _readme_exit_codes()[9]
    assert cli(STANDBY, "redolog", "dump", missing).rc == 9


# --------------------------------------------------------------------------------------------
# 6. Help texts


def _help_commands() -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for prog, app in APPS.items():
        def walk(cmd: object, path: tuple[str, ...]) -> None:
            out.append((prog, path))
            for name, sub in getattr(cmd, "commands", {}).items():
                walk(sub, (*path, name))
        walk(typer.main.get_command(app), ())
    return out


COLUMNS = 70
WIDTH = max(min(COLUMNS, 80) - 2, 50)  # click's HelpFormatter width


@pytest.mark.parametrize("prog,path", _help_commands(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_help_has_no_bool_placeholder_and_whole_paragraphs(prog: str,
                                                           path: tuple[str, ...]) -> None:
    r = subprocess.run([str(BIN / prog), *path, "--help"], capture_output=True, text=True,
                       check=False, timeout=60, env=dict(os.environ, COLUMNS=str(COLUMNS)))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "<bool>" not in text
    assert "-c, --config FILE" in text
    lines = text.splitlines()
    assert lines[0].startswith("Usage: ")
    start = lines.index("") + 1
    end = next(i for i, ln in enumerate(lines) if re.match(r"^(Options|Arguments|Commands):$",
                                                           ln))
    paragraphs: list[list[str]] = [[]]
    for ln in lines[start:end]:
        if ln.strip():
            paragraphs[-1].append(ln)
        elif paragraphs[-1]:
            paragraphs.append([])
    assert paragraphs[0], text
    for par in paragraphs:
        for ln, nxt in zip(par, par[1:]):
            assert len(ln) <= WIDTH, ln
            # Filled greedily: a line ends only where the next word would not fit.
            assert len(ln) + 1 + len(nxt.split()[0]) > WIDTH, (ln, nxt)


# --------------------------------------------------------------------------------------------
# 7. Packaging


def test_license_is_an_spdx_string() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    req = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert req == ["setuptools>=77"]  # the first release that takes an SPDX expression
