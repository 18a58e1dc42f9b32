"""Zimbra's redo log format, version 1.42, byte for byte (DESIGN.md §1).

- `header`: the 512-byte file header; `record`: the `ZMREDO` record frame and the op registry;
- `ops`: every op Zimbra has, each declared once as a `layout` (its fields and version
  branches, compiled into its codec) with its printed form (`javafmt` templates, `optext`);
  `codec`: the big-endian primitives; `quirks`: Zimbra's legacy wires;
- `metadata`: Zimbra's Metadata encoding; `javahash`: java.util.HashMap's iteration order,
  which Zimbra's writer and printer follow;
- `writer`: the group-commit writer with Zimbra's rollover; `files`: archive names and listing;
- `reader`: a fast, robust reader that skips damage to the next marker;
- `dump`: `zmredodump`'s output (text, JSON, Parquet).
"""
