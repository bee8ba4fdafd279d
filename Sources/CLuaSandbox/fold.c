// Folding events into keyed states, and writing the states out as canonical JSON.
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

// --- folding ------------------------------------------------------------------

/// The names of e's fields, in AVM_FIELD_* bit order: pushed onto the stack once per
/// call into the VM (push_event_names), so that building e copies each name from there
/// instead of finding the C string in Lua's string cache (lua_setfield) per field.
static const char *const event_field_names[] = { "seq", "id", "stream", "version", "type", "occurred_at", "recorded_at", "data", "meta" };
#define EVENT_FIELDS (sizeof event_field_names / sizeof *event_field_names)

/// Pushes the field names; returns the stack index of the first.
static int push_event_names(lua_State *L) {
    luaL_checkstack(L, EVENT_FIELDS, "event field names");
    for (size_t i = 0; i < EVENT_FIELDS; i++) lua_pushstring(L, event_field_names[i]);
    return lua_gettop(L) - (int)EVENT_FIELDS + 1;
}

#define FIELD(bit) (names + __builtin_ctz(bit))
#define SET_STRING(bit, ptr, n) (lua_pushvalue(L, FIELD(bit)), lua_pushlstring(L, (ptr), (n)), lua_rawset(L, -3))
#define SET_INT(bit, v) (lua_pushvalue(L, FIELD(bit)), lua_pushinteger(L, (lua_Integer)(v)), lua_rawset(L, -3))

/// Builds `e` with the fields the projection's code can read (see avm_set_event_fields):
/// each field skipped saves a string or table allocation per event. `names` is where
/// push_event_names put the field names.
static void push_event(avm *vm, lua_State *L, const avm_event *e, int names) {
    unsigned f = vm->event_fields;
    lua_createtable(L, 0, __builtin_popcount(f));
    if (f & AVM_FIELD_SEQ) SET_INT(AVM_FIELD_SEQ, e->seq);
    if (f & AVM_FIELD_ID) SET_STRING(AVM_FIELD_ID, e->id, e->id_len);
    if (f & AVM_FIELD_STREAM) SET_STRING(AVM_FIELD_STREAM, e->stream, e->stream_len);
    if (f & AVM_FIELD_VERSION) SET_INT(AVM_FIELD_VERSION, e->version);
    if (f & AVM_FIELD_TYPE) SET_STRING(AVM_FIELD_TYPE, e->type, e->type_len);
    if (f & AVM_FIELD_OCCURRED_AT) SET_STRING(AVM_FIELD_OCCURRED_AT, e->occurred_at, e->occurred_at_len);
    if (f & AVM_FIELD_RECORDED_AT) SET_STRING(AVM_FIELD_RECORDED_AT, e->recorded_at, e->recorded_at_len);
    if (f & AVM_FIELD_DATA) {
        lua_pushvalue(L, FIELD(AVM_FIELD_DATA));
        avm_push_json(vm, L, e->data, e->data_len, "event data", AVM_JSON_EVENT);
        lua_rawset(L, -3);
    }
    if (f & AVM_FIELD_META) {
        lua_pushvalue(L, FIELD(AVM_FIELD_META));
        avm_push_json(vm, L, e->meta, e->meta_len, "event meta", AVM_JSON_EVENT);
        lua_rawset(L, -3);
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
    if (vm->init_takes_key) {
        lua_pushlstring(L, key, len);
        lua_call(L, 1, 1);
    } else {
        lua_call(L, 0, 1);  // it cannot see the key: no string made for it
    }
    if (!lua_istable(L, -1)) luaL_error(L, "init must return a table, not a %s", luaL_typename(L, -1));
}

/// Handlers by event type, looked up once per batch: each lookup made a Lua string of
/// the type (hashing and interning it) for every event.
#define TYPE_CACHE 16
#define TYPE_CACHE_NAME 48
typedef struct {
    size_t len;
    char name[TYPE_CACHE_NAME];
    int engine;   // the engine's own records (`is_engine_record`), cached apart
    int handler;  // stack index of the handler, 0: none
} type_entry;

typedef struct {
    type_entry types[TYPE_CACHE];
    size_t ntypes;
    int on;       // stack index of the handlers table
} type_cache;

/// What is known of an event before it is folded: looked at a few events ahead, so that
/// its key's entries are fetched into cache while the events before it are folded.
typedef struct {
    int handler;    // stack index of the handler; 0: skipped; -1: look it up when applied
    uint32_t hash;  // the key's, when it is known before the event is built
    long slot;      // the key's slot; -1: not in memory when looked; -2: not looked up
} event_look;

static int stream_matches(const avm *vm, const avm_event *e) {
    if (!vm->glob) return 1;
    if (vm->glob_prefix >= 0)
        return e->stream_len >= (size_t)vm->glob_prefix && memcmp(e->stream, vm->glob, (size_t)vm->glob_prefix) == 0;
    return fnmatch(vm->glob, e->stream, 0) == 0;
}

/// Whether the event is a record the engine appends about itself: `CodeBuilt` on a stream
/// `audit-code-NAME` (each build a replay promotes) or `QueryRecorded` on `audit-query-NAME`
/// (each new text of a saved query that an export or report ran). It reaches a handler
/// named for its type, never `on["*"]`: a catch-all projection would otherwise fold the
/// record of its own build, and lag behind the log after every replay. `EngineRecords` in
/// Swift says the same.
static int is_engine_record(const avm_event *e) {
    if (e->type_len == 9 && memcmp(e->type, "CodeBuilt", 9) == 0)
        return e->stream_len >= 11 && memcmp(e->stream, "audit-code-", 11) == 0;
    if (e->type_len == 13 && memcmp(e->type, "QueryRecorded", 13) == 0)
        return e->stream_len >= 12 && memcmp(e->stream, "audit-query-", 12) == 0;
    return 0;
}

/// Pushes the handler of the event's type from the handlers table at `on`, else its catch-all
/// `on["*"]` (not for `is_engine_record` events); whether there is one (when not, nothing is
/// left pushed).
static int push_handler(lua_State *L, int on, const avm_event *e) {
    lua_pushlstring(L, e->type, e->type_len);
    if (lua_rawget(L, on) == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    if (is_engine_record(e)) return 0;
    lua_pushliteral(L, "*");
    if (lua_rawget(L, on) == LUA_TFUNCTION) return 1;
    lua_pop(L, 1);
    return 0;
}

/// The handler of the event's type: a stack index, 0 for none; -1 when there is no cache.
static int handler_for(lua_State *L, type_cache *c, const avm_event *e) {
    if (!c) return -1;
    int engine = is_engine_record(e);
    for (size_t i = 0; i < c->ntypes; i++) {
        type_entry *t = &c->types[i];
        if (t->len == e->type_len && t->engine == engine && memcmp(t->name, e->type, e->type_len) == 0) return t->handler;
    }
    if (c->ntypes == TYPE_CACHE || e->type_len > TYPE_CACHE_NAME) return -1;
    type_entry *t = &c->types[c->ntypes++];
    t->len = e->type_len;
    t->engine = engine;
    memcpy(t->name, e->type, e->type_len);
    t->handler = push_handler(L, c->on, e) ? lua_gettop(L) : 0;  // stays on the stack for the batch
    return t->handler;
}

/// The key's bytes when they are known before the event is built.
static int known_key(const avm *vm, const avm_event *e, const char **key, size_t *len) {
    if (vm->key_mode == AVM_KEY_STREAM) { *key = e->stream; *len = e->stream_len; return 1; }
    if (vm->key_mode == AVM_KEY_GLOBAL) { *key = "global"; *len = 6; return 1; }
    return 0;
}

/// First look: whether the event is folded, and its key's hash (its entry in the key
/// map is fetched meanwhile).
static void look(avm *vm, lua_State *L, type_cache *c, const avm_event *e, event_look *a) {
    a->slot = -2;
    a->handler = 0;
    if (!stream_matches(vm, e)) return;
    a->handler = handler_for(L, c, e);
    const char *key;
    size_t len;
    if (a->handler && known_key(vm, e, &key, &len)) {
        a->hash = states_hash(vm, key, len);
        keymap_prefetch(&vm->keys, a->hash);
    }
}

/// Second look: the key's slot; its flags and its entry in ref_states are fetched.
static void locate(avm *vm, const avm_event *e, event_look *a) {
    const char *key;
    size_t len;
    if (!a->handler || !known_key(vm, e, &key, &len)) return;
    a->slot = states_find(vm, key, len, a->hash);
    if (a->slot < 0) return;
    __builtin_prefetch(&vm->keys.slots[a->slot], 1);
    states_prefetch_entry(vm, a->slot);
}

/// Third look: the state's table and its fields are fetched.
static void warm(const avm *vm, const event_look *a) {
    if (a->slot >= 0) states_prefetch_state(vm, a->slot);
}

/// Whether avm_provide_state said that this key, the one an event was waiting for, has
/// no stored state (its init then runs with the event, under the event's budget, as for
/// a key that was never stored: the budget of an event does not depend on which states
/// were in memory).
static int pending_absent(avm *vm, const char *key, size_t len) {
    if (!vm->pending_absent || !vm->pending.data || vm->pending.len != len || memcmp(vm->pending.data, key, len) != 0) return 0;
    vm->pending_absent = 0;
    return 1;
}

/// Folds one event that was looked at; the stack is as it was after.
static int apply_looked(avm *vm, lua_State *L, const avm_event *e, event_look *a, int names) {
    if (!a->handler) return AVM_SKIPPED;
    vm->key_known = 0;
    if (vm->next_cached) avm_ordered_reset(vm, L);  // next() starts afresh at each event
    int base = lua_gettop(L);
    int handler = a->handler;
    if (handler < 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_on);
        if (!push_handler(L, lua_gettop(L), e)) { lua_settop(L, base); return AVM_SKIPPED; }
        handler = lua_gettop(L);
    }
    // The key's bytes; a Lua string only when the key function made one.
    const char *key;
    size_t key_len;
    uint32_t hash = a->hash;
    int known = known_key(vm, e, &key, &key_len);
    push_event(vm, L, e, names);
    int ev = lua_gettop(L);
    if (!known) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_key);
        lua_pushvalue(L, ev);
        lua_call(L, 1, 1);
        int k = lua_gettop(L);
        if (lua_isnil(L, k)) { lua_settop(L, base); return AVM_SKIPPED; }
        if (lua_isinteger(L, k)) {
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, k));
            lua_replace(L, k);
        } else if (lua_type(L, k) != LUA_TSTRING) {
            return luaL_error(L, "the key function must return a string, an integer or nil, not a %s", luaL_typename(L, k));
        }
        key = lua_tolstring(L, k, &key_len);
        hash = states_hash(vm, key, key_len);
    }
    vm->last_key.len = 0;
    if (!abuf_put(&vm->last_key, key, key_len)) return luaL_error(L, "out of memory");
    vm->key_known = 1;
    // A parked key's events are dead letters, not folded (a count test when none is).
    if ((vm->parked.count || vm->only_parked) && avm_parked_skip(vm, L, key, key_len, e->seq)) { lua_settop(L, base); return AVM_SKIPPED; }
    // A slot found ahead stays valid (keys are only ever added here); a key not found
    // then may have been added since.
    long slot = a->slot >= 0 ? a->slot : states_find(vm, key, key_len, hash);
    // A key new to memory is checked once: it must be stored as text and read back.
    if (slot < 0 && vm->key_mode != AVM_KEY_GLOBAL) avm_check_key(L, key, key_len, vm->key_mode == AVM_KEY_FUNCTION);
    // Its flags and seq are set after the handler: fetched meanwhile (measured: the
    // miss on them was a twentieth of a replay's time).
    if (slot >= 0) __builtin_prefetch(&vm->keys.slots[slot], 1);
    if (states_push(vm, L, slot) == LUA_TNIL) {
        lua_pop(L, 1);
        if (!vm->assume_absent && !pending_absent(vm, key, key_len)) {
            vm->pending_absent = 0;
            vm->pending.len = 0;
            if (!abuf_put(&vm->pending, key, key_len)) return luaL_error(L, "out of memory");
            lua_settop(L, base);
            return AVM_NEED_STATE;
        }
        push_initial(vm, L, key, key_len);
        lua_pushvalue(L, -1);
        slot = states_set(vm, L, slot, key, key_len, hash);
        vm->resident++;
    }
    int state = lua_gettop(L);
    lua_pushvalue(L, handler);
    lua_pushvalue(L, state);
    lua_pushvalue(L, ev);
    lua_call(L, 2, 1);
    if (lua_istable(L, -1)) {
        state = lua_gettop(L);
        lua_pushvalue(L, state);
        states_set(vm, L, slot, key, key_len, hash);
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "a handler must change s in place or return a new state table, not a %s", luaL_typename(L, -1));
    } else {
        states_note(vm, L, slot, state);  // its fields may have moved
    }
    // Named when the state cannot be written out at the next checkpoint.
    vm->keys.slots[slot].seq = e->seq;
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    // What the event did is checked now, not when states are next written out: the
    // outcome must not depend on where checkpoints fall.
    avm_check_state(vm, L, state, slot);
    if (vm->nwatched) avm_check_watched(vm, L);
    lua_settop(L, base);
    return AVM_OK;
}

static int apply_protected(lua_State *L) {
    avm *vm = avm_of(L);
    const avm_event *e = lua_touserdata(L, 1);
    event_look a;
    int names = push_event_names(L);
    look(vm, L, NULL, e, &a);
    lua_pushinteger(L, apply_looked(vm, L, e, &a, names));
    return 1;
}

int avm_apply(avm *vm, const avm_event *event) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, apply_protected);
    lua_pushlightuserdata(L, (void *)event);
    avm_reset_budget(vm);
    avm_watch_enter(vm);
    int status = avm_pcall(vm, 1, 1);
    avm_watch_leave(vm);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    return avm_finish_call(vm, status, result);
}

// How far ahead of the event being folded each look is made: each fetch has the time
// of a few events' folding to arrive.
#define AHEAD_LOOK 6
#define AHEAD_LOCATE 4
#define AHEAD_WARM 2
#define AHEAD_RING 16  // more than AHEAD_LOOK: an event's look is kept until it is folded
_Static_assert(AHEAD_RING > AHEAD_LOOK, "the ring holds every look in flight");

static int batch_protected(lua_State *L) {
    avm *vm = avm_of(L);
    avm_batch *b = lua_touserdata(L, 1);
    type_cache c;
    c.ntypes = 0;
    luaL_checkstack(L, TYPE_CACHE + 4, "handlers");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_on);
    c.on = lua_gettop(L);
    int names = push_event_names(L);
    event_look ring[AHEAD_RING];
    size_t from = b->at, n = b->count;
#define MINE(i) (!b->hashes || b->hashes[i] % b->parts == b->part)
#define LOOK(i) do { if (MINE(i)) look(vm, L, &c, &b->events[i], &ring[(i) % AHEAD_RING]); else ring[(i) % AHEAD_RING] = (event_look){ 0, 0, -2 }; } while (0)
    for (size_t i = from; i < n && i < from + AHEAD_LOOK; i++) LOOK(i);
    for (size_t i = from; i < n && i < from + AHEAD_LOCATE; i++) locate(vm, &b->events[i], &ring[i % AHEAD_RING]);
    for (size_t i = from; i < n && i < from + AHEAD_WARM; i++) warm(vm, &ring[i % AHEAD_RING]);
    for (size_t i = from; i < n; i++) {
        b->at = i;  // a failure while looking ahead (memory) is this event's too
        if (i + AHEAD_LOOK < n) LOOK(i + AHEAD_LOOK);
        if (i + AHEAD_LOCATE < n) locate(vm, &b->events[i + AHEAD_LOCATE], &ring[(i + AHEAD_LOCATE) % AHEAD_RING]);
        if (i + AHEAD_WARM < n) warm(vm, &ring[(i + AHEAD_WARM) % AHEAD_RING]);
        event_look *a = &ring[i % AHEAD_RING];
        if (!a->handler) continue;
        avm_reset_budget(vm);
        int r = apply_looked(vm, L, &b->events[i], a, names);
        // A limit the script caught with its own pcall still fails the event.
        if (avm_limit_hit(vm)) return 0;
        if (r == AVM_NEED_STATE) { b->status = r; return 0; }
        if (r == AVM_OK) {
            b->applied++;
            b->last_seq = b->events[i].seq;
        }
    }
#undef LOOK
#undef MINE
    b->at = n;
    b->status = AVM_OK;
    return 0;
}

int avm_apply_batch(avm *vm, avm_batch *batch) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, batch_protected);
    lua_pushlightuserdata(L, batch);
    batch->status = AVM_ERROR;
    avm_reset_budget(vm);
    avm_watch_enter(vm);
    int status = avm_pcall(vm, 1, 0);  // before batch->status is read: C does not order arguments
    avm_watch_leave(vm);
    return avm_finish_call(vm, status, batch->status);
}

/// The arguments of a function that call_with_key_json calls (key, JSON pointer, JSON
/// length), with the key's hash and its slot in memory (-1: none).
typedef struct {
    const char *key, *json;
    size_t key_len, json_len;
    uint32_t hash;
    long slot;
} key_json_args;

static key_json_args key_json_of(avm *vm, lua_State *L) {
    key_json_args a;
    a.key = lua_tolstring(L, 1, &a.key_len);
    a.json = lua_touserdata(L, 2);
    a.json_len = (size_t)lua_tointeger(L, 3);
    a.hash = states_hash(vm, a.key, a.key_len);
    a.slot = states_find(vm, a.key, a.key_len, a.hash);
    return a;
}

static int provide_protected(lua_State *L) {
    avm *vm = avm_of(L);
    key_json_args a = key_json_of(vm, L);
    const char *key = a.key, *json = a.json;
    size_t key_len = a.key_len, json_len = a.json_len;
    uint32_t hash = a.hash;
    long slot = a.slot;
    if (!json && vm->pending.data && vm->pending.len == key_len && memcmp(vm->pending.data, key, key_len) == 0) {
        if (slot >= 0) states_keep_for_flush(vm, L, slot);
        vm->pending_absent = 1;  // init runs when the event is applied again
        return 0;
    }
    if (json) {
        avm_push_json(vm, L, json, json_len, "stored state", AVM_JSON_STATE);
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
    avm_watch_enter(vm);
    int status = avm_pcall(vm, 3, 0);
    avm_watch_leave(vm);
    return avm_finish_call(vm, status, AVM_OK);
}

int avm_provide_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    return call_with_key_json(vm, provide_protected, key, key_len, json, json_len);
}

/// avm_set_state: a key's state replaced (or dropped), and marked changed.
static int set_state_protected(lua_State *L) {
    avm *vm = avm_of(L);
    key_json_args a = key_json_of(vm, L);
    if (a.json) {
        avm_push_json(vm, L, a.json, a.json_len, "stored state", AVM_JSON_STATE);
        if (!lua_istable(L, -1)) return luaL_error(L, "stored state is not a JSON object");
        if (a.slot < 0) vm->resident++;
    } else {
        if (a.slot < 0) return 0;  // not in memory: nothing to drop
        lua_pushnil(L);
    }
    long slot = states_set(vm, L, a.slot, a.key, a.key_len, a.hash);
    // Marked changed (and no longer kept as it was): the next flush writes this state,
    // or, when dropped, nothing for the key.
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    return 0;
}

int avm_set_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    return call_with_key_json(vm, set_state_protected, key, key_len, json, json_len);
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

/// Writes the changed states in slot order: slots are given out as keys first come,
/// and a state's table, fields and strings are mostly allocated then too, so slot order
/// walks the heap roughly in address order (in key order, serialising missed the cache
/// at every state). avm_sort_records puts them in key order, off the replay's thread.
#define FLUSH_AHEAD 4

static int flush_protected(lua_State *L) {
    avm *vm = avm_of(L);
    abuf *out = &vm->out;
    out->len = 0;
    size_t candidates = vm->all_dirty ? vm->keys.count : vm->ndirty;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);    // 1
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_kept);      // 2
    // In slot order (all_dirty goes through the slots in order).
    if (!vm->all_dirty) sort_slots(vm->dirty, lua_newuserdatauv(L, (candidates ? candidates : 1) * sizeof(uint32_t), 0), candidates);
    size_t count = 0;
    for (size_t i = 0; i < candidates; i++) {
        if (i + FLUSH_AHEAD < candidates) {
            // The state a few ahead: its entry, table and fields.
            uint32_t ahead = vm->all_dirty ? (uint32_t)(i + FLUSH_AHEAD) : vm->dirty[i + FLUSH_AHEAD];
            states_prefetch_entry(vm, ahead);
            states_prefetch_state(vm, ahead);
        }
        uint32_t slot = vm->all_dirty ? (uint32_t)i : vm->dirty[i];
        // The state kept for the flush, when the one in memory is not the one to write.
        int kept = !vm->all_dirty && (vm->keys.slots[slot].flags & KEY_KEPT);
        // With all_dirty, every state in memory; a key whose state could not be stored
        // has none.
        if ((kept ? lua_rawgeti(L, 2, (lua_Integer)slot + 1) : states_push_in(L, 1, slot)) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        const char *key = keymap_key(&vm->keys, slot);
        size_t key_len = vm->keys.slots[slot].len;
        vm->json_before = out->len;
        put_u32(L, out, key_len);
        if (!abuf_put(out, key, key_len)) return luaL_error(L, "out of memory");
        size_t at = out->len;
        put_u32(L, out, 0);
        vm->flush_seq = vm->keys.slots[slot].seq;
        avm_write_json(vm, L, -1, out, 0, key);
        lua_pop(L, 1);
        vm->keys.slots[slot].flags &= ~KEY_LARGE;  // checked again after its next event
        le32((unsigned char *)out->data + at, out->len - at - 4);
        count++;
    }
    states_flushed(vm, L);
    vm->all_dirty = 0;  // from now on, track what changes
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

int64_t avm_flush_failed_seq(const avm *vm) { return vm->flush_seq; }

int avm_flush(avm *vm, const char **records, size_t *len, size_t *count) {
    lua_State *L = vm->L;
    vm->flush_seq = 0;
    lua_pushcfunction(L, flush_protected);
    avm_reset_budget(vm);
    int status = avm_pcall(vm, 0, 1);
    *count = status == LUA_OK ? (size_t)lua_tointeger(L, -1) : 0;
    int r = avm_finish_call(vm, status, AVM_OK);
    *records = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

static int evict_protected(lua_State *L) {
    avm_of(L)->pending_absent = 0;
    states_evict(avm_of(L), L);
    return 0;
}

int avm_evict(avm *vm) {
    lua_pushcfunction(vm->L, evict_protected);
    avm_reset_budget(vm);
    int r = avm_finish_call(vm, avm_pcall(vm, 0, 0), AVM_OK);
    vm->assume_absent = 0;  // what was evicted is stored now
    lua_gc(vm->L, LUA_GCCOLLECT);
    avm_pool_give_back(vm);  // the states' slabs are the system's again
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
    int status = avm_pcall(vm, 1, 1);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    int r = avm_finish_call(vm, status, result);
    *json = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

static int merge_protected(lua_State *L) {
    avm *vm = avm_of(L);
    if (vm->next_cached) avm_ordered_reset(vm, L);
    key_json_args a = key_json_of(vm, L);
    const char *key = a.key, *json = a.json;
    size_t key_len = a.key_len, json_len = a.json_len;
    uint32_t hash = a.hash;
    long slot = a.slot;
    vm->pending_absent = 0;
    if (states_push(vm, L, slot) == LUA_TNIL) {           // 4: the running state
        lua_pop(L, 1);
        push_initial(vm, L, key, key_len);
        vm->resident++;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_merge);
    lua_pushvalue(L, 4);
    avm_push_json(vm, L, json, json_len, "a partial state", AVM_JSON_STATE);
    lua_call(L, 2, 1);                                     // 5: merged
    if (!lua_istable(L, 5)) return luaL_error(L, "merge must return the combined state (a table), not a %s", luaL_typename(L, 5));
    lua_pushvalue(L, 5);
    slot = states_set(vm, L, slot, key, key_len, hash);
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    avm_check_state(vm, L, 5, slot);
    if (vm->nwatched) avm_check_watched(vm, L);
    return 0;
}

int avm_merge(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    return call_with_key_json(vm, merge_protected, key, key_len, json, json_len);
}
