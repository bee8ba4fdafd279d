// string.find, string.match, string.gmatch and string.gsub with Lua 5.4's patterns,
// matched under the instruction budget.
//
// Lua's own matcher backtracks inside one C call, where the count hook never fires:
// ("a"):rep(20000):find(".-.-.-.-b") would run for years. This one has the same
// semantics and messages (classes, sets, %b, %f, captures, position captures,
// anchors, back-references, replacement strings, tables and functions, init and plain
// mode, "pattern too complex" after 200 nested items), and counts its steps: each item
// tried at a position, each repetition a `*`, `+` or `-` takes, each byte scanned by %b,
// a back-reference or a plain search, each byte it copies. AVM_STEPS_PER_INSTRUCTION steps are one instruction of the
// event's budget, so a runaway pattern fails with the budget error, at the same step
// on every run. Classes are those of the C locale whatever the process's locale, so
// that a match never depends on the machine (Lua asks the C library, which follows
// setlocale). The design follows lstrlib.c of Lua 5.4 (MIT licence, Lua.org, PUC-Rio).
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include "internal.h"

#define MAX_DEPTH 200          // Lua's MAXCCALLS for patterns
#define LUA_MAXCAPTURES 32     // as in Lua's lstrlib.c
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define STEP_CHUNK ((int64_t)1 << 20)  // steps between looks at the budget (and CPU time)

typedef struct {
    const char *src, *src_end, *p_end;
    lua_State *L;
    int depth;                 // nesting left before "pattern too complex"
    int level;                 // captures opened
    struct { const char *init; ptrdiff_t len; } cap[LUA_MAXCAPTURES];
    int64_t allowed;           // steps this chunk may take (see settle)
    int64_t left;              // of which left
    int64_t taken;             // steps of the chunks before
    int64_t charged;           // instructions charged for them
    const char *what;          // the function, for the budget error
    size_t max_string;         // the longest result gsub may make
} matcher;

// --- the budget ---------------------------------------------------------------

/// The steps to take before the budget is next looked at: what it has left (so that a
/// runaway pattern stops as it runs out), at most STEP_CHUNK (so that the CPU time is
/// looked at too).
static int64_t allowance(lua_State *L) {
    avm *vm = avm_of(L);
    if (!vm || vm->loading || vm->budget_left >= STEP_CHUNK / AVM_STEPS_PER_INSTRUCTION) return STEP_CHUNK;
    return vm->budget_left < 0 ? AVM_STEPS_PER_INSTRUCTION : (vm->budget_left + 1) * AVM_STEPS_PER_INSTRUCTION;
}

/// Charges the steps taken so far (raising the budget error when it is spent), and
/// starts the next chunk.
static void settle(matcher *m) {
    m->taken += m->allowed - m->left;
    int64_t due = m->taken / AVM_STEPS_PER_INSTRUCTION - m->charged;
    m->charged += due;
    if (due) avm_charge(m->L, due, m->what);
    m->allowed = m->left = allowance(m->L);
}

static inline void step(matcher *m, int64_t n) {
    if ((m->left -= n) < 0) settle(m);
}

static void start_steps(matcher *m, lua_State *L) {
    m->L = L;
    m->taken = m->charged = 0;
    m->allowed = m->left = allowance(L);
}

static void start(matcher *m, lua_State *L, const char *what, const char *s, size_t ls, const char *p, size_t lp) {
    start_steps(m, L);
    avm *vm = avm_of(L);
    m->max_string = vm ? vm->max_string : (size_t)-1;
    m->what = what;
    m->depth = MAX_DEPTH;
    m->src = s;
    m->src_end = s + ls;
    m->p_end = p + lp;
    m->level = 0;
}

// --- character classes (the C locale's) -----------------------------------------

enum { C_ALPHA = 1, C_CNTRL = 2, C_DIGIT = 4, C_GRAPH = 8, C_LOWER = 16, C_PUNCT = 32, C_SPACE = 64, C_UPPER = 128, C_XDIGIT = 256 };

static unsigned short classes[256];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        unsigned short k = 0;
        int lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z', digit = c >= '0' && c <= '9';
        if (lower || upper) k |= C_ALPHA;
        if (c < 32 || c == 127) k |= C_CNTRL;
        if (digit) k |= C_DIGIT;
        if (c > 32 && c < 127) k |= C_GRAPH;
        if (lower) k |= C_LOWER;
        if (c > 32 && c < 127 && !lower && !upper && !digit) k |= C_PUNCT;
        if (c == ' ' || (c >= '\t' && c <= '\r')) k |= C_SPACE;
        if (upper) k |= C_UPPER;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) k |= C_XDIGIT;
        classes[c] = k;
    }
}

static int in_class(int c, int cl) {
    int bit;
    switch (cl | 0x20) {  // the class letter in lower case
    case 'a': bit = C_ALPHA; break;
    case 'c': bit = C_CNTRL; break;
    case 'd': bit = C_DIGIT; break;
    case 'g': bit = C_GRAPH; break;
    case 'l': bit = C_LOWER; break;
    case 'p': bit = C_PUNCT; break;
    case 's': bit = C_SPACE; break;
    case 'u': bit = C_UPPER; break;
    case 'w': bit = C_ALPHA | C_DIGIT; break;
    case 'x': bit = C_XDIGIT; break;
    case 'z': bit = 0; break;  // deprecated: the zero byte
    default: return cl == c;
    }
    int found = bit ? (classes[c] & bit) != 0 : c == 0;
    return (classes[cl] & C_LOWER) ? found : !found;
}

// --- matching -----------------------------------------------------------------

/// The end of the single-character class at p.
static const char *class_end(matcher *m, const char *p) {
    switch (*p++) {
    case ESC:
        if (p == m->p_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^') p++;
        do {  // up to the closing ']' (a ']' right after '[' or '[^' is a member)
            if (p == m->p_end) luaL_error(m->L, "malformed pattern (missing ']')");
            if (*(p++) == ESC && p < m->p_end) p++;
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

/// Whether c is in the set [ … ] from p (at '[') to ec (at ']').
static int in_set(int c, const char *p, const char *ec) {
    int member = 1;
    if (p[1] == '^') { member = 0; p++; }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (in_class(c, (unsigned char)*p)) return member;
        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p) return member;
        } else if ((unsigned char)*p == c) {
            return member;
        }
    }
    return !member;
}

/// Whether the character at s matches the class from p to ep (its step is counted by the
/// caller).
static inline __attribute__((always_inline)) int single(const matcher *m, const char *s, const char *p, const char *ep) {
    if (s >= m->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case ESC: return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *match(matcher *m, const char *s, const char *p);

static const char *balance(matcher *m, const char *s, const char *p) {
    if (p >= m->p_end - 1) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (*s != *p) return NULL;
    int open = *p, close = p[1], depth = 1;
    const char *from = s;
    while (++s < m->src_end) {
        if (*s == close) {
            if (--depth == 0) { step(m, s - from); return s + 1; }
        } else if (*s == open) {
            depth++;
        }
    }
    step(m, s - from);
    return NULL;
}

static const char *expand_max(matcher *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single(m, s + i, p, ep)) i++;
    step(m, i);
    for (; i >= 0; i--) {  // the longest first, then one fewer each time
        const char *r = match(m, s + i, ep + 1);
        if (r) return r;
    }
    return NULL;
}

static const char *expand_min(matcher *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r) return r;
        if (!single(m, s, p, ep)) return NULL;
        s++;
    }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t what) {
    int level = m->level;
    if (level >= LUA_MAXCAPTURES) luaL_error(m->L, "too many captures");
    m->cap[level].init = s;
    m->cap[level].len = what;
    m->level = level + 1;
    const char *r = match(m, s, p);
    if (!r) m->level--;
    return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p) {
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_UNFINISHED) l--;
    if (l < 0) luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    const char *r = match(m, s, p);
    if (!r) m->cap[l].len = CAP_UNFINISHED;
    return r;
}

/// %1 … %9: the text of an earlier capture again.
static const char *back_reference(matcher *m, const char *s, int digit) {
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED) luaL_error(m->L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)m->cap[l].len;  // a position capture: huge, so no match
    step(m, len <= (size_t)(m->src_end - m->src) ? (int64_t)len : 1);
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0) return s + len;
    return NULL;
}

/// Where the pattern from p matches the subject at s ends, or NULL.
static const char *match(matcher *m, const char *s, const char *p) {
    if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
    for (;;) {  // each `continue` matches the rest of the pattern at the new s
        step(m, 1);
        if (p == m->p_end) break;
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION) : open_capture(m, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            if (s != m->src_end) s = NULL;
            break;
        }
        if (*p == ESC && p[1] == 'b') {
            s = balance(m, s, p + 2);
            if (!s) break;
            p += 4;
            continue;
        }
        if (*p == ESC && p[1] == 'f') {
            p += 2;
            if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(m, p);
            int before = s == m->src ? '\0' : (unsigned char)s[-1];
            if (!in_set(before, p, ep - 1) && in_set((unsigned char)*s, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == ESC && p[1] >= '0' && p[1] <= '9') {
            s = back_reference(m, s, (unsigned char)p[1]);
            if (!s) break;
            p += 2;
            continue;
        }
        // A single-character class with an optional repetition after it.
        const char *ep = class_end(m, p);
        if (!single(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {  // may match nothing
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (*ep == '?') {
            const char *r = match(m, s + 1, ep + 1);
            if (r) { s = r; break; }
            p = ep + 1;
            continue;
        }
        if (*ep == '+') { s = expand_max(m, s + 1, p, ep); break; }
        if (*ep == '*') { s = expand_max(m, s, p, ep); break; }
        if (*ep == '-') { s = expand_min(m, s, p, ep); break; }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

// --- captures -----------------------------------------------------------------

/// Capture i: its length and text (*cap), or CAP_POSITION with the position pushed. With
/// no captures, capture 0 is the whole match [s, e).
static ptrdiff_t capture(matcher *m, int i, const char *s, const char *e, const char **cap) {
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    ptrdiff_t len = m->cap[i].len;
    *cap = m->cap[i].init;
    if (len == CAP_UNFINISHED) luaL_error(m->L, "unfinished capture");
    else if (len == CAP_POSITION) lua_pushinteger(m->L, (m->cap[i].init - m->src) + 1);
    return len;
}

static void push_capture(matcher *m, int i, const char *s, const char *e) {
    const char *cap;
    ptrdiff_t len = capture(m, i, s, e, &cap);
    if (len != CAP_POSITION) {
        step(m, len);
        lua_pushlstring(m->L, cap, (size_t)len);
    }
}

/// Pushes every capture (or the whole match when there are none and s is given).
static int push_captures(matcher *m, const char *s, const char *e) {
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(m, i, s, e);
    return n;
}

// --- find and match -----------------------------------------------------------

/// Lua's posrelatI: a 1-based start position from a possibly negative one.
static size_t start_position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (p[i] && strchr(SPECIALS, p[i])) return 1;
    return 0;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    const char *what = find ? "string.find" : "string.match";
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    matcher m;
    start(&m, L, what, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        // A plain search: memmem is linear where a naive one is quadratic.
        const char *at = memmem(s + init, ls - init, p, lp);
        step(&m, (int64_t)(lp + (at ? (size_t)(at - (s + init)) + lp : ls - init)));
        settle(&m);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (at - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    const char *s1 = s + init;
    int anchor = *p == '^';
    if (anchor) { p++; lp--; }
    start(&m, L, what, s, ls, p, lp);
    do {
        m.level = 0;
        const char *e = match(&m, s1, p);
        if (e) {
            int n;
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                n = push_captures(&m, NULL, NULL) + 2;
            } else {
                n = push_captures(&m, s1, e);
            }
            settle(&m);
            return n;
        }
    } while (s1++ < m.src_end && !anchor);
    settle(&m);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L) { return find_or_match(L, 1); }
static int str_match(lua_State *L) { return find_or_match(L, 0); }

// --- gmatch -------------------------------------------------------------------

typedef struct {
    const char *at;            // where the next match is looked for
    const char *p;
    const char *last;          // the end of the last match (an empty match there is skipped)
    matcher m;
} gmatch_state;

static int gmatch_next(lua_State *L) {
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    start_steps(&g->m, L);  // charged to whichever call into the VM calls it
    for (const char *src = g->at; src <= g->m.src_end; src++) {
        g->m.level = 0;
        const char *e = match(&g->m, src, g->p);
        if (e && e != g->last) {
            g->at = g->last = e;
            int n = push_captures(&g->m, src, e);
            settle(&g->m);
            return n;
        }
    }
    settle(&g->m);
    return 0;
}

static int str_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);  // the closure keeps both strings alive
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    if (init > ls) init = ls + 1;
    start(&g->m, L, "string.gmatch", s, ls, p, lp);
    g->at = s + init;
    g->p = p;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

// --- gsub ---------------------------------------------------------------------

/// Counts n bytes to be added to the result, refusing a result longer than the longest
/// string the VM may make before the work of making it is done.
static inline void adding(matcher *m, luaL_Buffer *b, size_t n) {
    step(m, (int64_t)n);
    if (luaL_bufflen(b) + n > m->max_string) avm_refuse_string(m->L, luaL_bufflen(b) + n);
}

static void add(matcher *m, luaL_Buffer *b, const char *p, size_t n) {
    adding(m, b, n);
    luaL_addlstring(b, p, n);
}

/// Adds the string (or number) on top of the stack, and pops it.
static void add_top(matcher *m, luaL_Buffer *b) {
    size_t n;
    lua_tolstring(m->L, -1, &n);
    adding(m, b, n);
    luaL_addvalue(b);
}

/// Appends the replacement string (argument 3) with its %0 … %9 and %%.
static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e) {
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    const char *esc;
    while ((esc = memchr(r, ESC, l)) != NULL) {
        add(m, b, r, (size_t)(esc - r));
        esc++;
        if (*esc == ESC) {
            add(m, b, esc, 1);
        } else if (*esc == '0') {
            add(m, b, s, (size_t)(e - s));
        } else if (*esc >= '0' && *esc <= '9') {
            const char *cap;
            ptrdiff_t len = capture(m, *esc - '1', s, e, &cap);
            if (len == CAP_POSITION) {
                add_top(m, b);
            } else {
                add(m, b, cap, (size_t)len);
            }
        } else {
            luaL_error(m->L, "invalid use of '%c' in replacement string", ESC);
        }
        l -= (size_t)(esc + 1 - r);
        r = esc + 1;
    }
    add(m, b, r, l);
}

/// Appends what replaces the match [s, e); whether the subject changed.
static int add_value(matcher *m, luaL_Buffer *b, const char *s, const char *e, int type) {
    lua_State *L = m->L;
    if (type == LUA_TFUNCTION || type == LUA_TTABLE) {
        // Lua code may run (the function, or __index): the steps so far are charged first.
        step(m, AVM_STEPS_PER_INSTRUCTION);  // the call itself
        settle(m);
        if (type == LUA_TFUNCTION) {
            lua_pushvalue(L, 3);
            int n = push_captures(m, s, e);
            lua_call(L, n, 1);
        } else {
            push_capture(m, 0, s, e);
            lua_gettable(L, 3);
        }
        settle(m);  // what that code left of the budget
    } else {
        add_replacement(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {  // nil or false: the match stays as it was
        lua_pop(L, 1);
        add(m, b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    add_top(m, b);
    return 1;
}

static int str_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int type = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = *p == '^';
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE, 3, "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) { p++; lp--; }
    matcher m;
    start(&m, L, "string.gsub", src, srcl, p, lp);
    while (n < max) {
        m.level = 0;
        const char *e = match(&m, src, p);
        if (e && e != last) {
            n++;
            changed = add_value(&m, &b, src, e, type) | changed;
            src = last = e;
        } else if (src < m.src_end) {
            adding(&m, &b, 1);
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        add(&m, &b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    settle(&m);
    lua_pushinteger(L, n);
    return 2;
}

void avm_open_matcher(lua_State *L) {
    static const luaL_Reg functions[] = {
        { "find", str_find }, { "match", str_match }, { "gmatch", str_gmatch }, { "gsub", str_gsub }, { NULL, NULL },
    };
    pthread_once(&classes_once, init_classes);
    luaL_setfuncs(L, functions, 0);
}
