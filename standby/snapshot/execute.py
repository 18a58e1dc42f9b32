"""Running a plan: hooks, the snapshot groups on their schedule, the manifest; clean-up on failure.

Measured honestly: each group's redo position is read (or the store frozen) *before* its backend
call, `started_ms` is taken right before the call and `taken_at_ms` right after it returns;
members of one group share both (one instant). Group i starts at the first group's start plus
`at_s`, so the stagger does not drift by the tool's overhead.

Clean-up is registered the moment a snapshot exists: if anything fails before the manifest is
written (a later volume, a hook, an interrupt), every snapshot already taken is destroyed, in
reverse order; any that cannot be destroyed are recorded in a manifest with status
`incomplete` (and the errors), so nothing is left behind unaccounted for. The post hook always
runs, with `STANDBY_STATUS`; when it fails after a complete set the set stays, and the error is
raised after the manifest is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import log as slog
from standby.catalog._base import CatalogStore
from standby.catalog.manifest import Manifest, RedoPoint, ReplayStart, SnapshotRecord, skew
from standby.errors import ServiceError, StandbyError
from standby.snapshot import hooks
from standby.snapshot._base import Snapshot, SnapshotBackend, Volume
from standby.snapshot.plan import HookStep, Plan, SnapshotStep
from standby.snapshot.quiesce import Database
from standby.snapshot.redo import RedoSource

# A redo record's time is taken just before it is appended; a record stamped before a position
# was read may land after it. `from_time_ms` starts this much earlier to cover that window (the
# exact start is the offset; replay is idempotent, so starting early costs only time).
TIME_MARGIN_MS = 1000
COPY_ATTEMPTS = 3


@dataclass
class Effects:
    """Everything `execute` touches, passed in (real defaults come from `sets.effects_for`)."""

    backends: Mapping[str, SnapshotBackend]
    volumes: Mapping[str, Volume]
    catalog: CatalogStore
    redo: RedoSource
    db: Database | None
    clock_ms: Callable[[], int]
    sleep: Callable[[float], None]
    run_hook: Callable[..., str] = hooks.run_hook
    freeze_timeout_s: float = 300.0
    db_clean_timeout_s: float = 60.0
    hook_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Taken:
    step: SnapshotStep
    snapshot: Snapshot
    started_ms: int
    taken_at_ms: int
    redo: RedoPoint
    volume: Volume


@dataclass(frozen=True)
class Outcome:
    manifest: Manifest
    path: Path
    tool_ms: int  # wall time of the run minus the time inside backend calls and stagger waits
    backend_ms: int  # time inside backend `create` calls

    def as_dict(self) -> dict[str, Any]:
        return {"manifest": str(self.path), **self.manifest.as_dict(),
                "tool_ms": self.tool_ms, "backend_ms": self.backend_ms}


def execute(plan: Plan, fx: Effects) -> Outcome:
    log = slog.get("standby.snapshot", set_id=plan.id, kind=plan.kind)
    env = {**fx.hook_env, "STANDBY_KIND": plan.kind, "STANDBY_SET_ID": plan.id,
           "STANDBY_SERVER_ID": plan.server_id}
    t_begin = fx.clock_ms()
    taken: list[_Taken] = []
    waited_ms = 0
    backend_ms = 0
    outcome: Outcome | None = None
    failure: BaseException | None = None
    post = next((s for s in plan.steps if isinstance(s, HookStep) and s.stage == "post"), None)
    try:
        for step in plan.steps:
            if isinstance(step, HookStep) and step.stage == "pre":
                log.info("hook_pre", argv=list(step.argv))
                fx.run_hook("pre", step.argv, timeout_s=step.timeout_s, env=env)
        first_start: int | None = None
        for step in plan.snapshot_steps:
            # The position is read before waiting for the group's slot (a position read
            # earlier is still a valid lower bound), so a slow store answer does not push the
            # snapshot off its schedule. A frozen store answers it at freeze time instead.
            pos = None if step.freeze_store else fx.redo.position()
            if first_start is not None:
                delay = first_start + int(step.at_s * 1000) - fx.clock_ms()
                if delay > 0:
                    fx.sleep(delay / 1000)
                    waited_ms += delay
            got, spent = _take(plan, step, fx, pos, log)
            backend_ms += spent
            taken.extend(got)
            if first_start is None:
                first_start = got[0].started_ms
        _settle(taken, fx)
        m = _manifest(plan, taken, status="complete", errors=(), t_begin=t_begin,
                      t_end=fx.clock_ms())
        path = Path(fx.catalog.write(m))
        total = fx.clock_ms() - t_begin
        outcome = Outcome(m, path, tool_ms=max(0, total - backend_ms - waited_ms),
                          backend_ms=backend_ms)
        log.info("snapshot_done", manifest=str(path), skew_ms=m.skew_ms,
                 snapshots=len(m.snapshots))
    except BaseException as e:  # noqa: BLE001 - clean up on anything, even ^C; re-raised below
        failure = e
        _clean_up(plan, taken, fx, e, t_begin, log)
    finally:
        post_error = _post_hook(post, fx, env, failed=failure is not None, log=log)
    if failure is not None:
        raise failure
    if post_error is not None:
        raise hooks.HookFailed(f"{post_error.message}; the {plan.kind} {plan.id} itself was "
                               "taken and is complete", hint=post_error.hint)
    assert outcome is not None
    return outcome


def _take(plan: Plan, step: SnapshotStep, fx: Effects, pos: RedoPoint | None,
          log: Any) -> tuple[list[_Taken], int]:
    """One group: freeze the store or take the position read before, hold MariaDB, call the
    backend. Nothing here calls the store while MariaDB is held: the store's rollover flushes
    MariaDB under its writer lock, so a store call under BLOCK_COMMIT could wait on us."""
    be = fx.backends[step.backend]
    vols = [fx.volumes[n] for n in step.volumes]
    labels = {"server-id": plan.server_id, "set-id": plan.id, "kind": plan.kind}
    spent = 0
    with ExitStack() as stack:
        if step.freeze_store:
            pos = stack.enter_context(fx.redo.frozen(fx.freeze_timeout_s))
        assert pos is not None
        held = None
        if step.db_hold and fx.db is not None:
            held = stack.enter_context(fx.db.held(
                block_commit=step.db_hold.startswith("quiesce"),
                clean=step.db_hold.endswith("clean"), clean_timeout_s=fx.db_clean_timeout_s))
        for attempt in range(1, COPY_ATTEMPTS + 1):
            started = fx.clock_ms()
            snaps = be.create(vols, plan.name, labels=labels)
            taken_at = fx.clock_ms()
            spent += taken_at - started
            if step.freeze_store and taken_at - pos.at_ms >= fx.freeze_timeout_s * 1000:
                # The store thaws itself after the freeze timeout: the copy may be torn.
                for s in snaps:
                    be.destroy(s)
                raise ServiceError(f"copying {', '.join(step.volumes)} took longer than the "
                                   f"store may stay frozen ({fx.freeze_timeout_s:g} s)",
                                   hint="raise snapshot.freeze_timeout_s, or use a backend "
                                        "that snapshots instead of copying")
            if held is None or not held.changed():
                break
            log.warning("db_changed_during_copy", attempt=attempt)
            for s in snaps:
                be.destroy(s)
            held.resettle()
        else:
            raise ServiceError(f"InnoDB kept writing while the db volume was copied "
                               f"({COPY_ATTEMPTS} attempts)",
                               hint="snapshot the db volume with zfs/btrfs/lvm/ebs instead")
    for s in snaps:
        log.info("snapshot_taken", volume=s.volume, snapshot=s.ref, ms=taken_at - started)
    return [_Taken(step, s, started, taken_at, pos, fx.volumes[s.volume]) for s in snaps], spent


def _settle(taken: list[_Taken], fx: Effects) -> None:
    by_backend: dict[str, list[_Taken]] = {}
    for t in taken:
        by_backend.setdefault(t.snapshot.backend, []).append(t)
    for name, ts in by_backend.items():
        settled = fx.backends[name].settle([t.snapshot for t in ts])
        for t, s in zip(ts, settled, strict=True):
            t.snapshot = s


def _manifest(plan: Plan, taken: list[_Taken], *, status: str, errors: tuple[str, ...],
              t_begin: int, t_end: int) -> Manifest:
    parents = dict(plan.parents)
    recs = tuple(SnapshotRecord(
        volume=t.snapshot.volume, backend=t.snapshot.backend, name=t.snapshot.name,
        ref=t.snapshot.ref, dataset=t.volume.dataset, path=str(t.volume.path),
        identity=dict(t.snapshot.identity),
        started_ms=t.started_ms, taken_at_ms=t.taken_at_ms, redo=t.redo,
        parent=parents.get(t.snapshot.volume), group=t.step.group) for t in taken)
    sk, window = skew(recs)
    if taken:
        first = min(taken, key=lambda t: (t.redo.seq, t.redo.offset)).redo
        candidates = [first.at_ms] + ([first.oldest_active_tstamp]
                                      if first.oldest_active_tstamp is not None else [])
        replay = ReplayStart(first.seq, first.offset, first.active_txns,
                             min(candidates) - TIME_MARGIN_MS)
    else:
        replay = ReplayStart(0, 0, (), t_begin)
    return Manifest(server_id=plan.server_id, id=plan.id, kind=plan.kind, status=status,
                    atomic=plan.atomic, stagger_s=plan.stagger_s, quiesced_db=any(
                        t.step.db_hold.startswith("quiesce") for t in taken),
                    started_ms=t_begin, finished_ms=t_end, skew_ms=sk, window_ms=window,
                    replay=replay, snapshots=recs, errors=errors, notes=plan.notes)


def _clean_up(plan: Plan, taken: list[_Taken], fx: Effects, error: BaseException,
              t_begin: int, log: Any) -> None:
    """Destroy what the failed run took; record what cannot be destroyed as incomplete."""
    msg = str(error) if isinstance(error, StandbyError) else f"{type(error).__name__}: {error}"
    log.error("snapshot_failed", error=msg, taken=len(taken))
    left: list[_Taken] = []
    problems = [msg]
    for t in reversed(taken):
        try:
            fx.backends[t.snapshot.backend].destroy(t.snapshot)
            log.info("snapshot_destroyed", volume=t.snapshot.volume, snapshot=t.snapshot.ref)
        except StandbyError as e:
            log.error("snapshot_destroy_failed", snapshot=t.snapshot.ref, error=str(e))
            problems.append(f"could not destroy {t.snapshot.ref}: {e}")
            left.append(t)
    if left:
        left.reverse()
        m = _manifest(plan, left, status="incomplete", errors=tuple(problems),
                      t_begin=t_begin, t_end=fx.clock_ms())
        try:
            path = fx.catalog.write(m)
            log.error("snapshot_incomplete", manifest=str(path), left=len(left))
        except (OSError, StandbyError) as e:
            log.error("incomplete_manifest_failed", error=str(e))


def _post_hook(post: HookStep | None, fx: Effects, env: Mapping[str, str], *, failed: bool,
               log: Any) -> hooks.HookFailed | None:
    if post is None:
        return None
    status = "failed" if failed else "complete"
    log.info("hook_post", argv=list(post.argv), status=status)
    try:
        fx.run_hook("post", post.argv, timeout_s=post.timeout_s,
                    env={**env, "STANDBY_STATUS": status})
    except hooks.HookFailed as e:
        log.error("hook_post_failed", error=str(e))
        return e
    return None
