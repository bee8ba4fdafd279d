// The projection's declared SQL columns, and whether a state's value fits one.
//
// Checked while a state is written out as JSON at a checkpoint (lua_to_json.c), where
// each top-level field is already at hand: no extra pass over the states, and nothing
// per event.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static void free_columns(avm *vm) {
    for (size_t i = 0; i < vm->ncolumns; i++) free(vm->columns[i].name);
    free(vm->columns);
    free(vm->column_keys);
    vm->columns = NULL;
    vm->column_keys = NULL;
    vm->ncolumns = 0;
}

/// The columns' names as Lua strings, kept referenced: a state's top-level key that is
/// one of them is the same (interned) string, found by its address (state_check.c).
static int column_keys_protected(lua_State *L) {
    avm *vm = avm_of(L);
    lua_createtable(L, (int)vm->ncolumns, 0);
    for (size_t i = 0; i < vm->ncolumns; i++) {
        lua_pushlstring(L, vm->columns[i].name, vm->columns[i].len);
        vm->column_keys[i] = vm->columns[i].len <= 40 ? lua_topointer(L, -1) : NULL;  // longer: not interned
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_column_keys);
    return 0;
}

int avm_set_columns(avm *vm, const char *const *names, const int *types, size_t count) {
    vm->shape.n = 0;  // it points at the columns
    free_columns(vm);
    if (count == 0) return AVM_OK;
    vm->columns = calloc(count, sizeof *vm->columns);
    if (!vm->columns) { avm_set_error(vm, "out of memory"); return AVM_ERROR; }
    for (size_t i = 0; i < count; i++) {
        vm->columns[i].name = strdup(names[i]);
        if (!vm->columns[i].name) { vm->ncolumns = i; free_columns(vm); avm_set_error(vm, "out of memory"); return AVM_ERROR; }
        vm->columns[i].len = strlen(names[i]);
        vm->columns[i].type = types[i];
    }
    vm->ncolumns = count;
    vm->column_keys = calloc(count, sizeof *vm->column_keys);
    if (!vm->column_keys) { free_columns(vm); avm_set_error(vm, "out of memory"); return AVM_ERROR; }
    lua_pushcfunction(vm->L, column_keys_protected);
    avm_reset_budget(vm);
    if (avm_finish_call(vm, avm_pcall(vm, 0, 0), AVM_OK) != AVM_OK) { free_columns(vm); return AVM_ERROR; }
    return AVM_OK;
}

void avm_free_columns(avm *vm) { free_columns(vm); }

const avm_column *avm_find_column(const avm *vm, const char *name, size_t len) {
    for (size_t i = 0; i < vm->ncolumns; i++) {
        const avm_column *c = &vm->columns[i];
        if (c->len == len && memcmp(c->name, name, len) == 0) return c;
    }
    return NULL;
}

const char *avm_column_type_name(int type) {
    switch (type) {
    case AVM_COLUMN_TEXT: return "text";
    case AVM_COLUMN_INTEGER: return "integer";
    case AVM_COLUMN_REAL: return "real";
    default: return "numeric";
    }
}

/// text: a string without a NUL byte (SQLite's json_extract, which fills the column and
/// which a question's SQL reads the state with, and its text functions end a text at its
/// first NUL: "a\0b" would be stored as "a", and verify would compare "a" with "a").
/// integer: an integer, a float with an integral value, or a boolean (stored 0/1). real: a
/// number. numeric: a number or a boolean. Absent (nil) fits any.
int avm_column_accepts(lua_State *L, int idx, int type) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return 1;
    case LUA_TSTRING: {
        if (type != AVM_COLUMN_TEXT) return 0;
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return memchr(s, 0, len) == NULL;
    }
    case LUA_TBOOLEAN: return type == AVM_COLUMN_INTEGER || type == AVM_COLUMN_NUMERIC;
    case LUA_TNUMBER:
        if (type == AVM_COLUMN_TEXT) return 0;
        if (type == AVM_COLUMN_INTEGER && !lua_isinteger(L, idx)) {
            double d = (double)lua_tonumber(L, idx);
            return d == floor(d) && fabs(d) < 9.2e18;
        }
        return 1;
    default: return 0;
    }
}
