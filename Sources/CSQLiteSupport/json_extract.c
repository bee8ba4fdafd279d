// json_extract(json, '$.name') for a question's SQL, without SQLite's parse of the
// whole document into nodes (about 0.28 µs a state, measured: a third of a series over
// the reference workload).
//
// It stands in for SQLite's json_extract with two arguments on the connection a
// question runs on (`audit_sqlite_register_json_extract`), and answers only what it can
// answer exactly as SQLite 3.40's json_extract does: text, a path `$.` followed by
// letters, digits or `_`, a document in a strict subset of the JSON that SQLite accepts
// (no whitespace, no escapes, nesting below 64: the engine writes states and payloads
// so), and a member whose value is a number, a string, true, false or null. Numbers are
// converted as SQLite's json.c converts them (jsonReturn of sqlite3-3.40.1: integers by
// its own loop, copied here; reals by strtod where the linked library does so, see
// find_real_reader), so that a sum is the same to the last bit as SQLite's. Everything else (another
// storage class, a path with quotes or brackets, escapes, whitespace, a member holding
// an object or array, malformed text) is answered by SQLite's own json_extract on a
// private connection: the same value, subtype and error, only slower.
// JSONExtractTests compares the two over random documents and numbers.
#include "audit_sqlite.h"

#include <stdlib.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#define JSON_SUBTYPE 74
#define MAX_DEPTH 64
#define LARGEST_INT64 ((int64_t)0x7fffffffffffffffLL)
#define SMALLEST_INT64 ((int64_t)(((uint64_t)1) << 63))

// MARK: - the value of a member, as SQLite's jsonReturn gives it

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/// Whether the linked SQLite reads a JSON real with strtod (json.c built on its own, as
/// Debian builds it: --disable-amalgamation), which this then does too; else (the
/// amalgamation reads it with its own sqlite3AtoF, which can differ in the last bit)
/// reals are left to SQLite. Found once, by a number the two read differently.
static int reals_by_strtod;
static pthread_once_t reals_once = PTHREAD_ONCE_INIT;

static void find_real_reader(void) {
    static const char *number = "1.722042447127939e-302";
    sqlite3 *db = NULL;
    sqlite3_stmt *statement = NULL;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT json_extract('{\"x\":1.722042447127939e-302}', '$.x')", -1, &statement, NULL) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_type(statement, 0) == SQLITE_FLOAT) {
        double theirs = sqlite3_column_double(statement, 0);
        double ours = strtod(number, NULL);
        reals_by_strtod = memcmp(&theirs, &ours, sizeof ours) == 0;
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
}

/// The number at [z, end) as jsonReturn gives it: an integer without '.' or exponent
/// that fits 64 bits (its JSON_INT case), else a real (JSON_REAL: strtod, which stops
/// where the JSON number does). Returns 0 for a real that SQLite must read itself.
static int result_number(sqlite3_context *ctx, const char *z, const char *end, int integer) {
    if (integer) {
        const char *p = z;
        int64_t i = 0;
        if (*p == '-') p++;
        while (p < end) {
            unsigned v = (unsigned)(*(p++) - '0');
            if (i >= LARGEST_INT64 / 10) {
                if (i > LARGEST_INT64 / 10) goto as_real;
                if (p < end) goto as_real;
                if (v == 9) goto as_real;
                if (v == 8) {
                    if (z[0] == '-') {
                        sqlite3_result_int64(ctx, SMALLEST_INT64);
                        return 1;
                    }
                    goto as_real;
                }
            }
            i = i * 10 + v;
        }
        sqlite3_result_int64(ctx, z[0] == '-' ? -i : i);
        return 1;
    }
as_real:
    pthread_once(&reals_once, find_real_reader);
    if (!reals_by_strtod) return 0;
    sqlite3_result_double(ctx, strtod(z, NULL));
    return 1;
}

// MARK: - a strict scan of the document

/// What the scan found at the member asked for.
typedef struct {
    const char *name;  // the member's name, and its length
    int name_length;
    const char *value;  // its value, [value, value_end); NULL: no such member
    const char *value_end;
    int kind;  // 's' string (without its quotes), 'n' number, 'i' integer, 't', 'f', 'z' null, 'c' object or array
} member;

static const char *scan_value(const char *z, const char *end, int depth, int *kind);

/// A string from its opening quote: no escape, no control character. Returns the byte
/// after its closing quote, or NULL.
static const char *scan_string(const char *z, const char *end) {
    z++;
    while (z < end) {
        unsigned char c = (unsigned char)*z;
        if (c == '"') return z + 1;
        if (c < 0x20 || c == '\\') return NULL;
        z++;
    }
    return NULL;
}

/// A number as RFC 8259 spells it (which SQLite 3.40 accepts exactly). Sets `*integer`.
static const char *scan_number(const char *z, const char *end, int *integer) {
    *integer = 1;
    if (z < end && *z == '-') z++;
    if (z >= end) return NULL;
    if (*z == '0') {
        z++;
    } else if (*z >= '1' && *z <= '9') {
        while (z < end && is_digit(*z)) z++;
    } else {
        return NULL;
    }
    if (z < end && *z == '.') {
        *integer = 0;
        z++;
        if (z >= end || !is_digit(*z)) return NULL;
        while (z < end && is_digit(*z)) z++;
    }
    if (z < end && (*z == 'e' || *z == 'E')) {
        *integer = 0;
        z++;
        if (z < end && (*z == '+' || *z == '-')) z++;
        if (z >= end || !is_digit(*z)) return NULL;
        while (z < end && is_digit(*z)) z++;
    }
    return z;
}

static const char *scan_literal(const char *z, const char *end, const char *word, int length) {
    if (end - z < length || memcmp(z, word, (size_t)length) != 0) return NULL;
    return z + length;
}

/// An object's members from its '{', looking for `m->name` at depth 0 (the first such
/// member, as SQLite's lookup takes). Returns the byte after its '}', or NULL.
static const char *scan_object(const char *z, const char *end, int depth, member *m) {
    z++;
    if (z < end && *z == '}') return z + 1;
    while (z < end) {
        if (*z != '"') return NULL;
        const char *name = z + 1;
        const char *after = scan_string(z, end);
        if (after == NULL || after >= end || *after != ':') return NULL;
        int kind;
        const char *value = after + 1;
        const char *value_end = scan_value(value, end, depth + 1, &kind);
        if (value_end == NULL || value_end >= end) return NULL;
        if (m != NULL && m->value == NULL && after - 1 - name == m->name_length &&
            memcmp(name, m->name, (size_t)m->name_length) == 0) {
            m->value = value;
            m->value_end = value_end;
            m->kind = kind;
        }
        if (*value_end == '}') return value_end + 1;
        if (*value_end != ',') return NULL;
        z = value_end + 1;
    }
    return NULL;
}

static const char *scan_array(const char *z, const char *end, int depth) {
    z++;
    if (z < end && *z == ']') return z + 1;
    while (z < end) {
        int kind;
        const char *value_end = scan_value(z, end, depth + 1, &kind);
        if (value_end == NULL || value_end >= end) return NULL;
        if (*value_end == ']') return value_end + 1;
        if (*value_end != ',') return NULL;
        z = value_end + 1;
    }
    return NULL;
}

static const char *scan_value(const char *z, const char *end, int depth, int *kind) {
    if (z >= end || depth > MAX_DEPTH) return NULL;
    switch (*z) {
    case '{': *kind = 'c'; return scan_object(z, end, depth, NULL);
    case '[': *kind = 'c'; return scan_array(z, end, depth);
    case '"': *kind = 's'; return scan_string(z, end);
    case 't': *kind = 't'; return scan_literal(z, end, "true", 4);
    case 'f': *kind = 'f'; return scan_literal(z, end, "false", 5);
    case 'n': *kind = 'z'; return scan_literal(z, end, "null", 4);
    default: {
        int integer;
        const char *after = scan_number(z, end, &integer);
        *kind = integer ? 'i' : 'n';
        return after;
    }
    }
}

/// Answers json_extract(text, path) into `ctx` when it can do so exactly (see the top
/// of the file); returns 0 when SQLite's own function must answer.
static int extract_fast(sqlite3_context *ctx, const char *text, int bytes, const char *path, int path_bytes) {
    if (path_bytes < 3 || path[0] != '$' || path[1] != '.') return 0;
    for (int i = 2; i < path_bytes; i++) {
        char c = path[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) return 0;
    }
    const char *end = text + bytes;
    if (bytes < 2 || text[0] != '{') return 0;
    member m = {path + 2, path_bytes - 2, NULL, NULL, 0};
    if (scan_object(text, end, 0, &m) != end) return 0;
    if (m.value == NULL) {
        sqlite3_result_null(ctx);
        return 1;
    }
    switch (m.kind) {
    case 's': sqlite3_result_text(ctx, m.value + 1, (int)(m.value_end - m.value - 2), SQLITE_TRANSIENT); return 1;
    case 'i': return result_number(ctx, m.value, m.value_end, 1);
    case 'n': return result_number(ctx, m.value, m.value_end, 0);
    case 't': sqlite3_result_int(ctx, 1); return 1;
    case 'f': sqlite3_result_int(ctx, 0); return 1;
    case 'z': sqlite3_result_null(ctx); return 1;
    default: return 0;  // an object or array: rendered by SQLite, with its subtype
    }
}

// MARK: - SQLite's own json_extract, for everything else

static pthread_mutex_t fallback_lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3 *fallback_db;
static sqlite3_stmt *fallback_statement;

/// SQLite's json_extract(argv[0], argv[1]) on a private in-memory connection (the
/// question's own has the user's statement running): its value, its subtype (JSON for
/// an object or array, as json_type says), or its error.
static void extract_slow(sqlite3_context *ctx, sqlite3_value **argv) {
    pthread_mutex_lock(&fallback_lock);
    int rc = SQLITE_OK;
    if (fallback_statement == NULL) {
        if (fallback_db == NULL) {
            rc = sqlite3_open_v2(":memory:", &fallback_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY | SQLITE_OPEN_NOMUTEX, NULL);
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_prepare_v3(
                fallback_db, "SELECT json_extract(?1, ?2), json_type(?1, ?2)", -1, SQLITE_PREPARE_PERSISTENT,
                &fallback_statement, NULL);
        }
        if (rc != SQLITE_OK) {
            sqlite3_result_error(ctx, "json_extract: cannot open SQLite's JSON functions", -1);
            pthread_mutex_unlock(&fallback_lock);
            return;
        }
    }
    sqlite3_stmt *statement = fallback_statement;
    sqlite3_bind_value(statement, 1, argv[0]);
    sqlite3_bind_value(statement, 2, argv[1]);
    rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW) {
        sqlite3_result_value(ctx, sqlite3_column_value(statement, 0));
        const unsigned char *type = sqlite3_column_text(statement, 1);
        if (type != NULL && (strcmp((const char *)type, "object") == 0 || strcmp((const char *)type, "array") == 0)) {
            sqlite3_result_subtype(ctx, JSON_SUBTYPE);
        } else {
            sqlite3_result_subtype(ctx, 0);
        }
    } else if (rc == SQLITE_NOMEM) {
        sqlite3_result_error_nomem(ctx);
    } else if (rc == SQLITE_TOOBIG) {
        sqlite3_result_error_toobig(ctx);
    } else {
        sqlite3_result_error(ctx, sqlite3_errmsg(fallback_db), -1);
    }
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    pthread_mutex_unlock(&fallback_lock);
}

static void json_extract(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;  // registered with two
    if (sqlite3_value_type(argv[0]) == SQLITE_TEXT && sqlite3_value_type(argv[1]) == SQLITE_TEXT) {
        const char *text = (const char *)sqlite3_value_text(argv[0]);
        int bytes = sqlite3_value_bytes(argv[0]);
        const char *path = (const char *)sqlite3_value_text(argv[1]);
        int path_bytes = sqlite3_value_bytes(argv[1]);
        if (text != NULL && path != NULL && extract_fast(ctx, text, bytes, path, path_bytes)) return;
    }
    extract_slow(ctx, argv);
}

int audit_sqlite_register_json_extract(void *connection, const char *name) {
    return sqlite3_create_function_v2(
        (sqlite3 *)connection, name, 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL, json_extract, NULL, NULL,
        NULL);
}
