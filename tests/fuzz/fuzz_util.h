/* tests/fuzz/fuzz_util.h — helpers shared by the fuzz targets: invariant checks that
 * abort (so libFuzzer records the input), and a strict UTF-8 validator. */
#ifndef SW_FUZZ_UTIL_H
#define SW_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Aborts with a message when cond is false; libFuzzer then saves the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
    } while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF). NUL bytes are allowed. */
bool fuzz_utf8_valid(const char *s, size_t n);
/* Code points in well-formed UTF-8. */
size_t fuzz_utf8_chars(const char *s, size_t n);
/* Occurrences of needle in hay (overlapping ones counted). */
size_t fuzz_count(const char *hay, size_t hn, const char *needle, size_t nn);
/* A fresh private directory under $TMPDIR (or /tmp), removed with its contents when the
 * process exits normally; aborts on failure. Caller frees the string. */
char *fuzz_tmpdir(const char *tag);
/* Removes every regular file directly inside dir (not the directory). */
void fuzz_empty_dir(const char *dir);

#endif
