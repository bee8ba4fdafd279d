// table.sort, deterministic.
//
// Lua 5.4's sort is a quicksort that takes the middle element as pivot until a
// partition comes out badly unbalanced, and from then on a pivot offset from the
// clock and the time: elements that compare equal end up in an order that changes
// from run to run. This one behaves as Lua's does until that point (the same
// comparisons in the same order, so the same arrangement of ties; lua_geti/lua_seti,
// so metamethods apply; the comparator's errors and "invalid order function for
// sorting"), and then sorts the unbalanced range with a heapsort instead, which needs
// no pivot at all and bounds the work at O(n log n) whatever the input.
#include <limits.h>
#include "internal.h"

typedef unsigned int idx_t;

/// Long strings (over Lua's 40 bytes of a short one): `<` compares their bytes.
#define LONG_STRING 40

/// Whether the value at stack index a sorts before the one at b. Without a comparator,
/// two long strings are charged for the bytes compared (the shorter one's, 16 to an
/// instruction): the n log2 n charged before the sort count each comparison as one
/// instruction, and a list of one 16 MB string n times would compare 16 MB each time.
static int before(lua_State *L, int a, int b) {
    if (lua_isnil(L, 2)) {
        if (lua_type(L, a) == LUA_TSTRING && lua_type(L, b) == LUA_TSTRING) {
            size_t la = lua_rawlen(L, a), lb = lua_rawlen(L, b), n = la < lb ? la : lb;
            if (n > LONG_STRING) avm_charge(L, avm_bytes(n), "table.sort");
        }
        return lua_compare(L, a, b, LUA_OPLT);
    }
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/// Pops the two values on top into t[i] (the top one) and t[j].
static void store2(lua_State *L, idx_t i, idx_t j) {
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

static void swap(lua_State *L, idx_t i, idx_t j) {
    lua_geti(L, 1, i);
    lua_geti(L, 1, j);
    store2(L, i, j);
}

static int invalid_order(lua_State *L) { return luaL_error(L, "invalid order function for sorting"); }

/// Moves t[lo + root] down the heap of the n elements from lo.
static void sift(lua_State *L, idx_t lo, idx_t root, idx_t n) {
    for (;;) {
        idx_t child = 2 * root + 1;
        if (child >= n) return;
        lua_geti(L, 1, lo + child);
        if (child + 1 < n) {
            lua_geti(L, 1, lo + child + 1);
            if (before(L, -2, -1)) { lua_remove(L, -2); child++; }
            else lua_pop(L, 1);
        }
        lua_geti(L, 1, lo + root);
        if (!before(L, -1, -2)) { lua_pop(L, 2); return; }
        store2(L, lo + child, lo + root);  // the root's value down, the child's up
        root = child;
    }
}

static void heap_sort(lua_State *L, idx_t lo, idx_t up) {
    idx_t n = up - lo + 1;
    for (idx_t i = n / 2; i-- > 0;) sift(L, lo, i, n);
    for (idx_t end = n - 1; end > 0; end--) {
        swap(L, lo, lo + end);
        sift(L, lo, 0, end);
    }
}

/// With the pivot P on top (popped) and in t[up - 1], and t[lo] <= P <= t[up]: puts
/// the elements less than P before it and the greater after; returns P's place.
static idx_t partition(lua_State *L, idx_t lo, idx_t up) {
    int pivot = lua_gettop(L);
    idx_t i = lo, j = up - 1;
    for (;;) {
        for (;;) {  // up while t[i] < P
            lua_geti(L, 1, ++i);
            if (!before(L, -1, pivot)) break;
            if (i == up - 1) invalid_order(L);  // t[up - 1] is P: nothing is less than itself
            lua_pop(L, 1);
        }
        for (;;) {  // down while P < t[j]
            lua_geti(L, 1, --j);
            if (!before(L, pivot, -1)) break;
            if (j < i) invalid_order(L);  // below i all are less than P
            lua_pop(L, 1);
        }
        if (j < i) {
            lua_pop(L, 1);
            store2(L, up - 1, i);  // t[i]'s value to up - 1, P (consumed) to i
            return i;
        }
        store2(L, i, j);  // t[j]'s value (on top) to i, t[i]'s to j
    }
}

static void sort_range(lua_State *L, idx_t lo, idx_t up) {
    while (lo < up) {
        // t[lo], the middle and t[up] in order: the middle is the pivot.
        lua_geti(L, 1, lo);
        lua_geti(L, 1, up);
        if (before(L, -1, -2)) store2(L, lo, up);
        else lua_pop(L, 2);
        if (up - lo == 1) return;
        idx_t p = lo + (up - lo) / 2;
        lua_geti(L, 1, p);
        lua_geti(L, 1, lo);
        if (before(L, -2, -1)) {
            store2(L, p, lo);
        } else {
            lua_pop(L, 1);
            lua_geti(L, 1, up);
            if (before(L, -1, -2)) store2(L, p, up);
            else lua_pop(L, 2);
        }
        if (up - lo == 2) return;
        lua_geti(L, 1, p);        // the pivot, kept on the stack
        lua_pushvalue(L, -1);
        lua_geti(L, 1, up - 1);
        store2(L, p, up - 1);     // and moved to t[up - 1]
        p = partition(L, lo, up);
        idx_t smaller;
        if (p - lo < up - p) {
            sort_range(L, lo, p - 1);
            smaller = p - lo;
            lo = p + 1;
        } else {
            sort_range(L, p + 1, up);
            smaller = up - p;
            up = p - 1;
        }
        // Where Lua would take a pivot from the clock, sort the rest without one.
        if (lo < up && (up - lo) / 128 > smaller) {
            heap_sort(L, lo, up);
            return;
        }
    }
}

static int deterministic_sort(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        luaL_checkstack(L, 12, "sorting");  // each level of the recursion leaves the stack as it found it
        sort_range(L, 1, (idx_t)n);
    }
    return 0;
}

void avm_open_sort(lua_State *L) {
    lua_getglobal(L, "table");
    lua_pushcfunction(L, deterministic_sort);
    lua_setfield(L, -2, "sort");
    lua_pop(L, 1);
}
