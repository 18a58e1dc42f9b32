"""zmredodump: print and verify redo log files, in Zimbra's output shape, as JSON or as Parquet.

Text output follows Zimbra's `RedoLogVerify`: `VERIFYING: <path>`, the header block, one line
per record (`[%08x - %08x: N bytes; tstamp: ...] txn T.C [Op] ver=1.42, tstamp=..., ...`), blobs
between `<START OF BLOB>` and `<END OF BLOB>` with `--show-blob`, an error block with a hexdump
around a torn tail, and at the end `The following files had errors:`. Two improvements: a bad
record mid-file, an unknown opcode or a newer record version is skipped to the next marker with
a warning (Zimbra dies on an unknown opcode), and such a file is listed among those with errors.
A directory is read as a redolog directory (its `archive/`, then `redo.log`, in sequence order;
Zimbra reads only the files directly in it, `redo.log` first); a header time of 0 prints as
"none"; a path that does not exist is refused with NotFound (exit 9) before anything is printed.

`--json` writes one object per line: a `kind: "header"` object per file, a `kind: "record"` per
record (offset, length, opcode, op, version, txnId, tstamp, changeId, changeConstraint,
mailboxId and the op's own fields) and a `kind: "problem"` per problem. `--parquet OUT` writes
one row per record.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from standby import timefmt
from standby.errors import FormatError, NotFound, UsageError
from standby.redolog import files
from standby.redolog.header import FileHeader
from standby.redolog.layout import camel
from standby.redolog.ops import StoreIncomingBlob
from standby.redolog.reader import Problem, Scan, scan
from standby.redolog.record import Record


@dataclass(frozen=True)
class DumpOptions:
    quiet: bool = False
    no_offset: bool = False
    mailboxes: frozenset[int] | None = None
    show_blob: bool = False
    fmt: str = "text"  # text | json
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass
class DumpResult:
    files: int = 0
    records: int = 0
    bad_files: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.bad_files else 0


def parse_mailbox_ids(text: str) -> frozenset[int]:
    """Zimbra's `--m`: ids separated by commas and/or spaces, each a positive integer."""
    out = set()
    for part in text.replace(",", " ").split():
        if not part.isdigit() or int(part) <= 0:
            raise UsageError(f'Invalid mailbox id "{part}"', hint="--m takes positive integers")
        out.add(int(part))
    if not out:
        raise UsageError("--m needs at least one mailbox id")
    return frozenset(out)


def expand(args: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """(path, is_directory_listing) for each argument; a directory is read as a redolog
    directory (`files.redolog_dir_logs`: its archive, then its current log). A path that does
    not exist is refused (NotFound) before anything is printed."""
    paths = [Path(a) for a in args]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise NotFound(f"no such redolog file or directory: {', '.join(missing)}",
                       hint="name redo log files, or a redolog directory such as the "
                       "configured redolog volume")
    out: list[tuple[Path, bool]] = []
    for p in paths:
        if p.is_dir():
            out.append((p, True))
            out.extend((lf.path, False) for lf in files.redolog_dir_logs(p))
        else:
            out.append((p, False))
    return out


# --------------------------------------------------------------------------------------------
# Text formatting (Zimbra's shapes)


def _date(ms: int) -> str:
    """Zimbra's header date, `EEE, yyyy/MM/dd HH:mm:ss.SSS z` in local time. A header holds 0
    until its log has an op (and while a log is open, for its last op): that is "none", not
    Zimbra's "Thu, 1970/01/01"."""
    if ms == 0:
        return "none"
    return time.strftime("%a, ", time.localtime(ms / 1000)) + timefmt.verify_stamp(ms)


def header_text(h: FileHeader) -> str:
    last = f"{_date(h.last_op_tstamp)} ({h.last_op_tstamp})"
    if h.open:
        last += " (not up to date)"
    return (f"sequence: {h.sequence}\n"
            f"open:     {1 if h.open else 0}\n"
            f"filesize: {h.file_size}\n"
            f"serverId: {h.server_id}\n"
            f"created:  {_date(h.create_time)} ({h.create_time})\n"
            f"first op: {_date(h.first_op_tstamp)} ({h.first_op_tstamp})\n"
            f"last op:  {last}\n"
            f"version:  {h.version[0]}.{h.version[1]}\n")


def op_text(rec: Record) -> str:
    """Zimbra's RedoableOp.toString(): the data part is appended unless it is null (an empty
    one still adds its ", ")."""
    s = (f"txn {rec.txn_time}.{rec.txn_counter} [{rec.op.printed_name}] "
         f"ver={rec.version[0]}.{rec.version[1]}, tstamp={rec.tstamp}")
    if rec.change_id != -1:
        s += f", change={rec.change_id}"
    if rec.change_constraint != 0:
        s += f", constraint={rec.change_constraint}"
    if rec.mailbox_id != 0:
        s += f", mailbox={rec.mailbox_id}"
    data = rec.op.printable(rec.version)
    if data is not None:
        s += ", " + data
    return s


def op_line(rec: Record, *, no_offset: bool = False) -> str:
    if no_offset:
        return op_text(rec)
    end = rec.offset + rec.length - 1
    return (f"[{rec.offset:08x} - {end:08x}: {rec.length} bytes; "
            f"tstamp: {timefmt.verify_stamp(rec.tstamp)}] " + op_text(rec))


def hexdump(data: bytes, base: int, mark: int) -> str:
    """Zimbra's hexdump: 16 bytes a line, ASCII 33..126 shown, ` **` on the error line."""
    lines = []
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        hexpart = ""
        for j in range(16):
            hexpart += (f"{chunk[j]:02x}" if j < len(chunk) else "  ") + " "
            if j == 7:
                hexpart += " "
        asc = "".join(chr(b) if 33 <= b <= 126 else "." for b in chunk).ljust(16)
        star = " **" if base + i <= mark < base + i + len(chunk) else ""
        lines.append(f"{base + i:08x}: {hexpart} {asc}{star}")
    return "\n".join(lines)


def error_block(path: Path, size: int, at: int, last: Record | None) -> str:
    start = max(at - (at % 16) - 160, 0)
    count = min(336, size - start)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(count)
    out = [f"\nError while parsing data starting at offset 0x{at:08x}",
           f"{size - at} bytes remaining in the file", ""]
    if last is not None:
        out += ["Last suceessfully parsed redo op:", op_line(last), ""]
    # The hexdump's last line, then Zimbra's empty line before "Exception while verifying".
    out += [f"Data near error offset {at:08x}:", hexdump(data, start, at), "", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Records as JSON


def header_json(path: Path, h: FileHeader) -> dict[str, Any]:
    return {"kind": "header", "file": str(path), "sequence": h.sequence, "open": h.open,
            "fileSize": h.file_size, "serverId": h.server_id, "createTime": h.create_time,
            "firstOpTstamp": h.first_op_tstamp, "lastOpTstamp": h.last_op_tstamp,
            "version": f"{h.version[0]}.{h.version[1]}"}


def record_json(rec: Record, *, path: Path | None = None, blob: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "record", "offset": rec.offset, "length": rec.length, "opcode": rec.opcode,
        "op": rec.op.NAME, "version": f"{rec.version[0]}.{rec.version[1]}",
        "txnId": {"time": rec.txn_time, "counter": rec.txn_counter}, "tstamp": rec.tstamp,
        "changeId": rec.change_id, "changeConstraint": rec.change_constraint,
        "mailboxId": rec.mailbox_id,
    }
    if path is not None:
        d["file"] = str(path)
    if rec.op.CLASS:
        d["class"] = rec.op.CLASS
    for k, v in rec.op.fields().items():
        key = camel(k)
        if key not in d:
            d[key] = list(v) if isinstance(v, tuple) else v
    if blob and rec.op.blob is not None:
        d["blob"] = base64.b64encode(rec.op.blob).decode("ascii")
    return d


def problem_json(path: Path, p: Problem) -> dict[str, Any]:
    return {"kind": "problem", "file": str(path), "offset": p.offset, "problem": p.kind,
            "skipped": p.skipped, "message": p.message}


# --------------------------------------------------------------------------------------------


def _selected(rec: Record, opts: DumpOptions) -> bool:
    if opts.since_ms is not None and rec.tstamp < opts.since_ms:
        return False
    if opts.until_ms is not None and rec.tstamp > opts.until_ms:
        return False
    mailboxes = opts.mailboxes
    if mailboxes is None:
        return True
    op = rec.op
    if isinstance(op, StoreIncomingBlob):
        return op.mailbox_ids is None or any(m in mailboxes for m in op.mailbox_ids)
    return rec.mailbox_id in mailboxes


def dump(args: list[str], opts: DumpOptions, out: IO[str],
         records_sink: list[dict[str, Any]] | None = None) -> DumpResult:
    """Verify and print every file named (directories expanded); return the outcome."""
    if not args:
        raise UsageError("No redolog file/directory list specified")
    res = DumpResult()
    for path, is_listing in expand(args):
        if is_listing:
            if not opts.quiet and opts.fmt == "text":
                out.write(f"VERIFYING DIRECTORY: {path.resolve()}\n")
            continue
        _dump_file(path, opts, out, res, records_sink)
    if res.bad_files and opts.fmt == "text":
        out.write("\n\n-----------------------------------------------\n\n"
                  "The following files had errors:\n\n")
        for p, msg in res.bad_files:
            out.write(f"{p.resolve()}\n    {msg}\n")
    return res


def _dump_file(path: Path, opts: DumpOptions, out: IO[str], res: DumpResult,
               sink: list[dict[str, Any]] | None) -> None:
    text = opts.fmt == "text"
    absp = path.resolve()
    res.files += 1
    if text:
        out.write(f"VERIFYING: {absp}\n")
    try:
        sc: Scan = scan(path)
    except (FormatError, NotFound) as e:
        if text:
            out.write(f"Exception while verifying {absp}\n{type(e).__name__}: {e}\n")
            if not opts.quiet:
                out.write("\n")
        else:
            out.write(json.dumps({"kind": "problem", "file": str(absp), "offset": 0,
                                  "problem": "bad-file", "skipped": 0,
                                  "message": str(e)}) + "\n")
        res.bad_files.append((path, str(e)))
        return
    with sc:
        if text and not opts.quiet:
            out.write("HEADER\n------\n" + header_text(sc.header) + "------\n")
        elif not text:
            out.write(json.dumps(header_json(absp, sc.header)) + "\n")
        last: Record | None = None
        reported = 0
        for rec in sc:
            reported = _report_problems(sc, reported, absp, opts, out, last)
            last = rec
            res.records += 1
            if sink is not None:
                sink.append(record_json(rec, path=absp))
            if not _selected(rec, opts):
                continue
            if text:
                if not opts.quiet:
                    out.write(op_line(rec, no_offset=opts.no_offset) + "\n")
                    if opts.show_blob and rec.op.blob is not None:
                        out.write("<START OF BLOB>\n")
                        _write_raw(out, rec.op.blob)
                        out.write("\n<END OF BLOB>\n")
            else:
                out.write(json.dumps(record_json(rec, blob=opts.show_blob)) + "\n")
        _report_problems(sc, reported, absp, opts, out, last)
        if sc.problems:
            res.bad_files.append((path, "; ".join(str(p) for p in sc.problems)))
        if text and not opts.quiet:
            out.write("\n")


def _write_raw(out: IO[str], data: bytes) -> None:
    """Blob bytes unchanged, as Zimbra prints them (binary or gzip included): straight to the
    stream's byte layer when it has one, not through its text encoding."""
    raw = getattr(out, "buffer", None)
    if raw is None:
        out.write(data.decode("latin-1"))
        return
    out.flush()
    raw.write(data)


def _report_problems(sc: Scan, done: int, absp: Path, opts: DumpOptions, out: IO[str],
                     last: Record | None) -> int:
    for p in sc.problems[done:]:
        if opts.fmt != "text":
            out.write(json.dumps(problem_json(absp, p)) + "\n")
        elif p.kind == "torn-tail":
            out.write(error_block(absp, sc.size, p.offset, last))
            out.write(f"Exception while verifying {absp}\n"
                      f"Found {p.skipped} junk bytes from offset 0x{p.offset:08x} to end of "
                      f"file, in redolog {absp}\n")
        else:
            out.write(f"[] WARN: Error while parsing redolog {absp}, offset=0x{p.offset:08x}; "
                      f"bad bytes will be skipped ({p.message})\n")
            out.write(f"[] WARN: Skipped bad bytes in redolog {absp}; resuming at offset "
                      f"0x{p.offset + p.skipped:08x} after skipping {p.skipped} bytes\n")
    return len(sc.problems)


def write_parquet(rows: list[dict[str, Any]], out_path: Path) -> int:
    """One row per record: header fields as columns, the op's own fields as a JSON string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = ("file", "offset", "length", "opcode", "op", "version", "tstamp", "changeId",
            "changeConstraint", "mailboxId")
    cols: dict[str, list[Any]] = {k: [] for k in base}
    cols["txnTime"], cols["txnCounter"], cols["data"] = [], [], []
    for r in rows:
        for k in base:
            cols[k].append(r.get(k))
        cols["txnTime"].append(r["txnId"]["time"])
        cols["txnCounter"].append(r["txnId"]["counter"])
        rest = {k: v for k, v in r.items() if k not in base and k not in ("txnId", "kind")}
        cols["data"].append(json.dumps(rest, default=str))
    schema = pa.schema([
        ("file", pa.string()), ("offset", pa.int64()), ("length", pa.int32()),
        ("opcode", pa.int32()), ("op", pa.string()), ("version", pa.string()),
        ("tstamp", pa.int64()), ("changeId", pa.int32()), ("changeConstraint", pa.int32()),
        ("mailboxId", pa.int64()), ("txnTime", pa.int32()), ("txnCounter", pa.int32()),
        ("data", pa.string()),
    ])
    table = pa.table({name: cols[name] for name in schema.names}, schema=schema)
    tmp = out_path.with_name(out_path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out_path)
    return table.num_rows


def run(args: list[str], opts: DumpOptions, out: IO[str], *, parquet: Path | None = None) -> int:
    """CLI entry: dump, optionally write Parquet; return the exit code."""
    sink: list[dict[str, Any]] | None = [] if parquet is not None else None
    res = dump(args, opts, out, sink)
    if parquet is not None and sink is not None:
        write_parquet(sink, parquet)
    return res.exit_code
