"""The drill goes through a real target: `standby ship` to a file:// folder after each snapshot,
`standby pull` and `zmplayredo --set latest` at the standby, digests equal."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from standby import drill


def test_the_drill_ships_through_file_and_fails_over_with_pull(mariadb_available: None) -> None:
    said: list[str] = []
    short = Path(tempfile.mkdtemp(prefix="sbd-"))  # socket paths must stay under 107 bytes
    try:
        _drill(short, said)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _drill(workdir: Path, said: list[str]) -> None:
    rep = drill.run(workdir=workdir, accounts=4, seed=7, workers=2, set_every_s=3.0,
                    redolog_every_s=1.0, kill_window_s=(8.0, 9.0), groups=4, keep=True,
                    say=said.append)
    assert rep.equal and rep.ok, rep.as_dict()
    assert rep.committed_ops_lost == 0 and rep.divergent_mailboxes == 0 and not rep.gap
    assert rep.sets >= 2 and rep.replay_ops > 0
    site = Path(rep.workdir) / "site"
    assert f"target file://{site}, dir volumes" in rep.notes
    assert any(m.startswith("standby: standby pull --set") for m in said)
    assert any("zmplayredo --set latest" in m for m in said)
    # what the standby pulled came from the target's catalog, every set of it complete
    sets = list(site.glob("*/catalog/sets/*.json"))
    assert len(sets) == rep.sets
