// The check of a key's state after each event that changed it.
//
// A state must be something the table can store and give back as it was (plain
// tables, a list 1..n or string keys, strings of UTF-8, finite numbers, each table in
// one place, declared columns of their type: lua_to_json.c). Checked only when states
// are written out, a value that breaks a rule and is gone again by the next checkpoint
// would pass or fail depending on where checkpoints fall, so the state of the key an
// event changed is checked right after it, as long as it is small: up to
// AVM_CHECK_VALUES values and AVM_CHECK_BYTES bytes of strings. A larger state is
// checked when it is written out (and then again after its next event).
//
// The check reads Lua 5.4's tables directly (a few nanoseconds a field), only on a VM
// where it found them laid out as expected (avm_check_layout), and says "fine" or "not
// sure"; for "not sure" the JSON writer, which knows every rule and says what is wrong
// and where, decides.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

// Lua 5.4's Table, TValue, Node and TString (x86_64), checked per VM.
#define T_FLAGS 10
#define T_LSIZENODE 11
#define T_ALIMIT 12
#define T_ARRAY 16
#define T_NODE 24
#define T_METATABLE AVM_TABLE_METATABLE
#define TV_SIZE 16
#define TV_TAG 8
#define NODE_SIZE 24
#define NODE_KEY_TAG 9
#define NODE_KEY 16
#define S_TAG 8
#define S_SHORT_LEN 11
#define S_LONG_LEN 16
#define S_CONTENTS 24

// Tags of values (TValue, Node keys: collectable ones with bit 6) and of strings' own header.
enum { TAG_FALSE = 0x01, TAG_TRUE = 0x11, TAG_INT = 0x03, TAG_FLOAT = 0x13, TAG_SHORT = 0x44, TAG_LONG = 0x54, TAG_TABLE = 0x45 };
enum { STRING_SHORT = 0x04, STRING_LONG = 0x14 };
enum { CHECK_OK, CHECK_UNSURE, CHECK_LARGE };

#define CHECK_TABLES 32

/// The walk goes through the whole state as the writer would (a table met twice is
/// walked twice), so that whether a state counts as large does not depend on the order
/// Lua keeps its fields in: it stops only when the count passes a bound.
typedef struct {
    const avm *vm;
    size_t values, bytes;
    int unsure;      // something the writer must look at (it will refuse it)
    int many;        // more tables than are tracked for being in two places
    const char *tables[CHECK_TABLES];
    size_t ntables;
} checker;

static inline unsigned char byte_at(const char *p, size_t off) { return *(const unsigned char *)(p + off); }
static inline const char *ptr_at(const char *p, size_t off) { return *(const char *const *)(p + off); }

/// The size of a table's array part (its alimit may be a hint below it).
static size_t array_size(const char *t) {
    unsigned limit = *(const unsigned *)(t + T_ALIMIT);
    if (!(byte_at(t, T_FLAGS) & 0x80) || (limit & (limit - 1)) == 0) return limit;
    unsigned size = limit;
    size |= size >> 1; size |= size >> 2; size |= size >> 4; size |= size >> 8; size |= size >> 16;
    return (size_t)size + 1;
}

/// Whether a string of fewer than 16 bytes is ASCII: two (overlapping) loads.
static inline int ascii_short(const unsigned char *s, size_t n) {
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        return !((a | b) & 0x8080808080808080ULL);
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return !((a | b) & 0x80808080u);
    }
    return n == 0 || !((s[0] | s[n / 2] | s[n - 1]) & 0x80);
}

int avm_utf8_valid(const unsigned char *s, size_t n) {
    if (n < 16 && ascii_short(s, n)) return 1;  // the usual key or short value
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ULL) break;
        i += 8;
    }
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += len;
    }
    return 1;
}

static size_t string_length(const char *ts) {
    return byte_at(ts, S_TAG) == STRING_SHORT ? byte_at(ts, S_SHORT_LEN) : *(const size_t *)(ts + S_LONG_LEN);
}

/// Counts a string; CHECK_LARGE past the bound.
static inline int check_string(checker *c, const char *ts) {
    size_t len = string_length(ts);
    c->bytes += len;
    if (c->bytes > AVM_CHECK_BYTES) return CHECK_LARGE;
    if (!avm_utf8_valid((const unsigned char *)ts + S_CONTENTS, len)) c->unsure = 1;
    return CHECK_OK;
}

static int check_table(checker *c, const char *t, int depth);

/// The value of the TValue at v; `column` the declared column it fills, or NULL.
static inline int check_value(checker *c, const char *v, int depth, const avm_column *column) {
    if (++c->values > AVM_CHECK_VALUES) return CHECK_LARGE;
    switch (byte_at(v, TV_TAG)) {
    case TAG_FALSE: case TAG_TRUE:
        if (column && column->type != AVM_COLUMN_INTEGER && column->type != AVM_COLUMN_NUMERIC) c->unsure = 1;
        return CHECK_OK;
    case TAG_INT:
        if (column && column->type == AVM_COLUMN_TEXT) c->unsure = 1;
        return CHECK_OK;
    case TAG_FLOAT: {
        double d = *(const double *)v;
        if (!isfinite(d)) c->unsure = 1;
        if (column && (column->type == AVM_COLUMN_TEXT || (column->type == AVM_COLUMN_INTEGER && (d != floor(d) || fabs(d) >= 9.2e18)))) c->unsure = 1;
        return CHECK_OK;
    }
    case TAG_SHORT: case TAG_LONG:
        if (column) {
            // A text column refuses a NUL (SQL text would end there): the writer says so.
            const char *ts = ptr_at(v, 0);
            if (column->type != AVM_COLUMN_TEXT || memchr(ts + S_CONTENTS, 0, string_length(ts))) c->unsure = 1;
        }
        return check_string(c, ptr_at(v, 0));
    case TAG_TABLE:
        if (column) c->unsure = 1;
        return check_table(c, ptr_at(v, 0), depth + 1);
    default:
        c->unsure = 1;
        return CHECK_OK;
    }
}

/// The declared column named by the string key `ts` (a short one is interned: the
/// column's own string), or NULL.
static const avm_column *column_named(const checker *c, const char *ts) {
    const avm *vm = c->vm;
    if (byte_at(ts, S_TAG) == STRING_SHORT) {
        for (size_t i = 0; i < vm->ncolumns; i++) if (vm->column_keys[i] == ts) return &vm->columns[i];
        return NULL;
    }
    size_t len = string_length(ts);
    for (size_t i = 0; i < vm->ncolumns; i++) {
        if (vm->columns[i].len == len && memcmp(vm->columns[i].name, ts + S_CONTENTS, len) == 0) return &vm->columns[i];
    }
    return NULL;
}

static int check_table(checker *c, const char *t, int depth) {
    if (depth > 64) { c->unsure = 1; return CHECK_OK; }
    if (ptr_at(t, T_METATABLE)) c->unsure = 1;
    int seen = 0;
    for (size_t i = 0; i < c->ntables; i++) if (c->tables[i] == t) seen = 1;  // in two places
    if (seen) c->unsure = 1;
    else if (c->ntables < CHECK_TABLES) c->tables[c->ntables++] = t;
    else c->many = 1;
    size_t ints = 0, strings = 0;
    lua_Integer min = 0, max = 0;
    size_t asize = array_size(t);
    const char *array = ptr_at(t, T_ARRAY);
    for (size_t i = 0; i < asize; i++) {
        const char *v = array + i * TV_SIZE;
        if ((byte_at(v, TV_TAG) & 0x0F) == 0) continue;  // nil, empty
        lua_Integer k = (lua_Integer)i + 1;
        if (ints == 0) min = k;
        max = k;
        ints++;
        if (check_value(c, v, depth, NULL) == CHECK_LARGE) return CHECK_LARGE;
    }
    size_t nodes = (size_t)1 << byte_at(t, T_LSIZENODE);
    const char *node = ptr_at(t, T_NODE);
    int top = depth == 0 && c->vm->ncolumns > 0;
    for (size_t i = 0; i < nodes; i++) {
        const char *n = node + i * NODE_SIZE;
        if ((byte_at(n, TV_TAG) & 0x0F) == 0) continue;
        unsigned char key = byte_at(n, NODE_KEY_TAG);
        const avm_column *column = NULL;
        if (key == TAG_SHORT || key == TAG_LONG) {
            const char *ks = ptr_at(n, NODE_KEY);
            if (top) column = column_named(c, ks);
            if (column) c->bytes += column->len;  // a column's name: UTF-8 already
            else if (check_string(c, ks) == CHECK_LARGE) return CHECK_LARGE;
            strings++;
        } else if (key == TAG_INT) {
            lua_Integer k = *(const lua_Integer *)(n + NODE_KEY);
            if (ints == 0 || k < min) min = k;
            if (ints == 0 || k > max) max = k;
            ints++;
        } else {
            c->unsure = 1;
        }
        if (check_value(c, n, depth, column) == CHECK_LARGE) return CHECK_LARGE;
    }
    if (ints && (strings || min < 1 || max != (lua_Integer)ints)) c->unsure = 1;
    return CHECK_OK;
}

/// CHECK_* for the table t: large past the bounds (whatever else it holds), else
/// unsure when the writer must look, else fine.
static int quick_check(const avm *vm, const char *t) {
    checker c;  // c.tables is filled as far as c.ntables says
    c.vm = vm;
    c.values = c.bytes = c.ntables = 0;
    c.unsure = c.many = 0;
    if (check_table(&c, t, 0) == CHECK_LARGE) return CHECK_LARGE;
    return c.unsure || c.many ? CHECK_UNSURE : CHECK_OK;
}

void avm_check_state(avm *vm, lua_State *L, int idx, long slot) {
    kslot *s = &vm->keys.slots[slot];
    if (s->flags & KEY_LARGE) return;
    if (vm->check_layout_ok) {
        // The table was noted when the handler returned (states_note).
        int r = quick_check(vm, s->table ? (const char *)s->table : (const char *)lua_topointer(L, idx));
        if (r == CHECK_OK) return;
        if (r == CHECK_LARGE) { s->flags |= KEY_LARGE; return; }
    }
    // Something to look at (or no quick check on this VM): the writer says what is
    // wrong and where, or passes.
    vm->check_out.len = 0;
    avm_write_json(vm, L, idx, &vm->check_out, 0, keymap_key(&vm->keys, (size_t)slot));
    if (!vm->check_layout_ok && vm->check_out.len > AVM_CHECK_BYTES + 8 * AVM_CHECK_VALUES) s->flags |= KEY_LARGE;
}

// --- the layout check -------------------------------------------------------------

/// Runs Lua source returning a table and checks what quick_check says of it.
static int expect(avm *vm, lua_State *L, const char *src, int expected) {
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    int r = quick_check(vm, (const char *)lua_topointer(L, -1));
    lua_pop(L, 1);
    return r == expected;
}

void avm_check_layout(avm *vm, lua_State *L) {
    // The offsets, from what the API says of a table and strings made for it.
    vm->check_layout_ok = 0;
    lua_createtable(L, 2, 2);
    const char *t = lua_topointer(L, -1);
    lua_newtable(L);
    lua_setmetatable(L, -2);
    int metatable_ok = ptr_at(t, T_METATABLE) != NULL;
    lua_pushnil(L);
    lua_setmetatable(L, -2);
    metatable_ok = metatable_ok && ptr_at(t, T_METATABLE) == NULL;
    lua_pop(L, 1);
    lua_pushliteral(L, "short string");
    const char *ss = lua_topointer(L, -1);
    int strings_ok = ss && lua_tostring(L, -1) == ss + S_CONTENTS && byte_at(ss, S_TAG) == STRING_SHORT && byte_at(ss, S_SHORT_LEN) == 12;
    lua_pop(L, 1);
    lua_pushliteral(L, "a long string, of more than forty bytes, is not interned");
    const char *ls = lua_topointer(L, -1);
    size_t ll;
    const char *lc = lua_tolstring(L, -1, &ll);
    strings_ok = strings_ok && ls && lc == ls + S_CONTENTS && byte_at(ls, S_TAG) == STRING_LONG && *(const size_t *)(ls + S_LONG_LEN) == ll;
    lua_pop(L, 1);
    if (!metatable_ok || !strings_ok) return;
    vm->check_layout_ok = 1;
    // Then the walk itself, on states that pass and on each kind of state that must not.
    vm->check_layout_ok =
        expect(vm, L, "return { 1, 2.5, 'x', true, false, { a = 'b' } }", CHECK_OK)
        && expect(vm, L, "local t = {} for i = 1, 8 do t[i] = i end t[8] = nil t[7] = nil local _ = #t t[7] = 7 t[8] = 8 return t", CHECK_OK)
        && expect(vm, L, "local t = { x = 1, y = 'é', z = { [1] = 1, [2] = { 2 } } } t.w = 3 return t", CHECK_OK)
        && expect(vm, L, "return {}", CHECK_OK)
        && expect(vm, L, "local t = {} for i = 1, 300 do t[i] = i end return t", CHECK_LARGE)
        && expect(vm, L, "return { f = function() end }", CHECK_UNSURE)
        && expect(vm, L, "return { 0/0 }", CHECK_UNSURE)
        && expect(vm, L, "return { x = 1/0 }", CHECK_UNSURE)
        && expect(vm, L, "return { s = '\\255' }", CHECK_UNSURE)
        && expect(vm, L, "return { ['\\255'] = 1 }", CHECK_UNSURE)
        && expect(vm, L, "return { [1.5] = 1 }", CHECK_UNSURE)
        && expect(vm, L, "return { [true] = 1 }", CHECK_UNSURE)
        && expect(vm, L, "return { 1, nil, 3 }", CHECK_UNSURE)
        && expect(vm, L, "return { [2] = 1 }", CHECK_UNSURE)
        && expect(vm, L, "return { [0] = 1 }", CHECK_UNSURE)
        && expect(vm, L, "return { 1, x = 2 }", CHECK_UNSURE)
        && expect(vm, L, "local t = {} return { a = t, b = t }", CHECK_UNSURE)
        && expect(vm, L, "local t = {} for i = 1, 300 do t[i] = i end return { t, f = function() end }", CHECK_LARGE)
        && expect(vm, L, "local t = {} t.me = t return t", CHECK_UNSURE)
        && expect(vm, L, "return { m = setmetatable({}, {}) }", CHECK_UNSURE);
}

size_t avm_table_capacity(const avm *vm, const void *t) {
    if (!vm->check_layout_ok || !t) return 0;
    return array_size((const char *)t) + ((size_t)1 << byte_at((const char *)t, T_LSIZENODE));
}

// --- keys -----------------------------------------------------------------------

void avm_check_key(lua_State *L, const char *key, size_t len, int from_function) {
    int nul = memchr(key, 0, len) != NULL;
    if (!nul && avm_utf8_valid((const unsigned char *)key, len)) return;
    // Shown with the bytes that are not printable ASCII escaped, as far as 60 bytes.
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len && i < 60; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') luaL_addchar(&b, (char)c);
        else { char esc[5]; snprintf(esc, sizeof esc, "\\x%02X", c); luaL_addstring(&b, esc); }
    }
    if (len > 60) luaL_addstring(&b, "…");
    luaL_pushresult(&b);
    luaL_error(L, from_function ? "the key function returned \"%s\", which %s: keys are stored as text and must read back as they are"
                                : "the key (the event's stream) \"%s\" %s: keys are stored as text and must read back as they are",
               lua_tostring(L, -1), nul ? "has a NUL byte" : "is not valid UTF-8");
}
