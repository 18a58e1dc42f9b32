"""Classic backups (DESIGN.md §5): Zimbra's `zmbackup`, `zmbackupquery`, `zmbackupabort`,
`zmrestore`, `zmrestoreoffline`, `zmrestoreldap` and `zmschedulebackup`, with the guide's flags,
labels, target layout and messages.

Owns: session labels and the values Zimbra's tools accept (`labels`), the backup attributes set
with `zmprov` and the `localconfig.xml` keys set with `zmlocalconfig` (`attrs`, `prov`,
`localconfig`), the target layout and its XML files (`target`, `xmlfiles`), the pure planners
(`autogroup`, `deletion`, `query`, `schedule` for zmschedulebackup), the table dumps (`dbdump`),
blob containers stored once per session (`blobpack`), redo logs kept in the target (`redo`),
backup sessions (`backup`, and `accounts` for what one reads), restores through the replay
engine (`restore`, and `load` for one account's data), the directory's restore (`ldap`), the
backup report (`report`), the database dump (`sqldump`), what a run works with (`env`) and the
control of running sessions and restores (`control`).

Invariant of the whole package: a session is written under `sessions_tmp/<label>/` and renamed
into `sessions/<label>/` only once its `session.xml` says how it ended, so nothing half-written
ever lies outside `sessions_tmp/`; shared files (`accounts.xml`) are replaced atomically.
"""
