// The sandboxed standard library: what a projection may call.
//
// Opened one by one (never luaL_openlibs): base, table, string, math, utf8. Removed:
// dofile, loadfile, collectgarbage, print, warn, string.dump, math.random(seed);
// never opened: io, os, package, debug, coroutine (Debian's 5.4.4 can be crashed
// through coroutine.close). Replaced with checked versions: load (text chunks only,
// sandbox environment), require (projections/lib only), setmetatable (no __gc,
// __mode, __close), tostring (no addresses), string.format (no %p). Last, the
// functions that loop over their input are replaced with ones charged for their work,
// and xpcall with one whose handler runs no more once a limit is hit (charges.c).
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

static int safe_require(lua_State *L) {
    avm *vm = avm_of(L);
    const char *name = luaL_checkstring(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_loaded);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_modules);
    lua_getfield(L, -1, name);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "module '%s' not found: require loads only projections/lib/%s.lua", name, name);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);  // loaded[name] (stack: name, loaded, modules, result)
    return 1;
}

static int safe_setmetatable(lua_State *L) {
    if (lua_istable(L, 2)) {
        static const char *const forbidden[] = { "__gc", "__mode", "__close" };
        for (int i = 0; i < 3; i++) {
            lua_pushstring(L, forbidden[i]);
            if (lua_rawget(L, 2) != LUA_TNIL)
                return luaL_error(L, "setmetatable: %s is not allowed in projections (it would make results depend on garbage collection)", forbidden[i]);
            lua_pop(L, 1);
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int safe_tostring(lua_State *L) {
    luaL_checkany(L, 1);
    int t = lua_type(L, 1);
    if ((t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD || t == LUA_TLIGHTUSERDATA)
        && luaL_getmetafield(L, 1, "__tostring") == LUA_TNIL && luaL_getmetafield(L, 1, "__name") == LUA_TNIL) {
        lua_pushstring(L, lua_typename(L, t));  // never an address: results must not vary between runs
        return 1;
    }
    lua_settop(L, 1);
    luaL_tolstring(L, 1, NULL);
    return 1;
}

static int safe_format(lua_State *L) {
    size_t len;
    const char *fmt = luaL_checklstring(L, 1, &len);
    for (size_t i = 0; i + 1 < len; i++) {
        if (fmt[i] != '%') continue;
        if (fmt[i + 1] == '%') { i++; continue; }
        size_t j = i + 1;
        while (j < len && strchr("-+ #0123456789.", fmt[j])) j++;
        if (j < len && fmt[j] == 'p') return luaL_error(L, "string.format: %%p prints an address, which differs between runs");
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
    wrap(L, "setmetatable", safe_setmetatable);
    lua_pushcfunction(L, safe_tostring);
    lua_setfield(L, -2, "tostring");

    lua_getfield(L, -1, "string");
    remove_field(L, "dump");
    wrap(L, "format", safe_format);
    lua_pop(L, 1);
    lua_getfield(L, -1, "math");
    remove_field(L, "random");
    remove_field(L, "randomseed");
    lua_pop(L, 1);
    lua_pop(L, 1);  // globals

    // The string metatable is shared by the whole VM: hide it, so getmetatable("")
    // cannot reach the string table (or anything else) through it.
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushliteral(L, "string");
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return avm_open_charged(L);
}
