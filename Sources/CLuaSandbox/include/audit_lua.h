// The sandboxed Lua VM of one projection: the only code that touches lua_State.
//
// Every call that may raise a Lua error runs inside lua_pcall in C, so no longjmp
// ever crosses a Swift frame. Errors come back as AVM_ERROR with a message from
// avm_error(). One avm belongs to one thread at a time.
#ifndef AUDIT_LUA_H
#define AUDIT_LUA_H

#include <stddef.h>
#include <stdint.h>

typedef struct avm avm;

enum {
    AVM_OK = 0,
    AVM_SKIPPED = 1,     // no handler for the type, stream not matched, or key function returned nil
    AVM_NEED_STATE = 2,  // the key's state is not in memory: avm_provide_state, then apply again
    AVM_ERROR = -1,
};

/// One event, as pointers into the stored row (zero-copy). Strings need not be
/// NUL-terminated except `stream`.
typedef struct {
    int64_t seq, version;
    const char *id; size_t id_len;
    const char *stream; size_t stream_len;
    const char *type; size_t type_len;
    const char *occurred_at; size_t occurred_at_len;
    const char *recorded_at; size_t recorded_at_len;
    const char *data; size_t data_len;
    const char *meta; size_t meta_len;
} avm_event;

/// A new sandboxed VM. `memory_limit` in bytes; `instruction_budget` per event.
avm *avm_new(size_t memory_limit, int64_t instruction_budget);
void avm_free(avm *vm);
const char *avm_error(const avm *vm);
/// Limits the CPU time of each call of the script (an event's key, init and handler, or
/// the top level when loading) to `seconds` of the calling thread's CPU time (0: none).
/// Returns 0, or -1 when the watchdog thread cannot start.
int avm_set_cpu_limit(avm *vm, double seconds);
/// Whether the last error is deterministic: the same code and events always give it (a
/// handler's error, the instruction budget, the string size limit, a state that cannot
/// be stored); 0 for the CPU time and memory limits, which depend on the machine.
int avm_error_deterministic(const avm *vm);
/// The longest string a VM may make, in bytes.
size_t avm_max_string(void);
size_t avm_memory_used(const avm *vm);
/// Keys whose state this VM started from init (keys new to the projection), ever.
size_t avm_keys_created(const avm *vm);
size_t avm_memory_limit(const avm *vm);

/// Makes `require(name)` load this source (from projections/lib/).
int avm_add_module(avm *vm, const char *name, const char *src, size_t len, const char *chunkname);

/// Runs a projection script (text only) and takes the table it returns as the spec.
int avm_load(avm *vm, const char *src, size_t len, const char *chunkname);

/// The spec as canonical JSON, functions shown as "<function>". Valid until the next call.
int avm_describe(avm *vm, const char **json, size_t *len);

/// Which fields of `e` to build, as bits of AVM_FIELD_*; default all.
enum {
    AVM_FIELD_SEQ = 1, AVM_FIELD_ID = 2, AVM_FIELD_STREAM = 4, AVM_FIELD_VERSION = 8, AVM_FIELD_TYPE = 16,
    AVM_FIELD_OCCURRED_AT = 32, AVM_FIELD_RECORDED_AT = 64, AVM_FIELD_DATA = 128, AVM_FIELD_META = 256,
    AVM_FIELD_ALL = 511,
};
void avm_set_event_fields(avm *vm, unsigned fields);

/// The projection's declared columns: as states are written out (avm_flush,
/// avm_state_json), a top-level field named like a column must fit its type, or the
/// write fails naming the key, column, type and value. Names are copied.
enum { AVM_COLUMN_TEXT = 0, AVM_COLUMN_INTEGER = 1, AVM_COLUMN_REAL = 2, AVM_COLUMN_NUMERIC = 3 };
int avm_set_columns(avm *vm, const char *const *names, const int *types, size_t count);

/// Folds one event. See the AVM_ codes.
int avm_apply(avm *vm, const avm_event *event);
/// A run of events for avm_apply_batch.
typedef struct {
    const avm_event *events;
    size_t count;
    /// When not NULL: only the events whose hashes[i] % parts == part are folded.
    const uint64_t *hashes;
    uint64_t parts, part;
    /// In: the first event to fold. Out: the one it stopped at (count when all are done).
    size_t at;
    /// Out: how many were applied, and the seq of the last.
    size_t applied;
    int64_t last_seq;
    int status;
} avm_batch;

/// Whether this VM found tables laid out as Lua 5.4 lays them out, and so fetches the
/// states of the events ahead into cache (avm_apply_batch); without, it folds the same,
/// only slower.
int avm_prefetches_states(const avm *vm);
/// Whether this VM checks each event's state by reading Lua's tables directly and
/// finds the upvalues a function assigns in its bytecode, as it does on the Lua 5.4 it
/// was made for; without, it checks the same, only slower.
int avm_checks_directly(const avm *vm);
/// Folds batch->events from batch->at on, in order, as avm_apply would one by one (the
/// keys of the events ahead are fetched into cache meanwhile). Returns AVM_OK when all
/// are done; AVM_NEED_STATE or AVM_ERROR for the event at batch->at, which was not applied.
int avm_apply_batch(avm *vm, avm_batch *batch);
/// The key the last applied (or state-needing) event went to.
const char *avm_last_key(const avm *vm, size_t *len);
/// After a failed apply: the key of the event that failed, or NULL when the failure came
/// before its key was known (the key function, or building the event).
const char *avm_failed_key(const avm *vm, size_t *len);
/// Parks `key`: its events from `first_seq` on are skipped and recorded as dead letters
/// (on_error = "park"). Returns AVM_OK, or AVM_ERROR when memory is short.
int avm_park_key(avm *vm, const char *key, size_t len, int64_t first_seq);
/// When set, events of keys not parked are skipped (not recorded): a retry folds the
/// parked keys' events up to each one's seq, and only those.
void avm_fold_only_parked(avm *vm, int flag);
/// Unparks `key`: its events are folded again (a fold that refolds the key from an
/// earlier state, which may park it again).
void avm_unpark_key(avm *vm, const char *key, size_t len);
/// Sets `key`'s state in memory to `json` (canonical JSON), to be written at the next
/// flush; with `json` NULL, drops the state the key has in memory, whatever a failed
/// handler did to it: the next flush writes nothing for the key, and its stored state
/// stays as it was.
int avm_set_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len);
/// The dead letters recorded since the last call, as [u32 key_len][key][i64 seq]
/// records (little-endian, in seq order); taking them empties the list. Valid until
/// the next call into the VM.
const char *avm_take_dead_letters(avm *vm, size_t *len);
/// The key whose state AVM_NEED_STATE asked for.
const char *avm_pending_key(const avm *vm, size_t *len);
/// Supplies a key's stored state (canonical JSON), or NULL to start it from init(key).
int avm_provide_state(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len);
/// When set, a key not in memory has no stored state: init it without asking.
void avm_assume_no_stored_states(avm *vm, int flag);

/// Serialises every state changed since the last flush as canonical JSON records
/// [u32 key_len][key][u32 json_len][json] (lengths little-endian), in no particular
/// order, and forgets which were changed. Valid until the next call.
int avm_flush(avm *vm, const char **records, size_t *len, size_t *count);
/// After avm_flush failed on a state that cannot be stored: the seq of the last event
/// that changed that state (0: not known, e.g. a state only merged).
int64_t avm_flush_failed_seq(const avm *vm);
/// Copies `count` records of `in` (as avm_flush writes them, `len` bytes) into `out`
/// (`len` bytes) in ascending bytewise key order. Needs no VM: any thread may call it.
/// Returns 0; -1 when memory is short; -2 when the records are malformed.
int avm_sort_records(const char *in, size_t len, size_t count, char *out);
/// Merges `n` runs of records, each in key order (runs[i]: lens[i] bytes, counts[i]
/// records; oldest run first) into `out`, which has room for all their bytes: each key
/// once, with the record of the last run that holds it. Needs no VM. Returns the bytes
/// written (the records in *count); -1 when memory is short; -2 when a run is malformed.
long avm_merge_records(const char *const *runs, const size_t *lens, const size_t *counts, size_t n, char *out, size_t *count);
/// A walk over a question's states in memory: `base` (a snapshot's states merged) and
/// `changes` (the fold's), each a run of records in key order (either may be NULL), read
/// as one in key order, a key of `changes` replacing the same key of `base`. The runs
/// must outlive the walk. NULL when memory is short.
typedef struct avm_overlay_walk avm_overlay_walk;
avm_overlay_walk *avm_overlay_open(const char *base, size_t base_len, size_t base_count, const char *changes, size_t changes_len,
                                   size_t changes_count);
/// The next row: its key and state (pointers into the runs). 1, or 0 past the last, or
/// -1 when a run is malformed.
int avm_overlay_next(avm_overlay_walk *w, const char **key, size_t *key_len, const char **state, size_t *state_len);
void avm_overlay_close(avm_overlay_walk *w);
/// A member of a state's JSON, as SQLite's json_extract would give it.
enum { AVM_JV_ABSENT = 0, AVM_JV_NULL, AVM_JV_INT, AVM_JV_TEXT, AVM_JV_OTHER };
typedef struct {
    int kind;            // AVM_JV_*; AVM_JV_OTHER: a string with escapes, a float, an object or an array
    int64_t i;           // AVM_JV_INT (true and false are 1 and 0)
    const char *s;       // AVM_JV_TEXT: the bytes between the quotes
    size_t len;
} avm_json_value;
/// Reads the top-level members names[i] (name_lens[i] bytes) of the JSON object `json`
/// into out[i]. Needs no VM. Returns 0, or -1 when it cannot (not an object, a key with
/// escapes, malformed): read those members with json_extract.
int avm_json_members(const char *json, size_t len, const char *const *names, const size_t *name_lens, size_t count, avm_json_value *out);

/// Whether the projection defines merge(a, b).
int avm_has_merge(const avm *vm);
/// state[key] = merge(state[key], partial) where partial is canonical JSON (a state
/// folded by another VM over the events that follow); marks the key changed.
int avm_merge(avm *vm, const char *key, size_t key_len, const char *json, size_t json_len);

/// Drops every state held in memory (call right after a flush that was committed).
int avm_evict(avm *vm);

/// Writes a finite double into out (at least 32 bytes) as Swift's Double.description
/// does, as the engine writes floats in state: the fewest digits that read back to it,
/// in exponent form above 2^53 or below 0.0001 ("1e+16", "1e-05"), otherwise with a
/// '.' ("100.0", "0.001"). Returns its length. (Exposed for the tests that compare it
/// with Swift's.)
size_t avm_format_double(double d, char *out);

/// The canonical JSON of a key's state as it is in memory now (for tests and explain);
/// AVM_SKIPPED when the key is not in memory.
int avm_state_json(avm *vm, const char *key, size_t key_len, const char **json, size_t *len);

#endif
