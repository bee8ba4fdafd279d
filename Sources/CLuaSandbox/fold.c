// Folding events into keyed states, and writing the states out as canonical JSON.
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

// --- folding ------------------------------------------------------------------

#define SET_STRING(field, ptr, n) (lua_pushlstring(L, (ptr), (n)), lua_setfield(L, -2, field))
#define SET_INT(field, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, field))

/// Builds `e` with the fields the projection's code can read (see avm_set_event_fields):
/// each field skipped saves a string or table allocation per event.
static void push_event(avm *vm, lua_State *L, const avm_event *e) {
    unsigned f = vm->event_fields;
    lua_createtable(L, 0, __builtin_popcount(f));
    if (f & AVM_FIELD_SEQ) SET_INT("seq", e->seq);
    if (f & AVM_FIELD_ID) SET_STRING("id", e->id, e->id_len);
    if (f & AVM_FIELD_STREAM) SET_STRING("stream", e->stream, e->stream_len);
    if (f & AVM_FIELD_VERSION) SET_INT("version", e->version);
    if (f & AVM_FIELD_TYPE) SET_STRING("type", e->type, e->type_len);
    if (f & AVM_FIELD_OCCURRED_AT) SET_STRING("occurred_at", e->occurred_at, e->occurred_at_len);
    if (f & AVM_FIELD_RECORDED_AT) SET_STRING("recorded_at", e->recorded_at, e->recorded_at_len);
    if (f & AVM_FIELD_DATA) {
        avm_push_json(vm, L, e->data, e->data_len, "event data");
        lua_setfield(L, -2, "data");
    }
    if (f & AVM_FIELD_META) {
        avm_push_json(vm, L, e->meta, e->meta_len, "event meta");
        lua_setfield(L, -2, "meta");
    }
}

/// Pushes the initial state of the key: init(key), or {}.
static void push_initial(avm *vm, lua_State *L, const char *key, size_t len) {
    vm->created++;
    if (vm->ref_init == LUA_NOREF) {
        lua_newtable(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_init);
    lua_pushlstring(L, key, len);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) luaL_error(L, "init must return a table, not a %s", luaL_typename(L, -1));
}

static int apply_protected(lua_State *L) {
    avm *vm = avm_of(L);
    const avm_event *e = lua_touserdata(L, 1);
    if (vm->glob && fnmatch(vm->glob, e->stream, 0) != 0) { lua_pushinteger(L, AVM_SKIPPED); return 1; }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_on);        // 2
    lua_pushlstring(L, e->type, e->type_len);
    if (lua_rawget(L, 2) != LUA_TFUNCTION) { lua_pushinteger(L, AVM_SKIPPED); return 1; }  // 3: handler
    // The key's bytes; a Lua string only when the key function made one (5). A key known
    // before the event is built has its entry in the key map fetched meanwhile.
    const char *key = "global";
    size_t key_len = 6;
    uint32_t hash = 0;
    if (vm->key_mode == AVM_KEY_STREAM) {
        key = e->stream;
        key_len = e->stream_len;
    }
    if (vm->key_mode != AVM_KEY_FUNCTION) {
        hash = states_hash(vm, key, key_len);
        keymap_prefetch(&vm->keys, hash);
    }
    push_event(vm, L, e);                                  // 4
    if (vm->key_mode == AVM_KEY_FUNCTION) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_key);
        lua_pushvalue(L, 4);
        lua_call(L, 1, 1);
        if (lua_isnil(L, 5)) { lua_pushinteger(L, AVM_SKIPPED); return 1; }
        if (lua_isinteger(L, 5)) {
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, 5));
            lua_replace(L, 5);
        } else if (lua_type(L, 5) != LUA_TSTRING) {
            return luaL_error(L, "the key function must return a string, an integer or nil, not a %s", luaL_typename(L, 5));
        }
        key = lua_tolstring(L, 5, &key_len);
        hash = states_hash(vm, key, key_len);
    }
    vm->last_key.len = 0;
    if (!abuf_put(&vm->last_key, key, key_len)) return luaL_error(L, "out of memory");
    long slot = states_find(vm, key, key_len, hash);
    // Its flags are marked dirty after the handler: fetched meanwhile (measured: the
    // miss on them was a twentieth of a replay's time).
    if (slot >= 0 && !vm->all_dirty) __builtin_prefetch(&vm->keys.slots[slot], 1);
    if (states_push(vm, L, slot) == LUA_TNIL) {
        lua_pop(L, 1);
        if (!vm->assume_absent) {
            vm->pending.len = 0;
            if (!abuf_put(&vm->pending, key, key_len)) return luaL_error(L, "out of memory");
            lua_pushinteger(L, AVM_NEED_STATE);
            return 1;
        }
        push_initial(vm, L, key, key_len);
        lua_pushvalue(L, -1);
        slot = states_set(vm, L, slot, key, key_len, hash);
        vm->resident++;
    }
    int state = lua_gettop(L);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, state);
    lua_pushvalue(L, 4);
    lua_call(L, 2, 1);
    if (lua_istable(L, -1)) {
        states_set(vm, L, slot, key, key_len, hash);
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "a handler must change s in place or return a new state table, not a %s", luaL_typename(L, -1));
    }
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    lua_pushinteger(L, AVM_OK);
    return 1;
}

int avm_apply(avm *vm, const avm_event *event) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, apply_protected);
    lua_pushlightuserdata(L, (void *)event);
    avm_reset_budget(vm);
    int status = lua_pcall(L, 1, 1, 0);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    return avm_finish_call(vm, status, result);
}

static int provide_protected(lua_State *L) {
    avm *vm = avm_of(L);
    size_t key_len;
    const char *key = lua_tolstring(L, 1, &key_len);
    size_t json_len = (size_t)lua_tointeger(L, 3);
    const char *json = lua_touserdata(L, 2);
    uint32_t hash = states_hash(vm, key, key_len);
    long slot = states_find(vm, key, key_len, hash);
    if (json) {
        avm_push_json(vm, L, json, json_len, "stored state");
        if (!lua_istable(L, -1)) return luaL_error(L, "stored state is not a JSON object");
    } else {
        push_initial(vm, L, key, key_len);
    }
    if (slot >= 0) states_keep_for_flush(vm, L, slot);
    states_set(vm, L, slot, key, key_len, hash);
    vm->resident++;
    return 0;
}

/// Calls `fn(key, json pointer, json length)` protected, under the budget.
static int call_with_key_json(avm *vm, lua_CFunction fn, const char *key, size_t key_len, const char *json, size_t json_len) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, fn);
    lua_pushlstring(L, key, key_len);
    lua_pushlightuserdata(L, (void *)json);
    lua_pushinteger(L, (lua_Integer)json_len);
    avm_reset_budget(vm);
    return avm_finish_call(vm, lua_pcall(L, 3, 0, 0), AVM_OK);
}

int avm_provide_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    return call_with_key_json(vm, provide_protected, key, key_len, json, json_len);
}

// --- writing states out -------------------------------------------------------

/// A record length, little-endian on every machine (snapshot chunks store records as
/// they are written here, and a database file may move between machines).
static void le32(unsigned char *p, size_t n) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(n >> (8 * i));
}

static void put_u32(lua_State *L, abuf *b, size_t n) {
    unsigned char v[4];
    le32(v, n);
    if (!abuf_put(b, v, 4)) luaL_error(L, "out of memory");
}

typedef struct {
    uint64_t prefix[2];  // the key's first 16 bytes, big-endian: most comparisons end here
    const char *s;
    size_t len;
    size_t at, size;     // its record in vm->records
} fkey;

/// Sorts slots ascending, a byte at a time (qsort's calls cost a tenth of a flush).
static void sort_slots(uint32_t *a, uint32_t *tmp, size_t n) {
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) max = a[i] > max ? a[i] : max;
    for (int shift = 0; shift < 32 && (max >> shift); shift += 8) {
        size_t at[257] = { 0 };
        for (size_t i = 0; i < n; i++) at[((a[i] >> shift) & 0xFF) + 1]++;
        for (int b = 0; b < 256; b++) at[b + 1] += at[b];
        for (size_t i = 0; i < n; i++) tmp[at[(a[i] >> shift) & 0xFF]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

static int fkey_cmp(const void *a, const void *b) {
    const fkey *x = a, *y = b;
    for (int i = 0; i < 2; i++) {
        if (x->prefix[i] != y->prefix[i]) return x->prefix[i] < y->prefix[i] ? -1 : 1;
    }
    if (x->len <= 16 || y->len <= 16) return (x->len > y->len) - (x->len < y->len);
    size_t n = (x->len < y->len ? x->len : y->len) - 16;
    int c = memcmp(x->s + 16, y->s + 16, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void set_prefix(fkey *k) {
    unsigned char buf[16] = { 0 };
    memcpy(buf, k->s, k->len < 16 ? k->len : 16);
    for (int i = 0; i < 2; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v = (v << 8) | buf[i * 8 + j];
        k->prefix[i] = v;
    }
}

/// Writes the changed states in key order: the read-model table's B-tree is keyed the
/// same way, so the inserts that follow touch its pages in sequence.
///
/// They are serialised in slot order, then their records put in key order. Slots are
/// given out as keys first come, and a state's table, fields and strings are mostly
/// allocated then too, so slot order walks the heap roughly in address order; in key
/// order, serialising missed the cache at every state.
static int flush_protected(lua_State *L) {
    avm *vm = avm_of(L);
    vm->out.len = 0;
    vm->records.len = 0;
    size_t candidates = vm->all_dirty ? vm->keys.count : vm->ndirty;
    fkey *keys = lua_newuserdatauv(L, (candidates ? candidates : 1) * sizeof(fkey), 0);  // 1
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);    // 2
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_kept);      // 3
    // In slot order (all_dirty goes through the slots in order).
    if (!vm->all_dirty) sort_slots(vm->dirty, lua_newuserdatauv(L, (candidates ? candidates : 1) * sizeof(uint32_t), 0), candidates);
    size_t count = 0;
    abuf *records = &vm->records;
    for (size_t i = 0; i < candidates; i++) {
        uint32_t slot = vm->all_dirty ? (uint32_t)i : vm->dirty[i];
        fkey *k = &keys[count];
        // The state kept for the flush, when the one in memory is not the one to write.
        int kept = !vm->all_dirty && (vm->keys.slots[slot].flags & KEY_KEPT);
        // With all_dirty, every state in memory; a key whose state could not be stored
        // has none.
        if (lua_rawgeti(L, kept ? 3 : 2, (lua_Integer)slot + 1) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        k->s = keymap_key(&vm->keys, slot);
        k->len = vm->keys.slots[slot].len;
        set_prefix(k);
        k->at = records->len;
        put_u32(L, records, k->len);
        if (!abuf_put(records, k->s, k->len)) return luaL_error(L, "out of memory");
        size_t at = records->len;
        put_u32(L, records, 0);
        avm_write_json(vm, L, -1, records, 0, k->s);
        lua_pop(L, 1);
        le32((unsigned char *)records->data + at, records->len - at - 4);
        k->size = records->len - k->at;
        count++;
    }
    qsort(keys, count, sizeof(fkey), fkey_cmp);
    if (!abuf_reserve(&vm->out, records->len)) return luaL_error(L, "out of memory");
    for (size_t i = 0; i < count; i++) {
        memcpy(vm->out.data + vm->out.len, records->data + keys[i].at, keys[i].size);
        vm->out.len += keys[i].size;
    }
    states_flushed(vm, L);
    vm->all_dirty = 0;  // from now on, track what changes
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

int avm_flush(avm *vm, const char **records, size_t *len, size_t *count) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, flush_protected);
    avm_reset_budget(vm);
    int status = lua_pcall(L, 0, 1, 0);
    *count = status == LUA_OK ? (size_t)lua_tointeger(L, -1) : 0;
    int r = avm_finish_call(vm, status, AVM_OK);
    *records = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

static int evict_protected(lua_State *L) {
    states_evict(avm_of(L), L);
    return 0;
}

int avm_evict(avm *vm) {
    lua_pushcfunction(vm->L, evict_protected);
    avm_reset_budget(vm);
    int r = avm_finish_call(vm, lua_pcall(vm->L, 0, 0, 0), AVM_OK);
    vm->assume_absent = 0;  // what was evicted is stored now
    lua_gc(vm->L, LUA_GCCOLLECT);
    return r;
}

static int state_json_protected(lua_State *L) {
    avm *vm = avm_of(L);
    vm->out.len = 0;
    size_t key_len;
    const char *key = lua_tolstring(L, 1, &key_len);
    if (states_push(vm, L, states_find(vm, key, key_len, states_hash(vm, key, key_len))) == LUA_TNIL) { lua_pushinteger(L, AVM_SKIPPED); return 1; }
    avm_write_json(vm, L, -1, &vm->out, 0, key);
    lua_pushinteger(L, AVM_OK);
    return 1;
}

int avm_state_json(avm *vm, const char *key, size_t key_len, const char **json, size_t *len) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, state_json_protected);
    lua_pushlstring(L, key, key_len);
    avm_reset_budget(vm);
    int status = lua_pcall(L, 1, 1, 0);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    int r = avm_finish_call(vm, status, result);
    *json = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

static int merge_protected(lua_State *L) {
    avm *vm = avm_of(L);
    size_t key_len;
    const char *key = lua_tolstring(L, 1, &key_len);
    const char *json = lua_touserdata(L, 2);
    size_t json_len = (size_t)lua_tointeger(L, 3);
    uint32_t hash = states_hash(vm, key, key_len);
    long slot = states_find(vm, key, key_len, hash);
    if (states_push(vm, L, slot) == LUA_TNIL) {           // 4: the running state
        lua_pop(L, 1);
        push_initial(vm, L, key, key_len);
        vm->resident++;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_merge);
    lua_pushvalue(L, 4);
    avm_push_json(vm, L, json, json_len, "a partial state");
    lua_call(L, 2, 1);                                     // 5: merged
    if (!lua_istable(L, 5)) return luaL_error(L, "merge must return the combined state (a table), not a %s", luaL_typename(L, 5));
    slot = states_set(vm, L, slot, key, key_len, hash);
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    return 0;
}

int avm_merge(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    return call_with_key_json(vm, merge_protected, key, key_len, json, json_len);
}
