// The states of keys held in memory, and which of them changed since the last flush.
//
// A key's slot comes from vm->keys (C memory); its state is in a chunk of ref_states,
// Lua arrays (see AVM_STATES_CHUNK), so a lookup hashes the key's bytes once and needs
// no Lua string. A flush writes the dirty slots' states: the one in memory, or, when a
// slot is KEY_KEPT, the state ref_kept holds for it (the one the key had when it last
// changed, if that state has since been replaced by avm_provide_state or dropped by
// avm_evict).
#include <string.h>
#include "internal.h"

long states_find(avm *vm, const char *key, size_t len, uint32_t hash) { return keymap_find(&vm->keys, key, len, hash); }

int states_push_in(lua_State *L, int states, long slot) {
    if (lua_rawgeti(L, states, (slot >> AVM_STATES_CHUNK_BITS) + 1) == LUA_TNIL) return LUA_TNIL;
    int t = lua_rawgeti(L, -1, (slot & (AVM_STATES_CHUNK - 1)) + 1);
    lua_remove(L, -2);
    return t;
}

int states_push(avm *vm, lua_State *L, long slot) {
    if (slot < 0) { lua_pushnil(L); return LUA_TNIL; }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);
    int t = states_push_in(L, lua_gettop(L), slot);
    lua_remove(L, -2);
    return t;
}

/// Raises the memory-limit error for memory the VM's C side could not get.
static int out_of_memory(avm *vm, lua_State *L) {
    vm->mem_exceeded = 1;
    return luaL_error(L, "not enough memory");
}

/// Pushes a new chunk of ref_states (at stack index `states`) for the slot, and notes
/// where its array part is, for prefetching: made whole, that part never moves.
static void new_chunk(avm *vm, lua_State *L, int states, long slot) {
    size_t chunk = (size_t)slot >> AVM_STATES_CHUNK_BITS;
    if (vm->peek_ok && chunk >= vm->chunk_arrays_cap) {
        size_t cap = vm->chunk_arrays_cap ? vm->chunk_arrays_cap : 64;
        while (cap <= chunk) cap *= 2;
        const char **a = avm_limited_alloc(vm, vm->chunk_arrays, vm->chunk_arrays_cap * sizeof *a, cap * sizeof *a);
        if (!a) { out_of_memory(vm, L); return; }
        vm->chunk_arrays = a;
        vm->chunk_arrays_cap = cap;
    }
    lua_createtable(L, (int)AVM_STATES_CHUNK, 0);
    if (vm->peek_ok) {
        while (vm->nchunk_arrays <= chunk) vm->chunk_arrays[vm->nchunk_arrays++] = NULL;
        vm->chunk_arrays[chunk] = *(const char *const *)((const char *)lua_topointer(L, -1) + AVM_TABLE_ARRAY);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, states, (lua_Integer)chunk + 1);
}

long states_set(avm *vm, lua_State *L, long slot, const char *key, size_t len, uint32_t hash) {
    if (slot < 0) {
        slot = keymap_insert(vm, &vm->keys, key, len, hash);
        if (slot < 0) return out_of_memory(vm, L);
    }
    states_note(vm, L, slot, -1);
    int value = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_states);
    if (lua_rawgeti(L, value + 1, (slot >> AVM_STATES_CHUNK_BITS) + 1) == LUA_TNIL) {
        lua_pop(L, 1);
        new_chunk(vm, L, value + 1, slot);
    }
    lua_pushvalue(L, value);
    lua_rawseti(L, value + 2, (slot & (AVM_STATES_CHUNK - 1)) + 1);
    lua_settop(L, value - 1);
    return slot;
}

/// Sets or clears what ref_kept holds for the slot (the value on top, popped).
static void set_kept(avm *vm, lua_State *L, long slot) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_kept);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)slot + 1);
    lua_pop(L, 1);
}

void states_mark_dirty(avm *vm, lua_State *L, long slot) {
    kslot *s = &vm->keys.slots[slot];
    if (!(s->flags & KEY_DIRTY)) {
        if (vm->ndirty == vm->dirty_cap) {
            size_t cap = vm->dirty_cap ? vm->dirty_cap * 2 : 64;
            uint32_t *d = avm_limited_alloc(vm, vm->dirty, vm->dirty ? vm->dirty_cap * sizeof *d : 0, cap * sizeof *d);
            if (!d) { out_of_memory(vm, L); return; }
            vm->dirty = d;
            vm->dirty_cap = cap;
        }
        vm->dirty[vm->ndirty++] = (uint32_t)slot;
        s->flags |= KEY_DIRTY;
    }
    if (s->flags & KEY_KEPT) {
        // The state in memory is the one to write now.
        lua_pushnil(L);
        set_kept(vm, L, slot);
        s->flags &= ~KEY_KEPT;
        vm->nkept--;
    }
}

void states_keep_for_flush(avm *vm, lua_State *L, long slot) {
    kslot *s = &vm->keys.slots[slot];
    if (!(s->flags & KEY_DIRTY) || (s->flags & KEY_KEPT)) return;
    states_push(vm, L, slot);
    set_kept(vm, L, slot);
    s->flags |= KEY_KEPT;
    vm->nkept++;
}

void states_flushed(avm *vm, lua_State *L) {
    if (vm->nkept) {
        lua_newtable(L);
        lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_kept);  // the ref exists: cannot raise
        vm->nkept = 0;
    }
    for (size_t i = 0; i < vm->ndirty; i++) vm->keys.slots[vm->dirty[i]].flags &= ~(KEY_DIRTY | KEY_KEPT);
    vm->ndirty = 0;
}

void states_evict(avm *vm, lua_State *L) {
    // Everything that can fail comes before the first change.
    lua_newtable(L);                                       // the states from now on
    if (vm->ndirty == 0) {
        keymap_clear(vm, &vm->keys);
        avm_limited_alloc(vm, vm->dirty, vm->dirty_cap * sizeof *vm->dirty, 0);
        vm->dirty = NULL;
        vm->dirty_cap = 0;
    } else {
        // Changed states not flushed yet are still written at the next flush, but are no
        // longer in memory: their keys stay, with the states kept for the flush.
        lua_createtable(L, (int)vm->ndirty, 0);           // sized now: filling it cannot raise
        for (size_t i = 0; i < vm->ndirty; i++) {
            long slot = vm->dirty[i];
            int kept = vm->keys.slots[slot].flags & KEY_KEPT;
            lua_rawgeti(L, LUA_REGISTRYINDEX, kept ? vm->ref_kept : vm->ref_states);
            if (kept) lua_rawgeti(L, -1, slot + 1); else states_push_in(L, lua_gettop(L), slot);
            lua_rawseti(L, -3, (lua_Integer)i + 1);
            lua_pop(L, 1);
        }
        keymap kept = { .seed = { vm->keys.seed[0], vm->keys.seed[1] } };
        for (size_t i = 0; i < vm->ndirty; i++) {
            const kslot *s = &vm->keys.slots[vm->dirty[i]];
            const char *key = keymap_key(&vm->keys, vm->dirty[i]);
            if (keymap_insert(vm, &kept, key, s->len, keymap_hash(&kept, key, s->len)) < 0) {
                keymap_clear(vm, &kept);
                out_of_memory(vm, L);
                return;
            }
        }
        for (size_t i = 0; i < vm->ndirty; i++) kept.slots[i].seq = vm->keys.slots[vm->dirty[i]].seq;
        keymap_clear(vm, &vm->keys);
        vm->keys = kept;
        for (size_t i = 0; i < vm->ndirty; i++) {
            vm->keys.slots[i].flags = KEY_DIRTY | KEY_KEPT;
            vm->dirty[i] = (uint32_t)i;
        }
        vm->nkept = vm->ndirty;
        lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_kept);
    }
    vm->nchunk_arrays = 0;
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_states);
    vm->resident = 0;
}
