// Shared between the sandbox's C files; not visible to Swift.
#ifndef AUDIT_LUA_INTERNAL_H
#define AUDIT_LUA_INTERNAL_H

#include <stdatomic.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "audit_lua.h"

#define AVM_NAME_CACHE 64
#define AVM_NAME_CACHE_LEN 24

/// How a projection keys its states (the spec's `key`).
enum { AVM_KEY_STREAM = 0, AVM_KEY_GLOBAL = 1, AVM_KEY_FUNCTION = 2 };

/// A growable byte buffer outside Lua's allocator.
typedef struct {
    char *data;
    size_t len, cap;
} abuf;

int abuf_reserve(abuf *b, size_t extra);
int abuf_put(abuf *b, const void *p, size_t n);
int abuf_putc(abuf *b, char c);

#define POOL_GRAIN 16
#define POOL_MAX 512
#define POOL_CLASSES (POOL_MAX / POOL_GRAIN)
#define POOL_CHUNK (256 * 1024)
#define POOL_HUGE_CHUNK (2 * 1024 * 1024)

/// Small blocks of Lua's allocations, recycled by size class: each event makes and
/// drops a few tables and strings, and glibc's malloc/free for them cost a quarter
/// of replay time (measured).
typedef struct {
    void *free_list[POOL_CLASSES + 1];
    char *cursor;
    size_t left;
    void *chunks;  // linked through their first word, freed with the VM
    size_t nchunks;
} apool;

/// Flags of a key's slot in vm->keys.
enum { KEY_DIRTY = 1, KEY_KEPT = 2 };

/// A key's entry in a keymap: where its bytes are, and the states' bookkeeping.
typedef struct {
    size_t off;          // bytes in keymap.bytes, NUL-terminated
    uint32_t len;
    uint32_t flags;      // KEY_* (used by states.c)
    // Where its state's table and hash part were when last seen (states.c), fetched
    // into cache while earlier events are folded; only ever prefetched, never read.
    const void *table, *node;
} kslot;

#define KEY_HEAD 20

/// A keymap's table entry: a key of up to KEY_HEAD bytes is compared without leaving it
/// (one cache line holds two), so a lookup costs one miss, which a prefetch can hide.
typedef struct {
    uint32_t hash;
    uint32_t slot;       // slot + 1; 0: empty
    uint32_t len;        // the key's length; UINT32_MAX: see its slot
    char head[KEY_HEAD]; // the key's first bytes
} kentry;

/// Key bytes -> slot 0, 1, 2… in order of insertion (keymap.c). Its memory comes from
/// the VM's allocator, so it counts toward the memory limit.
typedef struct {
    kentry *table;       // open addressing, linear probing, at most half full
    uint32_t mask;
    kslot *slots;
    size_t count, slot_cap;
    char *bytes;
    size_t bytes_len, bytes_cap;
    uint64_t seed[2];
} keymap;

/// A declared column of the projection's table (AVM_COLUMN_* type).
typedef struct {
    char *name;
    size_t len;
    int type;
} avm_column;

#define AVM_SHAPE_KEYS 24

struct avm {
    lua_State *L;
    apool pool;
    size_t mem_used, mem_limit;
    int mem_exceeded;
    int64_t budget;          // instructions per event
    int64_t budget_left;     // hook ticks left
    int budget_exceeded;
    int loading;             // while true, limits are generous (setup)
    int closing;             // lua_close is freeing everything (limits.c)

    int key_mode;
    unsigned event_fields;
    int assume_absent;
    int all_dirty;           // every state in memory is new since the last flush: no tracking
    char *glob;
    long glob_prefix;        // glob is this many literal bytes then '*' (-1: match with fnmatch)
    int ref_merge;
    int init_takes_key;      // init declares a parameter or `...`
    int ref_spec, ref_on, ref_init, ref_key, ref_states, ref_env, ref_modules, ref_loaded;
    keymap keys;             // key -> slot; the state of slot i is in ref_states (see AVM_STATES_CHUNK)
    uint32_t *dirty;         // slots changed since the last flush (unless all_dirty)
    size_t ndirty, dirty_cap;
    int ref_kept;            // slot + 1 -> the state a flush writes when it is not the one in memory
    size_t nkept;
    size_t resident;
    size_t created;          // keys started from init (new keys) since the VM was made

    // Lua 5.4 keeps a table's array and hash parts at these offsets of its Table: checked
    // once per VM (vm.c), and only then are they read, to prefetch states ahead.
    int peek_ok;
    const char **chunk_arrays; // each chunk of ref_states: its array part (NULL: not known)
    size_t nchunk_arrays, chunk_arrays_cap;
    int tracing;               // the allocator records what it returns (for that check)
    void *traced[4];
    size_t traced_size[4], ntraced;

    abuf pending;            // key for AVM_NEED_STATE
    abuf last_key;           // key of the last applied event (for explain)
    int track_last_key;
    abuf out;                // flush / describe / state output
    abuf scratch;            // string decoding
    // Object keys of event data, as Lua strings (json_to_lua.c): the same few names
    // recur in every event, and making each anew hashed and interned it.
    struct { uint32_t len; char bytes[AVM_NAME_CACHE_LEN]; } names[AVM_NAME_CACHE];
    int ref_names;           // the strings: ref_names[i + 1] is names[i]
    abuf path;               // where in a state an error is, for its message
    // The top-level keys of the last state written whose keys are all strings, in the
    // order lua_next gave them, and how they sort (lua_to_json.c): states of one
    // projection mostly have the same keys in the same order, so the next is written
    // without sorting its keys or looking up its columns. The key strings are kept in
    // ref_shape (so that no other string is made at their addresses while cached).
    struct {
        size_t n;            // 0: nothing cached
        const char *keys[AVM_SHAPE_KEYS];
        size_t lens[AVM_SHAPE_KEYS];
        unsigned char order[AVM_SHAPE_KEYS];             // the j-th in key order is keys[order[j]]
        const avm_column *columns[AVM_SHAPE_KEYS];       // of the j-th in key order, or NULL
    } shape;
    int ref_shape;
    avm_column *columns;     // declared columns, checked as states are written out
    size_t ncolumns;
    char *error;

    // --- Work limits (budget.c, watchdog.c, charges.c, tablecharge.c, strmatch.c; the hook in limits.c).
    // budget_left counts instructions; C functions charge the work they do to it too.
    int *hook_base, *hook_count; // the lua_State's basehookcount and hookcount (NULL: not found, see budget.c)
    int hook_period;             // the count hook's period: AVM_HOOK_COUNT, or 1 while a limit may be hit
    int phase_left;              // with period 1: instructions until the next tick of AVM_HOOK_COUNT
    int string_exceeded;         // a string longer than max_string was refused
    int cpu_exceeded;            // the watchdog found the event over its CPU time
    const char *spent_in;        // the C function whose charge spent the budget (NULL: Lua code)
    size_t max_string;           // the longest string the VM may make, in bytes
    size_t refused_string;       // the length of the string refused
    struct avm_watch *watch;     // the CPU-time watchdog's view of this VM; NULL: no CPU limit
    _Atomic uint64_t watch_serial; // the event being run (from 1): bumped per event, read by the watchdog
    _Atomic uint64_t watch_fired;  // the serial the watchdog found over its CPU time (0: none)
    int error_deterministic;     // whether vm->error is one the same events always give
    int pending_absent;          // the key in `pending` has no stored state (fold.c)
};

#define AVM_HOOK_COUNT 1000
// Lua 5.4's Table: array part pointer, hash part pointer; the size of a TValue.
#define AVM_TABLE_ARRAY 16
#define AVM_TABLE_NODE 24
#define AVM_TVALUE_SIZE 16

// The states in memory: slot i is ref_states[i / AVM_STATES_CHUNK + 1][i % AVM_STATES_CHUNK + 1],
// chunks made with their whole array part. Not one array of every slot: storing a new
// state into an old table makes Lua's generational collector traverse all of that table
// again at its next minor collection, which with half a million states was two fifths
// of the collector's time (perf: propagatemark, 540 of 1,380 samples; 290 after).
#define AVM_STATES_CHUNK_BITS 10
#define AVM_STATES_CHUNK (1L << AVM_STATES_CHUNK_BITS)

/// Pushes the value of the JSON text [p, end); raises a Lua error on malformed JSON.
void avm_push_json(avm *vm, lua_State *L, const char *p, size_t len, const char *what);

/// Appends the canonical JSON of the value at `idx` to `out`; raises a Lua error on
/// values that are not plain data (functions unless allow_functions, NaN, cycles…).
/// `key` names the state in error messages (with allow_functions: the whole root).
void avm_write_json(avm *vm, lua_State *L, int idx, abuf *out, int allow_functions, const char *key);

static inline avm *avm_of(lua_State *L) { return *(avm **)lua_getextraspace(L); }

// limits.c
void *avm_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/// The count hook (AVM_HOOK_COUNT instructions, or every instruction once a limit is hit).
void avm_budget_hook(lua_State *L, lua_Debug *ar);
int avm_on_panic(lua_State *L);
void avm_pool_release(apool *pool);

// depot.c
/// A 2 MB pool chunk, its pages faulted in ahead when one is ready; NULL when memory is short.
void *avm_depot_take(void);

// keymap.c
void keymap_seed(keymap *m);
uint32_t keymap_hash(const keymap *m, const void *key, size_t len);
static inline void keymap_prefetch(const keymap *m, uint32_t hash) {
    if (m->table) __builtin_prefetch(&m->table[hash & m->mask]);
}
/// The key's slot, or -1.
long keymap_find(const keymap *m, const void *key, size_t len, uint32_t hash);
/// Adds a key not in the map; its slot, or -1 when memory is short.
long keymap_insert(avm *vm, keymap *m, const void *key, size_t len, uint32_t hash);
void keymap_clear(avm *vm, keymap *m);
static inline const char *keymap_key(const keymap *m, size_t slot) { return m->bytes + m->slots[slot].off; }

// states.c (all may raise, so only inside a protected call)
static inline uint32_t states_hash(avm *vm, const char *key, size_t len) { return keymap_hash(&vm->keys, key, len); }
/// The key's slot in vm->keys, or -1; hash is states_hash of the key.
long states_find(avm *vm, const char *key, size_t len, uint32_t hash);
/// Pushes the state in memory of the slot (nil when none, or slot -1); returns its type.
int states_push(avm *vm, lua_State *L, long slot);
/// The same, with ref_states at stack index `states` (absolute).
int states_push_in(lua_State *L, int states, long slot);
/// Pops the value on top into the key's state in memory, adding the key when slot is -1;
/// returns the slot.
long states_set(avm *vm, lua_State *L, long slot, const char *key, size_t len, uint32_t hash);
/// Notes where the slot's state (the table at idx) is, for prefetching.
static inline void states_note(avm *vm, lua_State *L, long slot, int idx) {
    kslot *s = &vm->keys.slots[slot];
    const char *t = lua_topointer(L, idx);
    s->table = t;
    s->node = vm->peek_ok && t ? *(const void *const *)(t + AVM_TABLE_NODE) : NULL;
}
/// Prefetches the slot's entry in its chunk of ref_states.
static inline void states_prefetch_entry(const avm *vm, long slot) {
    size_t chunk = (size_t)slot >> AVM_STATES_CHUNK_BITS;
    if (chunk < vm->nchunk_arrays && vm->chunk_arrays[chunk])
        __builtin_prefetch(vm->chunk_arrays[chunk] + (size_t)(slot & (AVM_STATES_CHUNK - 1)) * AVM_TVALUE_SIZE);
}
/// Prefetches the slot's state as last noted: its table and the start of its fields.
static inline void states_prefetch_state(const avm *vm, long slot) {
    const kslot *s = &vm->keys.slots[slot];
    if (s->table) __builtin_prefetch(s->table, 1);
    if (s->node) {
        __builtin_prefetch(s->node, 1);
        __builtin_prefetch((const char *)s->node + 64, 1);
    }
}
/// The slot's state in memory is to be written at the next flush.
void states_mark_dirty(avm *vm, lua_State *L, long slot);
/// Before replacing a changed state in memory without changing it: the next flush still
/// writes the state as it was changed.
void states_keep_for_flush(avm *vm, lua_State *L, long slot);
/// After a flush: nothing is changed.
void states_flushed(avm *vm, lua_State *L);
/// Drops every state in memory; changes not flushed yet are still written.
void states_evict(avm *vm, lua_State *L);

// columns.c
void avm_free_columns(avm *vm);
/// The declared column of this name, or NULL.
const avm_column *avm_find_column(const avm *vm, const char *name, size_t len);
const char *avm_column_type_name(int type);
/// Whether the value at idx fits a column of this type.
int avm_column_accepts(lua_State *L, int idx, int type);

// budget.c: the instruction budget and the limits enforced with it
/// What C functions are charged: 1 instruction per AVM_BYTES_PER_INSTRUCTION bytes read
/// or written, per value pushed or table element touched, and per
/// AVM_STEPS_PER_INSTRUCTION steps of the pattern matcher.
#define AVM_BYTES_PER_INSTRUCTION 16
#define AVM_STEPS_PER_INSTRUCTION 2
/// The longest string a VM may make: it bounds the work of one `==`, `..` or hash of a
/// string, which the VM does in one instruction.
#define AVM_MAX_STRING ((size_t)16 << 20)
/// Finds the hook's counters in the lua_State (after lua_sethook in avm_new).
void avm_budget_init(avm *vm);
/// Arms the budget and clears the limit flags before each event or protected call.
void avm_reset_budget(avm *vm);
/// Called by the hook (limits.c): one tick of AVM_HOOK_COUNT instructions, or (period 1)
/// one instruction since a limit may have been hit. Raises when a limit is hit.
void avm_budget_tick(lua_State *L, avm *vm);
/// Charges `instructions` of work done by the C function `what`; raises the budget error
/// when the budget is spent (or the CPU time, see watchdog.c).
void avm_charge(lua_State *L, int64_t instructions, const char *what);
static inline int64_t avm_bytes(size_t n) { return (int64_t)(n / AVM_BYTES_PER_INSTRUCTION); }
/// Raises the string size error for a string of `length` bytes (longer than max_string),
/// before the work of making it is done.
void avm_refuse_string(lua_State *L, size_t length);
/// Whether a limit was hit in this call (the script may have caught its error).
static inline int avm_limit_hit(const avm *vm) {
    return vm->budget_exceeded | vm->mem_exceeded | vm->string_exceeded | vm->cpu_exceeded;
}
/// Makes the hook fire at the next instruction, to check the limit flags there: called
/// where an allocation is refused (the allocator), so that a script catching the error
/// in a loop is stopped at once; the instructions counted stay exact.
void avm_stop_soon(avm *vm);
/// The allocator the VM is made with: refuses strings past max_string, then avm_limited_alloc.
void *avm_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/// The message of the limit hit (NULL when none), and whether it is deterministic.
const char *avm_limit_message(avm *vm, char *buf, size_t size, int *deterministic);

// watchdog.c: the per-event limit on the thread's CPU time
/// Watches the VM's calls into scripts from now on (seconds > 0), or stops (0).
int avm_watch_start(avm *vm, double seconds);
void avm_watch_stop(avm *vm);
/// Around a call that runs the script: whose CPU time is watched, on this thread.
void avm_watch_enter(avm *vm);
void avm_watch_leave(avm *vm);
/// Whether the watchdog found the event being run over its limit.
static inline int avm_watch_fired(const avm *vm) {
    return atomic_load_explicit(&vm->watch_fired, memory_order_acquire) == atomic_load_explicit(&vm->watch_serial, memory_order_relaxed);
}
double avm_watch_limit(const avm *vm);
/// The CPU time the event was found over: the limit, and the collector's share (watchdog.c).
double avm_watch_allowed(const avm *vm);

// charges.c, tablecharge.c, strmatch.c: the library functions that loop over their input
/// Replaces them in the sandbox's libraries with charged ones, and xpcall (the last step
/// of avm_open_sandbox: these wrap whatever the sandbox put there before).
int avm_open_charged(lua_State *L);
/// find, match, gmatch and gsub into the table on top.
void avm_open_matcher(lua_State *L);
/// insert, remove, concat and unpack into the table on top.
void avm_open_table_charges(lua_State *L);

// vm.c
void avm_set_error(avm *vm, const char *msg);
/// After a pcall: a failure or a limit the script caught becomes AVM_ERROR.
int avm_finish_call(avm *vm, int status, int ok_result);
int avm_new_ref_table(lua_State *L);

/// Opens the sandboxed libraries and globals; returns 0 or raises.
int avm_open_sandbox(lua_State *L);

#endif
