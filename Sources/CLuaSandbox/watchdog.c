// The per-event limit on CPU time: a backstop for work the budget cannot see (the VM's
// own `==`, `..` or hashing of long strings is one instruction; so is copying a
// thousand varargs).
//
// One watchdog thread for the process looks at every VM inside a call into its script,
// every WATCH_PERIOD: it reads the CPU clock of the thread running the call
// (pthread_getcpuclockid), and when one event has run past its limit it makes the count
// hook fire at the next instruction, where the hook raises the error (budget.c). The
// thread folding events pays one store per event (avm_reset_budget) and none of the
// watchdog's system calls; the watchdog sleeps while no VM runs a script.
//
// What it measures is a lower bound of the event's CPU time (from when the watchdog
// first saw the event), so it never stops an event early, and stops one at most about
// two periods late, plus the instruction running then. Machine-dependent by nature: the
// error says so (DECISIONS 11).
//
// Lua's collector runs inside whatever event allocates when a collection is due, and a
// full one walks everything the VM holds (measured: 0.28 s for 120 MB of small tables):
// so each event is also allowed WATCH_GC_NS_PER_MB of CPU time per MB the VM holds,
// lest a projection with a large heap fail at the event that happens to pay for it.
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include "internal.h"

#define WATCH_PERIOD_NS 10000000L   // 10 ms
#define WATCH_IDLE_NS 1000000000L   // sleeps after a second with no VM in a script
#define WATCH_GC_NS_PER_MB 5000000L // 5 ms: about twice what a full collection took here

struct avm_watch {
    struct avm_watch *next;        // the watchdog's list (under the lock)
    avm *vm;
    int64_t limit_ns;
    _Atomic int active;            // inside a call into the script
    _Atomic clockid_t clock;       // the CPU clock of the thread making that call
    _Atomic int64_t allowed_ns;    // the limit it was found over (with the collector's share)
    // The watchdog's own, under the lock:
    uint64_t seen_serial;
    clockid_t seen_clock;
    int64_t seen_cpu;              // the thread's CPU time when the event was first seen
    int seen;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct avm_watch *list;
    int started;
    _Atomic int idle;              // the watchdog waits for a VM to enter a script
} watchdog = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0 };

static int64_t now_ns(clockid_t clock, int *ok) {
    struct timespec ts;
    *ok = clock_gettime(clock, &ts) == 0;
    return (int64_t)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/// Makes the VM's count hook fire at its next instruction. With the hook's counter found
/// (budget.c) that is one int store; else lua_sethook, which the Lua manual allows
/// asynchronously ("reasonable assumptions", as for a signal handler).
static void poke(avm *vm) {
    if (vm->hook_count) *(volatile int *)vm->hook_count = 1;
    else lua_sethook(vm->L, avm_budget_hook, LUA_MASKCOUNT, 1);
}

static void check(struct avm_watch *w) {
    uint64_t serial = atomic_load_explicit(&w->vm->watch_serial, memory_order_acquire);
    clockid_t clock = atomic_load_explicit(&w->clock, memory_order_acquire);
    int ok;
    int64_t cpu = now_ns(clock, &ok);
    if (!ok || !w->seen || serial != w->seen_serial || clock != w->seen_clock) {
        w->seen = ok;
        w->seen_serial = serial;
        w->seen_clock = clock;
        w->seen_cpu = cpu;
        return;
    }
    // The VM's size, read from another thread: a word, and only an estimate is needed.
    size_t held_mb = *(volatile size_t *)&w->vm->mem_used >> 20;
    int64_t allowed = w->limit_ns + (int64_t)held_mb * WATCH_GC_NS_PER_MB;
    if (cpu - w->seen_cpu > allowed && atomic_load_explicit(&w->vm->watch_fired, memory_order_relaxed) != serial) {
        atomic_store_explicit(&w->allowed_ns, allowed, memory_order_relaxed);
        atomic_store_explicit(&w->vm->watch_fired, serial, memory_order_release);
        // Poked again at each look until the event ends: a poke can be lost to the
        // thread's own decrement of the counter at that instant.
    }
    if (atomic_load_explicit(&w->vm->watch_fired, memory_order_relaxed) == serial
        && atomic_load_explicit(&w->vm->watch_serial, memory_order_acquire) == serial) poke(w->vm);
}

static void *watch_loop(void *unused) {
    (void)unused;
    int ok;
    int64_t last_active = now_ns(CLOCK_MONOTONIC, &ok);
    pthread_mutex_lock(&watchdog.lock);
    for (;;) {
        int active = 0;
        for (struct avm_watch *w = watchdog.list; w; w = w->next) {
            if (atomic_load_explicit(&w->active, memory_order_acquire)) {
                active = 1;
                check(w);
            } else {
                w->seen = 0;
            }
        }
        int64_t now = now_ns(CLOCK_MONOTONIC, &ok);
        if (active) last_active = now;
        if (!active && now - last_active > WATCH_IDLE_NS) {
            // Idle until a VM enters a script: it sees `idle` and signals (avm_watch_enter).
            atomic_store(&watchdog.idle, 1);
            int any = 0;
            for (struct avm_watch *w = watchdog.list; w; w = w->next) any |= atomic_load(&w->active);
            if (!any) pthread_cond_wait(&watchdog.wake, &watchdog.lock);
            atomic_store(&watchdog.idle, 0);
            last_active = now_ns(CLOCK_MONOTONIC, &ok);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_PERIOD_NS;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&watchdog.wake, &watchdog.lock, &until);
    }
    return NULL;
}

int avm_watch_start(avm *vm, double seconds) {
    if (vm->watch) avm_watch_stop(vm);
    if (!(seconds > 0)) return 0;
    struct avm_watch *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->vm = vm;
    w->limit_ns = seconds >= 1e6 ? (int64_t)1e15 : (int64_t)(seconds * 1e9);
    pthread_mutex_lock(&watchdog.lock);
    if (!watchdog.started) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        watchdog.started = pthread_create(&thread, &attr, watch_loop, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    int started = watchdog.started;
    if (started) {
        w->next = watchdog.list;
        watchdog.list = w;
    }
    pthread_mutex_unlock(&watchdog.lock);
    if (!started) { free(w); return -1; }
    vm->watch = w;
    return 0;
}

void avm_watch_stop(avm *vm) {
    struct avm_watch *w = vm->watch;
    if (!w) return;
    pthread_mutex_lock(&watchdog.lock);
    for (struct avm_watch **p = &watchdog.list; *p; p = &(*p)->next) {
        if (*p == w) { *p = w->next; break; }
    }
    pthread_mutex_unlock(&watchdog.lock);
    free(w);
    vm->watch = NULL;
}

void avm_watch_enter(avm *vm) {
    struct avm_watch *w = vm->watch;
    if (!w) return;
    clockid_t clock;
    if (pthread_getcpuclockid(pthread_self(), &clock) != 0) return;
    atomic_store_explicit(&w->clock, clock, memory_order_release);
    atomic_store(&w->active, 1);
    if (atomic_load(&watchdog.idle)) {
        pthread_mutex_lock(&watchdog.lock);
        pthread_cond_signal(&watchdog.wake);
        pthread_mutex_unlock(&watchdog.lock);
    }
}

void avm_watch_leave(avm *vm) {
    if (vm->watch) atomic_store_explicit(&vm->watch->active, 0, memory_order_release);
}

double avm_watch_limit(const avm *vm) { return vm->watch ? (double)vm->watch->limit_ns / 1e9 : 0; }
double avm_watch_allowed(const avm *vm) { return vm->watch ? (double)atomic_load(&vm->watch->allowed_ns) / 1e9 : 0; }

int avm_set_cpu_limit(avm *vm, double seconds) { return avm_watch_start(vm, seconds); }
