// Parked keys (on_error = "park"): a key whose handler failed deterministically is
// parked at the seq that failed; its events from that seq on are not folded but
// recorded, in order, as its dead letters, which the engine takes at each checkpoint.
#include <string.h>
#include "internal.h"

int avm_park_key(avm *vm, const char *key, size_t len, int64_t first_seq) {
    uint32_t hash = keymap_hash(&vm->parked, key, len);
    long slot = keymap_find(&vm->parked, key, len, hash);
    if (slot < 0) {
        slot = keymap_insert(vm, &vm->parked, key, len, hash);
        if (slot < 0) return AVM_ERROR;
        vm->parked.slots[slot].seq = first_seq;
    } else if (first_seq < vm->parked.slots[slot].seq) {
        vm->parked.slots[slot].seq = first_seq;
    }
    return AVM_OK;
}

/// Whether the event at `seq` for `key` is a dead letter; if so it is recorded.
int avm_parked_skip(avm *vm, lua_State *L, const char *key, size_t len, int64_t seq) {
    long slot = keymap_find(&vm->parked, key, len, keymap_hash(&vm->parked, key, len));
    if (slot < 0) return vm->only_parked;  // a retry folds only its keys
    if (seq < vm->parked.slots[slot].seq) return 0;
    unsigned char head[4], tail[8];
    for (int i = 0; i < 4; i++) head[i] = (unsigned char)((uint64_t)len >> (8 * i));
    for (int i = 0; i < 8; i++) tail[i] = (unsigned char)((uint64_t)seq >> (8 * i));
    if (!abuf_put(&vm->dead, head, 4) || !abuf_put(&vm->dead, key, len) || !abuf_put(&vm->dead, tail, 8))
        luaL_error(L, "out of memory");
    return 1;
}

const char *avm_take_dead_letters(avm *vm, size_t *len) {
    *len = vm->dead.len;
    vm->dead.len = 0;  // the bytes stay valid until the next record is written
    return vm->dead.data ? vm->dead.data : "";
}

void avm_fold_only_parked(avm *vm, int flag) { vm->only_parked = flag; }

const char *avm_failed_key(const avm *vm, size_t *len) {
    *len = vm->last_key.len;
    if (!vm->key_known) return NULL;
    return vm->last_key.data ? vm->last_key.data : "";
}

void avm_unpark_key(avm *vm, const char *key, size_t len) {
    long slot = keymap_find(&vm->parked, key, len, keymap_hash(&vm->parked, key, len));
    if (slot >= 0) vm->parked.slots[slot].seq = INT64_MAX;  // the keymap keeps its keys: never reached
}

static int set_state_protected(lua_State *L) {
    avm *vm = avm_of(L);
    size_t key_len;
    const char *key = lua_tolstring(L, 1, &key_len);
    const char *json = lua_touserdata(L, 2);
    size_t json_len = (size_t)lua_tointeger(L, 3);
    uint32_t hash = states_hash(vm, key, key_len);
    long slot = states_find(vm, key, key_len, hash);
    if (json) {
        avm_push_json(vm, L, json, json_len, "stored state", AVM_JSON_STATE);
        if (!lua_istable(L, -1)) return luaL_error(L, "stored state is not a JSON object");
        if (slot < 0) vm->resident++;
    } else {
        if (slot < 0) return 0;  // not in memory: nothing to drop
        lua_pushnil(L);
    }
    slot = states_set(vm, L, slot, key, key_len, hash);
    // Marked changed (and no longer kept as it was): the next flush writes this state,
    // or, when dropped, nothing for the key.
    if (!vm->all_dirty) states_mark_dirty(vm, L, slot);
    return 0;
}

int avm_set_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len) {
    lua_State *L = vm->L;
    lua_pushcfunction(L, set_state_protected);
    lua_pushlstring(L, key, key_len);
    lua_pushlightuserdata(L, (void *)json);
    lua_pushinteger(L, (lua_Integer)json_len);
    avm_reset_budget(vm);
    return avm_finish_call(vm, avm_pcall(vm, 3, 0), AVM_OK);
}
