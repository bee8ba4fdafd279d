// The one text of a float: Swift's Double.description, as stored events already
// spell their numbers (docs/events.md states the rule).
//
// Digits: the fewest significant digits that read back to the same double; of the
// candidates with that many, the closest to the exact value. Layout: exponent form
// ("1e+16", "5e-324", "1.2345678901234567e+19") when the magnitude is above 2^53 or the
// shortest digits put the value below 0.0001; otherwise plain decimals, always with a
// '.' ("100.0", "0.001", "1000000000000000.0").
#define _GNU_SOURCE
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

locale_t avm_c_locale(void) {
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale;
}

/// Significant digits (no leading zero) and the decimal exponent of the first.
typedef struct {
    char d[20];
    int n;
    int exp;
} digits;

/// Whether these digits read back to v (positive).
static int reads_back(const digits *g, double v) {
    char text[48];
    int at = 0;
    text[at++] = g->d[0];
    text[at++] = '.';
    for (int i = 1; i < g->n; i++) text[at++] = g->d[i];
    if (g->n == 1) text[at++] = '0';
    text[at++] = 'e';
    int e = g->exp;
    if (e < 0) { text[at++] = '-'; e = -e; }
    if (e >= 100) text[at++] = (char)('0' + e / 100);
    if (e >= 10) text[at++] = (char)('0' + e / 10 % 10);
    text[at++] = (char)('0' + e % 10);
    text[at] = 0;
    return strtod_l(text, NULL, avm_c_locale()) == v;
}

/// The digits of v (positive) correctly rounded to `count` significant digits.
static void rounded(double v, int count, digits *g) {
    char text[48];
    snprintf(text, sizeof text, "%.*e", count - 1, v);
    // d.ddd…e±X
    const char *p = text;
    g->n = 0;
    while (*p && *p != 'e') {
        if (*p != '.') g->d[g->n++] = *p;
        p++;
    }
    g->exp = atoi(p + 1);
}

/// The next candidate of as many digits above (up) or below (!up).
static void step(digits *g, int up) {
    if (up) {
        int i = g->n - 1;
        while (i >= 0 && g->d[i] == '9') g->d[i--] = '0';
        if (i >= 0) {
            g->d[i]++;
        } else {
            g->d[0] = '1';  // 9.99…9 -> 1.00…0 at the next power of ten
            g->exp++;
        }
        return;
    }
    int power = g->d[0] == '1';
    for (int i = 1; i < g->n && power; i++) power = g->d[i] == '0';
    if (power) {
        // Below 1.00…0e(E) the same count of digits is spaced ten times closer: 9.99…9e(E-1).
        for (int i = 0; i < g->n; i++) g->d[i] = '9';
        g->exp--;
        return;
    }
    int i = g->n - 1;
    while (g->d[i] == '0') g->d[i--] = '9';
    g->d[i]--;
}

static void strip_zeros(digits *g) {
    while (g->n > 1 && g->d[g->n - 1] == '0') g->n--;
}

/// The shortest digits that read back to v (positive, finite, not zero); among those,
/// the closest to v.
static void shortest(double v, digits *g) {
    if (v >= DBL_MIN) {
        // A normal double: its neighbours are less than one 15-digit step apart, so at
        // most one decimal of 15 or fewer significant digits reads back to it, and it is
        // the correctly rounded one.
        rounded(v, 15, g);
        if (reads_back(g, v)) { strip_zeros(g); return; }
        // 16 digits: the correctly rounded candidate; at a power of two (where the
        // interval that reads back to v is not centred on it) else the one across v.
        rounded(v, 16, g);
        if (reads_back(g, v)) return;
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        if (bits & 0x000FFFFFFFFFFFFFULL) { rounded(v, 17, g); return; }
        digits other = *g;
        step(&other, 1);
        if (reads_back(&other, v)) { *g = other; return; }
        other = *g;
        step(&other, 0);
        if (reads_back(&other, v)) { *g = other; return; }
        rounded(v, 17, g);
        return;
    }
    // A subnormal: few bits, so several short decimals may read back; the correctly
    // rounded one of the fewest digits is the closest of them (its interval is centred).
    for (int count = 1; count <= 17; count++) {
        rounded(v, count, g);
        if (reads_back(g, v)) { strip_zeros(g); return; }
    }
}

size_t avm_number_text(double d, char *out) {
    char *p = out;
    if (signbit(d)) *p++ = '-';
    double v = fabs(d);
    if (v == 0) {
        memcpy(p, "0.0", 4);
        return (size_t)(p + 3 - out);
    }
    digits g;
    shortest(v, &g);
    int point = g.exp + 1;  // digits before the decimal point
    if (point < -3 || v > 0x1p53) {
        *p++ = g.d[0];
        if (g.n > 1) {
            *p++ = '.';
            memcpy(p, g.d + 1, (size_t)g.n - 1);
            p += g.n - 1;
        }
        p += sprintf(p, "e%c%02d", g.exp < 0 ? '-' : '+', abs(g.exp));
    } else if (point <= 0) {
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -point; i++) *p++ = '0';
        memcpy(p, g.d, (size_t)g.n);
        p += g.n;
    } else if (point >= g.n) {
        memcpy(p, g.d, (size_t)g.n);
        p += g.n;
        for (int i = g.n; i < point; i++) *p++ = '0';
        *p++ = '.';
        *p++ = '0';
    } else {
        memcpy(p, g.d, (size_t)point);
        p += point;
        *p++ = '.';
        memcpy(p, g.d + point, (size_t)(g.n - point));
        p += g.n - point;
    }
    *p = 0;
    return (size_t)(p - out);
}

size_t avm_format_double(double d, char *out) {
    if (!isfinite(d)) {
        strcpy(out, isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
        return strlen(out);
    }
    locale_t previous = uselocale(avm_c_locale());
    size_t n = avm_number_text(d, out);
    uselocale(previous);
    return n;
}
