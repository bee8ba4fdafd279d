// The VM's limits: the instruction budget (the allocator under the memory cap is in alloc.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

// --- limits -------------------------------------------------------------------

/// Fires every AVM_HOOK_COUNT instructions, and at every instruction once a limit is
/// hit, so that a script's pcall cannot swallow it and go on (budget.c).
void avm_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    avm *vm = avm_of(L);
    if (vm->loading) return;
    avm_budget_tick(L, vm);
}

int avm_on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "audit: unprotected Lua error (a bug in the engine): %s\n", msg ? msg : "?");
    abort();
}

