/* tests/fuzz/fuzz_util.c — see fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include "server/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "\n%s:%d: invariant failed: %s\n  ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* Length of the well-formed character at s[0..n), or 0 when it is not one. */
static size_t char_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need + 1;
}

bool fuzz_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = char_len(p + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

size_t fuzz_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

size_t fuzz_count(const char *hay, size_t hn, const char *needle, size_t nn)
{
    size_t c = 0;
    if (nn == 0 || hn < nn) return 0;
    for (const char *p = hay; (p = memmem(p, hn - (size_t)(p - hay), needle, nn)); p++) c++;
    return c;
}

static char *tmpdirs[8];
static size_t ntmpdirs;

static void remove_tmpdirs(void)
{
    for (size_t i = 0; i < ntmpdirs; i++) sw_rm_rf(tmpdirs[i]);
}

char *fuzz_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0) abort();
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    if (ntmpdirs < sizeof tmpdirs / sizeof *tmpdirs) {
        if (ntmpdirs == 0) atexit(remove_tmpdirs);
        tmpdirs[ntmpdirs++] = strdup(path);
    }
    return path;
}

void fuzz_empty_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') unlinkat(dfd, e->d_name, 0);
    closedir(d);
}
