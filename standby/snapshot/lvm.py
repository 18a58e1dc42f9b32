"""LVM snapshot logical volumes (`lvcreate --snapshot`), built and parsed here, run elsewhere.

A volume's `dataset` is its logical volume, `vg/lv`; its path is where the LV's file system is
mounted. A snapshot is the LV `vg/<lv>-<name>` of `snapshot.lvm_snapshot_size` copy-on-write
space. A block-level snapshot does not see what is still in the page cache, so the file system
is frozen around `lvcreate` (`fsfreeze --freeze`, then `--unfreeze`, always).

Identity: the snapshot LV's `lv_uuid`, plus its origin and creation time as `lvs` reports them.
LVM cannot snapshot several LVs in one instant, so `--atomic` is refused.

There is no device-mapper in the test machines: tests check the commands and the `lvs` parser
(with Hypothesis) and run the backend against a fake runner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from standby import _process
from standby.errors import CommandFailed, ServiceError, UsageError, VolumeError
from standby.snapshot._base import Snapshot, Volume

Runner = Callable[..., _process.Result]
LVS_FIELDS = ("lv_name", "vg_name", "lv_uuid", "origin", "lv_time", "lv_attr", "lv_size")
_LV_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]*\Z")


@dataclass(frozen=True)
class LogicalVolume:
    lv_name: str
    vg_name: str
    lv_uuid: str
    origin: str
    lv_time: str
    lv_attr: str
    lv_size: int  # bytes

    @property
    def is_snapshot(self) -> bool:
        return self.lv_attr[:1] in ("s", "S")


def split_lv(dataset: str) -> tuple[str, str]:
    """`vg/lv` -> (vg, lv); VolumeError if it is not of that form."""
    parts = dataset.strip("/").split("/")
    if len(parts) != 2 or not all(_LV_NAME.match(p) for p in parts):
        raise VolumeError(f"LVM volume {dataset!r} is not of the form VG/LV")
    return parts[0], parts[1]


def snapshot_lv_name(lv: str, name: str) -> str:
    out = f"{lv}-{name}"
    if not _LV_NAME.match(out) or len(out) > 127:
        raise UsageError(f"LVM snapshot name {out!r} is not a valid LV name")
    return out


# --------------------------------------------------------------------------------------------
# Command builders


def lvcreate_cmd(dataset: str, name: str, size: str) -> _process.Command:
    vg, lv = split_lv(dataset)
    return _process.Command(("lvcreate", "--snapshot", "--name", snapshot_lv_name(lv, name),
                             "--size", size, "--addtag", "standby", f"{vg}/{lv}"))


def lvs_cmd(targets: Sequence[str]) -> _process.Command:
    return _process.Command(("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                             "-o", ",".join(LVS_FIELDS), *targets))


def lvremove_cmd(target: str) -> _process.Command:
    return _process.Command(("lvremove", "--yes", target))


def fsfreeze_cmd(mount_point: str, *, freeze: bool) -> _process.Command:
    return _process.Command(("fsfreeze", "--freeze" if freeze else "--unfreeze", mount_point))


# --------------------------------------------------------------------------------------------
# Parser (pure)


def parse_lvs(text: str) -> list[LogicalVolume]:
    """`lvs --reportformat json --units b --nosuffix -o LVS_FIELDS` -> logical volumes."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ServiceError(f"`lvs` did not print JSON: {e}") from e
    out: list[LogicalVolume] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("report"), list):
        raise ServiceError("`lvs` JSON has no report list")
    for report in doc["report"]:
        for row in report.get("lv", []) if isinstance(report, dict) else []:
            try:
                size = str(row.get("lv_size", "0")).strip()
                out.append(LogicalVolume(
                    lv_name=str(row["lv_name"]), vg_name=str(row["vg_name"]),
                    lv_uuid=str(row.get("lv_uuid", "")), origin=str(row.get("origin", "")),
                    lv_time=str(row.get("lv_time", "")), lv_attr=str(row.get("lv_attr", "")),
                    lv_size=int(float(size.rstrip("Bb") or 0))))
            except (KeyError, TypeError, ValueError) as e:
                raise ServiceError(f"`lvs` row {row!r} is not understood: {e}") from e
    return out


def render_lvs(lvs: Sequence[LogicalVolume]) -> str:
    """The JSON `lvs` prints for these LVs (tests and round trips)."""
    rows = [{"lv_name": v.lv_name, "vg_name": v.vg_name, "lv_uuid": v.lv_uuid,
             "origin": v.origin, "lv_time": v.lv_time, "lv_attr": v.lv_attr,
             "lv_size": str(v.lv_size)} for v in lvs]
    return json.dumps({"report": [{"lv": rows}]}, indent=2)


# --------------------------------------------------------------------------------------------
# The backend


class LvmBackend:
    """`SnapshotBackend` for LVM logical volumes (`volumes.<name>.dataset = "vg/lv"`)."""

    name = "lvm"
    copies = False

    def __init__(self, *, size: str = "1G", run: Runner = _process.run,
                 freeze: bool = True) -> None:
        self.size = size
        self._run = run
        self.freeze = freeze

    def _lvs(self, targets: Sequence[str]) -> list[LogicalVolume]:
        return parse_lvs(self._run(lvs_cmd(targets)).text)

    def check(self, volume: Volume) -> None:
        ds = volume.dataset or ""
        vg, lv = split_lv(ds)
        try:
            found = self._lvs([f"{vg}/{lv}"])
        except CommandFailed as e:
            raise VolumeError(f"volume {volume.name}: logical volume {ds} does not exist "
                              f"({e.message})", hint="check `lvs` and volumes."
                                                     f"{volume.name}.dataset") from e
        if not found:
            raise VolumeError(f"volume {volume.name}: logical volume {ds} does not exist")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        if len(volumes) > 1:
            raise UsageError("--atomic: LVM cannot snapshot several logical volumes in one "
                             "instant (" + ", ".join(v.name for v in volumes) + ")",
                             hint="take a staggered set (without --atomic)")
        return [list(volumes)]

    def _plan(self, v: Volume, name: str) -> list[_process.Command]:
        cmds = [lvcreate_cmd(v.dataset or "", name, self.size)]
        if self.freeze:
            cmds = [fsfreeze_cmd(str(v.path), freeze=True), *cmds,
                    fsfreeze_cmd(str(v.path), freeze=False)]
        return cmds

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        return [str(c) for v in volumes for c in self._plan(v, name)]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        if len(volumes) != 1:
            self.atomic_groups(volumes)
        (v,) = volumes
        vg, lv = split_lv(v.dataset or "")
        target = f"{vg}/{snapshot_lv_name(lv, name)}"
        if self.freeze:
            self._run(fsfreeze_cmd(str(v.path), freeze=True))
        try:
            self._run(lvcreate_cmd(v.dataset or "", name, self.size))
        except CommandFailed as e:
            raise ServiceError(f"lvcreate of a snapshot of {vg}/{lv} failed: {e.message}") from e
        finally:
            if self.freeze:
                self._run(fsfreeze_cmd(str(v.path), freeze=False))
        snap = Snapshot(volume=v.name, backend=self.name, name=name, ref=target)
        try:
            found = self._lvs([target])
        except ServiceError:
            self.destroy(snap)
            raise
        ident: dict[str, Any] = {}
        if found:
            f = found[0]
            ident = {"lv_uuid": f.lv_uuid, "origin": f.origin, "lv_time": f.lv_time}
        return [Snapshot(volume=v.name, backend=self.name, name=name, ref=target,
                         identity=ident)]

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)

    def exists(self, snapshot: Snapshot) -> bool:
        res = self._run(lvs_cmd([snapshot.ref]), check=False)
        return res.returncode == 0 and bool(parse_lvs(res.text))

    def destroy(self, snapshot: Snapshot) -> None:
        try:
            self._run(lvremove_cmd(snapshot.ref))
        except CommandFailed as e:
            if "not found" in e.stderr or "Failed to find" in e.stderr:
                return
            raise ServiceError(f"lvremove {snapshot.ref} failed: {e.message}") from e
