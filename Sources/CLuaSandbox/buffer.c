#include <stdlib.h>
#include <string.h>
#include "internal.h"

int abuf_reserve(abuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

int abuf_put(abuf *b, const void *p, size_t n) {
    if (!abuf_reserve(b, n)) return 0;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

int abuf_putc(abuf *b, char c) { return abuf_put(b, &c, 1); }

// --- a set of pointers, emptied in O(1) --------------------------------------------

/// The slots of the set's current generation are its members.
static int ptrset_put(ptrset *s, const void *p) {
    size_t i = ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL >> 7;
    for (;; i++) {
        ptrset_slot *slot = &s->slots[i & s->mask];
        if (slot->gen != s->gen) {
            slot->p = p;
            slot->gen = s->gen;
            s->count++;
            return 1;
        }
        if (slot->p == p) return 0;
    }
}

int avm_ptrset_add(ptrset *s, const void *p) {
    if ((s->count + 1) * 2 > (s->mask + 1) || !s->slots) {
        size_t cap = s->slots ? (s->mask + 1) * 2 : 64;
        ptrset_slot *old = s->slots;
        size_t old_cap = s->slots ? s->mask + 1 : 0;
        ptrset_slot *slots = calloc(cap, sizeof *slots);
        if (!slots) return -1;
        uint32_t gen = s->gen;
        s->slots = slots;
        s->mask = cap - 1;
        s->gen = 1;
        s->count = 0;
        for (size_t i = 0; i < old_cap; i++) if (old[i].gen == gen && gen) ptrset_put(s, old[i].p);
        free(old);
    }
    return ptrset_put(s, p);
}

void avm_ptrset_clear(ptrset *s) {
    s->count = 0;
    if (++s->gen == 0) {  // after 2^32 clears: start again from empty slots
        if (s->slots) memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
        s->gen = 1;
    }
}

void avm_ptrset_free(ptrset *s) {
    free(s->slots);
    s->slots = NULL;
    s->mask = s->count = 0;
}
