// The sandboxed standard library: what a projection may call.
//
// Opened one by one (never luaL_openlibs): base, table, string, math, utf8. Removed:
// dofile, loadfile, collectgarbage, print, warn, string.dump, math.random(seed);
// never opened: io, os, package, debug, coroutine (Debian's 5.4.4 can be crashed
// through coroutine.close). Replaced with checked versions: load (text chunks only,
// sandbox environment), require (projections/lib only, read-only once loaded),
// setmetatable (no __gc, __mode, __close, now or later: it installs a copy),
// getmetatable (gives back the table that was set), tostring and string.format's %s
// (no addresses), string.format (no %p), rawset/rawget/rawlen (read-only views, see
// freeze.c), pairs/next (a fixed order, ordered.c), table.sort (deterministic,
// sort.c). Last, the functions that loop over their input are
// replaced with ones charged for their work, and xpcall with one whose handler runs
// no more once a limit is hit (charges.c).
#include <math.h>
#include <string.h>
#include "internal.h"


static int safe_load(lua_State *L) {
    size_t len;
    const char *chunk = lua_tolstring(L, 1, &len);
    if (!chunk || lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "load: only text chunks (strings) can be loaded in a projection");
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnoneornil(L, 4);
    int status = luaL_loadbufferx(L, chunk, len, name, "t");
    if (status != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;  // nil, message, as load does
    }
    if (has_env) lua_pushvalue(L, 4);
    else lua_rawgeti(L, LUA_REGISTRYINDEX, avm_of(L)->ref_env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    return 1;
}

/// Runs a module's top level (1: its function, 2: its name) and makes what it returns
/// read-only: at handler time, shared by every key from now on.
static int run_module(lua_State *L) {
    avm *vm = avm_of(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    avm_freeze_module(vm, L, -1, lua_tostring(L, 2));
    return 1;
}

/// require "m": projections/lib/m.lua, run once per VM. Its top level runs under a
/// budget (and a CPU-time window) of its own, as the script's top level does, whether
/// the script requires it when it loads or a handler does later: which event first
/// requires a module in a VM depends on how the log was split between VMs (--parallel)
/// and on where the VM was made (a catch-up, a rebuild), so charging it to that event
/// would make an event fail or pass depending on its VM (avm_module_enter).
static int safe_require(lua_State *L) {
    avm *vm = avm_of(L);
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_loaded);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_modules);
    // The caller's next() traversal (ordered.c) is set aside as well: were the module's
    // own to replace it, the caller's next next(t, k) would pay to sort t's keys again.
    int next_cached = vm->next_cached;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_next_cache);  // 4
    lua_pushcfunction(L, run_module);
    lua_getfield(L, 3, name);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "module '%s' not found: require loads only projections/lib/%s.lua", name, name);
    lua_pushvalue(L, 1);
    avm_ordered_reset(vm, L);
    avm_budget_saved saved;
    avm_module_enter(vm, &saved);
    int status = lua_pcall(L, 2, 1, 0);
    // A limit hit in the module fails the call even if its top level caught the error:
    // nothing it made under a limit is kept.
    if (avm_module_leave(vm, &saved, name)) avm_raise_limit(L, vm);
    lua_pushvalue(L, 4);
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_next_cache);
    vm->next_cached = next_cached;
    if (status != LUA_OK) return lua_error(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);  // loaded[name] (stack: name, loaded, modules, cache, result)
    return 1;
}

/// Fails when the table at idx has a field whose effect depends on the garbage
/// collector (__gc finalizers, __mode weak tables) or that runs code on leaving a
/// scope (__close; Debian's 5.4.4 also crashes on some chains of them).
static void refuse_gc_fields(lua_State *L, int idx) {
    static const char *const forbidden[] = { "__gc", "__mode", "__close" };
    for (int i = 0; i < 3; i++) {
        lua_pushstring(L, forbidden[i]);
        if (lua_rawget(L, idx) != LUA_TNIL)
            luaL_error(L, "setmetatable: %s is not allowed in projections (it would make results depend on garbage collection)", forbidden[i]);
        lua_pop(L, 1);
    }
}

/// As Lua's, but what is installed is a copy of the metatable's fields (with the
/// table given, for getmetatable): a field added to that table later, __mode among
/// them, changes nothing. A read-only view installs the table it shows, which nothing
/// can change.
static int safe_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (avm_frozen_name(L, 1)) {
        const char *name = lua_tostring(L, -1);
        return luaL_error(L, "cannot change the metatable of %s: it is read-only to handlers", strcmp(name, "global") == 0 ? "_ENV (the globals)" : name);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    if (t == LUA_TTABLE) {
        if (avm_frozen_real(L, 2)) {
            refuse_gc_fields(L, 3);
        } else {
            refuse_gc_fields(L, 2);
            lua_newtable(L);
            lua_pushnil(L);
            int64_t fields = 0;
            while (lua_next(L, 2)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, 3);
                fields++;
            }
            // The copy is charged a field each (a metatable of many fields set on many
            // tables would be copied for nothing otherwise), when it is made: one call
            // copies at most what memory holds.
            if (fields) avm_charge(L, fields, "setmetatable");
            lua_pushvalue(L, 2);
            lua_rawsetp(L, 3, avm_original_key());
        }
        lua_replace(L, 2);
    }
    lua_setmetatable(L, 1);
    return 1;
}

/// As Lua's, with the table given to setmetatable for its copy, and for a read-only
/// view the metatable of what it shows (as read-only).
static int safe_getmetatable(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    while (avm_frozen_real(L, 1)) lua_replace(L, 1);
    if (!lua_getmetatable(L, 1)) { lua_pushnil(L); return 1; }
    int mt = lua_gettop(L);
    lua_pushliteral(L, "__metatable");
    if (lua_rawget(L, mt) != LUA_TNIL) return 1;  // protected (the string metatable…)
    lua_pop(L, 1);
    if (lua_rawgetp(L, mt, avm_original_key()) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    // The table a read-only view showed, installed as it is: hand out its view.
    avm *vm = avm_of(L);
    if (vm->ref_views != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_views);
        lua_pushvalue(L, mt);
        if (lua_rawget(L, -2) == LUA_TTABLE) return 1;
        lua_pop(L, 2);
    }
    return 1;
}

static int safe_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (avm_frozen_name(L, 1)) return avm_refuse_change(L, 1, 2);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int safe_rawget(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    if (avm_frozen_real(L, 1)) lua_replace(L, 1);
    lua_rawget(L, 1);
    return 1;
}

static int safe_rawlen(lua_State *L) {
    int t = lua_type(L, 1);
    luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
    lua_settop(L, 1);
    if (avm_frozen_real(L, 1)) lua_replace(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

/// Pushes the text of the value at idx as tostring gives it: __tostring's, else for a
/// table, function (or anything else with an identity) its __name or its type, never
/// the address Lua would add (it differs between runs).
static void push_text(lua_State *L, int idx) {
    int t = lua_type(L, idx);
    if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD || t == LUA_TLIGHTUSERDATA) {
        if (luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL) {
            int name = luaL_getmetafield(L, idx, "__name");
            if (name == LUA_TSTRING) return;
            if (name != LUA_TNIL) lua_pop(L, 1);
            lua_pushstring(L, lua_typename(L, t));
            return;
        }
        lua_pop(L, 1);
    }
    luaL_tolstring(L, idx, NULL);
}

static int safe_tostring(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    push_text(L, 1);
    return 1;
}

/// Lua's string.format without %p, with %s of a table (or function…) written as
/// tostring writes it, without an address, and a NaN argument without its sign, whose
/// bit differs between machines (nan_text.c): "%f" and "%5.2g" give "nan", "  nan".
static int safe_format(lua_State *L) {
    size_t len;
    const char *fmt = luaL_checklstring(L, 1, &len);
    for (int i = 2, top = lua_gettop(L); i <= top; i++) {
        if (lua_type(L, i) != LUA_TNUMBER || lua_isinteger(L, i)) continue;
        lua_Number n = lua_tonumber(L, i);
        if (n != n) {
            lua_pushnumber(L, (lua_Number)fabs(n));
            lua_replace(L, i);
        }
    }
    int arg = 1;
    for (size_t i = 0; i < len; i++) {
        if (fmt[i] != '%') continue;
        if (i + 1 < len && fmt[i + 1] == '%') { i++; continue; }
        size_t j = i + 1;
        while (j < len && strchr("-+ #0123456789.", fmt[j])) j++;
        if (j < len && fmt[j] == 'p') return luaL_error(L, "string.format: %%p prints an address, which differs between runs");
        arg++;
        if (j < len && fmt[j] == 's' && arg <= lua_gettop(L) && lua_type(L, arg) != LUA_TSTRING && lua_type(L, arg) != LUA_TNUMBER) {
            push_text(L, arg);
            lua_replace(L, arg);
        }
        i = j;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/// Replaces table[name] (table at top) with `wrapper`, whose upvalue is the original.
static void wrap(lua_State *L, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, -2, name);
}

static void remove_field(lua_State *L, const char *name) {
    lua_pushnil(L);
    lua_setfield(L, -2, name);
}

int avm_open_sandbox(lua_State *L) {
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base }, { LUA_TABLIBNAME, luaopen_table }, { LUA_STRLIBNAME, luaopen_string },
        { LUA_MATHLIBNAME, luaopen_math }, { LUA_UTF8LIBNAME, luaopen_utf8 }, { NULL, NULL },
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    remove_field(L, "dofile");
    remove_field(L, "loadfile");
    remove_field(L, "collectgarbage");
    remove_field(L, "print");
    remove_field(L, "warn");
    lua_pushcfunction(L, safe_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, safe_require);
    lua_setfield(L, -2, "require");
    static const luaL_Reg replaced[] = {
        { "setmetatable", safe_setmetatable }, { "getmetatable", safe_getmetatable }, { "tostring", safe_tostring },
        { "rawset", safe_rawset }, { "rawget", safe_rawget }, { "rawlen", safe_rawlen }, { NULL, NULL },
    };
    luaL_setfuncs(L, replaced, 0);

    lua_getfield(L, -1, "string");
    remove_field(L, "dump");
    wrap(L, "format", safe_format);
    lua_pop(L, 1);
    lua_getfield(L, -1, "math");
    remove_field(L, "random");
    remove_field(L, "randomseed");
    lua_pop(L, 1);
    lua_pop(L, 1);  // globals
    avm_open_ordered(L);
    avm_open_sort(L);

    // The string metatable is shared by the whole VM: hide it, so getmetatable("")
    // cannot reach the string table (or anything else) through it.
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushliteral(L, "string");
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    avm_open_charged(L);

    // What a gmatch iterator is (freeze.c refuses one made at load): the matcher's,
    // which avm_open_charged installed.
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "gmatch");
    lua_pushliteral(L, "");
    lua_pushliteral(L, "");
    lua_call(L, 2, 1);
    avm_of(L)->gmatch_step = lua_tocfunction(L, -1);
    lua_pop(L, 2);
    return 0;
}
