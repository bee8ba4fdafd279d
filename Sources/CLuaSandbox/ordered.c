// pairs and next in a fixed order: numbers ascending, then strings by their bytes,
// then false and true.
//
// Lua's own order follows where keys landed in the table's hash part, which depends
// on the string hash seed (random per VM) and on the order keys were added (a state
// built in memory and the same state read back from JSON differ): a list built in
// pairs order would change from run to run. Keys of other types (tables, functions)
// have no fixed order and are refused.
//
// pairs takes a sorted snapshot of the keys (O(n log n) once, O(1) per step) and
// returns an iterator over it; a key removed during the traversal is skipped, one
// added is not visited (as Lua leaves adding undefined). next(t) finds the smallest key in one pass; next(t, k) keeps one
// snapshot per VM, dropped at every event, so what it answers depends only on what
// the handler did.
//
// All of it is charged to the event's budget (budget.c), from the keys alone, so that
// the charge is the same whatever the table's history (a state in memory and the same
// state read back have different capacities): a snapshot one instruction per key, plus
// n log2 n for its sort and, for keys longer than the 8 bytes compared at once, their
// further bytes (AVM_BYTES_PER_INSTRUCTION to an instruction) log2 n + 1 times; next(t)
// one per key and those bytes once; a step one per removed key it passes over, and
// for a long string key (over 40 bytes: compared byte by byte, not by address) its
// bytes log2 n + 1 times. The freeze walk of what a projection loaded (freeze.c) takes
// its snapshots uncharged: that work is the engine's, once.
#include <math.h>
#include <string.h>
#include "internal.h"

enum { KEY_NUMBER, KEY_STRING, KEY_BOOLEAN, KEY_UNORDERED };

typedef struct {
    int cls;
    int is_int;
    lua_Integer i;  // integers; booleans 0/1
    lua_Number f;
    const char *s;
    size_t len;
    uint64_t prefix; // a string's first 8 bytes, big-endian (compared before the rest)
    lua_Integer at;  // the key's index in the snapshot's key table
} okey;

/// A snapshot: the keys sorted. User values: 1, the keys (in the order lua_next gave
/// them; keys[at] of each okey); 2, the table read. Never handed to a script.
typedef struct {
    size_t n;
    size_t hint;    // where the last step was: the next one usually follows it
    int unordered;  // keys of a type with no order (last, in lua_next's order)
    int log2n;      // the comparisons of a binary search of its keys: floor(log2 n) + 1
    okey keys[];
} snapshot;

// A string of more than Lua's LUAI_MAXSHORTLEN bytes is not interned: comparing two
// such keys reads their bytes.
#define LONG_KEY 40

/// floor(log2 n) + 1 for n >= 1 (0 for 0): the bits of n.
static int bits_of(size_t n) { return n ? 64 - __builtin_clzll((unsigned long long)n) : 0; }

/// What comparing a key reads past the 8 bytes of its prefix, as instructions.
static inline int64_t tail_bytes(const okey *k) {
    return k->cls == KEY_STRING && k->len > 8 ? (int64_t)(k->len - 8) : 0;
}

static void describe(lua_State *L, int idx, okey *k) {
    k->is_int = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        k->cls = KEY_NUMBER;
        if (lua_isinteger(L, idx)) { k->is_int = 1; k->i = lua_tointeger(L, idx); }
        else k->f = lua_tonumber(L, idx);
        break;
    case LUA_TSTRING:
        k->cls = KEY_STRING;
        k->s = lua_tolstring(L, idx, &k->len);  // a string already: no conversion
        if (k->len >= 8) {
            memcpy(&k->prefix, k->s, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            k->prefix = __builtin_bswap64(k->prefix);  // the first byte most significant
#endif
        } else {
            k->prefix = 0;
            for (size_t i = 0; i < 8; i++) k->prefix = (k->prefix << 8) | (i < k->len ? (unsigned char)k->s[i] : 0);
        }
        break;
    case LUA_TBOOLEAN:
        k->cls = KEY_BOOLEAN;
        k->i = lua_toboolean(L, idx);
        break;
    default:
        k->cls = KEY_UNORDERED;
    }
}

/// An integer against a float, exactly (converting either way can round).
static int int_float_cmp(lua_Integer i, lua_Number f) {
    if (f >= 0x1p63) return -1;
    if (f < -0x1p63) return 1;
    lua_Number fl = l_mathop(floor)(f);
    lua_Integer fi = (lua_Integer)fl;
    if (i != fi) return i < fi ? -1 : 1;
    return f > fl ? -1 : 0;
}

static int okey_cmp(const okey *a, const okey *b) {
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    switch (a->cls) {
    case KEY_NUMBER:
        if (a->is_int && b->is_int) return (a->i > b->i) - (a->i < b->i);
        if (!a->is_int && !b->is_int) return (a->f > b->f) - (a->f < b->f);
        return a->is_int ? int_float_cmp(a->i, b->f) : -int_float_cmp(b->i, a->f);
    case KEY_STRING: {
        if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n > 8 ? memcmp(a->s + 8, b->s + 8, n - 8) : 0;
        if (c) return c;
        return (a->len > b->len) - (a->len < b->len);
    }
    case KEY_BOOLEAN: return (int)(a->i - b->i);
    default: return 0;  // unordered keys keep lua_next's order (the sort is stable)
    }
}

/// Stable merge sort of keys (tmp: as many); insertion sort for short runs.
static void sort_keys(okey *k, okey *tmp, size_t n) {
    if (n <= 12) {
        for (size_t i = 1; i < n; i++) {
            okey moving = k[i];
            size_t j = i;
            while (j > 0 && okey_cmp(&k[j - 1], &moving) > 0) { k[j] = k[j - 1]; j--; }
            k[j] = moving;
        }
        return;
    }
    size_t half = n / 2;
    sort_keys(k, tmp, half);
    sort_keys(k + half, tmp, n - half);
    if (okey_cmp(&k[half - 1], &k[half]) <= 0) return;  // already in order
    memcpy(tmp, k, half * sizeof *k);
    size_t a = 0, b = half, out = 0;
    while (a < half && b < n) k[out++] = okey_cmp(&k[b], &tmp[a]) < 0 ? k[b++] : tmp[a++];
    while (a < half) k[out++] = tmp[a++];
}

/// The table whose keys are read: a read-only view's own table.
static int read_table(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (avm_frozen_real(L, idx)) return lua_gettop(L);
    lua_pushvalue(L, idx);
    return lua_gettop(L);
}

int avm_push_snapshot(lua_State *L, int idx, const char *charged) {
    int t = read_table(L, idx);
    // Room for every key: what the table has room for (one pass), else counted.
    size_t n = avm_table_capacity(avm_of(L), lua_topointer(L, t));
    if (!n) {
        lua_pushnil(L);
        while (lua_next(L, t)) { lua_pop(L, 1); n++; }
    }
    snapshot *s = lua_newuserdatauv(L, sizeof(snapshot) + n * sizeof(okey), 2);
    int ud = lua_gettop(L);
    s->hint = 0;
    s->unordered = 0;
    lua_createtable(L, (int)n, 0);
    int keys = lua_gettop(L);
    okey small[32];
    okey *tmp = n / 2 + 1 <= 32 ? small : lua_newuserdatauv(L, (n / 2 + 1) * sizeof(okey), 0);
    lua_Integer at = 0;
    int64_t tails = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++at);  // pins the key (its string stays valid)
        okey *k = &s->keys[at - 1];
        describe(L, -1, k);
        k->at = at;
        tails += tail_bytes(k);
        if (k->cls == KEY_UNORDERED) s->unordered = 1;
    }
    s->n = n = (size_t)at;
    s->log2n = bits_of(n);
    if (charged && n) {
        // Before the sort: a key each, n log2 n comparisons, and the bytes past the
        // prefixes once per level of the merge (a comparison reads at most the bytes of
        // the key it puts in place, so a level reads each key's bytes at most once).
        int64_t levels = n > 1 ? s->log2n : 0;
        avm_charge(L, (int64_t)n * (1 + levels) + avm_bytes((size_t)tails) * (levels + 1), charged);
    }
    sort_keys(s->keys, tmp, n);
    lua_settop(L, keys);
    lua_setiuservalue(L, ud, 1);
    lua_pushvalue(L, t);
    lua_setiuservalue(L, ud, 2);
    lua_remove(L, t);
    return s->unordered;
}

/// The position after the key at idx in the snapshot (0 for nil); -1 when it is not
/// one of its keys. A long string key is charged to `what` for the bytes its
/// comparisons may read: with the last key returned, and log2 n in a binary search.
static long position_after(lua_State *L, snapshot *s, int ud, int idx, const char *what) {
    if (lua_isnil(L, idx)) return 0;
    if (lua_type(L, idx) == LUA_TSTRING && lua_rawlen(L, idx) > LONG_KEY)
        avm_charge(L, avm_bytes(lua_rawlen(L, idx)) * (1 + s->log2n), what);
    lua_getiuservalue(L, ud, 1);
    if (s->hint < s->n) {
        lua_rawgeti(L, -1, s->keys[s->hint].at);
        int same = lua_rawequal(L, -1, idx);
        lua_pop(L, 1);
        if (same) { lua_pop(L, 1); return (long)s->hint + 1; }
    }
    lua_pop(L, 1);
    okey k;
    describe(L, idx, &k);
    if (k.cls == KEY_UNORDERED) return -1;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = okey_cmp(&s->keys[mid], &k);
        if (c == 0) return (long)mid + 1;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

/// Pushes the first key from `pos` on that is still in the table, and its value;
/// returns 2, or 1 (nil) at the end.
/// Passing over the keys removed since the snapshot was taken is charged to `what`
/// (one instruction each: a table emptied under a traversal is passed over again by
/// every call that starts before its removed keys).
static int step_from(lua_State *L, snapshot *s, int ud, size_t pos, const char *what) {
    lua_getiuservalue(L, ud, 1);
    lua_getiuservalue(L, ud, 2);
    size_t from = pos;
    for (; pos < s->n; pos++) {
        lua_rawgeti(L, -2, s->keys[pos].at);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TNIL) {
            if (pos != from) avm_charge(L, (int64_t)(pos - from), what);
            s->hint = pos;
            return 2;
        }
        lua_pop(L, 2);
    }
    if (pos != from) avm_charge(L, (int64_t)(pos - from), what);
    lua_pushnil(L);
    return 1;
}

static const char *const unordered_message =
    "%s: a table key of type %s has no fixed order (keys are visited numbers first, then strings, then booleans); keep such values in a list";

static int unordered_error(lua_State *L, const char *fn, snapshot *s, int ud) {
    for (size_t i = 0; i < s->n; i++) {
        if (s->keys[i].cls != KEY_UNORDERED) continue;
        lua_getiuservalue(L, ud, 1);
        lua_rawgeti(L, -1, s->keys[i].at);
        return luaL_error(L, unordered_message, fn, luaL_typename(L, -1));
    }
    return 0;
}

/// The iterator pairs returns: (_, previous key) -> key, value. Upvalues: 1 the
/// snapshot, 2 its keys, 3 the table read, 4 the key it returned last.
static int ordered_step(lua_State *L) {
    snapshot *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t pos;
    if (lua_isnil(L, 2)) pos = 0;
    else if (s->hint < s->n && lua_rawequal(L, 2, lua_upvalueindex(4))) {
        pos = s->hint + 1;
        // A long string is compared byte by byte (unless it is the very string, which
        // is not charged for: whether it is depends on where the state came from).
        if (lua_type(L, 2) == LUA_TSTRING && lua_rawlen(L, 2) > LONG_KEY) avm_charge(L, avm_bytes(lua_rawlen(L, 2)), "pairs");
    } else {
        long p = position_after(L, s, lua_upvalueindex(1), 2, "pairs");
        if (p < 0) return luaL_error(L, "invalid key to 'next'");
        pos = (size_t)p;
    }
    size_t from = pos;
    for (; pos < s->n; pos++) {
        lua_rawgeti(L, lua_upvalueindex(2), s->keys[pos].at);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) {
            if (pos != from) avm_charge(L, (int64_t)(pos - from), "pairs");
            s->hint = pos;
            lua_copy(L, -2, lua_upvalueindex(4));
            return 2;
        }
        lua_pop(L, 2);
    }
    if (pos != from) avm_charge(L, (int64_t)(pos - from), "pairs");
    lua_pushnil(L);
    return 1;
}

static int ordered_pairs(lua_State *L) {
    luaL_checkany(L, 1);
    if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        return 3;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (avm_push_snapshot(L, 1, "pairs")) return unordered_error(L, "pairs", lua_touserdata(L, 2), 2);
    lua_getiuservalue(L, 2, 1);
    lua_getiuservalue(L, 2, 2);
    lua_pushnil(L);
    lua_pushcclosure(L, ordered_step, 4);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

void avm_ordered_reset(avm *vm, lua_State *L) {
    if (!vm->next_cached) return;
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_next_cache);
    vm->next_cached = 0;
}

static int ordered_next(lua_State *L) {
    avm *vm = avm_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    int t = read_table(L, 1);  // 3
    if (lua_isnil(L, 2)) {
        // A traversal (re)starts: one pass for the smallest key.
        avm_ordered_reset(vm, L);
        okey best, k;
        int found = 0;
        int64_t keys = 0, tails = 0;
        lua_pushnil(L);  // 4: the smallest key so far
        lua_pushnil(L);  // 5: its value
        lua_pushnil(L);
        while (lua_next(L, t)) {
            describe(L, -2, &k);
            if (k.cls == KEY_UNORDERED) return luaL_error(L, unordered_message, "next", luaL_typename(L, -2));
            keys++;
            tails += tail_bytes(&k);
            if (!found || okey_cmp(&k, &best) < 0) {
                lua_copy(L, -2, 4);
                lua_copy(L, -1, 5);
                describe(L, 4, &best);
                found = 1;
            }
            lua_pop(L, 1);
        }
        // One instruction a key, and the bytes past the prefixes compared (a comparison
        // reads at most the key's own): after the pass, which one call makes once.
        if (keys) avm_charge(L, keys + avm_bytes((size_t)tails), "next");
        if (!found) { lua_pushnil(L); return 1; }
        return 2;
    }
    snapshot *s = NULL;
    if (vm->next_cached) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_next_cache);
        s = lua_touserdata(L, -1);
        lua_getiuservalue(L, -1, 2);
        if (!lua_rawequal(L, -1, t)) s = NULL;
        lua_pop(L, 1);
        if (!s) lua_pop(L, 1);
    }
    long pos = s ? position_after(L, s, lua_gettop(L), 2, "next") : -1;
    if (pos < 0) {
        // First call of this traversal, or a key added since the snapshot.
        if (lua_type(L, 2) == LUA_TSTRING && lua_rawlen(L, 2) > LONG_KEY) avm_charge(L, avm_bytes(lua_rawlen(L, 2)), "next");
        lua_pushvalue(L, 2);
        int present = lua_rawget(L, t) != LUA_TNIL;
        lua_pop(L, 1);
        if (s) lua_pop(L, 1);
        if (!present) return luaL_error(L, "invalid key to 'next'");
        int unordered = avm_push_snapshot(L, 1, "next");
        s = lua_touserdata(L, -1);
        if (unordered) return unordered_error(L, "next", s, lua_gettop(L));
        lua_pushvalue(L, -1);
        lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_next_cache);
        vm->next_cached = 1;
        pos = position_after(L, s, lua_gettop(L), 2, "next");
    }
    return step_from(L, s, lua_gettop(L), (size_t)pos, "next");
}

void avm_open_ordered(lua_State *L) {
    lua_pushglobaltable(L);
    lua_pushcfunction(L, ordered_pairs);
    lua_setfield(L, -2, "pairs");
    lua_pushcfunction(L, ordered_next);
    lua_setfield(L, -2, "next");
    lua_pop(L, 1);
}
