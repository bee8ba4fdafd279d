// A flush's records put in key order, and runs of them merged, on whichever thread
// consumes them.
//
// The VM writes its changed states in slot order (fast to serialise, see fold.c); the
// read-model table and snapshot chunks want them in bytewise key order. Sorting and
// merging here, outside the VM, lets the checkpoint writer's thread do it while the
// replay folds on.
#include <stdlib.h>
#include <string.h>
#include "audit_lua.h"

typedef struct {
    uint64_t prefix[2];  // the key's first 16 bytes, big-endian: most comparisons end here
    const unsigned char *s;
    size_t len;
    size_t at, size;     // the record in the input
} rkey;

static inline int rkey_cmp(const rkey *x, const rkey *y) {
    if (x->prefix[0] != y->prefix[0]) return x->prefix[0] < y->prefix[0] ? -1 : 1;
    if (x->prefix[1] != y->prefix[1]) return x->prefix[1] < y->prefix[1] ? -1 : 1;
    if (x->len <= 16 || y->len <= 16) return (x->len > y->len) - (x->len < y->len);
    size_t n = (x->len < y->len ? x->len : y->len) - 16;
    int c = memcmp(x->s + 16, y->s + 16, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static inline void rkey_swap(rkey *a, rkey *b) { rkey t = *a; *a = *b; *b = t; }

static void sift_down(rkey *k, size_t root, size_t n) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && rkey_cmp(&k[child], &k[child + 1]) < 0) child++;
        if (rkey_cmp(&k[root], &k[child]) >= 0) return;
        rkey_swap(&k[root], &k[child]);
        root = child;
    }
}

/// Introsort with the comparison inlined: qsort's calls through a pointer and its
/// merge sort's copies were most of a checkpoint writer's sorting (measured: 0.35 s
/// of a 2,000,000-event replay). Keys are unique, so no care for equal runs is needed.
static void sort_keys(rkey *k, size_t n, int depth) {
    while (n > 16) {
        if (depth-- == 0) {
            for (size_t i = n / 2; i-- > 0;) sift_down(k, i, n);
            for (size_t end = n - 1; end > 0; end--) {
                rkey_swap(&k[0], &k[end]);
                sift_down(k, 0, end);
            }
            return;
        }
        // Median of three to k[0], then partition around it.
        size_t mid = n / 2;
        if (rkey_cmp(&k[mid], &k[0]) < 0) rkey_swap(&k[mid], &k[0]);
        if (rkey_cmp(&k[n - 1], &k[0]) < 0) rkey_swap(&k[n - 1], &k[0]);
        if (rkey_cmp(&k[n - 1], &k[mid]) < 0) rkey_swap(&k[n - 1], &k[mid]);
        rkey_swap(&k[0], &k[mid]);
        size_t i = 1, j = n - 1;
        for (;;) {
            while (i < n && rkey_cmp(&k[i], &k[0]) < 0) i++;
            while (rkey_cmp(&k[j], &k[0]) > 0) j--;
            if (i >= j) break;
            rkey_swap(&k[i++], &k[j--]);
        }
        rkey_swap(&k[0], &k[j]);
        // Recurse into the smaller side, loop on the larger.
        if (j < n - j - 1) {
            sort_keys(k, j, depth);
            k += j + 1;
            n -= j + 1;
        } else {
            sort_keys(k + j + 1, n - j - 1, depth);
            n = j;
        }
    }
    for (size_t i = 1; i < n; i++) {
        rkey t = k[i];
        size_t j = i;
        while (j > 0 && rkey_cmp(&t, &k[j - 1]) < 0) { k[j] = k[j - 1]; j--; }
        k[j] = t;
    }
}

static uint32_t read_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/// A walk over records (a flush's, or a sorted run's), read defensively.
typedef struct {
    const unsigned char *p, *end;
    size_t left;
    const unsigned char *key, *record;
    size_t key_len, size;
    /// The key's first 16 bytes, as two big-endian words, zero-padded: compared first,
    /// they order most keys without a memcmp call (a merge compares each record with
    /// every run's; keys such as `order-123456` share their first 8 bytes by thousands).
    uint64_t prefix[2];
} rcursor;

/// Moves to the next record: 1, or 0 past the last, or -1 when the run is malformed.
static int rcursor_next(rcursor *c) {
    if (c->left == 0) return c->p == c->end ? 0 : -1;
    c->left--;
    if (c->end - c->p < 4) return -1;
    size_t key_len = read_le32(c->p);
    if ((size_t)(c->end - c->p - 4) < key_len + 4) return -1;
    size_t json = read_le32(c->p + 4 + key_len);
    if ((size_t)(c->end - c->p - 8 - key_len) < json) return -1;
    c->record = c->p;
    c->key = c->p + 4;
    c->key_len = key_len;
    for (int h = 0; h < 2; h++) {
        uint64_t v = 0;
        for (size_t j = (size_t)h * 8; j < (size_t)h * 8 + 8; j++) v = (v << 8) | (j < key_len ? c->key[j] : 0);
        c->prefix[h] = v;
    }
    c->size = 8 + key_len + json;
    c->p += c->size;
    return 1;
}

int avm_sort_records(const char *in, size_t len, size_t count, char *out) {
    rkey *keys = malloc((count ? count : 1) * sizeof *keys);
    if (!keys) return -1;
    rcursor c = { (const unsigned char *)in, (const unsigned char *)in + len, count, NULL, NULL, 0, 0, { 0, 0 } };
    for (size_t i = 0; i < count; i++) {
        if (rcursor_next(&c) != 1) goto malformed;
        rkey *k = &keys[i];
        k->at = (size_t)(c.record - (const unsigned char *)in);
        k->s = c.key;
        k->len = c.key_len;
        k->size = c.size;
        unsigned char head[16] = { 0 };
        memcpy(head, k->s, k->len < 16 ? k->len : 16);
        for (int h = 0; h < 2; h++) {
            uint64_t v = 0;
            for (int j = 0; j < 8; j++) v = (v << 8) | head[h * 8 + j];
            k->prefix[h] = v;
        }
    }
    if (rcursor_next(&c) != 0) goto malformed;  // bytes left over
    int depth = 2;
    for (size_t m = count; m > 1; m >>= 1) depth += 2;
    sort_keys(keys, count, depth);
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

/// Bytewise, shorter first on a common prefix: SQLite's order for text.
static int key_cmp(const rcursor *a, const rcursor *b) {
    // Zero-padded, the prefixes differ only where the keys do, in the same order.
    if (a->prefix[0] != b->prefix[0]) return a->prefix[0] < b->prefix[0] ? -1 : 1;
    if (a->prefix[1] != b->prefix[1]) return a->prefix[1] < b->prefix[1] ? -1 : 1;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

long avm_merge_records(const char *const *runs, const size_t *lens, const size_t *counts, size_t n, char *out, size_t *count) {
    rcursor cur_stack[16];
    size_t holders_stack[16];
    rcursor *cur = n <= 16 ? cur_stack : malloc(n * sizeof *cur);
    size_t *holders = n <= 16 ? holders_stack : malloc(n * sizeof *holders);
    if (!cur || !holders) {
        if (cur != cur_stack) free(cur);
        if (holders != holders_stack) free(holders);
        return -1;
    }
    long result = -2;
    size_t live = 0, at = 0;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        rcursor c = { (const unsigned char *)runs[i], (const unsigned char *)runs[i] + lens[i], counts[i], NULL, NULL, 0, 0, { 0, 0 } };
        int r = rcursor_next(&c);
        if (r < 0) goto done;
        if (r) cur[live++] = c;  // in run order: a later one wins a key
    }
    while (live) {
        // Few runs (a checkpoint's partitions and backlog): a scan beats a heap.
        size_t nh = 1;
        holders[0] = 0;
        for (size_t i = 1; i < live; i++) {
            int c = key_cmp(&cur[i], &cur[holders[0]]);
            if (c < 0) { holders[0] = i; nh = 1; }
            else if (c == 0) holders[nh++] = i;
        }
        const rcursor *newest = &cur[holders[nh - 1]];
        memcpy(out + at, newest->record, newest->size);
        at += newest->size;
        (*count)++;
        size_t gone = 0;
        for (size_t h = 0; h < nh; h++) {
            int r = rcursor_next(&cur[holders[h]]);
            if (r < 0) goto done;
            if (r == 0) { cur[holders[h]].p = NULL; gone++; }
        }
        if (gone) {
            size_t kept = 0;
            for (size_t i = 0; i < live; i++) if (cur[i].p) cur[kept++] = cur[i];
            live = kept;
        }
    }
    result = (long)at;
done:
    if (cur != cur_stack) free(cur);
    if (holders != holders_stack) free(holders);
    return result;
}

/// Two runs read as one, in key order (see audit_lua.h).
struct avm_overlay_walk {
    rcursor run[2];  // 0: the base, 1: the changes
    int live[2];     // 1 while the cursor is at a record, 0 past its last, -1 malformed
};

avm_overlay_walk *avm_overlay_open(const char *base, size_t base_len, size_t base_count, const char *changes, size_t changes_len,
                                   size_t changes_count) {
    avm_overlay_walk *w = malloc(sizeof *w);
    if (!w) return NULL;
    const char *starts[2] = { base, changes };
    size_t lens[2] = { base_len, changes_len }, counts[2] = { base_count, changes_count };
    for (int i = 0; i < 2; i++) {
        rcursor c = { (const unsigned char *)starts[i], (const unsigned char *)starts[i] + lens[i], counts[i], NULL, NULL, 0, 0, { 0, 0 } };
        w->run[i] = c;
        w->live[i] = starts[i] ? rcursor_next(&w->run[i]) : 0;
    }
    return w;
}

int avm_overlay_next(avm_overlay_walk *w, const char **key, size_t *key_len, const char **state, size_t *state_len) {
    if (w->live[0] < 0 || w->live[1] < 0) return -1;
    int from;  // the run whose record is given
    int both = 0;
    if (w->live[0] && w->live[1]) {
        int c = key_cmp(&w->run[0], &w->run[1]);
        from = c < 0 ? 0 : 1;
        both = c == 0;
    } else if (w->live[0]) {
        from = 0;
    } else if (w->live[1]) {
        from = 1;
    } else {
        return 0;
    }
    const rcursor *r = &w->run[from];
    *key = (const char *)r->key;
    *key_len = r->key_len;
    *state = (const char *)r->key + r->key_len + 4;
    *state_len = r->size - 8 - r->key_len;
    w->live[from] = rcursor_next(&w->run[from]);
    if (both) w->live[0] = rcursor_next(&w->run[0]);  // the changes' record replaced the base's
    return 1;
}

void avm_overlay_close(avm_overlay_walk *w) { free(w); }
