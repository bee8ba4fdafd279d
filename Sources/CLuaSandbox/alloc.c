// The VM's allocator, and its memory limit charged on what it holds from the system.
//
// Blocks of up to POOL_MAX bytes come from slabs of one size class each (the pool);
// larger ones from malloc, and from 128 KB on from mappings of their own. vm->mem_used is what counts against the limit: the pool's
// slabs (in use, or empty and kept for reuse) and the large blocks. So the memory the
// VM holds stays within its limit whatever it allocates and frees in which order: a
// pool whose freed blocks could only be used again by their own size class held 5x its
// limit after a script filled one class, dropped it and filled the next.
//
// Slabs are cut from chunks of 2 MB aligned to their size; a chunk's header holds the
// bookkeeping of its slabs, so a block's slab is found from its address alone. A slab
// whose blocks are all free is kept for any class (reusing it costs no system call and
// no page fault); the empty slabs are given back to the system when a large block or the
// JSON of states written out would pass the limit, and after the VM lets go of its
// states (avm_pool_give_back): a chunk whose slabs are all given back is unmapped,
// others are madvise'd away a run of slabs at a time.
#define _GNU_SOURCE  // mremap
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

/// Where a slab is: what list holds it.
enum {
    SLAB_NEVER = 0,  // never used (chunks come zeroed)
    SLAB_CURRENT,    // its class's current slab
    SLAB_PARTIAL,    // in its class's list of slabs with free blocks
    SLAB_FULL,       // every block handed out: in no list
    SLAB_EMPTY,      // no block handed out: in the pool's empty list, held
    SLAB_UNHELD,     // given back to the system: in the pool's unheld list
    SLAB_GIVING,     // being given back (avm_pool_give_back)
};

/// Past this many chunks (16 MB), chunks come from the depot on 2 MB pages, faulted in
/// ahead (depot.c); before, a VM that stays small touches only the pages it uses.
#define PLAIN_CHUNKS 8

struct achunk {
    aslab slab[POOL_SLABS];  // slab[i] describes bytes [i * POOL_SLAB, (i + 1) * POOL_SLAB)
    achunk *next, *prev;     // the pool's chunks
    size_t held;             // its slabs in use or empty
};

/// Slabs at the start of a chunk that hold its header.
#define HEADER_SLABS ((sizeof(achunk) + POOL_SLAB - 1) / POOL_SLAB)

static inline achunk *chunk_of(const void *p) { return (achunk *)((uintptr_t)p & ~(uintptr_t)(POOL_CHUNK - 1)); }
static inline aslab *slab_of(const void *block) {
    return &chunk_of(block)->slab[((uintptr_t)block >> POOL_SLAB_SHIFT) & (POOL_SLABS - 1)];
}
static inline char *slab_start(aslab *s) {
    achunk *c = chunk_of(s);
    return (char *)c + (size_t)(s - c->slab) * POOL_SLAB;
}
static inline size_t class_of(size_t size) { return (size + POOL_GRAIN - 1) / POOL_GRAIN; }

// Doubly linked lists of slabs, by their head.
static void push(aslab **head, aslab *s) {
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void unlink_slab(aslab **head, aslab *s) {
    if (s->prev) s->prev->next = s->next; else *head = s->next;
    if (s->next) s->next->prev = s->prev;
}

void avm_pool_init(apool *pool) {
    for (size_t c = 0; c <= POOL_CLASSES; c++) pool->current[c] = &pool->none;
}

/// A slab the pool holds for a new class: an empty one, or (charged to the limit, which
/// `force` may pass: a shrink must not fail) one given back before, or a new one.
static aslab *take_slab(avm *vm, int force) {
    apool *pool = &vm->pool;
    aslab *s = pool->empty;
    if (s) {
        unlink_slab(&pool->empty, s);
        return s;
    }
    if (!force && vm->mem_used + POOL_SLAB > vm->mem_limit) return NULL;
    if ((s = pool->unheld)) {
        unlink_slab(&pool->unheld, s);
    } else {
        achunk *c = pool->chunks;
        if (!c || pool->fresh == POOL_SLABS) {
            c = pool->nchunks >= PLAIN_CHUNKS ? avm_depot_take() : avm_chunk_map(0);
            if (!c) return NULL;
            c->prev = NULL;
            c->next = pool->chunks;
            if (pool->chunks) pool->chunks->prev = c;
            pool->chunks = c;
            pool->nchunks++;
            pool->fresh = HEADER_SLABS;
        }
        s = &c->slab[pool->fresh++];
    }
    chunk_of(s)->held++;
    vm->mem_used += POOL_SLAB;
    return s;
}

/// The class's current slab has no free block: the next one with free blocks, or a
/// slab new to the class; a block from it. NULL past the limit.
static void *refill(avm *vm, size_t c, int force) {
    apool *pool = &vm->pool;
    aslab *old = pool->current[c];
    if (old != &pool->none) old->where = SLAB_FULL;
    pool->current[c] = &pool->none;
    aslab *s = pool->partial[c];
    if (s) {
        unlink_slab(&pool->partial[c], s);
    } else {
        if (!(s = take_slab(vm, force))) return NULL;
        size_t size = c * POOL_GRAIN;
        s->free = NULL;
        s->bump = slab_start(s);
        s->end = s->bump + POOL_SLAB / size * size;
        s->live = 0;
        s->cls = (uint8_t)c;
    }
    s->where = SLAB_CURRENT;
    pool->current[c] = s;
    vm->refused.nsize = 0;  // a refusal before is not final (see refuse)
    void *block = s->free;
    if (block) {
        s->free = *(void **)block;
    } else {
        block = s->bump;
        s->bump += c * POOL_GRAIN;
    }
    s->live++;
    return block;
}

static inline void *pool_get(avm *vm, size_t size, int force) {
    size_t c = class_of(size);
    aslab *s = vm->pool.current[c];
    void *block = s->free;
    if (block) {
        void *next = *(void **)block;
        s->free = next;
        s->live++;
        // Blocks freed by a GC sweep go cold before they are reused: without this, the
        // read of the next link above misses the cache on most pops (measured).
        if (next) __builtin_prefetch(next, 1);
        return block;
    }
    if (s->bump < s->end) {
        block = s->bump;
        s->bump += c * POOL_GRAIN;
        s->live++;
        return block;
    }
    return refill(vm, c, force);
}

/// The slab's last block in use was freed; it is not its class's current one.
static void emptied(apool *pool, aslab *s) {
    unlink_slab(&pool->partial[s->cls], s);
    s->where = SLAB_EMPTY;
    push(&pool->empty, s);
}

static inline void pool_put(apool *pool, void *block) {
    aslab *s = slab_of(block);
    *(void **)block = s->free;
    s->free = block;
    if (s->where == SLAB_FULL) {
        s->where = SLAB_PARTIAL;
        push(&pool->partial[s->cls], s);
    }
    if (--s->live == 0 && s->where == SLAB_PARTIAL) emptied(pool, s);
}

/// Unmaps a chunk that holds no slab.
static void release_chunk(apool *pool, achunk *c) {
    for (size_t i = HEADER_SLABS; i < POOL_SLABS; i++) {
        if (c->slab[i].where == SLAB_UNHELD) unlink_slab(&pool->unheld, &c->slab[i]);
    }
    // The newest chunk's slabs never used go with it; an older chunk has none.
    if (c == pool->chunks) pool->fresh = POOL_SLABS;
    if (c->prev) c->prev->next = c->next; else pool->chunks = c->next;
    if (c->next) c->next->prev = c->prev;
    pool->nchunks--;
    avm_chunk_unmap(c);
}

void avm_pool_give_back(avm *vm) {
    apool *pool = &vm->pool;
    if (!pool->empty) return;
    for (aslab *s = pool->empty; s; s = s->next) {
        s->where = SLAB_GIVING;
        chunk_of(s)->held--;
        vm->mem_used -= POOL_SLAB;
    }
    pool->empty = NULL;
    for (achunk *c = pool->chunks, *next; c; c = next) {
        next = c->next;
        if (c->held == 0) {
            release_chunk(pool, c);
            continue;
        }
        // Each run of slabs given back in one call.
        for (size_t i = HEADER_SLABS; i < POOL_SLABS; i++) {
            if (c->slab[i].where != SLAB_GIVING) continue;
            size_t j = i;
            for (; j < POOL_SLABS && c->slab[j].where == SLAB_GIVING; j++) {
                c->slab[j].where = SLAB_UNHELD;
                push(&pool->unheld, &c->slab[j]);
            }
            madvise(slab_start(&c->slab[i]), (j - i) * POOL_SLAB, MADV_DONTNEED);
            i = j;
        }
    }
}

void avm_pool_release(apool *pool) {
    while (pool->chunks) {
        achunk *next = pool->chunks->next;
        avm_chunk_unmap(pool->chunks);
        pool->chunks = next;
    }
}

/// Blocks from this size on are mapped whole, and unmapped when freed: malloc keeps
/// large blocks freed (its threshold for mapping grows with the blocks it frees), and
/// a VM that made and dropped 16 MB strings held twice its limit in them (measured).
#define MAPPED_MIN ((size_t)128 << 10)

static inline size_t pages(size_t n) { return (n + 4095) & ~(size_t)4095; }

/// Asks for 2 MB pages under a large block (one of its own mappings): the key map, the
/// key slots and the states array are looked up at random, one per event, and with
/// 4 KB pages nearly every lookup also missed the TLB. The whole mapping, not only its
/// aligned middle: a mapping split in two kinds could no longer be grown by mremap.
static void advise_huge(void *p, size_t n) { madvise(p, pages(n), MADV_HUGEPAGE); }

/// What a large block holds: its pages, or its bytes with malloc's header and rounding.
static inline size_t large_cost(size_t n) { return n >= MAPPED_MIN ? pages(n) : (n + 16 + 15) & ~(size_t)15; }

/// Whether the VM may hold `more` bytes more; the empty slabs are given back first
/// when that makes the room.
static int room_for(avm *vm, size_t more) {
    if (vm->mem_used <= vm->mem_limit && more <= vm->mem_limit - vm->mem_used) return 1;
    avm_pool_give_back(vm);
    return vm->mem_used <= vm->mem_limit && more <= vm->mem_limit - vm->mem_used;
}

static void *large_get(size_t n) {
    if (n < MAPPED_MIN) return malloc(n);
    void *p = mmap(NULL, pages(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void large_drop(void *p, size_t n) {
    if (n < MAPPED_MIN) free(p); else munmap(p, pages(n));
}

static void *large_alloc(avm *vm, size_t n, int force) {
    size_t cost = large_cost(n);
    if (!force && !room_for(vm, cost)) return NULL;
    void *p = large_get(n);
    if (!p) return NULL;
    vm->mem_used += cost;
    vm->refused.nsize = 0;
    if (n >= ((size_t)4 << 20)) advise_huge(p, n);
    return p;
}

static void large_free(avm *vm, void *p, size_t n) {
    large_drop(p, n);
    vm->mem_used -= large_cost(n);
}

static void *large_realloc(avm *vm, void *p, size_t old, size_t n) {
    size_t was = large_cost(old), cost = large_cost(n);
    if (cost > was && !room_for(vm, cost - was)) return NULL;
    void *q;
    if (old < MAPPED_MIN && n < MAPPED_MIN) {
        q = realloc(p, n);
    } else if (old >= MAPPED_MIN && n >= MAPPED_MIN) {
        q = was == cost ? p : mremap(p, was, cost, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) q = NULL;
    } else if ((q = large_get(n))) {
        memcpy(q, p, old < n ? old : n);
        large_drop(p, old);
    }
    if (!q) return NULL;  // only when the system is out of memory
    vm->mem_used = vm->mem_used - was + cost;
    if (n > old) {
        vm->refused.nsize = 0;
        if (n >= ((size_t)4 << 20)) advise_huge(q, n);
    }
    return q;
}

/// Lua answers a refused request with an emergency collection, then makes the same
/// request again: only a refusal of that one too is final, and fails the event even when
/// the script catches the error. A request that succeeds clears what was refused.
static void *refuse(avm *vm, void *ptr, size_t osize, size_t nsize) {
    if (vm->refused.nsize == nsize && vm->refused.ptr == ptr && vm->refused.osize == osize) {
        vm->mem_exceeded = 1;
        avm_stop_soon(vm);  // the hook stops the script at its next instruction (budget.c)
    } else {
        vm->refused.ptr = ptr;
        vm->refused.osize = osize;
        vm->refused.nsize = nsize;
    }
    return NULL;
}

/// Refuses growth past the limit (charged on what the VM holds, see the top of the
/// file), always allows frees and shrinks. When ptr is NULL, osize is a type tag, not a
/// size. Lua always passes a block's true size, so small blocks can come from (and
/// return to) the pool.
void *avm_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    avm *vm = ud;
    if (nsize == 0) {
        if (ptr) {
            if (osize > POOL_MAX) large_free(vm, ptr, osize);
            // While the VM closes, its pool's chunks are about to be unmapped whole: a
            // small block need not go back (putting it on a free list touched it: a cache miss).
            else if (!vm->closing) pool_put(&vm->pool, ptr);
        }
        return NULL;
    }
    size_t old = ptr ? osize : 0;
    void *p;
    if (!ptr) {
        p = nsize <= POOL_MAX ? pool_get(vm, nsize, 0) : large_alloc(vm, nsize, 0);
    } else if (old <= POOL_MAX && nsize <= POOL_MAX && class_of(old) == class_of(nsize)) {
        p = ptr;
    } else if (old > POOL_MAX && nsize > POOL_MAX) {
        p = large_realloc(vm, ptr, old, nsize);
    } else {
        int shrink = nsize < old;  // Lua assumes a shrink cannot fail: it may pass the limit
        p = nsize <= POOL_MAX ? pool_get(vm, nsize, shrink) : large_alloc(vm, nsize, shrink);
        if (p) {
            memcpy(p, ptr, old < nsize ? old : nsize);
            if (old > POOL_MAX) large_free(vm, ptr, old); else pool_put(&vm->pool, ptr);
        }
    }
    if (!p) return refuse(vm, ptr, osize, nsize);
    if (vm->tracing && vm->ntraced < 4) {
        vm->traced[vm->ntraced] = p;
        vm->traced_size[vm->ntraced++] = nsize;
    }
    return p;
}
