// One text for NaN wherever Lua turns a number into text: "nan", never "-nan".
//
// The sign of a NaN depends on the machine: 0/0 and math.sqrt(-1) give a NaN with the
// sign bit set on x86-64 (its default NaN) and clear on aarch64, and -(0/0) the other
// way round; glibc prints the sign ("-nan"). So tostring(0/0), 0/0 .. "" and "%g" made
// state that differed between machines. Infinities need nothing: their sign is the
// arithmetic's ("inf", "-inf" everywhere).
//
// Lua (Debian's liblua5.4, linked as it is) writes every number it converts to text —
// tostring, `..`, the coercion of a number where a string is expected (string.rep,
// table.concat, error messages…), lua_pushfstring's %f — with one call:
// snprintf(buffer, size, LUA_NUMBER_FMT, n), which the fortified build makes a call
// of __snprintf_chk. The VM offers no hook there (`..` of a number calls it directly),
// so the sandbox defines __snprintf_chk itself: the executable's definition is the one
// the dynamic linker binds liblua's call to. It answers "nan" for that one format and
// a NaN, and hands every other call, unchanged, to glibc's __vsnprintf_chk (same
// checks, same result). string.format's own conversions (%f, %g, %e, %a…) are given a
// NaN without its sign by the sandbox's string.format (sandbox.c), so that their width
// and flags apply as C applies them ("%5.1f" -> "  nan").
//
// avm_nan_text_fixed tells whether the definition is the one in use (a test asserts it:
// linked into a shared library loaded after glibc, it would not be).
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include "internal.h"

#if defined(__linux__) && defined(__GLIBC__)

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, va_list ap);
void __chk_fail(void) __attribute__((noreturn));
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    if (format[0] == '%' && strcmp(format, LUA_NUMBER_FMT) == 0) {
        va_list peek;
        va_copy(peek, ap);
        double d = va_arg(peek, double);
        va_end(peek);
        if (isnan(d)) {
            va_end(ap);
            if (slen < maxlen) __chk_fail();  // as glibc's check
            if (maxlen) {
                size_t n = maxlen - 1 < 3 ? maxlen - 1 : 3;
                memcpy(s, "nan", n);
                s[n] = 0;
            }
            return 3;
        }
    }
    int n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
    va_end(ap);
    return n;
}

#endif

int avm_nan_text_fixed(void) {
    lua_State *L = luaL_newstate();
    if (!L) return 0;
    lua_pushnumber(L, copysign(NAN, -1.0));
    lua_pushnumber(L, copysign(NAN, 1.0));
    const char *negative = lua_tostring(L, -2), *positive = lua_tostring(L, -1);
    int fixed = negative && positive && strcmp(negative, "nan") == 0 && strcmp(positive, "nan") == 0;
    lua_close(L);
    return fixed;
}
