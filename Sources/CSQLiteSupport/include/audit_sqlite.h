#ifndef AUDIT_SQLITE_H
#define AUDIT_SQLITE_H

/// The few SQLite calls Swift cannot make itself, because they are variadic C
/// functions, and C that SQLite calls row by row. `connection` is a `sqlite3 *`; it is declared `void *` so that this
/// header does not include <sqlite3.h> a second time beside GRDBSQLite's.

/// Turns on SQLite's defensive mode (SQLITE_DBCONFIG_DEFENSIVE) for the connection:
/// ordinary SQL can then no longer corrupt the file on purpose (PRAGMA
/// writable_schema, writes to sqlite_dbpage and shadow tables, …). Returns SQLite's
/// result code, and in `*enabled` whether the mode is on afterwards.
int audit_sqlite_defensive(void *connection, int *enabled);

/// Registers json_extract(json, path) with two arguments as `name` on `connection`:
/// SQLite's own, answered without parsing the whole document when that gives exactly
/// SQLite's answer (see state_json.c). `name` is "json_extract" on the connection
/// questions run on, another for tests that compare the two. Returns SQLite's code.
int audit_sqlite_register_json_extract(void *connection, const char *name);

#endif
