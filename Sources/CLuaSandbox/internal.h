// Shared between the sandbox's C files; not visible to Swift.
#ifndef AUDIT_LUA_INTERNAL_H
#define AUDIT_LUA_INTERNAL_H

#include <locale.h>
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
/// The pool's memory comes in chunks of 2 MB aligned to their size, each cut into slabs
/// of one size class (alloc.c).
#define POOL_CHUNK_SHIFT 21
#define POOL_CHUNK ((size_t)1 << POOL_CHUNK_SHIFT)
#define POOL_SLAB_SHIFT 14
#define POOL_SLAB ((size_t)1 << POOL_SLAB_SHIFT)
#define POOL_SLABS (POOL_CHUNK / POOL_SLAB)

/// One slab's bookkeeping, in the header of its chunk (alloc.c).
typedef struct aslab aslab;
struct aslab {
    void *free;          // its free blocks, linked through their first word
    char *bump, *end;    // blocks never handed out: [bump, end)
    aslab *next, *prev;  // in its class's list of slabs with free blocks, or a list of the pool's
    uint32_t live;       // blocks handed out
    uint8_t cls;         // size class of its blocks
    uint8_t where;       // SLAB_* (alloc.c)
};

typedef struct achunk achunk;

/// Small blocks of Lua's allocations, by size class: each event makes and drops a few
/// tables and strings, and glibc's malloc/free for them cost a quarter of replay time
/// (measured). Each class takes blocks from its current slab, then from its other slabs
/// with free blocks; a slab whose blocks are all free again is kept for any class, and
/// given back to the system when memory is short (alloc.c).
typedef struct {
    aslab *current[POOL_CLASSES + 1];
    aslab *partial[POOL_CLASSES + 1];  // each class's other slabs with free blocks
    aslab none;          // the current slab of a class that has none: no free blocks
    aslab *empty;        // slabs with no block in use, held for reuse
    aslab *unheld;       // slabs given back to the system, to use again before new ones
    achunk *chunks;      // every chunk, newest first
    size_t fresh;        // slabs of the newest chunk from this one on were never used
    size_t nchunks;
} apool;

/// Flags of a key's slot in vm->keys. KEY_LARGE: its state was too large to check
/// after each event (state_check.c) since it was last written out.
enum { KEY_DIRTY = 1, KEY_KEPT = 2, KEY_LARGE = 4 };

/// A key's entry in a keymap: where its bytes are, and the states' bookkeeping.
typedef struct {
    size_t off;          // bytes in keymap.bytes, NUL-terminated
    uint32_t len;
    uint32_t flags;      // KEY_* (used by states.c)
    int64_t seq;         // the last event that changed its state (0: none since the key was added)
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

/// A set of pointers that is emptied in O(1) (buffer.c).
typedef struct { const void *p; uint32_t gen; } ptrset_slot;
typedef struct {
    ptrset_slot *slots;
    size_t mask, count;
    uint32_t gen;
} ptrset;

struct avm {
    lua_State *L;
    apool pool;
    size_t mem_used, mem_limit;
    int mem_exceeded;
    int64_t budget;          // instructions per event
    int64_t budget_left;     // hook ticks left
    int budget_exceeded;
    int loading;             // while true, limits are generous (setup)
    int closing;             // lua_close is freeing everything (alloc.c)

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

    // Memory (alloc.c). mem_used counts what the VM holds from the system: its pool's
    // slabs, in use or empty, and its large blocks. The last request refused, until one
    // succeeds (nsize 0: none), tells Lua's retry after its emergency collection apart.
    struct { const void *ptr; size_t osize, nsize; } refused;
    int64_t flush_seq;       // the kslot seq of the state avm_flush is writing
    size_t json_before;      // bytes of the states avm_flush wrote before this one (lua_to_json.c)

    // --- determinism: what a handler may change, in which order it sees keys, what a
    // state may hold (freeze.c, bytecode.c, ordered.c, state_check.c) ---
    int ref_views;           // real table -> its read-only view, walked function -> true; LUA_NOREF while loading
    int ref_watched;         // [i] = { function, n, value at load } of upvalues its code assigns; upvalue ids -> true
    size_t nwatched;
    lua_CFunction gmatch_step; // string.gmatch's iterator: one made at load carries state
    int bytecode_ok;         // bytecode.c reads this Lua's dumps
    abuf dump;
    int ref_next_cache;      // the snapshot next(t, k) walks (ordered.c)
    int next_cached;
    int check_layout_ok;     // state_check.c reads tables directly
    abuf check_out;
    ptrset seen;             // the tables of the state being written (lua_to_json.c)
    const void **column_keys; // each column's name as a Lua string (NULL: a long one), kept in ref_column_keys
    int ref_column_keys;
    // --- Work limits (budget.c, watchdog.c, charges.c, tablecharge.c, strmatch.c; the hook in limits.c).
    // budget_left counts instructions; C functions charge the work they do to it too.
    int *hook_base, *hook_count; // the lua_State's basehookcount and hookcount (NULL: not found, see budget.c)
    int hook_period;             // the count hook's period: AVM_HOOK_COUNT, or 1 while a limit may be hit
    int phase_left;              // with period 1: instructions until the next tick of AVM_HOOK_COUNT
    int string_exceeded;         // a string longer than max_string was refused
    int cpu_exceeded;            // the watchdog found the event over its CPU time
    const char *spent_in;        // the C function whose charge spent the budget (NULL: Lua code)
    char limit_where[LUA_IDSIZE + 24]; // "chunk:line" of the Lua code running when a deterministic limit was hit ("": none)
    char limit_module[64];       // the module whose top level was running when a limit was hit ("": none; sandbox.c)
    int64_t limit_budget;        // with limit_module: the budget that module's top level ran under
    size_t max_string;           // the longest string the VM may make, in bytes
    size_t refused_string;       // the length of the string refused
    struct avm_watch *watch;     // the CPU-time watchdog's view of this VM; NULL: no CPU limit
    _Atomic uint64_t watch_serial; // the event being run (from 1): bumped per event, read by the watchdog
    _Atomic uint64_t watch_fired;  // the serial the watchdog found over its CPU time (0: none)
    int error_deterministic;     // whether vm->error is one the same events always give
    int pending_absent;          // the key in `pending` has no stored state (fold.c)
    // --- parked keys (parked.c): a projection with on_error = "park" skips the events of
    // a parked key from its first failed seq on, recording each as a dead letter.
    keymap parked;               // key -> slot; slot seq: the first seq not folded
    abuf dead;                   // dead letters since the last take: [u32 key_len][key][i64 seq]
    int key_known;               // last_key is the key of the event being applied
    int only_parked;             // fold only the keys in `parked`, each up to its seq (a retry)
};

#define AVM_HOOK_COUNT 1000
/// The least instruction budget a script's top level runs under when it loads (vm.c).
#define AVM_LOAD_BUDGET_MIN 1000000
// Lua 5.4's Table: array part pointer, hash part pointer; the size of a TValue.
#define AVM_TABLE_ARRAY 16
#define AVM_TABLE_NODE 24
#define AVM_TABLE_METATABLE 40  // (read where vm->check_layout_ok)
#define AVM_TVALUE_SIZE 16

// The states in memory: slot i is ref_states[i / AVM_STATES_CHUNK + 1][i % AVM_STATES_CHUNK + 1],
// chunks made with their whole array part. Not one array of every slot: storing a new
// state into an old table makes Lua's generational collector traverse all of that table
// again at its next minor collection, which with half a million states was two fifths
// of the collector's time (perf: propagatemark, 540 of 1,380 samples; 290 after).
#define AVM_STATES_CHUNK_BITS 10
#define AVM_STATES_CHUNK (1L << AVM_STATES_CHUNK_BITS)

/// Nesting limits (docs/events.md, docs/projections.md): an event's data and meta nest at
/// most AVM_EVENT_LEVELS arrays and objects, counting the outermost (as ingest counts
/// them); a state's tables at most AVM_STATE_LEVELS levels inside the state.
#define AVM_EVENT_LEVELS 128
#define AVM_STATE_LEVELS 64
enum { AVM_JSON_EVENT, AVM_JSON_STATE };

/// Pushes the value of the JSON text [p, end), an event's field or a state (`kind`,
/// AVM_JSON_*, sets the nesting limit); raises a Lua error on malformed JSON.
void avm_push_json(avm *vm, lua_State *L, const char *p, size_t len, const char *what, int kind);

/// Appends the canonical JSON of the value at `idx` to `out`; raises a Lua error on
/// values that are not plain data (functions unless allow_functions, NaN, cycles…).
/// `key` names the state in error messages (with allow_functions: the whole root).
void avm_write_json(avm *vm, lua_State *L, int idx, abuf *out, int allow_functions, const char *key);

static inline avm *avm_of(lua_State *L) { return *(avm **)lua_getextraspace(L); }

// alloc.c
void *avm_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/// Before the VM's first allocation.
void avm_pool_init(apool *pool);
/// Gives the pool's empty slabs back to the system (after a collection freed many).
void avm_pool_give_back(avm *vm);
/// Unmaps every chunk (the VM is closed).
void avm_pool_release(apool *pool);

// limits.c
/// The count hook (AVM_HOOK_COUNT instructions, or every instruction once a limit is hit).
void avm_budget_hook(lua_State *L, lua_Debug *ar);
int avm_on_panic(lua_State *L);

// depot.c
/// A 2 MB pool chunk, its pages faulted in ahead when one is ready; NULL when memory is short.
void *avm_depot_take(void);
/// A pool chunk, zeroed and aligned to its size, on a 2 MB page when `huge`; NULL when
/// memory is short. avm_chunk_unmap gives it back to the system.
void *avm_chunk_map(int huge);
void avm_chunk_unmap(void *chunk);

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
// parked.c
int avm_parked_skip(avm *vm, lua_State *L, const char *key, size_t len, int64_t seq);
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
/// Raises the error of the limit hit (avm_limit_hit), as the hook would.
void avm_raise_limit(lua_State *L, avm *vm);
/// The count of the call that a module's top level interrupts (see avm_module_enter).
typedef struct {
    int64_t budget, budget_left;
    int period, left, phase_left;
} avm_budget_saved;
/// Before a module's top level runs (require, the first time in this VM): the count of
/// the event (or of the script's top level) is set aside, and the module runs under a
/// budget of its own, the larger of the per-event one and AVM_LOAD_BUDGET_MIN, and in a
/// CPU-time window of its own. What the first require of a module costs must not land
/// on whichever event happens to make it in this VM: that depends on how the log was
/// partitioned (--parallel) and on where the VM was made (a catch-up, a rebuild).
void avm_module_enter(avm *vm, avm_budget_saved *saved);
/// After it: the count set aside goes on exactly where it stopped. Returns 1 when a
/// limit was hit in the module (the flags stay set, so the call fails: the error then
/// names the module and the budget it ran under), else 0.
int avm_module_leave(avm *vm, const avm_budget_saved *saved, const char *module);

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
/// lua_pcall in the "C" locale (numbers are written and read with a '.', whatever
/// locale the process or thread set).
int avm_pcall(avm *vm, int nargs, int nresults);

// --- determinism --------------------------------------------------------------------

// buffer.c: 1 when p was added, 0 when it was there, -1 when memory is short.
int avm_ptrset_add(ptrset *s, const void *p);
void avm_ptrset_clear(ptrset *s);
void avm_ptrset_free(ptrset *s);

// number_text.c
locale_t avm_c_locale(void);
/// Swift's Double.description of a finite d into out (32 bytes); its length. Call in
/// the "C" locale.
size_t avm_number_text(double d, char *out);

// ordered.c
/// Pushes a snapshot of the keys of the table (or view) at idx, sorted; returns
/// whether it has keys of a type with no order (tables, functions), put last. Charged
/// to the budget as `charged` (pairs, next) unless NULL (the engine's own walks).
int avm_push_snapshot(lua_State *L, int idx, const char *charged);
/// Forgets next()'s snapshot: at every event, so what next answers depends on the
/// handler alone.
void avm_ordered_reset(avm *vm, lua_State *L);
void avm_open_ordered(lua_State *L);

// sort.c
void avm_open_sort(lua_State *L);

// freeze.c
/// Whether idx is a read-only view; pushes its name (1) or nothing (0).
int avm_frozen_name(lua_State *L, int idx);
/// Whether idx is a read-only view; pushes the table it shows (1) or nothing (0).
int avm_frozen_real(lua_State *L, int idx);
/// The key under which a metatable copy keeps the table given to setmetatable.
const void *avm_original_key(void);
/// Raises the error for a write of `key` into the view at `view`.
int avm_refuse_change(lua_State *L, int view, int key);
/// After the script loaded: everything it set up becomes read-only.
void avm_freeze_loaded(avm *vm, lua_State *L);
/// After a require at handler time: the module's value (at idx, replaced) too.
void avm_freeze_module(avm *vm, lua_State *L, int idx, const char *name);
void avm_watch_upvalue(avm *vm, lua_State *L, int f, int n);
/// Raises if a watched upvalue changed (after each handler).
void avm_check_watched(avm *vm, lua_State *L);

// bytecode.c
/// written[i]: the function at f (or one nested in it) assigns upvalue i + 1. Returns 0
/// when it cannot tell (then every upvalue is watched).
int avm_upvalues_written(avm *vm, lua_State *L, int f, unsigned char *written, size_t count);
void avm_bytecode_check(avm *vm, lua_State *L);

// state_check.c
#define AVM_CHECK_VALUES 256
#define AVM_CHECK_BYTES 16384
/// Checks the state at idx (of the slot's key) as it will be written out; raises.
void avm_check_state(avm *vm, lua_State *L, int idx, long slot);
void avm_check_layout(avm *vm, lua_State *L);
/// Whether the bytes are UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
int avm_utf8_valid(const unsigned char *s, size_t n);
/// How many fields the table t has room for (its array and hash parts), 0 when this
/// VM does not read tables directly.
size_t avm_table_capacity(const avm *vm, const void *t);
/// Raises unless a key can be stored and read back as it is (UTF-8, no NUL).
void avm_check_key(lua_State *L, const char *key, size_t len, int from_function);

#endif
