"""Planner and executor logic with fakes for the unit cases (schedule, clean-up, incomplete sets,
hook order), real processes for hooks, and prune against a test double of the planner."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from standby import settings as settings_mod
from standby.catalog.local import LocalCatalog
from standby.catalog.manifest import RedoPoint
from standby.errors import ServiceError, StandbyError, UsageError
from standby.snapshot import hooks
from standby.snapshot import prune as prune_mod
from standby.snapshot._base import Snapshot, Volume
from standby.snapshot.execute import TIME_MARGIN_MS, Effects, execute
from standby.snapshot.plan import HookStep, ManifestStep, Plan, SnapshotStep, plan
from standby.snapshot.retention import RetentionPolicy
from tests.services import write_config

KEY = b"unit-test-key-0123456789"
VOLS = ("db", "blob", "index", "redolog")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000_000

    def now(self) -> int:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += round(s * 1000)


class FakeBackend:
    name = "fake"
    copies = False

    def __init__(self, clock: Clock, *, multi: bool = False, fail_on: str | None = None,
                 undeletable: frozenset[str] = frozenset(), interrupt_on: str | None = None
                 ) -> None:
        self.clock, self.multi, self.fail_on = clock, multi, fail_on
        self.undeletable, self.interrupt_on = undeletable, interrupt_on
        self.live: dict[str, Snapshot] = {}
        self.checked: list[str] = []

    def check(self, volume: Volume) -> None:
        self.checked.append(volume.name)

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        if not self.multi and len(volumes) > 1:
            raise UsageError("--atomic: fake cannot")
        return [list(volumes)]

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        return [f"fake snapshot {'+'.join(v.name for v in volumes)}@{name}"]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        names = {v.name for v in volumes}
        if self.interrupt_on in names:
            raise KeyboardInterrupt
        if self.fail_on in names:
            raise ServiceError(f"cannot snapshot {self.fail_on}")
        self.clock.t += 5
        out = [Snapshot(v.name, self.name, name, f"{v.name}@{name}", {"n": len(self.live)})
               for v in volumes]
        self.live.update({s.ref: s for s in out})
        return out

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)

    def exists(self, snapshot: Snapshot) -> bool:
        return snapshot.ref in self.live

    def destroy(self, snapshot: Snapshot) -> None:
        if snapshot.volume in self.undeletable:
            raise ServiceError(f"{snapshot.ref} is busy")
        self.live.pop(snapshot.ref, None)


class FakeRedo:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.offset = 1000
        self.frozen_calls = 0

    def position(self) -> RedoPoint:
        self.offset += 100
        return RedoPoint(7, self.offset, ((1, 2),), self.clock.t - 300, "store", self.clock.t)

    @contextmanager
    def frozen(self, timeout_s: float) -> Iterator[RedoPoint]:
        self.frozen_calls += 1
        yield self.position()

    def close(self) -> None:
        pass


class Hooks:
    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.fail = fail

    def __call__(self, stage: str, argv: Sequence[str], *, timeout_s: float,
                 env: Mapping[str, str]) -> str:
        self.calls.append((stage, dict(env)))
        if stage in self.fail:
            raise hooks.HookFailed(f"{stage} hook failed")
        return ""


def setup(tmp_path: Path, *, kind: str = "set", atomic: bool = False, stagger: float = 1.0,
          hooks_on: bool = True, **be_kw: Any) -> tuple[Plan, Effects, FakeBackend, Clock]:
    clock = Clock()
    be = FakeBackend(clock, **be_kw)
    cat = LocalCatalog(tmp_path, "srv", KEY)
    vols = {v: Volume(v, tmp_path / v, f"p/{v}") for v in VOLS}
    p = plan(kind, server_id="srv", prefix="standby", volumes=vols,
             backend_of={v: "fake" for v in VOLS}, backends={"fake": be}, catalog=cat,
             now_ms=clock.t, atomic=atomic, stagger_s=stagger, quiesce_db=True,
             db_running=False, pre_hook=("pre.sh",) if hooks_on else (),
             post_hook=("post.sh",) if hooks_on else ())
    fx = Effects(backends={"fake": be}, volumes=vols, catalog=cat, redo=FakeRedo(clock),
                 db=None, clock_ms=clock.now, sleep=clock.sleep, run_hook=Hooks())
    return p, fx, be, clock


def test_plan_lists_hooks_groups_manifest_in_order(tmp_path: Path) -> None:
    p, _fx, be, _ = setup(tmp_path)
    assert be.checked == list(VOLS)
    kinds = [type(s) for s in p.steps]
    assert kinds == [HookStep, *[SnapshotStep] * 4, ManifestStep, HookStep]
    assert [s.at_s for s in p.snapshot_steps] == [0.0, 1.0, 2.0, 3.0]
    text = "\n".join(p.describe())
    assert "fake snapshot db@standby-set-" in text and "always" in text
    assert p.id.startswith("set-") and p.name == f"standby-{p.id}"


def test_staggered_set_keeps_the_schedule_and_measures_skew(tmp_path: Path) -> None:
    p, fx, be, clock = setup(tmp_path, stagger=1.0)
    t0 = clock.t
    out = execute(p, fx)
    m = out.manifest
    assert [s.started_ms - t0 for s in m.snapshots] == [0, 1000, 2000, 3000]
    assert m.skew_ms == 3000 and m.window_ms == 3005
    assert [s.redo.offset for s in m.snapshots] == [1100, 1200, 1300, 1400]
    assert (m.replay.seq, m.replay.offset, m.replay.active_txns) == (7, 1100, ((1, 2),))
    assert m.replay.from_time_ms == t0 - 300 - TIME_MARGIN_MS  # the oldest active txn
    assert out.path.exists() and len(be.live) == 4
    stages = [c[0] for c in fx.run_hook.calls]  # type: ignore[attr-defined]
    assert stages == ["pre", "post"]
    assert fx.run_hook.calls[1][1]["STANDBY_STATUS"] == "complete"  # type: ignore[attr-defined]
    assert fx.run_hook.calls[1][1]["STANDBY_SET_ID"] == p.id  # type: ignore[attr-defined]


def test_atomic_set_is_one_group(tmp_path: Path) -> None:
    p, fx, _be, _ = setup(tmp_path, atomic=True, multi=True)
    assert len(p.snapshot_steps) == 1 and p.stagger_s == 0.0
    m = execute(p, fx).manifest
    assert m.atomic and m.skew_ms == 0 and {s.group for s in m.snapshots} == {0}


def test_atomic_refused_before_anything_when_the_backend_cannot(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="fake cannot"):
        setup(tmp_path, atomic=True, multi=False)


def test_failure_destroys_what_was_taken_and_post_hook_still_runs(tmp_path: Path) -> None:
    p, fx, be, _ = setup(tmp_path, fail_on="index")
    with pytest.raises(ServiceError, match="cannot snapshot index"):
        execute(p, fx)
    assert be.live == {}
    assert fx.catalog.paths() == []
    calls = fx.run_hook.calls  # type: ignore[attr-defined]
    assert [c[0] for c in calls] == ["pre", "post"] and calls[1][1]["STANDBY_STATUS"] == "failed"


def test_undestroyable_leftovers_are_recorded_as_incomplete(tmp_path: Path) -> None:
    p, fx, be, _ = setup(tmp_path, fail_on="redolog", undeletable=frozenset({"blob"}))
    with pytest.raises(ServiceError, match="cannot snapshot redolog"):
        execute(p, fx)
    assert set(be.live) == {f"blob@{p.name}"}
    (m,) = fx.catalog.manifests()
    assert m.status == "incomplete" and [s.volume for s in m.snapshots] == ["blob"]
    assert "cannot snapshot redolog" in m.errors[0] and "busy" in m.errors[1]


def test_interrupt_cleans_up_too(tmp_path: Path) -> None:
    p, fx, be, _ = setup(tmp_path, interrupt_on="blob")
    with pytest.raises(KeyboardInterrupt):
        execute(p, fx)
    assert be.live == {} and fx.catalog.paths() == []


def test_pre_hook_failure_takes_nothing(tmp_path: Path) -> None:
    p, fx, be, _ = setup(tmp_path)
    fx.run_hook = Hooks(fail=frozenset({"pre"}))
    with pytest.raises(hooks.HookFailed, match="pre hook failed"):
        execute(p, fx)
    assert be.live == {} and [c[0] for c in fx.run_hook.calls] == ["pre", "post"]


def test_post_hook_failure_keeps_the_complete_set(tmp_path: Path) -> None:
    p, fx, be, _ = setup(tmp_path)
    fx.run_hook = Hooks(fail=frozenset({"post"}))
    with pytest.raises(hooks.HookFailed, match="taken and is complete"):
        execute(p, fx)
    (m,) = fx.catalog.manifests()
    assert m.status == "complete" and len(be.live) == 4


def test_copying_backends_freeze_the_store(tmp_path: Path) -> None:
    _p, fx, be, _ = setup(tmp_path, kind="redolog", hooks_on=False)
    be.copies = True
    p2 = plan("redolog", server_id="srv", prefix="standby", volumes=fx.volumes,
              backend_of={v: "fake" for v in VOLS}, backends={"fake": be}, catalog=fx.catalog,
              now_ms=1, atomic=False, stagger_s=1, quiesce_db=True, db_running=True)
    assert [s.freeze_store for s in p2.snapshot_steps] == [True]
    execute(p2, fx)
    assert fx.redo.frozen_calls == 1  # type: ignore[attr-defined]


# -- real hook processes -------------------------------------------------------------------------


def test_hook_output_env_and_exit_code(tmp_path: Path) -> None:
    out = hooks.run_hook("pre", ["sh", "-c", 'echo "$STANDBY_HOOK $STANDBY_SET_ID"'],
                         timeout_s=10, env={"STANDBY_SET_ID": "set-1"})
    assert out.strip() == "pre set-1"
    with pytest.raises(hooks.HookFailed, match="exit code 3: boom"):
        hooks.run_hook("post", ["sh", "-c", "echo boom; exit 3"], timeout_s=10, env={})
    with pytest.raises(hooks.HookFailed, match="exit code"):
        hooks.run_hook("pre", ["/nonexistent/hook"], timeout_s=10, env={})


def test_a_hanging_hook_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    with pytest.raises(hooks.HookFailed, match="did not finish within 0.5 s"):
        hooks.run_hook("pre", ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
                       timeout_s=0.5, env={})
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail("the hook's child survived the timeout")


# -- prune against a planner double -------------------------------------------------------------


def test_prune_calls_the_planner_and_removes_what_it_says(tmp_path: Path) -> None:

    p, fx, be, clock = setup(tmp_path, hooks_on=False)
    first = execute(p, fx).manifest
    clock.t += 3_600_000
    p2 = plan("set", server_id="srv", prefix="standby", volumes=fx.volumes,
              backend_of={v: "fake" for v in VOLS}, backends={"fake": be}, catalog=fx.catalog,
              now_ms=clock.t, atomic=False, stagger_s=0, quiesce_db=True, db_running=False)
    second = execute(p2, fx).manifest
    assert {s.parent for s in second.snapshots} == {f"{first.id}/{v}" for v in VOLS}
    cfg = write_config(tmp_path / "cfg", server_id="srv",
                       sections={"snapshot": {"manifest_key": KEY.decode()}})
    s = settings_mod.load(cfg)
    assert s is not None
    s = dataclasses.replace(s, state_dir=tmp_path)
    seen: list[Any] = []

    class PlanDouble:
        def __init__(self, keep: dict[str, tuple[str, ...]], prune: tuple[str, ...]) -> None:
            self.keep, self.prune = keep, prune
            self.held: dict[str, str] = {}

    def planner(items: Sequence[Any], policy: Any, now_ms: int) -> PlanDouble:
        seen.extend(items)
        return PlanDouble({second.id: ("newest",)}, (first.id,))

    res = prune_mod.prune(s, dry_run=True, planner=planner, backends={"fake": be}, now_ms=5)
    assert res.prune == [first.id] and res.removed == [] and len(be.live) == 8
    assert [(i.id, i.parent, i.shipped, i.volume) for i in seen] == [
        (first.id, None, False, "set"), (second.id, first.id, False, "set")]
    res = prune_mod.prune(s, planner=planner, backends={"fake": be}, now_ms=5)
    assert res.removed == [first.id] and len(be.live) == 4
    assert [m.id for m in fx.catalog.manifests()] == [second.id]


def test_prune_with_the_real_planner_holds_the_parent_of_an_unshipped_set(tmp_path: Path) -> None:

    _p, fx, be, clock = setup(tmp_path, hooks_on=False)
    ids = []
    for _ in range(3):
        pl = plan("set", server_id="srv", prefix="standby", volumes=fx.volumes,
                  backend_of={v: "fake" for v in VOLS}, backends={"fake": be},
                  catalog=fx.catalog, now_ms=clock.t, atomic=False, stagger_s=0,
                  quiesce_db=True, db_running=False)
        ids.append(execute(pl, fx).manifest.id)
        clock.t += 3_600_000
    for mid in ids[:2]:
        for v in VOLS:
            fx.catalog.mark_shipped(mid, v)
    cfg = write_config(tmp_path / "cfg", server_id="srv",
                       sections={"snapshot": {"manifest_key": KEY.decode()}})
    s = settings_mod.load(cfg)
    assert s is not None
    s = dataclasses.replace(s, state_dir=tmp_path)
    policy = RetentionPolicy(hourly=0, daily=0, weekly=0, monthly=0, redolog_keep=0)
    res = prune_mod.prune(s, policy=policy, backends={"fake": be}, now_ms=clock.t)
    # ids[2] is unshipped (kept) and needs ids[1] (held); ids[0] goes.
    assert res.removed == [ids[0]] and ids[1] in res.held
    assert [m.id for m in fx.catalog.manifests()] == ids[1:]


def test_errors_are_standby_errors() -> None:
    assert issubclass(hooks.HookFailed, StandbyError) and hooks.HookFailed("x").exit_code == 7


def test_a_copy_that_outlasts_the_freeze_is_refused(tmp_path: Path) -> None:
    _p, fx, be, clock = setup(tmp_path, kind="redolog", hooks_on=False)
    be.copies = True
    fx.freeze_timeout_s = 0.001  # the fake copy takes 5 ms
    p = plan("redolog", server_id="srv", prefix="standby", volumes=fx.volumes,
             backend_of={v: "fake" for v in VOLS}, backends={"fake": be}, catalog=fx.catalog,
             now_ms=clock.t, atomic=False, stagger_s=1, quiesce_db=True, db_running=False)
    with pytest.raises(ServiceError, match="longer than the store may stay frozen"):
        execute(p, fx)
    assert be.live == {} and fx.catalog.paths() == []
