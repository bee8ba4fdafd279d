// Which upvalues a Lua function assigns, read from its bytecode (lua_dump).
//
// OP_SETUPVAL B in the function, or in a function nested in it whose upvalue is the
// enclosing one's B (instack 0), assigns upvalue B. Debian ships no Lua internals, so
// the dump format of Lua 5.4 is read here, checked once per VM on functions whose
// answer is known (avm_bytecode_check); when it does not match, every upvalue is
// watched instead.
#include <string.h>
#include "internal.h"

#define OP_SETUPVAL 10
#define MAX_UPVALUES 256

typedef struct {
    const unsigned char *p, *end;
    int bad;
} reader;

static unsigned byte(reader *r) {
    if (r->p >= r->end) { r->bad = 1; return 0; }
    return *r->p++;
}

static void skip(reader *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) { r->bad = 1; r->p = r->end; return; }
    r->p += n;
}

/// dumpSize: 7 bits a byte, most significant first, the last byte marked with 0x80.
static size_t size(reader *r) {
    size_t x = 0;
    unsigned b;
    int n = 0;
    do {
        b = byte(r);
        x = (x << 7) | (b & 0x7F);
        if (++n > 10) { r->bad = 1; return 0; }
    } while (!(b & 0x80) && !r->bad);
    return x;
}

static void skip_string(reader *r) {
    size_t n = size(r);
    if (n) skip(r, n - 1);
}

/// Reads one function; marks in written[] (indexed by its upvalues) those it or a
/// nested function assigns. Its upvalues' (instack, idx) are left in `in_stack`/`index`.
static void function(reader *r, unsigned char *written, unsigned char *in_stack, unsigned char *index, size_t *nup, int depth) {
    if (depth > 200) { r->bad = 1; return; }
    skip_string(r);                  // source
    size(r); size(r);                // linedefined, lastlinedefined
    skip(r, 3);                      // numparams, is_vararg, maxstacksize
    size_t ncode = size(r);
    for (size_t i = 0; i < ncode && !r->bad; i++) {
        if ((size_t)(r->end - r->p) < 4) { r->bad = 1; break; }
        uint32_t ins;
        memcpy(&ins, r->p, 4);
        r->p += 4;
        if ((ins & 0x7F) == OP_SETUPVAL) written[(ins >> 16) & 0xFF] = 1;
    }
    size_t nk = size(r);
    for (size_t i = 0; i < nk && !r->bad; i++) {
        switch (byte(r)) {
        case 0: case 1: case 17: break;              // nil, false, true
        case 3: case 19: skip(r, 8); break;          // integer, float
        case 4: case 20: skip_string(r); break;      // short, long string
        default: r->bad = 1;
        }
    }
    *nup = size(r);
    if (*nup > MAX_UPVALUES) { r->bad = 1; return; }
    for (size_t i = 0; i < *nup && !r->bad; i++) {
        in_stack[i] = (unsigned char)byte(r);
        index[i] = (unsigned char)byte(r);
        byte(r);                                     // kind
    }
    size_t nprotos = size(r);
    for (size_t i = 0; i < nprotos && !r->bad; i++) {
        unsigned char cw[MAX_UPVALUES] = { 0 }, cs[MAX_UPVALUES], ci[MAX_UPVALUES];
        size_t cn = 0;
        function(r, cw, cs, ci, &cn, depth + 1);
        for (size_t u = 0; u < cn; u++) if (cw[u] && !cs[u]) written[ci[u]] = 1;
    }
    skip(r, size(r));                                // lineinfo
    size_t nabs = size(r);
    for (size_t i = 0; i < nabs && !r->bad; i++) { size(r); size(r); }
    size_t nloc = size(r);
    for (size_t i = 0; i < nloc && !r->bad; i++) { skip_string(r); size(r); size(r); }
    size_t nnames = size(r);
    for (size_t i = 0; i < nnames && !r->bad; i++) skip_string(r);
}

static int collect(lua_State *L, const void *p, size_t n, void *ud) {
    (void)L;
    return abuf_put(ud, p, n) ? 0 : 1;
}

int avm_upvalues_written(avm *vm, lua_State *L, int f, unsigned char *written, size_t count) {
    memset(written, 0, count);
    if (!vm->bytecode_ok) return 0;
    abuf *b = &vm->dump;
    b->len = 0;
    lua_pushvalue(L, f);
    int failed = lua_dump(L, collect, b, 1);
    lua_pop(L, 1);
    if (failed) return 0;
    static const unsigned char header[] = { 0x1B, 'L', 'u', 'a', 0x54, 0, 0x19, 0x93, '\r', '\n', 0x1A, '\n', 4, 8, 8 };
    if (b->len < sizeof header + 17 || memcmp(b->data, header, sizeof header) != 0) return 0;
    reader r = { (const unsigned char *)b->data + sizeof header + 16, (const unsigned char *)b->data + b->len, 0 };
    byte(&r);  // the main function's count of upvalues
    unsigned char w[MAX_UPVALUES] = { 0 }, s[MAX_UPVALUES], idx[MAX_UPVALUES];
    size_t n = 0;
    function(&r, w, s, idx, &n, 0);
    if (r.bad || r.p != r.end) return 0;
    memcpy(written, w, count < MAX_UPVALUES ? count : MAX_UPVALUES);
    return 1;
}

/// Compiles `src` (it returns a function) and whether the reader says its upvalues
/// are assigned as `expected` says ('1' assigned, '0' not).
static int check_one(avm *vm, lua_State *L, const char *src, const char *expected) {
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) { lua_pop(L, 1); return 0; }
    unsigned char w[MAX_UPVALUES];
    int ok = avm_upvalues_written(vm, L, lua_gettop(L), w, MAX_UPVALUES);
    lua_pop(L, 1);
    for (size_t i = 0; ok && expected[i]; i++) ok = w[i] == (expected[i] == '1');
    return ok;
}

void avm_bytecode_check(avm *vm, lua_State *L) {
    vm->bytecode_ok = 1;
    vm->bytecode_ok = check_one(vm, L, "local a, b return function() b = 1 return a end", "10")
        && check_one(vm, L, "local a, b return function() return a, b end", "00")
        && check_one(vm, L, "local a, b return function() local x = b return function() a = x end end", "01")
        && check_one(vm, L, "local a, b, c return function(t) t.x = 1.5 t.y = 'y' return function() return a, function() c = 2 end end end", "01");
}
