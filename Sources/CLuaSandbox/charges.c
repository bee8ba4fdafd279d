// What the C functions of the sandbox's libraries are charged for the work they do.
//
// The count hook never fires inside a C function, so one call of string.rep, upper or
// format can do megabytes of work for one instruction. Each function that loops over
// its input is charged, to the event's instruction budget, for the bytes it reads or
// writes (AVM_BYTES_PER_INSTRUCTION to an instruction) and the values it pushes (one
// each), computed from its arguments before it runs (so that it fails before the work
// when the budget is spent) and, where only the result tells, from its results after.
// A charge depends on the arguments and results alone: deterministic (budget.c).
//
// Each is a closure around the function it replaces: called directly when that is a
// plain C function (same frame, same error messages), through lua_call when it is a
// closure of the sandbox's own (string.format's wrapper, sandbox.c), so that these
// charges are the outer layer whatever the other wrappers do. Also here: xpcall, whose
// message handler must not run once a limit is hit.
#include <limits.h>
#include <string.h>
#include "internal.h"

#define REP_MAX_COUNT 10000000
#define MOVE_MAX_COUNT 10000000
// Compiling source: a byte costs about what a few VM instructions do (measured).
#define LOAD_BYTES_PER_INSTRUCTION 1

/// The bytes of a string argument (a number is converted by the function itself: its
/// text is short).
static size_t arg_bytes(lua_State *L, int i) {
    size_t n = 0;
    if (lua_type(L, i) == LUA_TSTRING) lua_tolstring(L, i, &n);
    else if (lua_type(L, i) == LUA_TNUMBER) n = 32;
    return n;
}

/// An integer argument as the function will read it, or `def`.
static lua_Integer arg_int(lua_State *L, int i, lua_Integer def) {
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    return ok ? v : def;
}

/// Lua's getendpos / posrelatI clipping of [i, j] to a string of len bytes: its size.
static int64_t range_size(lua_Integer i, lua_Integer j, size_t len) {
    lua_Integer l = (lua_Integer)len;
    if (i < 0) i = i < -l ? 1 : l + i + 1;
    else if (i == 0) i = 1;
    if (j > l) j = l;
    else if (j < 0) j = j < -l ? 0 : l + j + 1;
    return j >= i ? (int64_t)(j - i + 1) : 0;
}

static int64_t result_bytes(lua_State *L, int n) {
    int64_t bytes = 0;
    for (int i = lua_gettop(L) - n + 1; i <= lua_gettop(L); i++) bytes += (int64_t)arg_bytes(L, i);
    return avm_bytes((size_t)bytes);
}

static int64_t scan(lua_State *L) { return avm_bytes(2 * arg_bytes(L, 1)); }       // upper, lower, reverse
static int64_t nargs(lua_State *L) { return lua_gettop(L); }                       // char, utf8.char
/// A function that loops over (or moves) its arguments: math.max and min compare each,
/// pcall, xpcall and assert move them all. Free up to a few (what ordinary calls pass),
/// one instruction each beyond: `f(...)` of a list unpacked once passes them again at
/// every call.
#define FREE_ARGS 8
static int64_t many_args(lua_State *L) { int n = lua_gettop(L); return n > FREE_ARGS ? n : 0; }
static int64_t byte_values(lua_State *L) {
    lua_Integer i = arg_int(L, 2, 1);
    return range_size(i, arg_int(L, 3, i), arg_bytes(L, 1));
}
static int64_t format_inputs(lua_State *L) {
    size_t bytes = 0;
    for (int i = 2; i <= lua_gettop(L); i++) bytes += arg_bytes(L, i);
    // %q writes a string a byte at a time (a control character through snprintf): an
    // instruction a byte.
    size_t fmt_len = arg_bytes(L, 1);
    if (lua_type(L, 1) == LUA_TSTRING && memchr(lua_tostring(L, 1), 'q', fmt_len)) bytes *= AVM_BYTES_PER_INSTRUCTION;
    return avm_bytes(fmt_len + bytes);
}
static int64_t pack_inputs(lua_State *L) { return avm_bytes(arg_bytes(L, 1)) + lua_gettop(L); }
static int64_t unpack_inputs(lua_State *L) {
    size_t fmt_len = arg_bytes(L, 1), len = arg_bytes(L, 2);
    int64_t charge = avm_bytes(fmt_len);
    // 'z' scans for the end of a zero-terminated string, which only the scan finds.
    if (lua_type(L, 1) == LUA_TSTRING && memchr(lua_tostring(L, 1), 'z', fmt_len)) {
        lua_Integer pos = arg_int(L, 3, 1);
        charge += avm_bytes((size_t)range_size(pos, (lua_Integer)len, len));
    }
    return charge;
}
static int64_t unpack_results(lua_State *L, int n) { return result_bytes(L, n) + n; }
static int64_t utf8_range_values(lua_State *L) {
    lua_Integer i = arg_int(L, 2, 1);
    return range_size(i, arg_int(L, 3, i), arg_bytes(L, 1));
}
static int64_t utf8_range_bytes(lua_State *L) {
    return avm_bytes((size_t)range_size(arg_int(L, 2, 1), arg_int(L, 3, -1), arg_bytes(L, 1)));
}
/// utf8.offset scans from its start to the position it returns (or to an end).
static int64_t offset_scanned(lua_State *L, int n) {
    int args = lua_gettop(L) - n;
    size_t len = arg_bytes(L, 1);
    if (n != 1 || !lua_isinteger(L, -1)) return avm_bytes(len);
    lua_Integer chars = arg_int(L, 2, 0), from = chars >= 0 ? 1 : (lua_Integer)len + 1;
    if (args >= 3 && lua_isinteger(L, 3)) from = lua_tointeger(L, 3);
    if (from < 0) from += (lua_Integer)len + 1;
    lua_Integer to = lua_tointeger(L, -1);
    return avm_bytes((size_t)(to > from ? to - from : from - to));
}
static int64_t text_to_number(lua_State *L) { return lua_type(L, 1) == LUA_TSTRING ? avm_bytes(arg_bytes(L, 1)) : 0; }
static int64_t source_bytes(lua_State *L) {
    return lua_type(L, 1) == LUA_TSTRING ? (int64_t)(arg_bytes(L, 1) / LOAD_BYTES_PER_INSTRUCTION) : 0;
}
static int64_t selected(lua_State *L) {
    int ok;
    lua_Integer n = lua_tointegerx(L, 1, &ok), rest = lua_gettop(L) - 1;
    if (!ok) return 0;
    if (n < 0) return n < -rest ? 0 : -n;
    return n <= rest ? rest - n + 1 : 0;
}
static int64_t compared(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TSTRING) return 0;
    size_t a = arg_bytes(L, 1), b = arg_bytes(L, 2);
    return a == b ? avm_bytes(a) : 0;
}

static int64_t move_count(lua_State *L) {
    lua_Integer f = arg_int(L, 2, 1), e = arg_int(L, 3, 0);
    if (e < f) return 0;
    lua_Unsigned span = (lua_Unsigned)e - (lua_Unsigned)f;
    if (span >= MOVE_MAX_COUNT)
        return luaL_error(L, "table.move: range of %I elements is over the limit of %d", (LUAI_UACINT)(span + 1), MOVE_MAX_COUNT);
    return (int64_t)span + 1;
}
/// n log n comparisons (the sort's own length, read as it will read it: calling a
/// __len metamethod, when there is one, a second time).
static int64_t sort_comparisons(lua_State *L) {
    lua_Integer n;
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL) {
        lua_pop(L, 1);
        n = luaL_len(L, 1);
    } else if (lua_type(L, 1) == LUA_TTABLE) {
        n = (lua_Integer)lua_rawlen(L, 1);
    } else {
        return 0;  // not a table: the sort says so
    }
    if (n < 2) return 0;
    int64_t log2 = 64 - __builtin_clzll((unsigned long long)n);
    return n > INT64_MAX / 64 ? INT64_MAX : n * log2;
}

typedef struct {
    const char *name;                        // as the budget error names it
    const char *field;                       // in its library's table
    int64_t (*before)(lua_State *L);         // instructions, from the arguments
    int64_t (*after)(lua_State *L, int n);   // instructions, from the n results
} charged;

static const charged string_charges[] = {
    { "string.byte", "byte", byte_values, NULL },
    { "string.char", "char", nargs, NULL },
    { "string.format", "format", format_inputs, result_bytes },
    { "string.lower", "lower", scan, NULL },
    { "string.upper", "upper", scan, NULL },
    { "string.reverse", "reverse", scan, NULL },
    { "string.sub", "sub", NULL, result_bytes },
    { "string.pack", "pack", pack_inputs, result_bytes },
    { "string.packsize", "packsize", pack_inputs, NULL },
    { "string.unpack", "unpack", unpack_inputs, unpack_results },
    { NULL, NULL, NULL, NULL },
};

static const charged utf8_charges[] = {
    { "utf8.char", "char", nargs, result_bytes },
    { "utf8.codepoint", "codepoint", utf8_range_values, NULL },
    { "utf8.len", "len", utf8_range_bytes, NULL },
    { "utf8.offset", "offset", NULL, offset_scanned },
    { NULL, NULL, NULL, NULL },
};

static const charged table_charges[] = {
    { "table.move", "move", move_count, NULL },
    { "table.pack", "pack", nargs, NULL },
    { "table.sort", "sort", sort_comparisons, NULL },
    { NULL, NULL, NULL, NULL },
};

static const charged math_charges[] = {
    { "math.max", "max", many_args, NULL },
    { "math.min", "min", many_args, NULL },
    { NULL, NULL, NULL, NULL },
};

static const charged base_charges[] = {
    { "pcall", "pcall", many_args, NULL },
    { "assert", "assert", many_args, NULL },
    { "tonumber", "tonumber", text_to_number, NULL },
    { "load", "load", source_bytes, NULL },
    { "select", "select", selected, NULL },
    { "rawequal", "rawequal", compared, NULL },
    { NULL, NULL, NULL, NULL },
};

/// What a wrapper of a plain C function holds: the function and its charges (one
/// upvalue: these wrappers are called per event by ordinary projections).
typedef struct {
    lua_CFunction fn;
    const charged *c;
} direct_call;

static int charged_direct(lua_State *L) {
    const direct_call *d = lua_touserdata(L, lua_upvalueindex(1));
    int64_t cost = d->c->before ? d->c->before(L) : 0;
    if (cost) avm_charge(L, cost, d->c->name);
    int n = d->fn(L);
    if (d->c->after && (cost = d->c->after(L, n)) != 0) avm_charge(L, cost, d->c->name);
    return n;
}

/// A wrapper of a closure (upvalues: the closure, and its charges).
static int charged_closure(lua_State *L) {
    const charged *c = lua_touserdata(L, lua_upvalueindex(2));
    int64_t cost = c->before ? c->before(L) : 0;
    if (cost) avm_charge(L, cost, c->name);
    int args = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, args, LUA_MULTRET);
    int n = lua_gettop(L);
    if (c->after && (cost = c->after(L, n)) != 0) avm_charge(L, cost, c->name);
    return n;
}

/// Whether the function on top is a C function without upvalues: one that can be
/// called in the wrapper's own frame.
static int plain_c_function(lua_State *L) {
    if (!lua_iscfunction(L, -1)) return 0;
    if (lua_getupvalue(L, -1, 1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/// Replaces each function of the list in the table on top with its charged wrapper.
static void wrap_all(lua_State *L, const charged *list) {
    for (const charged *c = list; c->name; c++) {
        if (lua_getfield(L, -1, c->field) != LUA_TFUNCTION) {
            lua_pop(L, 1);
            continue;
        }
        if (plain_c_function(L)) {
            direct_call *d = lua_newuserdatauv(L, sizeof *d, 0);
            d->fn = lua_tocfunction(L, -2);
            d->c = c;
            lua_remove(L, -2);
            lua_pushcclosure(L, charged_direct, 1);
        } else {
            lua_pushlightuserdata(L, (void *)c);
            lua_pushcclosure(L, charged_closure, 2);
        }
        lua_setfield(L, -2, c->field);
    }
}

// --- string.rep ---------------------------------------------------------------

/// string.rep, as Lua's (same checks, same result), charged, refused past the longest
/// string, and filled by doubling what is written: Lua's copies s and sep once per
/// repetition, which for one byte costs more per byte than anything charged here.
static int charged_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n > REP_MAX_COUNT) return luaL_error(L, "string.rep: count %I is over the limit of %d", (LUAI_UACINT)n, REP_MAX_COUNT);
    if (n <= 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n) return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
    avm *vm = avm_of(L);
    if (vm && total > vm->max_string) avm_refuse_string(L, total);
    avm_charge(L, avm_bytes(total), "string.rep");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    size_t unit = l + lsep, filled = total < unit ? total : unit;
    memcpy(p, s, l < total ? l : total);
    if (filled > l) memcpy(p + l, sep, filled - l);
    while (filled < total) {  // the bytes so far are whole units: copy them after themselves
        size_t k = filled < total - filled ? filled : total - filled;
        memcpy(p + filled, p, k);
        filled += k;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

// --- utf8.codes ---------------------------------------------------------------

/// The iterator of utf8.codes: charged for the continuation bytes it skips (a string of
/// them is scanned whole by one call).
static int charged_codes_step(lua_State *L) {
    size_t len;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    lua_Integer n = lua_tointeger(L, 2);
    if (s && n >= 0 && (size_t)n < len) {
        size_t k = (size_t)n;
        while (k < len && (s[k] & 0xC0) == 0x80) k++;
        avm_charge(L, avm_bytes(k - (size_t)n), "utf8.codes");
    }
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/// utf8.codes: upvalues the original, and its strict and lax iterators wrapped.
static int charged_codes(lua_State *L) {
    int n = lua_tocfunction(L, lua_upvalueindex(1))(L);
    if (n == 3) {
        lua_pushvalue(L, lua_upvalueindex(lua_toboolean(L, 2) ? 3 : 2));
        lua_replace(L, -4);
    }
    return n;
}

static void wrap_codes(lua_State *L) {
    if (lua_getfield(L, -1, "codes") != LUA_TFUNCTION || !plain_c_function(L)) {
        lua_pop(L, 1);
        return;
    }
    for (int lax = 0; lax <= 1; lax++) {  // the iterators, from calls of the original
        lua_pushvalue(L, -1 - lax);
        lua_pushliteral(L, "");
        lua_pushboolean(L, lax);
        lua_call(L, 2, 3);
        lua_pop(L, 2);
        lua_pushcclosure(L, charged_codes_step, 1);
    }
    lua_pushcclosure(L, charged_codes, 3);
    lua_setfield(L, -2, "codes");
}

// --- xpcall -------------------------------------------------------------------

/// The message handler given to Lua's xpcall in place of the script's: once a limit is
/// hit (its error raised from the count hook, where Lua runs the handler with hooks off,
/// so unmetered), the message passes through unchanged and the script's handler is not
/// called; other errors reach it as before.
static int limit_aware_handler(lua_State *L) {
    avm *vm = avm_of(L);
    if (vm && (avm_limit_hit(vm) || avm_watch_fired(vm))) return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int safe_xpcall(lua_State *L) {
    int64_t moved = many_args(L);
    if (moved) avm_charge(L, moved, "xpcall");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, limit_aware_handler, 1);
    lua_replace(L, 2);
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/// Replaces table[field] (table on top) with `fn`, whose upvalue is the original, which
/// must be a plain C function.
static void replace_plain(lua_State *L, const char *field, lua_CFunction fn) {
    if (lua_getfield(L, -1, field) != LUA_TFUNCTION || !plain_c_function(L)) {
        lua_pop(L, 1);
        return;
    }
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, field);
}

int avm_open_charged(lua_State *L) {
    lua_pushglobaltable(L);
    wrap_all(L, base_charges);
    replace_plain(L, "xpcall", safe_xpcall);
    lua_getfield(L, -1, LUA_STRLIBNAME);
    avm_open_matcher(L);
    wrap_all(L, string_charges);
    lua_pushcfunction(L, charged_rep);
    lua_setfield(L, -2, "rep");
    lua_pop(L, 1);
    lua_getfield(L, -1, LUA_UTF8LIBNAME);
    wrap_all(L, utf8_charges);
    wrap_codes(L);
    lua_pop(L, 1);
    lua_getfield(L, -1, LUA_MATHLIBNAME);
    wrap_all(L, math_charges);
    lua_pop(L, 1);
    lua_getfield(L, -1, LUA_TABLIBNAME);
    wrap_all(L, table_charges);
    avm_open_table_charges(L);
    lua_pop(L, 1);
    lua_pop(L, 1);
    return 0;
}

void avm_push_plain_string_functions(lua_State *L) {
    *(avm **)lua_getextraspace(L) = NULL;  // no VM: nothing to charge
    lua_newtable(L);
    avm_open_matcher(L);
    lua_pushcfunction(L, charged_rep);
    lua_setfield(L, -2, "rep");
}
