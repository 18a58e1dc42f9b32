"""Table dumps of a backup: Parquet files, with the tables' schema beside them.

A dump folder (`sys/db/` for the global tables, `accounts/…/<id>/db/` for one mailbox's rows)
holds one `<database>.<table>.parquet` per table and `db_schema.xml` describing each: its columns
(name, MariaDB type, nullability), its `CREATE TABLE` statement and its row count. The Arrow
types follow the MariaDB types (integers as int64, or uint64 for BIGINT UNSIGNED; text as
string; timestamps as timestamp), so a dump reads back into the same values; `load` inserts them
in multi-row statements, optionally overriding columns (a restore to a new account gives the
rows its new mailbox id).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from standby.classic import xmlfiles
from standby.errors import FormatError, NotFound

SCHEMA_XML = "db_schema.xml"
_INTS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXTS = {"char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum", "set"}
_TIMES = {"timestamp", "datetime"}
INSERT_BATCH = 2000


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


def dump(cur: Any, out_dir: Path, database: str, table: str, *, where: str = "",
         args: Sequence[Any] = ()) -> TableDump:
    """Write the rows of `database.table` (those matching `where`) as Parquet in `out_dir`."""
    cols = columns(cur, database, table)
    cur.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
    ddl = cur.fetchone()[1]
    names = ", ".join(f"`{c.name}`" for c in cols)
    cur.execute(f"SELECT {names} FROM `{database}`.`{table}`" + (f" WHERE {where}" if where
                                                                  else ""), tuple(args))
    rows = cur.fetchall()
    arrays = [pa.array([r[i] for r in rows], type=c.arrow) for i, c in enumerate(cols)]
    tbl = pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.name, c.arrow, c.nullable)
                                                         for c in cols]))
    td = TableDump(database, table, cols, ddl, len(rows), 0)
    path = out_dir / td.file
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(tbl, tmp)
    os.replace(tmp, path)
    return TableDump(database, table, cols, ddl, len(rows), path.stat().st_size)


def write_schema(out_dir: Path, dumps: Sequence[TableDump]) -> None:
    root = ET.Element("dbschema")
    for d in dumps:
        t = ET.SubElement(root, "table", {"database": d.database, "name": d.table,
                                          "rows": str(d.rows), "file": d.file})
        for c in d.columns:
            ET.SubElement(t, "column", {"name": c.name, "type": c.type,
                                        "nullable": "true" if c.nullable else "false"})
        ET.SubElement(t, "ddl").text = d.ddl
    xmlfiles.write_xml(out_dir / SCHEMA_XML, root)


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
        tbl = pq.read_table(path)
    except FileNotFoundError:
        raise FormatError(f"{path} is missing: the dump in {out_dir} is incomplete") from None
    except pa.ArrowInvalid as e:
        raise FormatError(f"{path} is not a readable Parquet file: {e}") from e
    cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
    return list(tbl.column_names), list(zip(*cols)) if cols else []


def load(cur: Any, out_dir: Path, database: str, table: str, *, into: str | None = None,
         override: Mapping[str, Any] | None = None, replace: bool = False) -> int:
    """Insert a dumped table's rows into `into` (default: the same database.table); columns in
    `override` take the given value in every row. Returns the number of rows."""
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
    verb = "REPLACE" if replace else "INSERT"
    cols = ", ".join(f"`{n}`" for n in names)
    marks = ", ".join(["%s"] * len(names))
    sql = f"{verb} INTO {dest} ({cols}) VALUES ({marks})"
    for i in range(0, len(rows), INSERT_BATCH):
        cur.executemany(sql, rows[i:i + INSERT_BATCH])
    return len(rows)
