/* server/util.c — see util.h. */
#include "server/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t sw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sw_now_ms(void) { return sw_now_ns() / 1000000; }

void sw_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[64];
    size_t done = 0;
    while (done < nbytes) {
        size_t n = nbytes - done > sizeof b ? sizeof b : nbytes - done;
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            /* No kernel randomness: fall back to time and pid; ids only need uniqueness. */
            uint64_t x = (uint64_t)sw_now_ns() ^ ((uint64_t)getpid() << 32);
            for (size_t i = 0; i < n; i++) { x = x * 6364136223846793005ULL + 1442695040888963407ULL; b[i] = (unsigned char)(x >> 56); }
            r = (ssize_t)n;
        }
        for (ssize_t i = 0; i < r; i++) {
            out[2 * (done + (size_t)i)] = hex[b[i] >> 4];
            out[2 * (done + (size_t)i) + 1] = hex[b[i] & 15];
        }
        done += (size_t)r;
    }
    out[2 * nbytes] = '\0';
}

int sw_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int sw_mkdir_p(const char *path, mode_t mode)
{
    char *tmp = sw_strdup(path);
    int rc = 0;
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) < 0 && errno != EEXIST) { rc = -1; break; }
            *p = c;
            if (c == '\0') break;
        }
    }
    free(tmp);
    return rc;
}

void sw_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char *sub = sw_printf("%s/%s", path, e->d_name);
                sw_rm_rf(sub);
                free(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

void *sw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) { fputs("shellwire: out of memory\n", stderr); abort(); }
    return p;
}

void *sw_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) { fputs("shellwire: out of memory\n", stderr); abort(); }
    return p;
}

void *sw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) { fputs("shellwire: out of memory\n", stderr); abort(); }
    return q;
}

char *sw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sw_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

char *sw_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) { fputs("shellwire: out of memory\n", stderr); abort(); }
    return s;
}

int sw_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int sw_thread_detached(void *(*fn)(void *), void *arg, size_t stack)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, stack);
    int rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return rc == 0 ? 0 : -1;
}

char *sw_shell_quote(const char *s)
{
    size_t n = 2;
    for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
    char *out = sw_xmalloc(n + 1), *o = out;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') { memcpy(o, "'\\''", 4); o += 4; }
        else *o++ = *p;
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

/* Length of the well-formed UTF-8 character at s, or 0 (NUL ends the string). */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) need = 1;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 2;
        if (s[0] == 0xE0) lo = 0xA0;
        if (s[0] == 0xED) hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 3;
        if (s[0] == 0xF0) lo = 0x90;
        if (s[0] == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need + 1;
}

void sw_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t l = utf8_len(p);
        if (l) p += l;
        else *p++ = '?';
    }
}
