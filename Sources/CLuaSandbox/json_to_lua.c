#define _GNU_SOURCE
// JSON text -> Lua values, built with exact size hints and raw sets.
//
// Objects and arrays are counted first (a skip-scan over the bytes), so each table is
// created once at its final size: measured 2-3x faster than growing tables for
// nested events. JSON null becomes nil (an absent field). The input is the
// engine's own canonical JSON, but it is read defensively: malformed text raises a
// Lua error, never reads out of bounds.
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct {
    avm *vm;
    lua_State *L;
    const char *p, *end;
    const char *what;
    int names;  // stack index of the name cache's strings
    int max_nesting, shown;  // arrays and objects open at once; the limit as messages state it
} jreader;

static void jfail(jreader *r, const char *reason) {
    luaL_error(r->L, "malformed JSON in %s: %s", r->what, reason);
}

static void skip_ws(jreader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

/// From just after an opening '{' or '[': the number of members, scanning to the
/// matching close without building anything.
static int count_members(jreader *r, const char *p) {
    int depth = 0, count = 0, any = 0;
    while (p < r->end) {
        char c = *p;
        if (c == '"') {
            p++;
            while (p < r->end && *p != '"') p += (*p == '\\') ? 2 : 1;
            p++;
            any = 1;
            continue;
        }
        if (c == '{' || c == '[') { depth++; any = 1; }
        else if (c == '}' || c == ']') {
            if (depth == 0) return any ? count + 1 : 0;
            depth--;
        } else if (c == ',' && depth == 0) count++;
        else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') any = 1;
        p++;
    }
    return count;
}

static unsigned hexval(jreader *r, const char *p) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else jfail(r, "bad \\u escape");
    }
    return v;
}

static void put_utf8(abuf *b, unsigned cp) {
    char tmp[4];
    size_t n;
    if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    abuf_put(b, tmp, n);
}

static void push_string(jreader *r) {
    r->p++;  // opening quote
    const char *start = r->p;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\') r->p++;
    if (r->p >= r->end) jfail(r, "unterminated string");
    if (*r->p == '"') {
        lua_pushlstring(r->L, start, (size_t)(r->p - start));
        r->p++;
        return;
    }
    abuf *b = &r->vm->scratch;
    b->len = 0;
    if (!abuf_put(b, start, (size_t)(r->p - start))) luaL_error(r->L, "out of memory");
    while (r->p < r->end && *r->p != '"') {
        if (*r->p != '\\') { abuf_putc(b, *r->p++); continue; }
        if (r->p + 1 >= r->end) jfail(r, "unterminated escape");
        char e = r->p[1];
        r->p += 2;
        switch (e) {
        case '"': abuf_putc(b, '"'); break;
        case '\\': abuf_putc(b, '\\'); break;
        case '/': abuf_putc(b, '/'); break;
        case 'b': abuf_putc(b, '\b'); break;
        case 'f': abuf_putc(b, '\f'); break;
        case 'n': abuf_putc(b, '\n'); break;
        case 'r': abuf_putc(b, '\r'); break;
        case 't': abuf_putc(b, '\t'); break;
        case 'u': {
            if (r->p + 4 > r->end) jfail(r, "truncated \\u escape");
            unsigned cp = hexval(r, r->p);
            r->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && r->p + 6 <= r->end && r->p[0] == '\\' && r->p[1] == 'u') {
                unsigned lo = hexval(r, r->p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
            }
            put_utf8(b, cp);
            break;
        }
        default: jfail(r, "bad escape");
        }
    }
    if (r->p >= r->end) jfail(r, "unterminated string");
    r->p++;
    lua_pushlstring(r->L, b->data, b->len);
}

/// An object's key: from the VM's cache of names when it has no escapes and is short
/// (a lookup in C, not a hash and intern in Lua's string table), else as any string.
static void push_name(jreader *r) {
    const char *start = r->p + 1, *p = start;
    while (p < r->end && *p != '"' && *p != '\\') p++;
    size_t len = (size_t)(p - start);
    if (p >= r->end || *p != '"' || len == 0 || len > AVM_NAME_CACHE_LEN) {
        push_string(r);
        return;
    }
    uint64_t w = 0;
    memcpy(&w, start, len < 8 ? len : 8);
    size_t i = (size_t)(((w ^ len) * 0x9E3779B97F4A7C15ULL) >> 58) % AVM_NAME_CACHE;
    avm *vm = r->vm;
    if (vm->names[i].len == len && memcmp(vm->names[i].bytes, start, len) == 0) {
        lua_rawgeti(r->L, r->names, (lua_Integer)i + 1);
    } else {
        lua_pushlstring(r->L, start, len);
        lua_pushvalue(r->L, -1);
        lua_rawseti(r->L, r->names, (lua_Integer)i + 1);
        vm->names[i].len = (uint32_t)len;
        memcpy(vm->names[i].bytes, start, len);
    }
    r->p = p + 1;
}

static void push_number(jreader *r) {
    const char *start = r->p;
    int is_float = 0;
    if (r->p < r->end && *r->p == '-') r->p++;
    while (r->p < r->end) {
        char c = *r->p;
        if (c >= '0' && c <= '9') { r->p++; continue; }
        if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { is_float = 1; r->p++; continue; }
        break;
    }
    size_t n = (size_t)(r->p - start);
    if (n == 0 || n > 64) jfail(r, "bad number");
    size_t sign = *start == '-';
    if (!is_float && n > sign && n - sign <= 18) {
        // Up to 18 digits cannot overflow: summed here, without strtoll's setup.
        lua_Integer v = 0;
        for (const char *d = start + sign; d < r->p; d++) v = v * 10 + (*d - '0');
        if (n - sign == 1 || start[sign] != '0') {
            lua_pushinteger(r->L, sign ? -v : v);
            return;
        }
    }
    char tmp[65];
    memcpy(tmp, start, n);
    tmp[n] = 0;
    if (!is_float) {
        errno = 0;
        char *endp;
        long long v = strtoll(tmp, &endp, 10);
        if (errno == 0 && *endp == 0) { lua_pushinteger(r->L, (lua_Integer)v); return; }
    }
    char *endp;
    double d = strtod_l(tmp, &endp, avm_c_locale());
    if (*endp != 0) jfail(r, "bad number");
    lua_pushnumber(r->L, (lua_Number)d);
}

/// `depth`: the arrays and objects around the value.
static void push_value(jreader *r, int depth) {
    luaL_checkstack(r->L, 4, "JSON nesting");
    skip_ws(r);
    if (r->p >= r->end) jfail(r, "unexpected end");
    char c = *r->p;
    if ((c == '{' || c == '[') && depth >= r->max_nesting) luaL_error(r->L, "%s is nested more than %d levels", r->what, r->shown);
    if (c == '{') {
        int n = count_members(r, r->p + 1);
        r->p++;
        lua_createtable(r->L, 0, n);
        skip_ws(r);
        if (r->p < r->end && *r->p == '}') { r->p++; return; }
        for (;;) {
            skip_ws(r);
            if (r->p >= r->end || *r->p != '"') jfail(r, "expected a key");
            push_name(r);
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') jfail(r, "expected ':'");
            r->p++;
            push_value(r, depth + 1);
            if (lua_isnil(r->L, -1)) lua_pop(r->L, 2);  // null: the field is absent
            else lua_rawset(r->L, -3);
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') { r->p++; continue; }
            if (r->p < r->end && *r->p == '}') { r->p++; return; }
            jfail(r, "expected ',' or '}'");
        }
    }
    if (c == '[') {
        int n = count_members(r, r->p + 1);
        r->p++;
        lua_createtable(r->L, n, 0);
        skip_ws(r);
        if (r->p < r->end && *r->p == ']') { r->p++; return; }
        lua_Integer i = 1;
        for (;;) {
            push_value(r, depth + 1);
            lua_rawseti(r->L, -2, i++);
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') { r->p++; continue; }
            if (r->p < r->end && *r->p == ']') { r->p++; return; }
            jfail(r, "expected ',' or ']'");
        }
    }
    if (c == '"') { push_string(r); return; }
    if (c == 't' && r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) { r->p += 4; lua_pushboolean(r->L, 1); return; }
    if (c == 'f' && r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) { r->p += 5; lua_pushboolean(r->L, 0); return; }
    if (c == 'n' && r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) { r->p += 4; lua_pushnil(r->L); return; }
    if (c == '-' || (c >= '0' && c <= '9')) { push_number(r); return; }
    jfail(r, "unexpected character");
}

void avm_push_json(avm *vm, lua_State *L, const char *p, size_t len, const char *what, int kind) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_names);
    jreader r = { vm, L, p, p + len, what, lua_gettop(L), 0, 0 };
    // An event's data nests AVM_EVENT_LEVELS levels counting itself; a state's tables
    // AVM_STATE_LEVELS levels inside the state (as lua_to_json.c writes them).
    r.max_nesting = kind == AVM_JSON_EVENT ? AVM_EVENT_LEVELS : AVM_STATE_LEVELS + 1;
    r.shown = kind == AVM_JSON_EVENT ? AVM_EVENT_LEVELS : AVM_STATE_LEVELS;
    push_value(&r, 0);
    skip_ws(&r);
    if (r.p != r.end) jfail(&r, "trailing content");
    lua_remove(L, r.names);
}
