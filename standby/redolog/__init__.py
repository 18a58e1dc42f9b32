"""Zimbra's redo log format, version 1.42, byte for byte (DESIGN.md §1).

- `header`: the 512-byte file header; `record`: the `ZMREDO` record frame and the op registry;
- `ops`, `codec`, `javafmt`: the op payloads and the Java serialization they use;
- `writer`: the group-commit writer with Zimbra's rollover; `files`: archive names and listing;
- `reader`: a fast, robust reader that skips damage to the next marker;
- `dump`: `zmredodump`'s output (text, JSON, Parquet).
"""
