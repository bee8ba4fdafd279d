// A flush's records put in key order, on whichever thread consumes them.
//
// The VM writes its changed states in slot order (fast to serialise, see fold.c); the
// read-model table and snapshot chunks want them in bytewise key order. Sorting here,
// outside the VM, lets the checkpoint writer's thread do it while the replay folds on.
#include <stdlib.h>
#include <string.h>
#include "audit_lua.h"

typedef struct {
    uint64_t prefix[2];  // the key's first 16 bytes, big-endian: most comparisons end here
    const unsigned char *s;
    size_t len;
    size_t at, size;     // the record in the input
} rkey;

static int rkey_cmp(const void *a, const void *b) {
    const rkey *x = a, *y = b;
    for (int i = 0; i < 2; i++) {
        if (x->prefix[i] != y->prefix[i]) return x->prefix[i] < y->prefix[i] ? -1 : 1;
    }
    if (x->len <= 16 || y->len <= 16) return (x->len > y->len) - (x->len < y->len);
    size_t n = (x->len < y->len ? x->len : y->len) - 16;
    int c = memcmp(x->s + 16, y->s + 16, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static uint32_t read_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int avm_sort_records(const char *in, size_t len, size_t count, char *out) {
    rkey *keys = malloc((count ? count : 1) * sizeof *keys);
    if (!keys) return -1;
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    for (size_t i = 0; i < count; i++) {
        rkey *k = &keys[i];
        k->at = (size_t)(p - (const unsigned char *)in);
        if (end - p < 4) goto malformed;
        k->len = read_le32(p);
        if ((size_t)(end - p - 4) < k->len + 4) goto malformed;
        k->s = p + 4;
        size_t json = read_le32(p + 4 + k->len);
        if ((size_t)(end - p - 8 - k->len) < json) goto malformed;
        k->size = 8 + k->len + json;
        p += k->size;
        unsigned char head[16] = { 0 };
        memcpy(head, k->s, k->len < 16 ? k->len : 16);
        for (int h = 0; h < 2; h++) {
            uint64_t v = 0;
            for (int j = 0; j < 8; j++) v = (v << 8) | head[h * 8 + j];
            k->prefix[h] = v;
        }
    }
    if (p != end) goto malformed;
    qsort(keys, count, sizeof *keys, rkey_cmp);
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        memcpy(out + at, in + keys[i].at, keys[i].size);
        at += keys[i].size;
    }
    free(keys);
    return 0;
malformed:
    free(keys);
    return -2;
}
