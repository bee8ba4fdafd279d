// The instruction budget: what one event may spend, counted in VM instructions and in
// the work C functions do for it (strcharge.c, tablecharge.c, strmatch.c), and how the
// limits that share its hook (string size, CPU time, memory) stop a script.
//
// Deterministic: the hook's count restarts with each event, and a charge depends only on
// a function's arguments and results, so whether an event runs out of budget depends on
// the projection's code and that event's inputs, never on what ran before it in the VM.
// Nor on which event of the VM first requires a module: its top level is counted apart,
// under a budget of its own (avm_module_enter).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

// Lua 5.4's TString: the header before a string's bytes (a '\0' follows them).
#define TSTRING_HEADER 24

void avm_budget_init(avm *vm) {
    lua_State *L = vm->L;
    vm->hook_base = vm->hook_count = NULL;
    vm->hook_period = AVM_HOOK_COUNT;
    vm->max_string = AVM_MAX_STRING;
    atomic_init(&vm->watch_serial, 1);  // watch_fired 0: never this serial
    atomic_init(&vm->watch_fired, 0);
    // The hook's counters are two ints of the lua_State, basehookcount then hookcount
    // (Lua keeps no public way to read them): found by setting them to a mark, then
    // checked to follow a second mark and to count down while code runs. Written
    // directly, the count can be set to fire at the next instruction without
    // lua_sethook, which also walks the call frames: the watchdog does so from another
    // thread, and a refused allocation mid-instruction keeps the count exact.
    const int mark = 0x3A5E17;
    lua_sethook(L, avm_budget_hook, LUA_MASKCOUNT, mark);
    int *words = (int *)(void *)L;
    int found = -1;
    for (int i = 0; i + 1 < 48 && found != -2; i++)
        if (words[i] == mark && words[i + 1] == mark) found = found == -1 ? i : -2;
    if (found >= 0) {
        lua_sethook(L, avm_budget_hook, LUA_MASKCOUNT, mark + 1);
        if (words[found] == mark + 1 && words[found + 1] == mark + 1
            && luaL_loadstring(L, "local a, b = 1, 2") == LUA_OK && lua_pcall(L, 0, 0, 0) == LUA_OK) {
            int ran = mark + 1 - words[found + 1];
            if (words[found] == mark + 1 && ran >= 1 && ran <= 16) {
                vm->hook_base = &words[found];
                vm->hook_count = &words[found + 1];
            }
        }
        lua_settop(L, 0);
    }
    lua_sethook(L, avm_budget_hook, LUA_MASKCOUNT, AVM_HOOK_COUNT);
}

/// The hook fires every `period` instructions, the first time after `left`.
static void set_period(avm *vm, int period, int left) {
    vm->hook_period = period;
    if (vm->hook_count) {
        *vm->hook_base = period;
        *vm->hook_count = left;
    } else {
        lua_sethook(vm->L, avm_budget_hook, LUA_MASKCOUNT, period);
    }
}

void avm_reset_budget(avm *vm) {
    // Counted from this event's first instruction: where the hook fires, and so whether
    // an event that runs close to its budget passes, depends on that event alone.
    // A budget under one period is checked when it runs out, not a period later.
    set_period(vm, AVM_HOOK_COUNT, vm->budget < AVM_HOOK_COUNT ? (int)vm->budget + 1 : AVM_HOOK_COUNT);
    vm->budget_left = vm->budget;
    vm->budget_exceeded = 0;
    vm->mem_exceeded = 0;
    vm->refused.nsize = 0;
    vm->string_exceeded = 0;
    vm->cpu_exceeded = 0;
    vm->spent_in = NULL;
    vm->limit_where[0] = 0;
    vm->limit_module[0] = 0;
    // The last call's output has been read by now: a large one is given back, so that
    // beside the limit the VM keeps at most an eighth of it (see json_room).
    if (vm->out.cap > ((size_t)1 << 20) && vm->out.cap > vm->mem_limit / 8) {
        free(vm->out.data);
        vm->out = (abuf){ 0 };
    }
    // A new event for the watchdog: only this thread writes the serial, so a plain
    // increment, published with a release store.
    atomic_store_explicit(&vm->watch_serial, atomic_load_explicit(&vm->watch_serial, memory_order_relaxed) + 1, memory_order_release);
}

void avm_stop_soon(avm *vm) {
    if (!vm->L || vm->hook_period == 1) return;
    vm->phase_left = vm->hook_count ? *vm->hook_count : AVM_HOOK_COUNT;
    set_period(vm, 1, 1);
}

/// Notes where the script was when a limit was hit: the innermost Lua function (a C
/// function that charged its work is named by `spent_in`), as "chunk:line", so that the
/// error names the file and line as a handler's own error does.
static void note_where(lua_State *L, avm *vm) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        snprintf(vm->limit_where, sizeof vm->limit_where, "%s:%d: ", ar.short_src, ar.currentline);
        return;
    }
}

/// A new window for the watchdog: the CPU time of what runs from now on is counted afresh.
static void new_watch_window(avm *vm) {
    atomic_store_explicit(&vm->watch_serial, atomic_load_explicit(&vm->watch_serial, memory_order_relaxed) + 1, memory_order_release);
}

/// Raises the error of the limit hit; from now on the hook fires at every instruction,
/// so a script that catches the error is stopped again at its next instruction.
static void raise_limit(lua_State *L, avm *vm) {
    if (!vm->limit_where[0]) note_where(L, vm);
    if (vm->hook_period != 1) {
        vm->phase_left = AVM_HOOK_COUNT;
        set_period(vm, 1, 1);
    }
    const char *what = vm->cpu_exceeded ? "CPU time limit exceeded"
        : vm->string_exceeded ? "string size limit exceeded"
        : vm->mem_exceeded ? "not enough memory" : "instruction budget exceeded";
    luaL_error(L, "%s", what);
}

void avm_raise_limit(lua_State *L, avm *vm) { raise_limit(L, vm); }

void avm_module_enter(avm *vm, avm_budget_saved *saved) {
    saved->budget = vm->budget;
    saved->budget_left = vm->budget_left;
    saved->period = vm->hook_period;
    // What is left of the hook's current period: restored, the event's count goes on at
    // the same instruction (without the counters found, lua_sethook restarts the period).
    saved->left = vm->hook_count ? *vm->hook_count : AVM_HOOK_COUNT;
    saved->phase_left = vm->phase_left;
    if (vm->budget < AVM_LOAD_BUDGET_MIN) vm->budget = AVM_LOAD_BUDGET_MIN;
    vm->budget_left = vm->budget;
    set_period(vm, AVM_HOOK_COUNT, AVM_HOOK_COUNT);
    new_watch_window(vm);
}

int avm_module_leave(avm *vm, const avm_budget_saved *saved, const char *module) {
    if (avm_limit_hit(vm)) {
        // The hook keeps firing at every instruction (raise_limit): the call fails. The
        // innermost module is the one named (a module its top level required restores
        // the count of the module that required it).
        if (!vm->limit_module[0]) {
            snprintf(vm->limit_module, sizeof vm->limit_module, "%s", module);
            vm->limit_budget = vm->budget;
        }
        vm->budget = saved->budget;
        return 1;
    }
    vm->budget = saved->budget;
    vm->budget_left = saved->budget_left;
    set_period(vm, saved->period, saved->left);
    vm->phase_left = saved->phase_left;
    new_watch_window(vm);
    return 0;
}

void avm_budget_tick(lua_State *L, avm *vm) {
    if (avm_watch_fired(vm)) vm->cpu_exceeded = 1;
    if (vm->hook_period == 1) {
        if (avm_limit_hit(vm)) raise_limit(L, vm);
        // Nothing was hit after all (a refused allocation was retried after Lua's
        // emergency collection, and fit): count on as if the hook had never fired early.
        if (--vm->phase_left > 0) {
            set_period(vm, AVM_HOOK_COUNT, vm->phase_left);
            return;
        }
        set_period(vm, AVM_HOOK_COUNT, AVM_HOOK_COUNT);
    } else if (avm_limit_hit(vm)) {
        raise_limit(L, vm);
    }
    vm->budget_left -= AVM_HOOK_COUNT;
    if (vm->budget_left < 0) {
        vm->budget_exceeded = 1;
        raise_limit(L, vm);
    }
}

void avm_charge(lua_State *L, int64_t instructions, const char *what) {
    avm *vm = avm_of(L);
    if (!vm || vm->loading) return;  // a plain state (tests), or the libraries opening
    vm->budget_left -= instructions;
    if (vm->budget_left < 0 && !vm->budget_exceeded) {
        vm->budget_exceeded = 1;
        vm->spent_in = what;
    }
    if (avm_watch_fired(vm)) vm->cpu_exceeded = 1;
    if (avm_limit_hit(vm)) raise_limit(L, vm);
}

void avm_refuse_string(lua_State *L, size_t length) {
    avm *vm = avm_of(L);
    vm->string_exceeded = 1;
    vm->refused_string = length;
    raise_limit(L, vm);
}

void *avm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    avm *vm = ud;
    // A new string (its type tag in osize): long strings are allocated whole, so their
    // length is known before a byte is copied. (max_string is 0 while the state is made.)
    if (__builtin_expect(!ptr && osize == LUA_TSTRING && nsize > vm->max_string + TSTRING_HEADER + 1, 0) && vm->max_string) {
        vm->string_exceeded = 1;
        vm->refused_string = nsize - TSTRING_HEADER - 1;
        // Where the script is: Lua saved the instruction's pc before allocating, and
        // reading the call stack allocates nothing.
        if (!vm->limit_where[0] && vm->L) note_where(vm->L, vm);
        avm_stop_soon(vm);
        return NULL;
    }
    return avm_limited_alloc(ud, ptr, osize, nsize);
}

const char *avm_limit_message(avm *vm, char *buf, size_t size, int *deterministic) {
    *deterministic = 1;
    if (vm->string_exceeded) {
        snprintf(buf, size, "%sstring size limit of %zu MB exceeded (a string of %zu bytes was to be made)", vm->limit_where, vm->max_string >> 20, vm->refused_string);
    } else if (vm->budget_exceeded && vm->limit_module[0]) {
        char in[64] = "";
        if (vm->spent_in) snprintf(in, sizeof in, " in %s", vm->spent_in);
        snprintf(buf, size, "%sinstruction budget of %lld instructions exceeded%s by the top level of module \"%s\" "
                 "(a module's top level runs once per VM, when it is first required, under a budget of its own: "
                 "the larger of the per-event budget and %d instructions, never the event's)",
                 vm->limit_where, (long long)vm->limit_budget, in, vm->limit_module, AVM_LOAD_BUDGET_MIN);
    } else if (vm->budget_exceeded && vm->spent_in) {
        snprintf(buf, size, "%sinstruction budget of %lld instructions exceeded in %s (C functions are charged for the work they do: see the sandbox in docs/projections.md)",
                 vm->limit_where, (long long)vm->budget, vm->spent_in);
    } else if (vm->budget_exceeded) {
        snprintf(buf, size, "%sinstruction budget of %lld instructions exceeded (an endless loop?)", vm->limit_where, (long long)vm->budget);
    } else if (vm->cpu_exceeded) {
        *deterministic = 0;
        snprintf(buf, size, "CPU time limit of %g s per event exceeded (%.2f s with the garbage collector's share for the memory held; "
                 "machine-dependent: a faster or less busy machine may pass this event; raise limits.seconds or --seconds)",
                 avm_watch_limit(vm), avm_watch_allowed(vm));
    } else {
        return NULL;
    }
    return buf;
}

int avm_error_deterministic(const avm *vm) { return vm->error_deterministic; }
size_t avm_max_string(void) { return AVM_MAX_STRING; }
