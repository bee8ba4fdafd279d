// A state's declared columns, read from its JSON for the read model's upsert.
//
// SQLite's json_extract parses the whole state once per column; the states here are
// the engine's canonical JSON, so their top-level members are read in one scan.
// Anything but a plain value (a string with escapes, a float, an object, an array) is
// left to json_extract, which the caller then uses for that state.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "audit_lua.h"

typedef struct {
    const char *p, *end;
} scan;

static void ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/// Past a string (at its opening quote); whether it had escapes. 0 when unterminated.
static int skip_string(scan *s, int *escaped) {
    s->p++;
    *escaped = 0;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\') { *escaped = 1; s->p++; }
        s->p++;
    }
    if (s->p >= s->end) return 0;
    s->p++;
    return 1;
}

/// Past any value; 0 when it runs past the end.
static int skip_value(scan *s) {
    int escaped;
    if (s->p >= s->end) return 0;
    char c = *s->p;
    if (c == '"') return skip_string(s, &escaped);
    if (c != '{' && c != '[') {
        while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' && *s->p != '\n'
               && *s->p != '\t' && *s->p != '\r') s->p++;
        return 1;
    }
    int depth = 0;
    while (s->p < s->end) {
        c = *s->p;
        if (c == '"') {
            if (!skip_string(s, &escaped)) return 0;
            continue;
        }
        s->p++;
        if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) return 1;
    }
    return 0;
}

/// The value at s->p, moved past.
static int read_value(scan *s, avm_json_value *v) {
    const char *start = s->p;
    if (*start == '"') {
        int escaped;
        if (!skip_string(s, &escaped)) return 0;
        v->kind = escaped ? AVM_JV_OTHER : AVM_JV_TEXT;
        v->s = start + 1;
        v->len = (size_t)(s->p - start - 2);
        return 1;
    }
    if (!skip_value(s)) return 0;
    size_t n = (size_t)(s->p - start);
    v->kind = AVM_JV_OTHER;  // an object, an array, a float: as json_extract reads them
    if (*start == '{' || *start == '[') return 1;
    if (n == 4 && memcmp(start, "null", 4) == 0) { v->kind = AVM_JV_NULL; return 1; }
    if (n == 4 && memcmp(start, "true", 4) == 0) { v->kind = AVM_JV_INT; v->i = 1; return 1; }
    if (n == 5 && memcmp(start, "false", 5) == 0) { v->kind = AVM_JV_INT; v->i = 0; return 1; }
    if (n == 0 || n > 40) return 0;
    char tmp[41];
    memcpy(tmp, start, n);
    tmp[n] = 0;
    if (strpbrk(tmp, ".eE")) return 1;
    char *endp;
    errno = 0;
    long long i = strtoll(tmp, &endp, 10);
    if (*endp != 0) return 0;
    if (errno == 0) { v->kind = AVM_JV_INT; v->i = i; }  // past 64 bits: as SQLite reads it
    return 1;
}

int avm_json_members(const char *json, size_t len, const char *const *names, const size_t *name_lens, size_t count, avm_json_value *out) {
    for (size_t i = 0; i < count; i++) out[i].kind = AVM_JV_ABSENT;
    scan s = { json, json + len };
    ws(&s);
    if (s.p >= s.end || *s.p != '{') return -1;
    s.p++;
    ws(&s);
    if (s.p < s.end && *s.p == '}') return 0;
    for (;;) {
        ws(&s);
        if (s.p >= s.end || *s.p != '"') return -1;
        const char *key = s.p + 1;
        int escaped;
        if (!skip_string(&s, &escaped) || escaped) return -1;  // a key with escapes: json_extract
        size_t key_len = (size_t)(s.p - key - 1);
        ws(&s);
        if (s.p >= s.end || *s.p != ':') return -1;
        s.p++;
        ws(&s);
        if (s.p >= s.end) return -1;
        avm_json_value *v = NULL;
        for (size_t i = 0; i < count; i++) {
            if (name_lens[i] == key_len && memcmp(names[i], key, key_len) == 0) { v = &out[i]; break; }
        }
        if (v) {
            if (!read_value(&s, v)) return -1;
        } else if (!skip_value(&s)) {
            return -1;
        }
        ws(&s);
        if (s.p < s.end && *s.p == ',') { s.p++; continue; }
        if (s.p < s.end && *s.p == '}') return 0;
        return -1;
    }
}
