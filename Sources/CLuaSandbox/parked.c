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
