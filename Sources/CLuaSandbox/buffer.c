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
