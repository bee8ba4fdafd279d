// The VM's limits: the instruction budget (the allocator under the memory cap is in alloc.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

// --- limits -------------------------------------------------------------------

/// Fires every AVM_HOOK_COUNT instructions. Once the budget is spent it fails every
/// time it fires, so a script's pcall cannot swallow it and go on.
void avm_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    avm *vm = avm_of(L);
    if (vm->loading) return;
    if (--vm->budget_left <= 0) {
        vm->budget_exceeded = 1;
        // From now on fire on every instruction: a script that catches this error with
        // pcall is stopped again at its very next instruction outside that pcall.
        lua_sethook(L, avm_budget_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction budget exceeded");
    }
}

int avm_on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "audit: unprotected Lua error (a bug in the engine): %s\n", msg ? msg : "?");
    abort();
}

