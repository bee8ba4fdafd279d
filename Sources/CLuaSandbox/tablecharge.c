// table.insert, table.remove, table.concat and table.unpack, charged for the elements
// they move, read or push (one instruction each) and, for concat, the bytes it copies.
//
// Written again here, with the semantics and messages of Lua 5.4's ltablib.c, because
// how many elements they touch depends on the table's length, which only they compute
// (calling __len a second time to know it beforehand would be visible to the script).
// table.move, table.pack and table.sort need no length of their own or can be charged
// from outside: charges.c wraps them.
#include <limits.h>
#include "internal.h"

enum { TAB_R = 1, TAB_W = 2, TAB_L = 4 };

static int has_field(lua_State *L, const char *key, int n) {
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

/// Argument `arg` is a table, or has the metamethods of what it is used for.
static void check_table(lua_State *L, int arg, int what) {
    if (lua_type(L, arg) == LUA_TTABLE) return;
    int n = 1;
    if (lua_getmetatable(L, arg) && (!(what & TAB_R) || has_field(L, "__index", ++n))
        && (!(what & TAB_W) || has_field(L, "__newindex", ++n)) && (!(what & TAB_L) || has_field(L, "__len", ++n))) {
        lua_pop(L, n);
    } else {
        luaL_checktype(L, arg, LUA_TTABLE);
    }
}

static lua_Integer length(lua_State *L, int arg, int what) {
    check_table(L, arg, what | TAB_L);
    return luaL_len(L, arg);
}

static int tab_insert(lua_State *L) {
    lua_Integer e = (lua_Integer)((lua_Unsigned)length(L, 1, TAB_R | TAB_W) + 1u);  // the first empty slot
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        avm_charge(L, e - pos, "table.insert");
        for (lua_Integer i = e; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tab_remove(lua_State *L) {
    lua_Integer size = length(L, 1, TAB_R | TAB_W);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size) luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    if (size > pos) avm_charge(L, size - pos, "table.remove");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static void add_field(lua_State *L, luaL_Buffer *b, lua_Integer i, size_t max) {
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1), (LUAI_UACINT)i);
    size_t n;
    lua_tolstring(L, -1, &n);
    if (luaL_bufflen(b) + n > max) avm_refuse_string(L, luaL_bufflen(b) + n);
    luaL_addvalue(b);
}

static int tab_concat(lua_State *L) {
    lua_Integer last = length(L, 1, TAB_R);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    avm *vm = avm_of(L);
    size_t max = vm ? vm->max_string : (size_t)-1;
    if (last >= i) avm_charge(L, (int64_t)((lua_Unsigned)last - (lua_Unsigned)i) + 1, "table.concat");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        add_field(L, &b, i, max);
        if (luaL_bufflen(&b) + lsep > max) avm_refuse_string(L, luaL_bufflen(&b) + lsep);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last) add_field(L, &b, i, max);
    luaL_pushresult(&b);
    size_t n;
    lua_tolstring(L, -1, &n);
    avm_charge(L, avm_bytes(n), "table.concat");
    return 1;
}

static int tab_unpack(lua_State *L) {
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer e = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
    if (i > e) return 0;
    lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)i;  // one less than the count
    if (n >= (unsigned int)INT_MAX || !lua_checkstack(L, (int)(++n))) return luaL_error(L, "too many results to unpack");
    avm_charge(L, (int64_t)n, "table.unpack");
    for (; i < e; i++) lua_geti(L, 1, i);
    lua_geti(L, 1, e);
    return (int)n;
}

void avm_open_table_charges(lua_State *L) {
    static const luaL_Reg functions[] = {
        { "insert", tab_insert }, { "remove", tab_remove }, { "concat", tab_concat }, { "unpack", tab_unpack }, { NULL, NULL },
    };
    luaL_setfuncs(L, functions, 0);
}
