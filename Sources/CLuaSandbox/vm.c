// The projection VM: one lua_State, its limits, the spec, and the keyed states.
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static avm *vm_of(lua_State *L) { return *(avm **)lua_getextraspace(L); }

// --- limits -------------------------------------------------------------------

static void *pool_get(apool *pool, size_t size) {
    size_t c = (size + POOL_GRAIN - 1) / POOL_GRAIN;
    void *block = pool->free_list[c];
    if (block) {
        pool->free_list[c] = *(void **)block;
        return block;
    }
    size_t bytes = c * POOL_GRAIN;
    if (pool->left < bytes) {
        char *chunk = malloc(POOL_CHUNK);
        if (!chunk) return NULL;
        *(void **)chunk = pool->chunks;
        pool->chunks = chunk;
        pool->cursor = chunk + POOL_GRAIN;  // the first grain holds the link
        pool->left = POOL_CHUNK - POOL_GRAIN;
    }
    block = pool->cursor;
    pool->cursor += bytes;
    pool->left -= bytes;
    return block;
}

static void pool_put(apool *pool, void *block, size_t size) {
    size_t c = (size + POOL_GRAIN - 1) / POOL_GRAIN;
    *(void **)block = pool->free_list[c];
    pool->free_list[c] = block;
}

static void pool_release(apool *pool) {
    while (pool->chunks) {
        void *next = *(void **)pool->chunks;
        free(pool->chunks);
        pool->chunks = next;
    }
}

static void *raw_alloc(apool *pool, size_t size) { return size <= POOL_MAX ? pool_get(pool, size) : malloc(size); }
static void raw_free(apool *pool, void *p, size_t size) { if (size <= POOL_MAX) pool_put(pool, p, size); else free(p); }

/// Refuses growth past the cap, always allows frees and shrinks. When ptr is NULL,
/// osize is a type tag, not a size. Lua always passes a block's true size, so small
/// blocks can come from (and return to) the pool.
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    avm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (ptr) raw_free(&vm->pool, ptr, osize);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->mem_used - old + nsize > vm->mem_limit) {
        vm->mem_exceeded = 1;
        return NULL;
    }
    void *p;
    if (!ptr) {
        p = raw_alloc(&vm->pool, nsize);
    } else if (old <= POOL_MAX && nsize <= POOL_MAX && (old + POOL_GRAIN - 1) / POOL_GRAIN == (nsize + POOL_GRAIN - 1) / POOL_GRAIN) {
        p = ptr;  // same size class
    } else if (old > POOL_MAX && nsize > POOL_MAX) {
        p = realloc(ptr, nsize);
    } else {
        p = raw_alloc(&vm->pool, nsize);
        if (p) {
            memcpy(p, ptr, old < nsize ? old : nsize);
            raw_free(&vm->pool, ptr, old);
        }
    }
    if (!p) {
        if (nsize > old) vm->mem_exceeded = 1;
        return NULL;
    }
    vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

/// Fires every AVM_HOOK_COUNT instructions. Once the budget is spent it fails every
/// time it fires, so a script's pcall cannot swallow it and go on.
static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    avm *vm = vm_of(L);
    if (vm->loading) return;
    if (--vm->budget_left <= 0) {
        vm->budget_exceeded = 1;
        // From now on fire on every instruction: a script that catches this error with
        // pcall is stopped again at its very next instruction outside that pcall.
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction budget exceeded");
    }
}

static int on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "audit: unprotected Lua error (a bug in the engine): %s\n", msg ? msg : "?");
    abort();
}

static void reset_budget(avm *vm) {
    if (vm->budget_exceeded) lua_sethook(vm->L, budget_hook, LUA_MASKCOUNT, AVM_HOOK_COUNT);
    vm->budget_left = vm->budget / AVM_HOOK_COUNT + 1;
    vm->budget_exceeded = 0;
    vm->mem_exceeded = 0;
}

static void set_error(avm *vm, const char *msg) {
    free(vm->error);
    vm->error = strdup(msg ? msg : "unknown error");
}

/// After a pcall: turn a failure (or a limit the script caught with its own pcall)
/// into vm->error. Returns AVM_ERROR or the status given.
static int finish_call(avm *vm, int status, int ok_result) {
    lua_State *L = vm->L;
    char buf[256];
    if (vm->mem_exceeded) {
        snprintf(buf, sizeof buf, "memory limit of %zu MB exceeded", vm->mem_limit >> 20);
        set_error(vm, buf);
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    if (vm->budget_exceeded) {
        snprintf(buf, sizeof buf, "instruction budget of %lld instructions exceeded (an endless loop?)", (long long)vm->budget);
        set_error(vm, buf);
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    if (status != LUA_OK) {
        int t = lua_type(L, -1);
        if (t == LUA_TSTRING) set_error(vm, lua_tostring(L, -1));
        else if (t == LUA_TNUMBER) { lua_Number n = lua_tonumber(L, -1); snprintf(buf, sizeof buf, "error(%.14g)", (double)n); set_error(vm, buf); }
        else { snprintf(buf, sizeof buf, "error thrown with a %s value instead of a message", lua_typename(L, t)); set_error(vm, buf); }
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    lua_settop(L, 0);
    return ok_result;
}

// --- life cycle ---------------------------------------------------------------

static int new_ref_table(lua_State *L) {
    lua_newtable(L);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int setup_protected(lua_State *L) {
    avm *vm = vm_of(L);
    avm_open_sandbox(L);
    vm->ref_modules = new_ref_table(L);
    vm->ref_loaded = new_ref_table(L);
    vm->ref_states = new_ref_table(L);
    vm->ref_dirty = new_ref_table(L);
    // The projection's environment: reads fall through to the globals.
    lua_newtable(L);
    lua_newtable(L);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    vm->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

avm *avm_new(size_t memory_limit, int64_t instruction_budget) {
    avm *vm = calloc(1, sizeof *vm);
    if (!vm) return NULL;
    vm->mem_limit = (size_t)1 << 30;  // generous while the libraries open
    vm->budget = instruction_budget;
    vm->loading = 1;
    vm->ref_spec = vm->ref_on = vm->ref_init = vm->ref_key = LUA_NOREF;
    vm->event_fields = AVM_FIELD_ALL;
    vm->L = lua_newstate(limited_alloc, vm);
    if (!vm->L) { free(vm); return NULL; }
    *(avm **)lua_getextraspace(vm->L) = vm;
    lua_atpanic(vm->L, on_panic);
    // Set once, now: a hook must exist before any thread is created to apply to it.
    lua_sethook(vm->L, budget_hook, LUA_MASKCOUNT, AVM_HOOK_COUNT);
    lua_pushcfunction(vm->L, setup_protected);
    int status = lua_pcall(vm->L, 0, 0, 0);
    vm->loading = 0;
    if (status != LUA_OK) { avm_free(vm); return NULL; }
    // Generational GC: each event leaves short-lived garbage (its tables) while the
    // states held between checkpoints are long-lived; the incremental collector would
    // re-mark all of them on every cycle.
    lua_gc(vm->L, LUA_GCGEN, 0, 0);
    vm->mem_limit = memory_limit;
    return vm;
}

void avm_free(avm *vm) {
    if (!vm) return;
    if (vm->L) lua_close(vm->L);
    pool_release(&vm->pool);
    free(vm->glob);
    free(vm->pending.data);
    free(vm->out.data);
    free(vm->scratch.data);
    free(vm->path.data);
    free(vm->error);
    free(vm);
}

void avm_set_limits(avm *vm, size_t memory_limit, int64_t instruction_budget) {
    vm->mem_limit = memory_limit;
    vm->budget = instruction_budget;
}

const char *avm_error(const avm *vm) { return vm->error ? vm->error : ""; }
size_t avm_memory_used(const avm *vm) { return vm->mem_used; }
size_t avm_memory_limit(const avm *vm) { return vm->mem_limit; }
size_t avm_resident(const avm *vm) { return vm->resident; }
int avm_key_mode(const avm *vm) { return vm->key_mode; }
void avm_assume_no_stored_states(avm *vm, int flag) {
    vm->assume_absent = flag;
    // Nothing stored and nothing flushed yet: every state in memory will need writing,
    // so the first flush can take them all without tracking each change.
    vm->all_dirty = flag && vm->resident == 0;
}
void avm_set_event_fields(avm *vm, unsigned fields) { vm->event_fields = fields & AVM_FIELD_ALL; }

const char *avm_pending_key(const avm *vm, size_t *len) {
    *len = vm->pending.len;
    return vm->pending.data ? vm->pending.data : "";
}

// --- loading ------------------------------------------------------------------

static int add_module_protected(lua_State *L) {
    avm *vm = vm_of(L);
    size_t len;
    const char *src = lua_tolstring(L, 2, &len);
    if (luaL_loadbufferx(L, src, len, lua_tostring(L, 3), "t") != LUA_OK) return lua_error(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
    lua_setupvalue(L, -2, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_modules);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    return 0;
}

int avm_add_module(avm *vm, const char *name, const char *src, size_t len, const char *chunkname) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, add_module_protected);
    lua_pushstring(L, name);
    lua_pushlstring(L, src, len);
    lua_pushstring(L, chunkname);
    reset_budget(vm);
    return finish_call(vm, lua_pcall(L, 3, 0, 0), AVM_OK);
}

static int refuse_global(lua_State *L) {
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return luaL_error(L, "assignment to global '%s' after the projection loaded: keep state in s (globals would make results depend on replay order)", name);
}

static int ref_field(lua_State *L, int spec, const char *name, int type, const char *expected) {
    int t = lua_getfield(L, spec, name);
    if (t == LUA_TNIL) { lua_pop(L, 1); return LUA_NOREF; }
    if (t != type) return luaL_error(L, "the projection's '%s' must be %s, not a %s", name, expected, lua_typename(L, t));
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int load_protected(lua_State *L) {
    avm *vm = vm_of(L);
    size_t len;
    const char *src = lua_tolstring(L, 1, &len);
    if (luaL_loadbufferx(L, src, len, lua_tostring(L, 2), "t") != LUA_OK) return lua_error(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "a projection must return a table (return { version = 1, on = { … } }), not a %s", luaL_typename(L, -1));
    int spec = lua_gettop(L);
    lua_pushvalue(L, spec);
    vm->ref_spec = luaL_ref(L, LUA_REGISTRYINDEX);

    // Copy the handlers, so that changing spec.on later changes nothing.
    lua_newtable(L);
    int on = lua_gettop(L);
    int t = lua_getfield(L, spec, "on");
    if (t != LUA_TTABLE) return luaL_error(L, "the projection needs 'on', a table of handlers by event type (on = { OrderPlaced = function(s, e) … end })");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "'on' keys must be event type names (strings), not a %s", luaL_typename(L, -2));
        if (!lua_isfunction(L, -1)) return luaL_error(L, "on[\"%s\"] must be a function(s, e), not a %s", lua_tostring(L, -2), luaL_typename(L, -1));
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, on);
    }
    lua_pop(L, 1);
    vm->ref_on = luaL_ref(L, LUA_REGISTRYINDEX);

    vm->ref_init = ref_field(L, spec, "init", LUA_TFUNCTION, "a function(key) returning the initial state");
    t = lua_getfield(L, spec, "key");
    if (t == LUA_TNIL || (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "stream") == 0)) vm->key_mode = AVM_KEY_STREAM;
    else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "global") == 0) vm->key_mode = AVM_KEY_GLOBAL;
    else if (t == LUA_TFUNCTION) {
        vm->key_mode = AVM_KEY_FUNCTION;
        lua_pushvalue(L, -1);
        vm->ref_key = luaL_ref(L, LUA_REGISTRYINDEX);
    } else return luaL_error(L, "the projection's 'key' must be \"stream\", \"global\" or a function(e), not %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
    lua_pop(L, 1);
    t = lua_getfield(L, spec, "streams");
    if (t == LUA_TSTRING) {
        free(vm->glob);
        vm->glob = strdup(lua_tostring(L, -1));
    } else if (t != LUA_TNIL) return luaL_error(L, "the projection's 'streams' must be a glob string like \"order-*\", not a %s", lua_typename(L, t));
    lua_pop(L, 1);

    // From now on, handlers cannot create globals: state must live in s.
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
    lua_getmetatable(L, -1);
    lua_pushcfunction(L, refuse_global);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 2);
    lua_pushglobaltable(L);
    lua_newtable(L);
    lua_pushcfunction(L, refuse_global);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    return 0;
}

int avm_load(avm *vm, const char *src, size_t len, const char *chunkname) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, load_protected);
    lua_pushlstring(L, src, len);
    lua_pushstring(L, chunkname);
    reset_budget(vm);
    return finish_call(vm, lua_pcall(L, 2, 0, 0), AVM_OK);
}

static int describe_protected(lua_State *L) {
    avm *vm = vm_of(L);
    vm->out.len = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_spec);
    avm_write_json(vm, L, -1, &vm->out, 1, "the projection table");
    return 0;
}

int avm_describe(avm *vm, const char **json, size_t *len) {
    lua_pushcfunction(vm->L, describe_protected);
    reset_budget(vm);
    int r = finish_call(vm, lua_pcall(vm->L, 0, 0, 0), AVM_OK);
    *json = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

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

/// Pushes the initial state of the key at `key_idx`: init(key), or {}.
static void push_initial(avm *vm, lua_State *L, int key_idx) {
    if (vm->ref_init == LUA_NOREF) {
        lua_newtable(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_init);
    lua_pushvalue(L, key_idx);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) luaL_error(L, "init must return a table, not a %s", luaL_typename(L, -1));
}

static int apply_protected(lua_State *L) {
    avm *vm = vm_of(L);
    const avm_event *e = lua_touserdata(L, 1);
    if (vm->glob && fnmatch(vm->glob, e->stream, 0) != 0) { lua_pushinteger(L, AVM_SKIPPED); return 1; }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_on);        // 2
    lua_pushlstring(L, e->type, e->type_len);
    if (lua_rawget(L, 2) != LUA_TFUNCTION) { lua_pushinteger(L, AVM_SKIPPED); return 1; }  // 3: handler
    push_event(vm, L, e);                                  // 4
    switch (vm->key_mode) {                                // 5: key
    case AVM_KEY_STREAM: lua_pushlstring(L, e->stream, e->stream_len); break;
    case AVM_KEY_GLOBAL: lua_pushliteral(L, "global"); break;
    default:
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
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);    // 6
    lua_pushvalue(L, 5);
    if (lua_rawget(L, 6) == LUA_TNIL) {                    // 7: state
        lua_pop(L, 1);
        if (!vm->assume_absent) {
            size_t n;
            const char *k = lua_tolstring(L, 5, &n);
            vm->pending.len = 0;
            if (!abuf_put(&vm->pending, k, n)) return luaL_error(L, "out of memory");
            lua_pushinteger(L, AVM_NEED_STATE);
            return 1;
        }
        push_initial(vm, L, 5);
        lua_pushvalue(L, 5);
        lua_pushvalue(L, -2);
        lua_rawset(L, 6);
        vm->resident++;
    }
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 7);
    lua_pushvalue(L, 4);
    lua_call(L, 2, 1);                                     // 8: handler result
    if (lua_istable(L, 8)) {
        lua_pushvalue(L, 5);
        lua_pushvalue(L, 8);
        lua_rawset(L, 6);
    } else if (!lua_isnil(L, 8)) {
        return luaL_error(L, "a handler must change s in place or return a new state table, not a %s", luaL_typename(L, 8));
    }
    // dirty[key] = the key's current state, so a flush needs no lookups.
    if (!vm->all_dirty) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_dirty);
        lua_pushvalue(L, 5);
        if (lua_istable(L, 8)) lua_pushvalue(L, 8); else lua_pushvalue(L, 7);
        lua_rawset(L, -3);
    }
    lua_pushinteger(L, AVM_OK);
    return 1;
}

int avm_apply(avm *vm, const avm_event *event) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, apply_protected);
    lua_pushlightuserdata(L, (void *)event);
    reset_budget(vm);
    int status = lua_pcall(L, 1, 1, 0);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    return finish_call(vm, status, result);
}

static int provide_protected(lua_State *L) {
    avm *vm = vm_of(L);
    size_t json_len = (size_t)lua_tointeger(L, 3);
    const char *json = lua_touserdata(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);    // 4
    if (json) {
        avm_push_json(vm, L, json, json_len, "stored state");
        if (!lua_istable(L, -1)) return luaL_error(L, "stored state is not a JSON object");
    } else {
        push_initial(vm, L, 1);
    }
    lua_pushvalue(L, 1);
    lua_insert(L, -2);
    lua_rawset(L, 4);
    vm->resident++;
    return 0;
}

int avm_provide_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, provide_protected);
    lua_pushlstring(L, key, key_len);
    lua_pushlightuserdata(L, (void *)json);
    lua_pushinteger(L, (lua_Integer)json_len);
    reset_budget(vm);
    return finish_call(vm, lua_pcall(L, 3, 0, 0), AVM_OK);
}

// --- writing states out -------------------------------------------------------

static void put_u32(avm *vm, lua_State *L, size_t n) {
    uint32_t v = (uint32_t)n;
    if (!abuf_put(&vm->out, &v, 4)) luaL_error(L, "out of memory");
}

typedef struct {
    uint64_t prefix[2];  // the key's first 16 bytes, big-endian: most comparisons end here
    const char *s;
    size_t len;
    int index;           // position in the array of states
} fkey;

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
static int flush_protected(lua_State *L) {
    avm *vm = vm_of(L);
    vm->out.len = 0;
    // 1: key -> state of everything to write
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->all_dirty ? vm->ref_states : vm->ref_dirty);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) { lua_pop(L, 1); count++; }
    lua_createtable(L, (int)count, 0);                     // 2: states by index
    fkey *keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof(fkey), 0);  // 3
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_rawseti(L, 2, (lua_Integer)(k + 1));
        keys[k].s = lua_tolstring(L, -1, &keys[k].len);  // alive: a key of the dirty table
        keys[k].index = (int)(k + 1);
        set_prefix(&keys[k]);
        k++;
    }
    qsort(keys, count, sizeof(fkey), fkey_cmp);
    for (size_t i = 0; i < count; i++) {
        put_u32(vm, L, keys[i].len);
        if (!abuf_put(&vm->out, keys[i].s, keys[i].len)) return luaL_error(L, "out of memory");
        size_t at = vm->out.len;
        put_u32(vm, L, 0);
        lua_rawgeti(L, 2, keys[i].index);
        avm_write_json(vm, L, -1, &vm->out, 0, keys[i].s);
        lua_pop(L, 1);
        uint32_t jlen = (uint32_t)(vm->out.len - at - 4);
        memcpy(vm->out.data + at, &jlen, 4);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, vm->ref_dirty);
    vm->ref_dirty = new_ref_table(L);
    vm->dirty = 0;
    vm->all_dirty = 0;  // from now on, track what changes
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

int avm_flush(avm *vm, const char **records, size_t *len, size_t *count) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, flush_protected);
    reset_budget(vm);
    int status = lua_pcall(L, 0, 1, 0);
    *count = status == LUA_OK ? (size_t)lua_tointeger(L, -1) : 0;
    int r = finish_call(vm, status, AVM_OK);
    *records = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

static int evict_protected(lua_State *L) {
    avm *vm = vm_of(L);
    luaL_unref(L, LUA_REGISTRYINDEX, vm->ref_states);
    vm->ref_states = new_ref_table(L);
    vm->resident = 0;
    return 0;
}

int avm_evict(avm *vm) {
    lua_pushcfunction(vm->L, evict_protected);
    reset_budget(vm);
    int r = finish_call(vm, lua_pcall(vm->L, 0, 0, 0), AVM_OK);
    vm->assume_absent = 0;  // what was evicted is stored now
    lua_gc(vm->L, LUA_GCCOLLECT);
    return r;
}

static int state_json_protected(lua_State *L) {
    avm *vm = vm_of(L);
    vm->out.len = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) == LUA_TNIL) { lua_pushinteger(L, AVM_SKIPPED); return 1; }
    avm_write_json(vm, L, -1, &vm->out, 0, lua_tostring(L, 1));
    lua_pushinteger(L, AVM_OK);
    return 1;
}

int avm_state_json(avm *vm, const char *key, size_t key_len, const char **json, size_t *len) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, state_json_protected);
    lua_pushlstring(L, key, key_len);
    reset_budget(vm);
    int status = lua_pcall(L, 1, 1, 0);
    int result = status == LUA_OK ? (int)lua_tointeger(L, -1) : AVM_ERROR;
    int r = finish_call(vm, status, result);
    *json = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}
