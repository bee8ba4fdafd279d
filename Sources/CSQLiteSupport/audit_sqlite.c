#include "audit_sqlite.h"

#include <sqlite3.h>

int audit_sqlite_defensive(void *connection, int *enabled) {
    return sqlite3_db_config((sqlite3 *)connection, SQLITE_DBCONFIG_DEFENSIVE, 1, enabled);
}
