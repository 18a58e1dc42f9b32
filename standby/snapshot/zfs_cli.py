"""The `zfs` command line, pure: argv builders (`*_cmd`) and parsers of its output (`parse_*`).

Nothing here runs a process (the backend in `zfs.py` runs these through its injected runner),
so every builder is checked by its argv and every parser by Hypothesis round trips
(tests/test_snapshot_parsers.py, tests/test_snapshot_streams.py). zfs-fuse (pool version 23)
and OpenZFS differ in what they accept; `parse_usage_flags` reads which flags a host's `zfs`
has from its usage text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from standby import _process
from standby.errors import ServiceError
from standby.snapshot._base import Received

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


def usage_cmd(program: str, command: str = "snapshot") -> _process.Command:
    """`zfs <command>` without operands: prints its usage, from which the syntax is read."""
    return _process.Command((program, command))


def send_cmd(program: str, snapshot: str, parent: str | None = None) -> _process.Command:
    """`zfs send [-i parent] pool/ds@snap`: the full stream, or the increment from `parent`."""
    return _process.Command((program, "send", *(("-i", parent) if parent else ()), snapshot))


def estimate_cmd(program: str, snapshot: str, parent: str | None = None) -> _process.Command:
    """`zfs send -nP [-i parent] snap`: a dry run that prints the stream's size (`size\tN`)."""
    return _process.Command((program, "send", "-nP", *(("-i", parent) if parent else ()),
                             snapshot))


def resume_send_cmd(program: str, token: str) -> _process.Command:
    """`zfs send -t TOKEN`: the rest of an interrupted resumable stream."""
    return _process.Command((program, "send", "-t", token))


def receive_cmd(program: str, dataset: str, *, resumable: bool = False,
                rollback: bool = False) -> _process.Command:
    """`zfs recv [-s] [-F] dataset`: `-s` keeps a partial receive, `-F` rolls back first."""
    return _process.Command((program, "recv", *(("-s",) if resumable else ()),
                             *(("-F",) if rollback else ()), dataset))


def abort_receive_cmd(program: str, dataset: str) -> _process.Command:
    """`zfs recv -A dataset`: discard the partial state of an interrupted `recv -s`."""
    return _process.Command((program, "recv", "-A", dataset))


def received_cmd(program: str, dataset: str) -> _process.Command:
    """The identity of `dataset`'s snapshots (and of itself and its children, dropped by
    `parse_received`): `zfs get -d 1`, which both generations have (zfs-fuse has no `-t`)."""
    return _process.Command((program, "get", "-Hp", "-d", "1", "-o", "name,property,value",
                             "type," + ",".join(IDENTITY_PROPS), dataset))


def unmount_cmd(program: str, dataset: str) -> _process.Command:
    return _process.Command((program, "unmount", dataset))


def mount_cmd(program: str, dataset: str) -> _process.Command:
    return _process.Command((program, "mount", dataset))


def create_parents_cmd(program: str, dataset: str) -> _process.Command:
    """`zfs create -p dataset`: the dataset and any missing ancestors; no error if it exists."""
    return _process.Command((program, "create", "-p", dataset))


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


_FLAG = re.compile(r"(?<![\w-])-\[?([A-Za-z]+)")


def parse_usage_flags(usage: str) -> frozenset[str]:
    """The single-letter options a `zfs <command>` usage text lists: `[-RDp]`, `[-[iI] snap]`,
    `-t <token>`, `[-d | -e]`; long options (`--redact`) are not letters and not counted. Only
    the lines after `usage:` up to the first blank line are read (the property table after them
    names no options)."""
    _, found, rest = usage.partition("usage:")
    block = (rest if found else usage).strip("\n").split("\n\n", 1)[0]
    return frozenset(c for m in _FLAG.finditer(block) for c in m.group(1))


def parse_received(text: str, dataset: str) -> list[Received]:
    """`received_cmd` output -> the snapshots of `dataset`, oldest (lowest createtxg) first."""
    rows = parse_get(text)
    out: list[tuple[int, Received]] = []
    for name, props in rows.items():
        ds, at, snap = name.partition("@")
        if ds != dataset or not at or props.get("type", "snapshot") != "snapshot":
            continue
        ident = identity_of(props)
        if "guid" not in ident:
            raise ServiceError(f"`zfs get` gave no guid for {name}")
        out.append((ident.get("createtxg", 0),
                    Received(name=snap, ref=name, stream_id=ident["guid"], identity=ident)))
    return [r for _, r in sorted(out, key=lambda t: (t[0], t[1].name))]


def parse_estimate(text: str) -> int | None:
    """`zfs send -nP` output -> the stream's size in bytes (its `size\tN` line), None if absent."""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == "size" and parts[1].strip().isdigit():
            return int(parts[1])
    return None


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
