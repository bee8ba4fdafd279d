// Pool chunks of 2 MB, their pages faulted in ahead by a thread of their own.
//
// A replay's heap of states grows by hundreds of megabytes, and the first write to
// each fresh page makes the kernel clear it: perf put those page faults at a tenth of
// a replay's main thread, half of them in the pool's chunks. A helper thread keeps a
// few chunks ready with their pages already faulted in, so that clearing them happens
// on another core while the VM folds. Shared by every VM of the process; started by
// the first VM that needs a large chunk, and idle once the depot is full.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "internal.h"

#define DEPOT_CHUNKS 4
#define PAGE 4096

static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t depot_wanted = PTHREAD_COND_INITIALIZER;
static void *depot[DEPOT_CHUNKS];
static int depot_count;
static int depot_started;

void *avm_chunk_map(int huge) {
    // Twice the size, then the ends cut off: mmap aligns only to pages. Mapped, not
    // malloc'd: a chunk given back is unmapped, and its memory is the system's again.
    size_t span = 2 * POOL_CHUNK;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *chunk = (char *)(((uintptr_t)p + POOL_CHUNK - 1) & ~(uintptr_t)(POOL_CHUNK - 1));
    if (chunk > p) munmap(p, (size_t)(chunk - p));
    if (chunk + POOL_CHUNK < p + span) munmap(chunk + POOL_CHUNK, (size_t)(p + span - (chunk + POOL_CHUNK)));
    if (huge) madvise(chunk, POOL_CHUNK, MADV_HUGEPAGE);
    return chunk;
}

void avm_chunk_unmap(void *chunk) { munmap(chunk, POOL_CHUNK); }

/// A 2 MB chunk on a 2 MB page (when the kernel grants one); NULL when memory is short.
static void *new_chunk(void) { return avm_chunk_map(1); }

static void *fill(void *unused) {
    (void)unused;
    pthread_mutex_lock(&depot_lock);
    for (;;) {
        while (depot_count == DEPOT_CHUNKS) pthread_cond_wait(&depot_wanted, &depot_lock);
        pthread_mutex_unlock(&depot_lock);
        char *chunk = new_chunk();
        if (chunk) {
            // One write per page faults it in (a 2 MB page at the first).
            for (size_t at = 0; at < POOL_CHUNK; at += PAGE) ((volatile char *)chunk)[at] = 0;
        }
        pthread_mutex_lock(&depot_lock);
        if (!chunk) {
            // Memory is short: leave it to the VMs, which fail their own allocations.
            depot_started = 0;
            pthread_mutex_unlock(&depot_lock);
            return NULL;
        }
        depot[depot_count++] = chunk;
    }
}

void *avm_depot_take(void) {
    void *chunk = NULL;
    pthread_mutex_lock(&depot_lock);
    if (depot_count > 0) chunk = depot[--depot_count];
    if (!depot_started) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        depot_started = pthread_create(&thread, &attr, fill, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    pthread_cond_signal(&depot_wanted);
    pthread_mutex_unlock(&depot_lock);
    return chunk ? chunk : new_chunk();
}
