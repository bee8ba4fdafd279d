// The projection VM: its life cycle, loading the script and reading its spec.
// Limits are in limits.c and alloc.c, folding events and writing states in fold.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int avm_pcall(avm *vm, int nargs, int nresults) {
    locale_t previous = uselocale(avm_c_locale());
    int status = lua_pcall(vm->L, nargs, nresults, 0);
    uselocale(previous);
    return status;
}

void avm_set_error(avm *vm, const char *msg) {
    free(vm->error);
    vm->error = strdup(msg ? msg : "unknown error");
}

/// After a pcall: turn a failure (or a limit the script caught with its own pcall)
/// into vm->error. Returns AVM_ERROR or the status given.
int avm_finish_call(avm *vm, int status, int ok_result) {
    lua_State *L = vm->L;
    char buf[640];  // a limit's message, with where it was hit (and the module whose top level hit it)
    vm->error_deterministic = 1;
    if (vm->mem_exceeded) {
        snprintf(buf, sizeof buf, "memory limit of %zu MB exceeded", vm->mem_limit >> 20);
        avm_set_error(vm, buf);
        vm->error_deterministic = 0;
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    if (avm_limit_message(vm, buf, sizeof buf, &vm->error_deterministic)) {
        avm_set_error(vm, buf);
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    if (status != LUA_OK) {
        int t = lua_type(L, -1);
        if (t == LUA_TSTRING) avm_set_error(vm, lua_tostring(L, -1));
        else if (t == LUA_TNUMBER) { lua_Number n = lua_tonumber(L, -1); snprintf(buf, sizeof buf, "error(%.14g)", (double)n); avm_set_error(vm, buf); }
        else { snprintf(buf, sizeof buf, "error thrown with a %s value instead of a message", lua_typename(L, t)); avm_set_error(vm, buf); }
        lua_settop(L, 0);
        return AVM_ERROR;
    }
    lua_settop(L, 0);
    return ok_result;
}

// --- life cycle ---------------------------------------------------------------

int avm_new_ref_table(lua_State *L) {
    lua_newtable(L);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int setup_protected(lua_State *L) {
    avm *vm = avm_of(L);
    avm_open_sandbox(L);
    avm_bytecode_check(vm, L);
    avm_check_layout(vm, L);
    vm->ref_watched = avm_new_ref_table(L);
    vm->ref_next_cache = avm_new_ref_table(L);
    vm->ref_column_keys = avm_new_ref_table(L);
    vm->ref_modules = avm_new_ref_table(L);
    vm->ref_loaded = avm_new_ref_table(L);
    vm->ref_states = avm_new_ref_table(L);
    vm->ref_kept = avm_new_ref_table(L);
    lua_createtable(L, AVM_NAME_CACHE, 0);
    vm->ref_names = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, AVM_SHAPE_KEYS, 0);
    vm->ref_shape = luaL_ref(L, LUA_REGISTRYINDEX);
    // The projection's environment: reads fall through to the globals.
    lua_newtable(L);
    lua_newtable(L);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    vm->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/// Whether tables are laid out as Lua 5.4 lays them out (see AVM_TABLE_*): checked on a
/// table made for it, against the blocks the allocator handed out while it was made, so
/// that no address is read before it is known to be the table's.
static int check_layout_protected(lua_State *L) {
    avm *vm = avm_of(L);
    vm->ntraced = 0;
    vm->tracing = 1;
    lua_createtable(L, 1, 1);
    vm->tracing = 0;
    lua_pushinteger(L, 0x5EED1234);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, 0x5EED5678);
    lua_setfield(L, -2, "k");
    const char *t = lua_topointer(L, -1);
    size_t table_size = 0;
    const void *array = NULL, *node = NULL;
    for (size_t i = 0; i < vm->ntraced; i++) if (vm->traced[i] == t) table_size = vm->traced_size[i];
    if (table_size < AVM_TABLE_NODE + sizeof(void *)) return 0;
    const void *a = *(const void *const *)(t + AVM_TABLE_ARRAY), *n = *(const void *const *)(t + AVM_TABLE_NODE);
    for (size_t i = 0; i < vm->ntraced; i++) {
        if (vm->traced[i] == a && vm->traced_size[i] == AVM_TVALUE_SIZE) array = a;
        if (vm->traced[i] == n && vm->traced_size[i] >= sizeof(lua_Integer)) node = n;
    }
    vm->peek_ok = array && node && *(const lua_Integer *)array == 0x5EED1234 && *(const lua_Integer *)node == 0x5EED5678;
    return 0;
}

avm *avm_new(size_t memory_limit, int64_t instruction_budget) {
    avm *vm = calloc(1, sizeof *vm);
    if (!vm) return NULL;
    vm->mem_limit = (size_t)1 << 30;  // generous while the libraries open
    vm->budget = instruction_budget;
    vm->loading = 1;
    vm->ref_spec = vm->ref_on = vm->ref_init = vm->ref_key = vm->ref_merge = LUA_NOREF;
    vm->ref_views = LUA_NOREF;
    vm->event_fields = AVM_FIELD_ALL;
    keymap_seed(&vm->keys);
    keymap_seed(&vm->parked);
    avm_pool_init(&vm->pool);
    vm->L = lua_newstate(avm_alloc, vm);
    if (!vm->L) { free(vm); return NULL; }
    *(avm **)lua_getextraspace(vm->L) = vm;
    lua_atpanic(vm->L, avm_on_panic);
    // Set once, now: a hook must exist before any thread is created to apply to it.
    lua_sethook(vm->L, avm_budget_hook, LUA_MASKCOUNT, AVM_HOOK_COUNT);
    avm_budget_init(vm);
    lua_pushcfunction(vm->L, setup_protected);
    int status = avm_pcall(vm, 0, 0);
    vm->loading = 0;
    if (status != LUA_OK) { avm_free(vm); return NULL; }
    lua_pushcfunction(vm->L, check_layout_protected);
    if (avm_pcall(vm, 0, 0) != LUA_OK) vm->peek_ok = 0;
    lua_settop(vm->L, 0);
    vm->tracing = 0;
    // Generational GC: each event leaves short-lived garbage (its tables) while the
    // states held between checkpoints are long-lived; the incremental collector would
    // re-mark all of them on every cycle.
    lua_gc(vm->L, LUA_GCGEN, 0, 0);
    vm->mem_limit = memory_limit;
    return vm;
}

void avm_free(avm *vm) {
    if (!vm) return;
    avm_watch_stop(vm);
    vm->closing = 1;
    if (vm->L) lua_close(vm->L);
    vm->closing = 0;
    keymap_clear(vm, &vm->keys);
    keymap_clear(vm, &vm->parked);
    free(vm->dead.data);
    avm_limited_alloc(vm, vm->dirty, vm->dirty_cap * sizeof *vm->dirty, 0);
    avm_limited_alloc(vm, vm->chunk_arrays, vm->chunk_arrays_cap * sizeof *vm->chunk_arrays, 0);
    avm_pool_release(&vm->pool);
    free(vm->glob);
    free(vm->pending.data);
    free(vm->last_key.data);
    free(vm->out.data);
    free(vm->scratch.data);
    free(vm->path.data);
    free(vm->dump.data);
    free(vm->check_out.data);
    avm_ptrset_free(&vm->seen);
    avm_free_columns(vm);
    free(vm->error);
    free(vm);
}

const char *avm_error(const avm *vm) { return vm->error ? vm->error : ""; }
size_t avm_memory_used(const avm *vm) { return vm->mem_used; }
size_t avm_keys_created(const avm *vm) { return vm->created; }
size_t avm_memory_limit(const avm *vm) { return vm->mem_limit; }
int avm_has_merge(const avm *vm) { return vm->ref_merge != LUA_NOREF; }
int avm_prefetches_states(const avm *vm) { return vm->peek_ok; }
int avm_checks_directly(const avm *vm) { return vm->check_layout_ok && vm->bytecode_ok; }
void avm_assume_no_stored_states(avm *vm, int flag) {
    vm->assume_absent = flag;
    // Nothing stored and nothing flushed yet: every state in memory will need writing,
    // so the first flush can take them all without tracking each change.
    vm->all_dirty = flag && vm->resident == 0;
}
void avm_set_event_fields(avm *vm, unsigned fields) { vm->event_fields = fields & AVM_FIELD_ALL; }

const char *avm_last_key(const avm *vm, size_t *len) {
    *len = vm->last_key.len;
    return vm->last_key.data ? vm->last_key.data : "";
}

const char *avm_pending_key(const avm *vm, size_t *len) {
    *len = vm->pending.len;
    return vm->pending.data ? vm->pending.data : "";
}

// --- loading ------------------------------------------------------------------

static int add_module_protected(lua_State *L) {
    avm *vm = avm_of(L);
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
    avm_reset_budget(vm);
    return avm_finish_call(vm, avm_pcall(vm, 3, 0), AVM_OK);
}

static int ref_field(lua_State *L, int spec, const char *name, int type, const char *expected) {
    int t = lua_getfield(L, spec, name);
    if (t == LUA_TNIL) { lua_pop(L, 1); return LUA_NOREF; }
    if (t != type) return luaL_error(L, "the projection's '%s' must be %s, not a %s", name, expected, lua_typename(L, t));
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int load_protected(lua_State *L) {
    avm *vm = avm_of(L);
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
    if (vm->ref_init != LUA_NOREF) {
        // `function() … end` has no way to read an argument: init is then called with none.
        lua_Debug ar;
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_init);
        lua_getinfo(L, ">u", &ar);
        vm->init_takes_key = ar.nparams > 0 || ar.isvararg;
    }
    vm->ref_merge = ref_field(L, spec, "merge", LUA_TFUNCTION, "a function(a, b) combining two partial states");
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
        // "order-*": a prefix, compared without fnmatch.
        size_t n = strlen(vm->glob);
        vm->glob_prefix = n > 0 && vm->glob[n - 1] == '*' && strcspn(vm->glob, "*?[\\") == n - 1 ? (long)(n - 1) : -1;
    } else if (t != LUA_TNIL) return luaL_error(L, "the projection's 'streams' must be a glob string like \"order-*\", not a %s", lua_typename(L, t));
    lua_pop(L, 1);

    // From now on, handlers can change nothing but s: globals, libraries, modules and
    // what the script's functions captured become read-only.
    avm_freeze_loaded(vm, L);
    return 0;
}

int avm_load(avm *vm, const char *src, size_t len, const char *chunkname) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, load_protected);
    lua_pushlstring(L, src, len);
    lua_pushstring(L, chunkname);
    // The top level runs under the larger of the per-event budget and the default one:
    // a small per-event budget is for handlers, and a script that builds its lookup
    // tables when it loads must still load. Each module it requires runs under a budget
    // of that size of its own, as one first required by a handler does (sandbox.c).
    int64_t per_event = vm->budget;
    if (vm->budget < AVM_LOAD_BUDGET_MIN) vm->budget = AVM_LOAD_BUDGET_MIN;
    avm_reset_budget(vm);
    avm_watch_enter(vm);
    int status = avm_pcall(vm, 2, 0);
    avm_watch_leave(vm);
    int result = avm_finish_call(vm, status, AVM_OK);
    vm->budget = per_event;
    return result;
}

static int describe_protected(lua_State *L) {
    avm *vm = avm_of(L);
    vm->out.len = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_spec);
    avm_write_json(vm, L, -1, &vm->out, 1, "the projection table");
    return 0;
}

int avm_describe(avm *vm, const char **json, size_t *len) {
    lua_pushcfunction(vm->L, describe_protected);
    avm_reset_budget(vm);
    int r = avm_finish_call(vm, avm_pcall(vm, 0, 0), AVM_OK);
    *json = vm->out.data ? vm->out.data : "";
    *len = vm->out.len;
    return r;
}

