// Read-only views of everything a projection set up when it loaded.
//
// A handler may change nothing but s: globals, the library tables, modules, and the
// tables and values its functions captured as upvalues are shared by every key a VM
// folds, so a change would carry over to the next key (and differ with --parallel,
// restarts and batch sizes). When the script has loaded (and after each require), every
// table reachable from it is replaced, wherever it is referenced (other tables,
// upvalues, globals, the module cache), by a view: an empty table whose metatable reads
// through to it (__index, __len, the operators of its own metatable) and refuses writes
// (__newindex), naming the variable. rawset, setmetatable and table.* refuse views;
// rawget, rawlen, pairs and next read through them. The real tables are referenced only
// by views and by each other, so nothing else can change them.
//
// Upvalues that are not tables cannot be wrapped: the bytecode of each function (from
// lua_dump) says which of its upvalues it, or a function nested in it, assigns
// (OP_SETUPVAL); those are compared after every handler with their value at load.
#include <string.h>
#include "internal.h"

static const char view_key = 0;      // a view's metatable: [&view_key] = its name
static const char original_key = 0;  // a metatable copy: [&original_key] = the table given

#define WATCH_PER_FUNCTION 256

// --- views ----------------------------------------------------------------------

int avm_frozen_name(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    if (lua_rawgetp(L, -1, &view_key) != LUA_TSTRING) { lua_pop(L, 2); return 0; }
    lua_remove(L, -2);
    return 1;
}

int avm_frozen_real(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    if (lua_rawgetp(L, -1, &view_key) == LUA_TNIL) { lua_pop(L, 2); return 0; }
    lua_pop(L, 1);
    lua_pushliteral(L, "__index");
    // The real table, or the view_index closure that holds it as its first upvalue.
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
        lua_getupvalue(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_remove(L, -2);
    return 1;
}

const void *avm_original_key(void) { return &original_key; }

/// Whether a string is a Lua name (written .name in a path, else ["…"]).
static int is_name(const char *s, size_t n) {
    if (n == 0 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z'))) return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'))) return 0;
    }
    return 1;
}

/// Between an upvalue's name and the path into it: upvalue "t" of f.lua, at .x.y
static const char *at_path(const char *name) {
    return strncmp(name, "upvalue ", 8) == 0 && !strstr(name, ", at ") ? ", at " : "";
}

/// Pushes the name of the member `key` of the view named `name` (a string at the top,
/// replaced): global "k", string.upper, upvalue "cache" of f.lua["k"].
static void push_member_name(lua_State *L, int key) {
    const char *name = lua_tostring(L, -1);
    size_t len;
    switch (lua_type(L, key)) {
    case LUA_TSTRING: {
        const char *k = lua_tolstring(L, key, &len);
        if (strcmp(name, "global") == 0) lua_pushfstring(L, "global \"%s\"", k);
        else if (is_name(k, len)) lua_pushfstring(L, "%s%s.%s", name, at_path(name), k);
        else lua_pushfstring(L, "%s%s[\"%s\"]", name, at_path(name), k);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, key)) lua_pushfstring(L, "%s%s[%I]", name, at_path(name), (LUAI_UACINT)lua_tointeger(L, key));
        else lua_pushfstring(L, "%s%s[%f]", name, at_path(name), (LUAI_UACNUMBER)lua_tonumber(L, key));
        break;
    case LUA_TBOOLEAN: lua_pushfstring(L, "%s%s[%s]", name, at_path(name), lua_toboolean(L, key) ? "true" : "false"); break;
    case LUA_TLIGHTUSERDATA:
        // A metatable copy's field holding the table given to setmetatable.
        if (lua_touserdata(L, key) == &original_key) { lua_pushfstring(L, "%s%s(metatable)", name, at_path(name)); break; }
        // fallthrough
    default: lua_pushfstring(L, "%s%s[a %s]", name, at_path(name), luaL_typename(L, key));
    }
    lua_remove(L, -2);
}

static const char *const why_read_only =
    "a projection can change nothing but s (what its code set up when it loaded is shared by every key, "
    "so a change would make results depend on the order keys are replayed in); keep the value in s";

int avm_refuse_change(lua_State *L, int view, int key) {
    view = lua_absindex(L, view);
    key = lua_absindex(L, key);
    if (!avm_frozen_name(L, view)) lua_pushliteral(L, "a read-only table");
    push_member_name(L, key);
    return luaL_error(L, "cannot change %s: %s", lua_tostring(L, -1), why_read_only);
}

/// __newindex of views.
static int view_newindex(lua_State *L) { return avm_refuse_change(L, 1, 2); }

/// __len of views of tables without a __len: the length of what it shows.
static int view_len(lua_State *L) {
    avm_frozen_real(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/// __index of a view of a table whose metatable's __index is a function (upvalues: the
/// table, the function): what the table holds, else what the function gives for the
/// view. Lua would call the function with the real table, which it could then change
/// with rawset (a memo or a counter carried from one key to the next).
static int view_index(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/// Metatable fields a view takes over from the table it shows: how it behaves as an
/// operand, is called, printed or iterated.
static const char *const operators[] = {
    "__add", "__sub", "__mul", "__div", "__mod", "__pow", "__unm", "__idiv", "__band", "__bor", "__bxor", "__shl",
    "__shr", "__bnot", "__concat", "__eq", "__lt", "__le", "__call", "__tostring", "__name", "__pairs", "__len",
};

// --- the walk -------------------------------------------------------------------

/// The walk over what a script set up: views are made breadth first, in a fixed
/// order of keys, so each table is named the same way in every run.
typedef struct {
    avm *vm;
    lua_State *L;
    int views;   // stack index: real table -> its view; function -> true (walked)
    int queue;   // stack index: [2i-1] value to walk, [2i] its name
    lua_Integer head, tail;
} walk;

static void enqueue(walk *w, int value, int name) {
    lua_State *L = w->L;
    lua_pushvalue(L, value);
    lua_rawseti(L, w->queue, ++w->tail);
    lua_pushvalue(L, name);
    lua_rawseti(L, w->queue, ++w->tail);
}

/// Pushes the view of the table at t, made (and queued to be walked) if it has none;
/// `view` (0: a new table) is the table to make the view, name at stack index `name`.
static void view_of(walk *w, int t, int name, int view) {
    lua_State *L = w->L;
    lua_pushvalue(L, t);
    if (lua_rawget(L, w->views) != LUA_TNIL) return;
    lua_pop(L, 1);
    if (avm_frozen_name(L, t)) {  // already a view
        lua_pop(L, 1);
        lua_pushvalue(L, t);
        return;
    }
    if (view) lua_pushvalue(L, view); else lua_newtable(L);
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2);
    lua_rawset(L, w->views);
    // A view is its own view: an upvalue shared by two functions is met again as one.
    lua_pushvalue(L, -1);
    lua_pushvalue(L, -1);
    lua_rawset(L, w->views);
    enqueue(w, t, name);
}

/// Queues a function to have its upvalues walked (once).
static void walk_function(walk *w, int f, int name) {
    lua_State *L = w->L;
    lua_pushvalue(L, f);
    if (lua_rawget(L, w->views) != LUA_TNIL) { lua_pop(L, 1); return; }
    lua_pop(L, 1);
    lua_pushvalue(L, f);
    lua_pushboolean(L, 1);
    lua_rawset(L, w->views);
    enqueue(w, f, name);
}

/// Replaces the value at `value` (a table: its view; a function: walked) for the member
/// `key` of the table named at `name`.
static void freeze_member(walk *w, int value, int name, int key) {
    lua_State *L = w->L;
    int t = lua_type(L, value);
    if (t != LUA_TTABLE && t != LUA_TFUNCTION) return;
    lua_pushvalue(L, name);
    push_member_name(L, key);
    int member = lua_gettop(L);
    if (t == LUA_TTABLE) {
        view_of(w, value, member, 0);
        lua_replace(L, value);
    } else {
        walk_function(w, value, member);
    }
    lua_pop(L, 1);
}

/// Replaces every table in the table at t (values and keys) by its view.
static void freeze_fields(walk *w, int t, int name) {
    lua_State *L = w->L;
    luaL_checkstack(L, 12, "walking what the projection loaded");
    avm_push_snapshot(L, t, NULL);  // a fixed order; fields change under it
    int snap = lua_gettop(L);
    lua_getiuservalue(L, snap, 1);
    int keys = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, keys, i) != LUA_TNIL; i++) {
        int key = lua_gettop(L);
        lua_pushvalue(L, key);
        lua_rawget(L, t);
        int value = lua_gettop(L);
        freeze_member(w, value, name, key);
        int kt = lua_type(L, key);
        if (kt == LUA_TTABLE || kt == LUA_TFUNCTION) {
            lua_pushvalue(L, key);
            freeze_member(w, lua_gettop(L), name, key);
            // a table key becomes its view: the old key goes
            lua_pushvalue(L, key);
            lua_pushnil(L);
            lua_rawset(L, t);
            lua_pushvalue(L, value);
            lua_rawset(L, t);
        } else {
            lua_pushvalue(L, key);
            lua_pushvalue(L, value);
            lua_rawset(L, t);
        }
        lua_settop(L, keys);
    }
    lua_settop(L, snap - 1);
}

/// Walks a dequeued table: its metatable's fields and its own, then gives its view
/// the metatable that shows it.
static void walk_table(walk *w, int t, int name) {
    lua_State *L = w->L;
    lua_pushvalue(L, t);
    lua_rawget(L, w->views);
    int view = lua_gettop(L);
    int mt = 0;
    if (lua_getmetatable(L, t)) {
        mt = lua_gettop(L);
        freeze_fields(w, mt, name);
    }
    freeze_fields(w, t, name);
    lua_createtable(L, 0, 6);
    int m = lua_gettop(L);
    // The metamethods Lua would call on the table are called on the view, so that
    // what they are given is read-only too.
    lua_pushcfunction(L, view_len);
    lua_setfield(L, m, "__len");
    lua_pushvalue(L, t);
    if (mt) {
        for (size_t i = 0; i < sizeof operators / sizeof *operators; i++) {
            lua_pushstring(L, operators[i]);
            if (lua_rawget(L, mt) == LUA_TNIL) lua_pop(L, 1);  // raw, as Lua looks metamethods up
            else lua_setfield(L, m, operators[i]);
        }
        lua_pushliteral(L, "__index");
        if (lua_rawget(L, mt) == LUA_TFUNCTION) lua_pushcclosure(L, view_index, 2);
        else lua_pop(L, 1);
    }
    lua_setfield(L, m, "__index");
    lua_pushcfunction(L, view_newindex);
    lua_setfield(L, m, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, m, "__metatable");
    lua_pushvalue(L, name);
    lua_rawsetp(L, m, &view_key);
    lua_setmetatable(L, view);
    lua_settop(L, view - 1);
}

/// Pushes the file a Lua function is defined in, as given to load.
static void push_source(lua_State *L, int f) {
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">S", &ar);
    lua_pushstring(L, ar.source[0] == '@' || ar.source[0] == '=' ? ar.source + 1 : ar.short_src);
}

/// Walks a dequeued function: views for the tables among its upvalues; the upvalues
/// its code assigns are watched. C functions keep theirs (the sandbox's wrappers hold
/// the originals), but an iterator of string.gmatch carries its position: one made at
/// load would hand out a different match to each key.
static void walk_upvalues(walk *w, int f) {
    lua_State *L = w->L;
    avm *vm = w->vm;
    luaL_checkstack(L, 8, "walking what the projection loaded");
    if (lua_iscfunction(L, f)) {
        if (lua_tocfunction(L, f) == vm->gmatch_step)
            luaL_error(L, "a string.gmatch iterator made when the projection loaded would carry its position from one key to the next: call gmatch in the handler");
        for (int i = 1; lua_getupvalue(L, f, i); i++) {
            if (lua_type(L, -1) == LUA_TFUNCTION) walk_function(w, lua_gettop(L), lua_gettop(L));
            lua_pop(L, 1);
        }
        return;
    }
    unsigned char written[WATCH_PER_FUNCTION];
    int known = avm_upvalues_written(vm, L, f, written, WATCH_PER_FUNCTION);
    push_source(L, f);
    int source = lua_gettop(L);
    const char *up;
    for (int i = 1; (up = lua_getupvalue(L, f, i)) != NULL; i++) {
        int value = lua_gettop(L);
        int t = lua_type(L, value);
        if (t == LUA_TTABLE || t == LUA_TFUNCTION) {
            lua_pushfstring(L, "upvalue \"%s\" of %s", up, lua_tostring(L, source));
            if (t == LUA_TTABLE) {
                view_of(w, value, lua_gettop(L), 0);
                lua_pushvalue(L, -1);
                lua_setupvalue(L, f, i);
                lua_replace(L, value);
            } else {
                walk_function(w, value, lua_gettop(L));
            }
        }
        if (!known || (i <= WATCH_PER_FUNCTION && written[i - 1])) avm_watch_upvalue(vm, L, f, i);
        lua_settop(L, source);
    }
    lua_settop(L, source - 1);
}

static void run_walk(walk *w) {
    lua_State *L = w->L;
    while (w->head < w->tail) {
        lua_rawgeti(L, w->queue, ++w->head);
        lua_rawgeti(L, w->queue, ++w->head);
        int value = lua_gettop(L) - 1;
        if (lua_type(L, value) == LUA_TTABLE) walk_table(w, value, value + 1);
        else walk_upvalues(w, value);
        lua_settop(L, value - 1);
    }
}

static void start_walk(walk *w, avm *vm, lua_State *L) {
    w->vm = vm;
    w->L = L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_views);
    w->views = lua_gettop(L);
    lua_newtable(L);
    w->queue = lua_gettop(L);
    w->head = w->tail = 0;
}

/// Freezes the value at idx (replaced by its view) as one named `name`.
static void freeze_root(walk *w, int idx, const char *name) {
    lua_State *L = w->L;
    idx = lua_absindex(L, idx);
    lua_pushstring(L, name);
    if (lua_type(L, idx) == LUA_TTABLE) {
        view_of(w, idx, lua_gettop(L), 0);
        lua_replace(L, idx);
    } else if (lua_type(L, idx) == LUA_TFUNCTION) {
        walk_function(w, idx, lua_gettop(L));
    }
    lua_pop(L, 1);
}

void avm_freeze_module(avm *vm, lua_State *L, int idx, const char *name) {
    if (vm->ref_views == LUA_NOREF) return;  // still loading: frozen with the rest
    walk w;
    idx = lua_absindex(L, idx);
    start_walk(&w, vm, L);
    lua_pushfstring(L, "module \"%s\"", name);
    freeze_root(&w, idx, lua_tostring(L, -1));
    lua_pop(L, 1);
    run_walk(&w);
    lua_settop(L, w.views - 1);
}

static const char *const libraries[] = { "string", "table", "math", "utf8" };

void avm_freeze_loaded(avm *vm, lua_State *L) {
    lua_newtable(L);
    vm->ref_views = luaL_ref(L, LUA_REGISTRYINDEX);
    walk w;
    start_walk(&w, vm, L);
    // The libraries, by their names: string.upper, not _G.string.upper.
    lua_pushglobaltable(L);
    int globals = lua_gettop(L);
    for (size_t i = 0; i < sizeof libraries / sizeof *libraries; i++) {
        if (lua_getfield(L, globals, libraries[i]) == LUA_TTABLE) {
            freeze_root(&w, -1, libraries[i]);
            lua_setfield(L, globals, libraries[i]);
        } else {
            lua_pop(L, 1);
        }
    }
    freeze_root(&w, globals, "_G");
    // The script's globals: the environment's fields move to a table that the
    // environment (every chunk's _ENV) becomes the view of, with the libraries' names
    // beside them (one lookup, as before).
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
    int env = lua_gettop(L);
    lua_newtable(L);
    int fields = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, env)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, fields);
    }
    lua_pushnil(L);
    while (lua_next(L, fields)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, env);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);  // the real globals: their fields are views now
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        if (lua_rawget(L, fields) == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, fields);
        } else {
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setmetatable(L, env);  // it is about to be a view
    lua_pushliteral(L, "global");
    view_of(&w, fields, lua_gettop(L), env);
    lua_settop(L, globals);
    // Modules loaded so far, by name.
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_loaded);
    int loaded = lua_gettop(L);
    avm_push_snapshot(L, loaded, NULL);
    lua_getiuservalue(L, -1, 1);
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
        lua_pushvalue(L, -1);
        lua_rawget(L, loaded);
        lua_pushfstring(L, "module \"%s\"", lua_tostring(L, -2));
        freeze_root(&w, -2, lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_rawset(L, loaded);
    }
    lua_settop(L, loaded - 1);
    // The handlers (by event type), init, key and merge.
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_on);
    int on = lua_gettop(L);
    avm_push_snapshot(L, on, NULL);
    lua_getiuservalue(L, -1, 1);
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
        lua_rawget(L, on);
        freeze_root(&w, -1, "handler");
        lua_pop(L, 1);
    }
    lua_settop(L, on - 1);
    const int refs[] = { vm->ref_init, vm->ref_key, vm->ref_merge };
    for (size_t i = 0; i < 3; i++) {
        if (refs[i] == LUA_NOREF) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, refs[i]);
        freeze_root(&w, -1, "function");
        lua_pop(L, 1);
    }
    run_walk(&w);
    lua_settop(L, w.views - 1);
}

// --- watched upvalues -----------------------------------------------------------

void avm_watch_upvalue(avm *vm, lua_State *L, int f, int n) {
    // Shared upvalues are watched once.
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_watched);
    int watched = lua_gettop(L);
    lua_pushlightuserdata(L, lua_upvalueid(L, f, n));
    if (lua_rawget(L, watched) != LUA_TNIL) { lua_settop(L, watched - 1); return; }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, lua_upvalueid(L, f, n));
    lua_pushboolean(L, 1);
    lua_rawset(L, watched);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, f);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, n);
    lua_rawseti(L, -2, 2);
    lua_getupvalue(L, f, n);
    lua_rawseti(L, -2, 3);
    lua_rawseti(L, watched, (lua_Integer)++vm->nwatched);
    lua_settop(L, watched - 1);
}

/// Whether two values are the same value (an integer is not its float; NaN is itself).
static int same_value(lua_State *L, int a, int b) {
    int t = lua_type(L, a);
    if (t != lua_type(L, b)) return 0;
    if (t == LUA_TNUMBER) {
        if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
        if (!lua_isinteger(L, a)) {
            lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
            return x == y ? (x != 0 || (1 / x > 0) == (1 / y > 0)) : (x != x && y != y);
        }
    }
    return lua_rawequal(L, a, b);
}

void avm_check_watched(avm *vm, lua_State *L) {
    luaL_checkstack(L, 6, "upvalues");
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_watched);
    int watched = lua_gettop(L);
    for (lua_Integer i = 1; i <= (lua_Integer)vm->nwatched; i++) {
        lua_rawgeti(L, watched, i);
        int entry = lua_gettop(L);
        lua_rawgeti(L, entry, 1);
        lua_rawgeti(L, entry, 2);
        int n = (int)lua_tointeger(L, -1);
        const char *name = lua_getupvalue(L, entry + 1, n);
        lua_rawgeti(L, entry, 3);
        if (!same_value(L, -1, -2)) {
            push_source(L, entry + 1);
            luaL_error(L, "cannot change upvalue \"%s\" of %s (captured when the projection loaded): %s",
                       name, lua_tostring(L, -1), why_read_only);
        }
        lua_settop(L, watched);
    }
    lua_settop(L, watched - 1);
}
