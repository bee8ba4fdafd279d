// The VM's limits: a size-class pool under a memory cap, and the instruction budget.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

// --- limits -------------------------------------------------------------------

static void *pool_get(apool *pool, size_t size) {
    size_t c = (size + POOL_GRAIN - 1) / POOL_GRAIN;
    void *block = pool->free_list[c];
    if (block) {
        void *next = *(void **)block;
        pool->free_list[c] = next;
        // Blocks freed by a GC sweep go cold before they are reused: without this, the
        // read of the next link above misses the cache on most pops (measured).
        if (next) __builtin_prefetch(next, 1);
        return block;
    }
    size_t bytes = c * POOL_GRAIN;
    if (pool->left < bytes) {
        // Past 64 chunks (16 MB), chunks of 2 MB on a 2 MB page each, faulted in ahead
        // (depot.c).
        size_t size = pool->nchunks >= 64 ? POOL_HUGE_CHUNK : POOL_CHUNK;
        char *chunk = size == POOL_HUGE_CHUNK ? avm_depot_take() : malloc(size);
        if (!chunk) return NULL;
        pool->nchunks++;
        *(void **)chunk = pool->chunks;
        pool->chunks = chunk;
        pool->cursor = chunk + POOL_GRAIN;  // the first grain holds the link
        pool->left = size - POOL_GRAIN;
    }
    block = pool->cursor;
    pool->cursor += bytes;
    pool->left -= bytes;
    return block;
}

static void pool_put(apool *pool, void *block, size_t size) {
    size_t c = (size + POOL_GRAIN - 1) / POOL_GRAIN;
    *(void **)block = pool->free_list[c];
    pool->free_list[c] = block;
}

void avm_pool_release(apool *pool) {
    while (pool->chunks) {
        void *next = *(void **)pool->chunks;
        free(pool->chunks);
        pool->chunks = next;
    }
}

static void *raw_alloc(apool *pool, size_t size) { return size <= POOL_MAX ? pool_get(pool, size) : malloc(size); }
static void raw_free(apool *pool, void *p, size_t size) { if (size <= POOL_MAX) pool_put(pool, p, size); else free(p); }

/// Asks for 2 MB pages under a large block: the key map, the key slots and the states
/// array are looked up at random, one per event, and with 4 KB pages nearly every lookup
/// also missed the TLB.
static void advise_huge(void *p, size_t n) {
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + n) & ~(huge - 1);
    if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
}

/// Refuses growth past the cap, always allows frees and shrinks. When ptr is NULL,
/// osize is a type tag, not a size. Lua always passes a block's true size, so small
/// blocks can come from (and return to) the pool.
void *avm_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    avm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        // While the VM closes, its pool's chunks are about to be freed whole: a small
        // block need not go back (putting it on a free list touched it: a cache miss).
        if (ptr && !(vm->closing && osize <= POOL_MAX)) raw_free(&vm->pool, ptr, osize);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->mem_used - old + nsize > vm->mem_limit) {
        vm->mem_exceeded = 1;
        avm_stop_soon(vm);  // the hook stops the script at its next instruction (budget.c)
        return NULL;
    }
    void *p;
    if (!ptr) {
        p = raw_alloc(&vm->pool, nsize);
    } else if (old <= POOL_MAX && nsize <= POOL_MAX && (old + POOL_GRAIN - 1) / POOL_GRAIN == (nsize + POOL_GRAIN - 1) / POOL_GRAIN) {
        p = ptr;  // same size class
    } else if (old > POOL_MAX && nsize > POOL_MAX) {
        p = realloc(ptr, nsize);
    } else {
        p = raw_alloc(&vm->pool, nsize);
        if (p) {
            memcpy(p, ptr, old < nsize ? old : nsize);
            raw_free(&vm->pool, ptr, old);
        }
    }
    if (!p) {
        if (nsize > old) {
            vm->mem_exceeded = 1;
            avm_stop_soon(vm);
        }
        return NULL;
    }
    vm->mem_used = vm->mem_used - old + nsize;
    if (nsize >= ((size_t)4 << 20) && nsize > old) advise_huge(p, nsize);
    if (vm->tracing && vm->ntraced < 4) {
        vm->traced[vm->ntraced] = p;
        vm->traced_size[vm->ntraced++] = nsize;
    }
    return p;
}

/// Fires every AVM_HOOK_COUNT instructions, and at every instruction once a limit is
/// hit, so that a script's pcall cannot swallow it and go on (budget.c).
void avm_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    avm *vm = avm_of(L);
    if (vm->loading) return;
    avm_budget_tick(L, vm);
}

int avm_on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "audit: unprotected Lua error (a bug in the engine): %s\n", msg ? msg : "?");
    abort();
}

