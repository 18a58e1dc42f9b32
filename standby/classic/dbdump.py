"""Table dumps of a backup: Parquet files, with the tables' schema beside them.

A dump folder (`sys/db/` for the global tables, `accounts/…/<id>/db/` for one mailbox's rows)
holds one `<database>.<table>.parquet` per table and `db_schema.xml` describing each: its columns
(name, MariaDB type, nullability), its `CREATE TABLE` statement and its row count. The Arrow
types follow the MariaDB types (integers as int64, or uint64 for BIGINT UNSIGNED; text as
string; timestamps as timestamp), so a dump reads back into the same values.

Speed: rows are read as one JSON array per table (`JSON_ARRAYAGG`), decoded by the C JSON
parser, as the fast replay reads its rows — pymysql's per-column decoding costs several times
more; a table too large for one JSON value (max_allowed_packet) is read row by row. `load` writes
the rows with `LOAD DATA LOCAL INFILE` (the fast replay's tab-separated format), optionally
overriding columns (a restore to a new account gives the rows its new mailbox id).
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from standby.classic import xmlfiles
from standby.errors import FormatError, NotFound
from standby.replay.bulk import tsv_bytes

SCHEMA_XML = "db_schema.xml"
_INTS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXTS = {"char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum", "set"}
_TIMES = {"timestamp", "datetime"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MariaDB's COLUMN_TYPE, e.g. "int(10) unsigned"
    nullable: bool

    @property
    def arrow(self) -> pa.DataType:
        base = self.type.split("(")[0].split()[0].lower()
        if base in _INTS:
            return pa.uint64() if base == "bigint" and "unsigned" in self.type else pa.int64()
        if base in _TEXTS:
            return pa.string()
        if base in _TIMES:
            return pa.timestamp("us")
        if base in ("float", "double", "decimal"):
            return pa.float64()
        return pa.binary()


@dataclass(frozen=True)
class TableDump:
    database: str
    table: str
    columns: tuple[Column, ...]
    ddl: str
    rows: int
    bytes: int
    column_values: dict[str, list[Any]] = field(default_factory=dict, compare=False,
                                                 repr=False)

    @property
    def file(self) -> str:
        return f"{self.database}.{self.table}.parquet"


def columns(cur: Any, database: str, table: str) -> tuple[Column, ...]:
    cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (database, table))
    cols = tuple(Column(r[0], r[1], r[2] == "YES") for r in cur.fetchall())
    if not cols:
        raise NotFound(f"table {database}.{table} does not exist")
    return cols


class Tables:
    """The columns and DDL of each table, read once: every mboxgroupN has the same tables."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[Column, ...], str]] = {}
        self._session: set[int] = set()

    def get(self, cur: Any, database: str, table: str) -> tuple[tuple[Column, ...], str]:
        if id(cur.connection) not in self._session:  # JSON_ARRAYAGG's length limit
            cur.execute("SET SESSION group_concat_max_len = 1073741824")
            self._session.add(id(cur.connection))
        key = f"mboxgroup.{table}" if database.startswith("mboxgroup") else \
            f"{database}.{table}"
        if key not in self._known:
            cols = columns(cur, database, table)
            cur.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
            self._known[key] = (cols, cur.fetchone()[1])
        return self._known[key]


def select(cur: Any, cols: Sequence[Column], source: str, where: str,
            args: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """The rows of `source` matching `where`, as one JSON array where the types allow."""
    names = ", ".join(f"`{c.name}`" for c in cols)
    cond = f" WHERE {where}" if where else ""
    if not any(c.arrow == pa.timestamp("us") for c in cols):  # JSON has no time type
        cur.execute(f"SELECT COUNT(*), JSON_ARRAYAGG(JSON_ARRAY({names})) FROM {source}{cond}",
                    tuple(args))
        n, data = cur.fetchone()
        if not n:
            return []
        if data is not None:
            decoded: list[list[Any]] = json.loads(data)
            return decoded
    cur.execute(f"SELECT {names} FROM {source}{cond}", tuple(args))
    fetched: Sequence[Sequence[Any]] = cur.fetchall()
    return fetched


def dump(cur: Any, out_dir: Path, database: str, table: str, *, where: str = "",
         args: Sequence[Any] = (), tables: Tables | None = None) -> TableDump:
    """Write the rows of `database.table` (those matching `where`) as Parquet in `out_dir`."""
    tables = tables or Tables()
    cols, ddl = tables.get(cur, database, table)
    rows = select(cur, cols, f"`{database}`.`{table}`", where, args)
    return write_rows(out_dir, database, table, cols, ddl, rows)


@dataclass(frozen=True)
class Part:
    """One table of a `dump_many`: the rows of `database.table` matching `where`."""

    database: str
    table: str
    where: str
    args: tuple[Any, ...] = ()


def dump_many(cur: Any, out_dir: Path, parts: Sequence[Part], *,
              tables: Tables | None = None) -> list[TableDump]:
    """`dump` of several tables read by one statement: a derived table per part, each one
    row of (count, JSON array of its rows). One statement is one consistent read, and a
    round trip per account instead of one per table is most of a small account's time. A
    part whose rows JSON cannot carry (a time column, more than one JSON value holds) is read
    on its own, as `dump` reads it."""
    tables = tables or Tables()
    known = [(p, *tables.get(cur, p.database, p.table)) for p in parts]
    joined = [(i, p, cols) for i, (p, cols, _ddl) in enumerate(known)
              if not any(c.arrow == pa.timestamp("us") for c in cols)]
    found: dict[int, Sequence[Sequence[Any]]] = {}
    if joined:
        subs: list[str] = []
        args: list[Any] = []
        for i, p, cols in joined:
            names = ", ".join(f"`{c.name}`" for c in cols)
            cond = f" WHERE {p.where}" if p.where else ""
            subs.append(f"(SELECT COUNT(*), JSON_ARRAYAGG(JSON_ARRAY({names}))"
                        f" FROM `{p.database}`.`{p.table}`{cond}) AS t{i}")
            args += p.args
        cur.execute(f"SELECT * FROM {', '.join(subs)}", tuple(args))
        row = cur.fetchone()
        for k, (i, _p, _cols) in enumerate(joined):
            n, data = row[2 * k], row[2 * k + 1]
            if not n:
                found[i] = []
            elif data is not None:
                found[i] = json.loads(data)
    out = []
    for i, (p, cols, ddl) in enumerate(known):
        rows = found[i] if i in found else select(cur, cols, f"`{p.database}`.`{p.table}`",
                                                   p.where, p.args)
        out.append(write_rows(out_dir, p.database, p.table, cols, ddl, rows))
    return out


def write_parquet(path: Path, tbl: pa.Table) -> None:
    """`tbl` as the Parquet file `path` (a temporary name, then renamed; made durable with
    the whole session). Without dictionaries or statistics: the file is read back whole by a
    restore, never searched, and most of a small table's cost was building them."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:  # closed even when the disk fills half-way
        pq.write_table(tbl, f, use_dictionary=False, write_statistics=False)
    os.replace(tmp, path)


def read_parquet(path: Path) -> pa.Table:
    """A Parquet file of a backup, whole. Lighter than `pq.read_table` for many small files;
    read in one piece, in this thread, a small file costs a third less again."""
    return pq.ParquetFile(path, pre_buffer=False).read(use_threads=False)


def write_rows(out_dir: Path, database: str, table: str, cols: tuple[Column, ...], ddl: str,
               rows: Sequence[Sequence[Any]]) -> TableDump:
    """The Parquet file of one table's `rows` (none for an empty table: db_schema.xml says
    it was empty)."""
    values = {c.name: [r[i] for r in rows] for i, c in enumerate(cols)}
    if not rows:
        return TableDump(database, table, cols, ddl, 0, 0, values)
    arrays = [pa.array(values[c.name], type=c.arrow) for c in cols]
    tbl = pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.name, c.arrow, c.nullable)
                                                         for c in cols]))
    path = out_dir / f"{database}.{table}.parquet"
    write_parquet(path, tbl)
    return TableDump(database, table, cols, ddl, len(rows), path.stat().st_size, values)


def write_schema(out_dir: Path, dumps: Sequence[TableDump]) -> None:
    root = ET.Element("dbschema")
    for d in dumps:
        t = ET.SubElement(root, "table", {"database": d.database, "name": d.table,
                                          "rows": str(d.rows)})
        if d.rows:
            t.set("file", d.file)
        for c in d.columns:
            ET.SubElement(t, "column", {"name": c.name, "type": c.type,
                                        "nullable": "true" if c.nullable else "false"})
        ET.SubElement(t, "ddl").text = d.ddl
    xmlfiles.write_xml(out_dir / SCHEMA_XML, root, durable=False)


def read_schema(out_dir: Path) -> list[TableDump]:
    p = out_dir / SCHEMA_XML
    try:
        root = xmlfiles.read_xml(p, root="dbschema")
    except FileNotFoundError:
        raise FormatError(f"{p} is missing: the dump in {out_dir} is incomplete") from None
    out = []
    for t in root.iter("table"):
        cols = tuple(Column(c.get("name", ""), c.get("type", ""), c.get("nullable") == "true")
                     for c in t.iter("column"))
        ddl = t.findtext("ddl") or ""
        out.append(TableDump(t.get("database", ""), t.get("name", ""), cols, ddl,
                             int(t.get("rows", "0")), 0))
    return out


def read_rows(out_dir: Path, database: str, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    path = out_dir / f"{database}.{table}.parquet"
    try:
        tbl = read_parquet(path)
    except FileNotFoundError:
        if any(d.database == database and d.table == table and d.rows == 0
               for d in read_schema(out_dir)):
            return [], []
        raise FormatError(f"{path} is missing: the dump in {out_dir} is incomplete") from None
    except pa.ArrowInvalid as e:
        raise FormatError(f"{path} is not a readable Parquet file: {e}") from e
    cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
    return list(tbl.column_names), list(zip(*cols)) if cols else []


def load(cur: Any, out_dir: Path, database: str, table: str, *, into: str | None = None,
         override: Mapping[str, Any] | None = None, replace: bool = False,
         tmpdir: Path | None = None) -> int:
    """Load a dumped table's rows into `into` (default: the same database.table) with
    LOAD DATA; columns in `override` take the given value in every row. Returns the rows."""
    names, rows = read_rows(out_dir, database, table)
    if not rows:
        return 0
    override = dict(override or {})
    idx = {n: i for i, n in enumerate(names)}
    for k in override:
        if k not in idx:
            raise FormatError(f"{database}.{table} has no column {k}")
    if override:
        rows = [tuple(override[n] if n in override else r[idx[n]] for n in names)
                for r in rows]
    dest = into or f"`{database}`.`{table}`"
    fd, name = tempfile.mkstemp(prefix="standby-restore-", suffix=".tsv",
                                dir=tmpdir or _TMP)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(tsv_bytes(rows))
        verb = "REPLACE " if replace else ""
        cur.execute(f"LOAD DATA LOCAL INFILE %s {verb}INTO TABLE {dest} CHARACTER SET utf8mb4"
                    " FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
                    f" ({', '.join(f'`{n}`' for n in names)})", (name,))
    finally:
        os.unlink(name)
    return len(rows)


_SHM = Path("/dev/shm")
_TMP = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else Path(tempfile.gettempdir())
