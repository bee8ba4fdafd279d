// Lua values -> canonical JSON, the stored form of projection state.
//
// Deterministic whatever Lua's (randomly seeded) table order: object keys are sorted
// by their bytes. Tables are read with raw access only (no metamethods run), under
// lua_checkstack and a depth limit. A state is a tree of plain tables that reads back
// as it was: a table whose keys are exactly 1..n is an array, one whose keys are all
// strings an object (an empty table is {}); integer keys of any other kind, a table with
// a metatable (or a read-only view of what the projection loaded) and a table stored
// in two places (or inside itself) are refused, as they would come back different.
// Floats are written as Swift's Double.description writes them (number_text.c).
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define MAX_DEPTH AVM_STATE_LEVELS  // tables inside the state
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct jkey jkey;

typedef struct {
    avm *vm;
    lua_State *L;
    abuf *out;
    int allow_functions;
    // Where the writer is, for an error message ("the state of key "K".items[3].price"),
    // spelled out only when one is raised: the root's name, then per level the member's
    // key or the array element's number.
    const char *root;
    int nframes;
    struct { const jkey *key; size_t element; } frames[MAX_DEPTH + 2];
    const void *tables[MAX_DEPTH + 2];  // the tables being written, outermost first
    // The tables of the state written so far: the first few here, the rest (a state of
    // many tables) in vm->seen.
    const void *seen[8];
    int nseen;
    // The JSON counts against the memory limit (see json_room): out->len stays within
    // room; below fast_end (room or out->cap, the smaller) bytes are put without a check.
    size_t room, fast_end, start;
    int collected;
} jwriter;

static void path_put_key(abuf *path, const jkey *k);

/// Spells out where the writer is into the vm's path buffer, NUL-terminated.
static const char *render_path(jwriter *w) {
    abuf *path = &w->vm->path;
    path->len = 0;
    if (w->allow_functions) {
        abuf_put(path, w->root, strlen(w->root));
    } else {
        abuf_put(path, "the state of key \"", 18);
        abuf_put(path, w->root, strlen(w->root));
        abuf_putc(path, '"');
    }
    for (int i = 0; i < w->nframes; i++) {
        if (w->frames[i].key) {
            path_put_key(path, w->frames[i].key);
        } else {
            char tmp[32];
            int n = snprintf(tmp, sizeof tmp, "[%zu]", w->frames[i].element);
            abuf_put(path, tmp, (size_t)n);
        }
    }
    abuf_putc(path, 0);
    return path->data ? path->data : "?";
}

static void wfail(jwriter *w, const char *fmt, const char *detail) {
    const char *path = render_path(w);
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    size_t n = strlen(path);
    char full[1024];
    if (n > 160) snprintf(full, sizeof full, "%s at %.100s…%s", msg, path, path + n - 40);
    else snprintf(full, sizeof full, "%s at %s", msg, path);
    lua_pushstring(w->L, full);
    lua_error(w->L);
}

/// The JSON of a projection's table (avm_describe) is read into Swift whole: a table
/// returned with data in it stops at this size.
#define SPEC_JSON_MAX ((size_t)1 << 20)

/// What the JSON in the VM's output may take: what the memory limit leaves beside the
/// memory the VM holds, or half the limit whatever it holds, so that a VM near its
/// limit can still write its states out; the VM then holds at most 1.5x its limit. A
/// state of shared tables (t = { t, t } twenty times over) is small in memory and
/// enormous in JSON: it fails here, not when the machine runs out of memory.
static size_t json_room(const avm *vm, int spec) {
    size_t left = vm->mem_used < vm->mem_limit ? vm->mem_limit - vm->mem_used : 0;
    size_t room = left > vm->mem_limit / 2 ? left : vm->mem_limit / 2;
    return spec && room > SPEC_JSON_MAX ? SPEC_JSON_MAX : room;
}

static void too_large(jwriter *w) {
    char msg[320], others[96] = "";
    double mb = 1 << 20;
    if (w->allow_functions) {
        snprintf(msg, sizeof msg, "the projection table is too large: its JSON passed %zu MB (keep data out of the table a projection returns)",
                 SPEC_JSON_MAX >> 20);
        wfail(w, "%s", msg);
    }
    size_t before = w->start > 0 ? w->vm->json_before : 0;
    if (before > 0) snprintf(others, sizeof others, ", after %.1f MB of the other states changed since the last checkpoint", (double)before / mb);
    snprintf(msg, sizeof msg,
             "state too large: its JSON (%.1f MB so far%s) passed what the memory limit of %zu MB leaves beside the VM's own %.1f MB "
             "(JSON written out counts against the limit; a table stored in many places is written out in each)",
             (double)(w->out->len - w->start) / mb, others,
             w->vm->mem_limit >> 20, (double)w->vm->mem_used / mb);
    wfail(w, "%s", msg);
}

/// Makes room for n more bytes in the output, within json_room: when they do not fit,
/// once, collects the garbage and gives the empty slabs back, then fails.
static void make_room(jwriter *w, size_t n) {
    abuf *out = w->out;
    if (out->len + n > w->room && !w->collected) {
        w->collected = 1;
        lua_gc(w->L, LUA_GCCOLLECT);
        avm_pool_give_back(w->vm);
        w->room = json_room(w->vm, w->allow_functions);
    }
    if (out->len + n > w->room) too_large(w);
    if (!abuf_reserve(out, n)) luaL_error(w->L, "out of memory writing JSON");
    w->fast_end = out->cap < w->room ? out->cap : w->room;
}

static inline void put(jwriter *w, const char *p, size_t n) {
    abuf *out = w->out;
    if (out->len + n > w->fast_end) make_room(w, n);
    memcpy(out->data + out->len, p, n);
    out->len += n;
}

/// Decimal digits of v into the end of buf (at least 21 bytes); returns the start.
static char *format_integer(long long v, char *end) {
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = end;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    return p;
}

static void put_integer(jwriter *w, long long v) {
    char tmp[24];
    char *start = format_integer(v, tmp + sizeof tmp);
    put(w, start, (size_t)(tmp + sizeof tmp - start));
}

static void put_string(jwriter *w, const char *s, size_t n) {
    // Most strings are plain printable ASCII: copied in one go, no validation needed.
    size_t plain = 0;
    while (plain < n) {
        unsigned char c = (unsigned char)s[plain];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
        plain++;
    }
    if (plain == n) {
        abuf *out = w->out;
        if (out->len + n + 2 > w->fast_end) make_room(w, n + 2);
        out->data[out->len] = '"';
        memcpy(out->data + out->len + 1, s, n);
        out->data[out->len + 1 + n] = '"';
        out->len += n + 2;
        return;
    }
    if (!avm_utf8_valid((const unsigned char *)s + plain, n - plain)) wfail(w, "a string is not valid UTF-8%s", "");
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { run++; continue; }
        put(w, s + i - run, run);
        run = 0;
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        put(w, esc, elen);
    }
    put(w, s + n - run, run);
    put(w, "\"", 1);
}

/// Swift's spelling: shortest round-trip digits, always a '.' or an exponent. The
/// protected call that writes runs in the "C" locale (avm_pcall).
static void put_float(jwriter *w, double d) {
    if (isnan(d) || isinf(d)) wfail(w, "%s is not allowed in state (JSON cannot store it)", isnan(d) ? "NaN" : "infinity");
    char tmp[40];
    put(w, tmp, avm_number_text(d, tmp));
}

struct jkey {
    const char *s;
    size_t len;
    int is_int;
    lua_Integer i;
    int value;  // stack index of the value (small tables), else 0
};

static int key_cmp(const void *a, const void *b) {
    const jkey *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

static void write_value(jwriter *w, int idx, int depth);

/// A state's field does not fit its declared column: fail naming the key (the path so
/// far), the column, its type and the value, whose JSON was just written from `at`.
static void column_fail(jwriter *w, const avm_column *column, int idx, size_t at) {
    lua_State *L = w->L;
    const char *path = render_path(w);
    const char *kind;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: kind = lua_isinteger(L, idx) ? "an integer" : "a float"; break;
    case LUA_TSTRING: kind = "a string"; break;
    case LUA_TBOOLEAN: kind = "a boolean"; break;
    case LUA_TTABLE: kind = "a table"; break;
    default: kind = luaL_typename(L, idx);
    }
    size_t n = w->out->len - at;
    int cut = n > 80;
    if (lua_type(L, idx) == LUA_TSTRING && column->type == AVM_COLUMN_TEXT) {
        // The only string a text column refuses.
        lua_pushfstring(L, "column \"%s\" is declared text, but %s has %s = %s%s, a string with a NUL byte (\\u0000): SQL text ends at a NUL, "
                        "so the column would hold only what comes before it; keep NUL bytes out of a column's field (the state itself may hold them)",
                        column->name, path, column->name, lua_pushlstring(L, w->out->data + at, cut ? 77 : n), cut ? "…" : "");
        lua_error(L);
    }
    lua_pushfstring(L, "column \"%s\" is declared %s, but %s has %s = %s%s (%s): make the value fit, or declare the column's type to match",
                    column->name, avm_column_type_name(column->type), path, column->name,
                    lua_pushlstring(L, w->out->data + at, cut ? 77 : n), cut ? "…" : "", kind);
    lua_error(L);
}

static void path_put_key(abuf *path, const jkey *k) {
    abuf_putc(path, '.');
    abuf_put(path, k->s, k->len > 60 ? 60 : k->len);
}

/// Fills `key` from the table key at `at` (a string or an integer), or fails.
static void read_key(jwriter *w, int at, jkey *key) {
    lua_State *L = w->L;
    int t = lua_type(L, at);
    if (t == LUA_TSTRING) {
        key->s = lua_tolstring(L, at, &key->len);  // stays valid: the key is in the table
        key->is_int = 0;
    } else if (t == LUA_TNUMBER && lua_isinteger(L, at)) {
        key->is_int = 1;
        key->i = lua_tointeger(L, at);
    } else {
        wfail(w, "a table key of type %s (only string keys, or the integers 1..n of a list, can be stored)",
              lua_type(L, at) == LUA_TNUMBER ? "float" : lua_typename(L, t));
    }
}

/// Keys seen while reading a table: whether they make it an array (integers exactly
/// 1..n), an object (strings only) or neither.
typedef struct {
    size_t ints, strings;
    lua_Integer min, max;
} key_kinds;

static void count_key(key_kinds *k, const jkey *key) {
    if (!key->is_int) { k->strings++; return; }
    if (k->ints == 0 || key->i < k->min) k->min = key->i;
    if (k->ints == 0 || key->i > k->max) k->max = key->i;
    k->ints++;
}

/// Fails unless the keys are those of an array or of an object; returns whether an array.
static int array_or_object(jwriter *w, const key_kinds *k) {
    if (k->ints == 0) return 0;
    char key[24];
    if (k->strings > 0) {
        snprintf(key, sizeof key, "%lld", (long long)k->min);
        wfail(w, "integer key %s beside string keys (a stored table is a list 1..n or has string keys only, "
                 "and integer keys would come back as strings: use t[tostring(k)])", key);
    }
    if (k->min < 1 || k->max != (lua_Integer)k->ints) {
        snprintf(key, sizeof key, "%lld", (long long)(k->min < 1 ? k->min : k->max));
        wfail(w, "integer key %s in a table whose integer keys are not 1..n (a list is stored as a JSON array "
                 "and comes back as one; for a table keyed by numbers use t[tostring(k)])", key);
    }
    return 1;
}

/// Writes `count` values as a JSON array: value_at[i] is the stack index of element
/// i + 1, or 0 to read it from the table.
static void write_array(jwriter *w, int idx, size_t count, const int *value_at, int depth) {
    lua_State *L = w->L;
    put(w, "[", 1);
    for (size_t i = 0; i < count; i++) {
        if (i > 0) put(w, ",", 1);
        w->frames[w->nframes].key = NULL;
        w->frames[w->nframes++].element = i + 1;
        int value = value_at ? value_at[i] : 0;
        if (!value) {
            lua_rawgeti(L, idx, (lua_Integer)i + 1);
            value = lua_gettop(L);
        }
        write_value(w, value, depth + 1);
        if (!value_at || !value_at[i]) lua_pop(L, 1);
        w->nframes--;
    }
    put(w, "]", 1);
}

/// Whether a state's top-level keys (all strings, `count` of them, in lua_next's order)
/// are those of the cached shape, in the same order: then they sort as it says.
static int shape_matches(const avm *vm, const jkey *keys, size_t count) {
    if (vm->shape.n != count) return 0;
    for (size_t i = 0; i < count; i++) {
        // Short strings are interned: the same name is the same address.
        if (keys[i].s != vm->shape.keys[i] || keys[i].len != vm->shape.lens[i]) return 0;
    }
    return 1;
}

/// Caches the shape of a state's top-level keys: `names` in lua_next's order (each
/// keys' string at stack index keys[j].value - 1), `keys` sorted, `columns` per key.
static void shape_remember(jwriter *w, const jkey *names, const jkey *keys, size_t count, const avm_column *const *columns) {
    avm *vm = w->vm;
    lua_State *L = w->L;
    vm->shape.n = 0;
    if (count == 0 || count > AVM_SHAPE_KEYS) return;
    for (size_t i = 0; i < count; i++) if (!names[i].value) return;
    luaL_checkstack(L, 2, "state keys");
    // The strings stay referenced while cached: no other can be made at their address.
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_shape);
    for (size_t i = 0; i < count; i++) {
        lua_pushvalue(L, names[i].value - 1);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        vm->shape.keys[i] = names[i].s;
        vm->shape.lens[i] = names[i].len;
    }
    lua_pop(L, 1);
    for (size_t j = 0; j < count; j++) {
        size_t i = 0;
        while (names[i].s != keys[j].s) i++;
        vm->shape.order[j] = (unsigned char)i;
        vm->shape.columns[j] = columns[j];
    }
    vm->shape.n = count;
}

/// The declared column a member must fit: a top-level field of a state named like one.
static const avm_column *column_of(const jwriter *w, const jkey *k, int depth) {
    if (depth != 0 || !w->vm->ncolumns || w->allow_functions) return NULL;
    return avm_find_column(w->vm, k->s, k->len);
}

/// Writes the object's members (string keys, distinct) in key order: keys[i].value is
/// the stack index of each value, or 0 to look it up in the table.
static void write_members(jwriter *w, int idx, jkey *keys, size_t count, int depth) {
    lua_State *L = w->L;
    const avm_column *columns[AVM_SHAPE_KEYS];
    int cacheable = depth == 0 && !w->allow_functions && count <= AVM_SHAPE_KEYS;
    if (cacheable && shape_matches(w->vm, keys, count)) {
        // The keys of the last state, in the same order: sorted as they were.
        jkey sorted[AVM_SHAPE_KEYS];
        for (size_t j = 0; j < count; j++) {
            sorted[j] = keys[w->vm->shape.order[j]];
            columns[j] = w->vm->shape.columns[j];
        }
        memcpy(keys, sorted, count * sizeof(jkey));
    } else {
        jkey names[AVM_SHAPE_KEYS];
        if (cacheable) memcpy(names, keys, count * sizeof(jkey));
        if (count <= 24) {
            // A handful of keys: insertion sort beats qsort's calls through a pointer.
            for (size_t i = 1; i < count; i++) {
                jkey moving = keys[i];
                size_t j = i;
                while (j > 0 && key_cmp(&keys[j - 1], &moving) > 0) { keys[j] = keys[j - 1]; j--; }
                keys[j] = moving;
            }
        } else {
            qsort(keys, count, sizeof(jkey), key_cmp);
        }
        if (cacheable) {
            for (size_t i = 0; i < count; i++) columns[i] = column_of(w, &keys[i], depth);
            shape_remember(w, names, keys, count, columns);
        }
    }
    put(w, "{", 1);
    for (size_t i = 0; i < count; i++) {
        if (i) put(w, ",", 1);
        put_string(w, keys[i].s, keys[i].len);
        put(w, ":", 1);
        const avm_column *column = cacheable ? columns[i] : column_of(w, &keys[i], depth);
        w->frames[w->nframes].key = &keys[i];
        w->nframes++;
        int value = keys[i].value;
        if (!value) {
            lua_pushlstring(L, keys[i].s, keys[i].len);
            lua_rawget(L, idx);
            value = lua_gettop(L);
        }
        size_t at = w->out->len;
        write_value(w, value, depth + 1);
        w->nframes--;
        if (column && !avm_column_accepts(L, value, column->type)) column_fail(w, column, value, at);
        if (!keys[i].value) lua_pop(L, 1);
    }
    put(w, "}", 1);
}

/// Fails for a table a state cannot hold as it is: one with a metatable (a read-only
/// view of what the projection loaded among them), one already written in this state.
/// The spec (allow_functions) is written through views, as plain data.
static int check_plain(jwriter *w, int idx, int depth) {
    lua_State *L = w->L;
    const void *self = lua_topointer(L, idx);
    int has_metatable = w->vm->check_layout_ok ? *(const void *const *)((const char *)self + AVM_TABLE_METATABLE) != NULL
                                               : lua_getmetatable(L, idx) && (lua_pop(L, 1), 1);
    if (has_metatable) {
        if (w->allow_functions) return avm_frozen_real(L, idx) ? lua_gettop(L) : idx;
        if (avm_frozen_name(L, idx))
            wfail(w, "%s cannot be stored in state: it is read-only (what the projection set up when it loaded is shared by every key); store a copy of it", lua_tostring(L, -1));
        wfail(w, "a table with a metatable cannot be stored in state%s (it would be read back without it); store a plain table", "");
    }
    if (w->allow_functions) return idx;
    int added = 1;
    for (int i = 0; i < w->nseen && i < 8; i++) if (w->seen[i] == self) added = 0;
    if (added && w->nseen < 8) w->seen[w->nseen] = self;
    else if (added) added = avm_ptrset_add(&w->vm->seen, self);
    if (added < 0) luaL_error(L, "out of memory writing JSON");
    w->nseen++;
    if (!added) {
        for (int i = 0; i < depth; i++) {
            if (w->tables[i] == self) wfail(w, "a table that contains itself (a cycle)%s cannot be stored in state", "");
        }
        wfail(w, "a table stored in two places in one state%s (a stored state is a tree: each place would be read back as a copy of its own); store a copy here", "");
    }
    w->tables[depth] = self;
    return idx;
}

/// A table whose keys are exactly 1..n is an array; one whose keys are strings an
/// object. Small tables (the usual state) are read in one pass, their key/value pairs
/// kept on the Lua stack: no allocation, no lookups. Larger ones are counted first, keep
/// their keys in a userdata (so an error raised below cannot leak it) and look values up.
static void write_table(jwriter *w, int idx, int depth) {
    lua_State *L = w->L;
    if (depth > MAX_DEPTH) wfail(w, "tables nested more than %s levels deep", STR(AVM_STATE_LEVELS));
    enum { SMALL = 24 };
    luaL_checkstack(L, 2 * SMALL + 8, "state nesting");
    int top = lua_gettop(L);
    idx = check_plain(w, idx, depth);
    int base = lua_gettop(L);
    jkey small_keys[SMALL];
    size_t count = 0;
    int small = 1;
    key_kinds kinds = { 0, 0, 0, 0 };
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (count == SMALL) {
            small = 0;
            lua_settop(L, base);
            break;
        }
        jkey *key = &small_keys[count];
        read_key(w, -2, key);
        count_key(&kinds, key);
        // stack: …, key, value -> keep (key, value) and continue from a copy of key
        lua_pushvalue(L, -2);
        key->value = lua_gettop(L) - 1;
        count++;
    }
    if (small) {
        if (array_or_object(w, &kinds)) {
            int value_at[SMALL];
            for (size_t i = 0; i < count; i++) value_at[small_keys[i].i - 1] = small_keys[i].value;
            write_array(w, idx, count, value_at, depth);
        } else {
            write_members(w, idx, small_keys, count, depth);
        }
        lua_settop(L, top);
        return;
    }
    count = 0;
    kinds = (key_kinds){ 0, 0, 0, 0 };
    jkey key;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        read_key(w, -2, &key);
        count_key(&kinds, &key);
        count++;
        lua_pop(L, 1);
    }
    if (array_or_object(w, &kinds)) {
        write_array(w, idx, count, NULL, depth);
        lua_settop(L, top);
        return;
    }
    jkey *keys = lua_newuserdatauv(L, count * sizeof(jkey), 0);
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        read_key(w, -2, &keys[k]);
        keys[k++].value = 0;
        lua_pop(L, 1);
    }
    write_members(w, idx, keys, count, depth);
    lua_settop(L, top);
}

static void write_value(jwriter *w, int idx, int depth) {
    lua_State *L = w->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: put(w, "null", 4); break;
    case LUA_TBOOLEAN: if (lua_toboolean(L, idx)) put(w, "true", 4); else put(w, "false", 5); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            put_integer(w, (long long)lua_tointeger(L, idx));
        } else {
            put_float(w, (double)lua_tonumber(L, idx));
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(w, s, n);
        break;
    }
    case LUA_TTABLE: write_table(w, idx, depth); break;
    case LUA_TFUNCTION:
        if (w->allow_functions) { put(w, "\"<function>\"", 12); break; }
        /* fall through */
    default:
        wfail(w, "a %s cannot be stored in state (only tables, strings, numbers and booleans)", luaL_typename(L, idx));
    }
}

void avm_write_json(avm *vm, lua_State *L, int idx, abuf *out, int allow_functions, const char *key) {
    jwriter w;
    w.vm = vm;
    w.L = L;
    w.out = out;
    w.allow_functions = allow_functions;
    w.root = key;  // the path starts as `the state of key "K"` (or names the spec)
    w.nframes = 0;
    w.nseen = 0;
    if (vm->seen.count) avm_ptrset_clear(&vm->seen);  // (also after a write that failed)
    w.start = out->len;  // a checkpoint's other states are before
    w.room = json_room(vm, allow_functions);
    w.fast_end = out->cap < w.room ? out->cap : w.room;
    w.collected = 0;
    write_value(&w, lua_absindex(L, idx), 0);
}
