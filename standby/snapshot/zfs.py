"""ZFS snapshots through the `zfs` command (and libzfs_core through pyzfs when importable).

Two generations of ZFS are served, capabilities detected once per backend:

- modern OpenZFS: `zfs snapshot a@x b@x ...` takes several snapshots in one transaction group
  (one instant), as does `lzc_snapshot` from pyzfs;
- zfs-fuse (pool version 23): one snapshot name per call, but `zfs snapshot -r parent@x` is one
  transaction group for a dataset and its descendants. An atomic set then snapshots the volumes'
  closest common ancestor recursively and destroys, right away, the snapshots of every dataset
  in that subtree that is not a volume.

Identity recorded per snapshot: `guid` and `createtxg` (hidden properties that `zfs get -p`
returns on both generations although `zfs get all` does not list them on zfs-fuse), and the
`creation` time in epoch seconds. Snapshots that share a `createtxg` were taken in one instant.

Build, run, parse apart: `*_cmd` functions build `Command`s, `parse_*` functions read bytes,
`ZfsBackend` runs them through the injected runner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from standby import _process
from standby import log as slog
from standby.errors import CommandFailed, ServiceError, StandbyError, StateConflict, VolumeError
from standby.snapshot._base import Snapshot, Volume

Runner = Callable[..., _process.Result]

IDENTITY_PROPS = ("guid", "createtxg", "creation")


# --------------------------------------------------------------------------------------------
# Command builders


def snapshot_cmd(program: str, names: Sequence[str], *, recursive: bool = False) -> _process.Command:
    """`zfs snapshot [-r] ds@snap [ds2@snap ...]` (several names need modern ZFS)."""
    if not names:
        raise ValueError("snapshot_cmd needs at least one name")
    return _process.Command((program, "snapshot", *(("-r",) if recursive else ()), *names))


def get_cmd(program: str, props: Sequence[str], names: Sequence[str]) -> _process.Command:
    """`zfs get -Hp -o name,property,value props names...`: tab-separated, exact numbers."""
    return _process.Command((program, "get", "-Hp", "-o", "name,property,value", ",".join(props),
                             *names))


def destroy_cmd(program: str, name: str) -> _process.Command:
    return _process.Command((program, "destroy", name))


def list_tree_cmd(program: str, root: str, *, types: str = "filesystem,volume") -> _process.Command:
    """Names of `root` and every descendant of the given types."""
    return _process.Command((program, "list", "-H", "-o", "name", "-r", "-t", types, root))


def usage_cmd(program: str) -> _process.Command:
    """`zfs snapshot` without operands: prints the usage, from which the syntax is read."""
    return _process.Command((program, "snapshot"))


# --------------------------------------------------------------------------------------------
# Parsers (pure)


def parse_get(text: str) -> dict[str, dict[str, str]]:
    """`zfs get -H -o name,property,value` output -> {name: {property: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ServiceError(f"unexpected `zfs get` output line: {line!r}")
        name, prop, value = parts
        out.setdefault(name, {})[prop] = value
    return out


def parse_names(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


_USAGE_SNAPSHOT = re.compile(r"^\s*snapshot\b.*$", re.MULTILINE)


def parse_multi_snapshot(usage: str) -> bool:
    """True if the `zfs snapshot` usage takes several snapshot operands (`<...@snap> ...`)."""
    m = _USAGE_SNAPSHOT.search(usage)
    if not m:
        return False
    return re.search(r">\s*\.\.\.\s*$", m.group(0)) is not None


def common_ancestor(datasets: Sequence[str]) -> str:
    """The deepest dataset that is, or is an ancestor of, every one of `datasets` (one pool)."""
    if not datasets:
        raise ValueError("no datasets")
    split = [d.strip("/").split("/") for d in datasets]
    prefix: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    if not prefix:
        raise ValueError("datasets are in different pools: " + ", ".join(datasets))
    return "/".join(prefix)


def pool_of(dataset: str) -> str:
    return dataset.strip("/").split("/")[0]


def identity_of(props: Mapping[str, str]) -> dict[str, Any]:
    """The manifest identity from `zfs get -p guid,createtxg,creation` values."""
    ident: dict[str, Any] = {}
    guid = props.get("guid", "-")
    if guid not in ("-", ""):
        ident["guid"] = guid  # a string: 64-bit values do not survive every JSON reader
    txg = props.get("createtxg", "-")
    if txg.isdigit():
        ident["createtxg"] = int(txg)
    created = props.get("creation", "-")
    if created.isdigit():
        ident["creation_s"] = int(created)
    return ident


# --------------------------------------------------------------------------------------------
# The backend


@dataclass(frozen=True)
class Capabilities:
    multi_snapshot: bool  # `zfs snapshot a@x b@x` in one call (one txg)
    lzc: bool  # libzfs_core (pyzfs) is importable and used


def _load_lzc() -> Any | None:
    try:
        import libzfs_core  # type: ignore[import-not-found]
    except ImportError:
        return None
    return libzfs_core


class ZfsBackend:
    """`SnapshotBackend` for ZFS datasets (`volumes.<name>.dataset = "pool/fs"`)."""

    name = "zfs"
    copies = False

    def __init__(self, *, program: str = "zfs", run: Runner = _process.run,
                 lzc: Any | None = None, use_lzc: bool = True) -> None:
        self.program = program
        self._run = run
        self._lzc = lzc if lzc is not None else (_load_lzc() if use_lzc else None)
        self._caps: Capabilities | None = None
        self.log = slog.get("standby.snapshot.zfs")

    # -- capabilities -----------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            res = self._run(usage_cmd(self.program), check=False)
            multi = parse_multi_snapshot(res.stderr.decode("utf-8", "replace") + res.text)
            self._caps = Capabilities(multi_snapshot=multi or self._lzc is not None,
                                      lzc=self._lzc is not None)
            self.log.debug("zfs_capabilities", multi=self._caps.multi_snapshot,
                           lzc=self._caps.lzc)
        return self._caps

    # -- SnapshotBackend --------------------------------------------------------------------
    def check(self, volume: Volume) -> None:
        ds = _dataset(volume)
        try:
            res = self._run(get_cmd(self.program, ("type", "mountpoint"), [ds]))
        except CommandFailed as e:
            if "does not exist" in e.stderr:
                raise VolumeError(f"volume {volume.name}: ZFS dataset {ds!r} does not exist",
                                  hint=f"create it (`zfs create -o mountpoint={volume.path} "
                                       f"{ds}`) or fix volumes.{volume.name}.dataset") from e
            raise ServiceError(f"volume {volume.name}: cannot read ZFS dataset {ds!r}: "
                               f"{e.message}") from e
        props = parse_get(res.text).get(ds, {})
        if props.get("type") not in ("filesystem", "volume"):
            raise VolumeError(f"volume {volume.name}: {ds!r} is a ZFS {props.get('type')}, "
                              "not a file system", hint="name the dataset, not a snapshot")
        mnt = props.get("mountpoint", "")
        if props.get("type") == "filesystem" and mnt != str(volume.path.resolve()):
            raise VolumeError(
                f"volume {volume.name}: {volume.path} is not where ZFS dataset {ds!r} is "
                f"mounted ({mnt}); a snapshot of the dataset would not hold the volume's data",
                hint=f"set volumes.{volume.name}.path to {mnt}, or "
                     f"`zfs set mountpoint={volume.path} {ds}`")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        by_pool: dict[str, list[Volume]] = {}
        for v in volumes:
            by_pool.setdefault(pool_of(_dataset(v)), []).append(v)
        return list(by_pool.values())

    def recursive_root(self, volumes: Sequence[Volume]) -> str | None:
        """On ZFS without multi-name snapshots: the dataset whose `-r` snapshot covers the
        group (None when one call with several names does it)."""
        if len(volumes) < 2 or self.capabilities.multi_snapshot:
            return None
        return common_ancestor([_dataset(v) for v in volumes])

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        names = [f"{_dataset(v)}@{name}" for v in volumes]
        root = self.recursive_root(volumes)
        if root is not None:
            extra = [d for d in self._tree(root) if d not in {_dataset(v) for v in volumes}]
            lines = [str(snapshot_cmd(self.program, [f"{root}@{name}"], recursive=True))]
            lines += [str(destroy_cmd(self.program, f"{d}@{name}")) for d in extra]
            return lines
        if len(names) > 1 and self._lzc is not None:
            return ["lzc_snapshot([" + ", ".join(names) + "])"]
        return [str(snapshot_cmd(self.program, names))]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        names = [f"{_dataset(v)}@{name}" for v in volumes]
        root = self.recursive_root(volumes)
        if root is not None:
            self._snapshot_recursive(root, name, keep={_dataset(v) for v in volumes})
        elif len(names) > 1 and self._lzc is not None:
            self._snapshot_lzc(names)
        else:
            self._snapshot(names)
        try:
            props = parse_get(self._run(get_cmd(self.program, IDENTITY_PROPS, names)).text)
        except StandbyError:
            for n in names:
                self._destroy_quietly(n)
            raise
        return [Snapshot(volume=v.name, backend=self.name, name=name, ref=n,
                         identity=identity_of(props.get(n, {})))
                for v, n in zip(volumes, names, strict=True)]

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)  # a ZFS snapshot is complete when the command returns

    def exists(self, snapshot: Snapshot) -> bool:
        res = self._run(get_cmd(self.program, ("type",), [snapshot.ref]), check=False)
        return res.returncode == 0 and parse_get(res.text).get(snapshot.ref, {}).get(
            "type") == "snapshot"

    def destroy(self, snapshot: Snapshot) -> None:
        try:
            self._run(destroy_cmd(self.program, snapshot.ref))
        except CommandFailed as e:
            if _gone(e.stderr):
                return
            raise ServiceError(f"cannot destroy ZFS snapshot {snapshot.ref}: {_tail(e)}",
                               hint="is it held (`zfs holds`) or does a clone depend on it?"
                               ) from e

    # -- helpers ----------------------------------------------------------------------------
    def _snapshot(self, names: Sequence[str]) -> None:
        try:
            self._run(snapshot_cmd(self.program, names))
        except CommandFailed as e:
            raise _translate(e, names) from e

    def _snapshot_lzc(self, names: Sequence[str]) -> None:
        try:
            self._lzc.lzc_snapshot([n.encode() for n in names])  # type: ignore[union-attr]
        except Exception as e:  # pyzfs raises its own exception tree; translated here
            raise ServiceError(f"lzc_snapshot of {', '.join(names)} failed: {e}") from e

    def _snapshot_recursive(self, root: str, name: str, *, keep: set[str]) -> None:
        try:
            self._run(snapshot_cmd(self.program, [f"{root}@{name}"], recursive=True))
        except CommandFailed as e:
            raise _translate(e, [f"{root}@{name}"]) from e
        for ds in self._tree(root):
            if ds not in keep:
                # Not a volume: its snapshot only came along with `-r`.
                self._destroy_quietly(f"{ds}@{name}")

    def _tree(self, root: str) -> list[str]:
        try:
            return parse_names(self._run(list_tree_cmd(self.program, root)).text)
        except CommandFailed as e:
            raise ServiceError(f"cannot list ZFS datasets under {root}: {_tail(e)}") from e

    def _destroy_quietly(self, ref: str) -> None:
        try:
            self._run(destroy_cmd(self.program, ref))
        except CommandFailed as e:
            if not _gone(e.stderr):
                self.log.warning("zfs_destroy_failed", snapshot=ref, error=_tail(e))


def _dataset(v: Volume) -> str:
    if not v.dataset:
        raise VolumeError(f"volume {v.name}: the zfs backend needs volumes.{v.name}.dataset")
    return v.dataset


def _gone(stderr: str) -> bool:
    return "does not exist" in stderr or "could not find any snapshots" in stderr


def _tail(e: CommandFailed) -> str:
    lines = [ln for ln in e.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {e.returncode}"


def _translate(e: CommandFailed, names: Sequence[str]) -> StandbyError:
    err = e.stderr
    if "dataset already exists" in err:
        return StateConflict(f"ZFS snapshot {', '.join(names)} already exists",
                             hint="another set with the same name was taken in the same "
                                  "millisecond; retry")
    if "does not exist" in err:
        return VolumeError(f"ZFS dataset of {', '.join(names)} does not exist: {_tail(e)}")
    if "too many arguments" in err:
        return ServiceError("this zfs takes one snapshot per call",
                            hint="report this: capability detection should have seen it")
    return ServiceError(f"zfs snapshot {', '.join(names)} failed: {_tail(e)}")
