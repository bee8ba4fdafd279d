// A map from key bytes to slot numbers 0, 1, 2… in order of insertion, in C memory
// that counts toward the VM's limit. Keys are never removed one by one: the map is
// cleared whole.
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "internal.h"

// SipHash-1-3 under a secret seed: keys come from event data, and a weaker hash would let
// a hostile stream of keys that collide turn every lookup into a scan.
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

static uint64_t load64le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t siphash13(const uint64_t seed[2], const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t v0 = 0x736f6d6570736575ULL ^ seed[0], v1 = 0x646f72616e646f6dULL ^ seed[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ seed[0], v3 = 0x7465646279746573ULL ^ seed[1];
    const unsigned char *end = p + (len & ~(size_t)7);
    for (; p != end; p += 8) {
        uint64_t m = load64le(p);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++) b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND;
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    return (uint32_t)(h ^ (h >> 32));
}

void keymap_seed(keymap *m) {
    if (getentropy(m->seed, sizeof m->seed) != 0) {
        // No entropy source: still differ per process and map, if predictably.
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        m->seed[0] = (uint64_t)t.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)m;
        m->seed[1] = (uint64_t)t.tv_sec ^ ((uint64_t)(uintptr_t)&t << 17);
    }
}

uint32_t keymap_hash(const keymap *m, const void *key, size_t len) { return siphash13(m->seed, key, len); }

/// Grows or frees a block of the VM's memory (counted toward its limit); NULL on failure.
static void *vm_realloc(avm *vm, void *p, size_t old, size_t size) {
    return avm_limited_alloc(vm, p, p ? old : 0, size);
}

long keymap_find(const keymap *m, const void *key, size_t len, uint32_t hash) {
    if (!m->table) return -1;
    uint32_t short_len = len < UINT32_MAX ? (uint32_t)len : UINT32_MAX;
    size_t head = len < KEY_HEAD ? len : KEY_HEAD;
    for (uint32_t i = hash & m->mask;; i = (i + 1) & m->mask) {
        const kentry *e = &m->table[i];
        if (e->slot == 0) return -1;
        if (e->hash != hash || e->len != short_len || memcmp(e->head, key, head) != 0) continue;
        if (len <= KEY_HEAD) return (long)e->slot - 1;
        const kslot *s = &m->slots[e->slot - 1];
        if (s->len == len && memcmp(m->bytes + s->off + KEY_HEAD, (const char *)key + KEY_HEAD, len - KEY_HEAD) == 0)
            return (long)e->slot - 1;
    }
}

static void place(keymap *m, const kentry *entry) {
    uint32_t i = entry->hash & m->mask;
    while (m->table[i].slot) i = (i + 1) & m->mask;
    m->table[i] = *entry;
}

/// Keeps the table at most half full: probes stay short.
static int grow_table(avm *vm, keymap *m) {
    size_t cap = m->table ? (size_t)m->mask + 1 : 0;
    if ((m->count + 1) * 2 <= cap) return 1;
    size_t ncap = cap ? cap * 2 : 16;
    if (ncap > ((size_t)1 << 31)) return 0;
    kentry *t = vm_realloc(vm, NULL, 0, ncap * sizeof *t);
    if (!t) return 0;
    memset(t, 0, ncap * sizeof *t);
    kentry *old = m->table;
    m->table = t;
    m->mask = (uint32_t)(ncap - 1);
    for (size_t i = 0; i < cap; i++) {
        if (old[i].slot) place(m, &old[i]);
    }
    vm_realloc(vm, old, cap * sizeof *old, 0);
    return 1;
}

/// Grows a block by doubling to hold at least `need` items of `size` bytes.
static int reserve(avm *vm, void **p, size_t *cap, size_t need, size_t size, size_t first) {
    if (need <= *cap) return 1;
    size_t ncap = *cap ? *cap : first;
    while (ncap < need) ncap *= 2;
    void *q = vm_realloc(vm, *p, *cap * size, ncap * size);
    if (!q) return 0;
    *p = q;
    *cap = ncap;
    return 1;
}

long keymap_insert(avm *vm, keymap *m, const void *key, size_t len, uint32_t hash) {
    if (m->count >= UINT32_MAX - 1 || len >= UINT32_MAX) return -1;
    if (!grow_table(vm, m)) return -1;
    if (!reserve(vm, (void **)&m->slots, &m->slot_cap, m->count + 1, sizeof *m->slots, 16)) return -1;
    // NUL-terminated: the key names its state in error messages.
    if (!reserve(vm, (void **)&m->bytes, &m->bytes_cap, m->bytes_len + len + 1, 1, 256)) return -1;
    kslot *s = &m->slots[m->count];
    s->off = m->bytes_len;
    s->len = (uint32_t)len;
    s->flags = 0;
    s->seq = 0;
    s->table = s->node = NULL;
    memcpy(m->bytes + s->off, key, len);
    m->bytes[s->off + len] = 0;
    m->bytes_len += len + 1;
    kentry e = { .hash = hash, .slot = (uint32_t)m->count + 1, .len = len < UINT32_MAX ? (uint32_t)len : UINT32_MAX };
    memcpy(e.head, key, len < KEY_HEAD ? len : KEY_HEAD);
    place(m, &e);
    return (long)m->count++;
}

void keymap_clear(avm *vm, keymap *m) {
    vm_realloc(vm, m->table, m->table ? ((size_t)m->mask + 1) * sizeof *m->table : 0, 0);
    vm_realloc(vm, m->slots, m->slot_cap * sizeof *m->slots, 0);
    vm_realloc(vm, m->bytes, m->bytes_cap, 0);
    m->table = NULL;
    m->mask = 0;
    m->slots = NULL;
    m->slot_cap = m->count = 0;
    m->bytes = NULL;
    m->bytes_cap = m->bytes_len = 0;
}
