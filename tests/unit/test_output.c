/* tests/unit/test_output.c — unit tests for server/output.c.
 *
 * Self-contained: no framework. Every CHECK counts as one pass or one failure; failures
 * are printed with file:line. The last line of output is "N passed, M failed" and the
 * exit status is non-zero when M > 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "server/output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static long g_pass, g_fail;

#define CHECK_AT(cond, file, line)                                                                 \
    do {                                                                                           \
        if (cond) {                                                                                \
            g_pass++;                                                                              \
        } else {                                                                                   \
            g_fail++;                                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, #cond);                      \
        }                                                                                          \
    } while (0)
#define CHECK(cond) CHECK_AT(cond, __FILE__, __LINE__)

#define ID "abc123"
#define OPEN "\n__SHELLWIRE_CWD_" ID "__"
#define CLOSE "__SHELLWIRE_CWD_" ID "__"
#define MARK(path) OPEN path CLOSE "\n"

/* ---------------------------------------------------------------- helpers */

static void show(const char *label, const char *s, size_t n)
{
    fprintf(stderr, "    %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 400; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02X", c);
    }
    fprintf(stderr, "%s\"\n", n > 400 ? "..." : "");
}

static bool valid_utf8(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static size_t count_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static sw_out_opts opts_of(size_t limit, const char *marker, const char *dir, size_t spill_max)
{
    sw_out_opts o;
    memset(&o, 0, sizeof o);
    o.limit_chars = limit;
    o.marker_id = marker;
    o.spill_dir = dir;
    o.spill_max_chars = spill_max;
    return o;
}

/* Feeds data cut at the given sorted positions. */
static void run_cuts(const sw_out_opts *op, const char *data, size_t len, const size_t *cuts, size_t ncuts,
                     sw_out_result *r)
{
    sw_out *o = sw_out_new(op);
    if (!o) {
        fprintf(stderr, "sw_out_new failed\n");
        exit(2);
    }
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        sw_out_feed(o, data + prev, end - prev);
        prev = end;
    }
    sw_out_finish(o, r);
    sw_out_free(o);
}

static void run_whole(const sw_out_opts *op, const char *data, size_t len, sw_out_result *r)
{
    run_cuts(op, data, len, NULL, 0, r);
}

static void run_bytes(const sw_out_opts *op, const char *data, size_t len, sw_out_result *r)
{
    sw_out *o = sw_out_new(op);
    if (!o)
        exit(2);
    for (size_t i = 0; i < len; i++)
        sw_out_feed(o, data + i, 1);
    sw_out_finish(o, r);
    sw_out_free(o);
}

static bool same_str(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool result_is(const sw_out_result *r, const char *exp, size_t explen, const char *cwd)
{
    return r->text && r->text_len == explen && memcmp(r->text, exp, explen) == 0 && r->text[explen] == '\0' &&
           same_str(r->cwd, cwd) && valid_utf8(r->text, r->text_len);
}

/* Runs the input whole, split in two at every position, in three at every pair of positions
 * (short inputs), and one byte at a time; every run must give exp and cwd. */
static void check_splits_at(const char *file, int line, const sw_out_opts *op, const char *in, size_t inlen,
                            const char *exp, size_t explen, const char *cwd)
{
    sw_out_result r;
    run_whole(op, in, inlen, &r);
    bool ok = result_is(&r, exp, explen, cwd);
    CHECK_AT(ok, file, line);
    if (!ok) {
        show("input", in, inlen);
        show("expected", exp, explen);
        show("got", r.text ? r.text : "", r.text_len);
        fprintf(stderr, "    cwd: got %s, expected %s\n", r.cwd ? r.cwd : "(null)", cwd ? cwd : "(null)");
    }
    sw_out_result_free(&r);

    bool all = true;
    for (size_t k = 0; k <= inlen; k++) {
        run_cuts(op, in, inlen, &k, 1, &r);
        ok = result_is(&r, exp, explen, cwd);
        if (!ok && all) {
            fprintf(stderr, "%s:%d: split at %zu differs\n", file, line, k);
            show("got", r.text ? r.text : "", r.text_len);
            all = false;
        }
        sw_out_result_free(&r);
    }
    CHECK_AT(all, file, line);

    if (inlen <= 96) {
        all = true;
        for (size_t a = 0; a <= inlen; a++) {
            for (size_t b = a; b <= inlen; b++) {
                size_t cuts[2] = {a, b};
                run_cuts(op, in, inlen, cuts, 2, &r);
                ok = result_is(&r, exp, explen, cwd);
                if (!ok && all) {
                    fprintf(stderr, "%s:%d: split at %zu,%zu differs\n", file, line, a, b);
                    show("got", r.text ? r.text : "", r.text_len);
                    all = false;
                }
                sw_out_result_free(&r);
            }
        }
        CHECK_AT(all, file, line);
    }

    run_bytes(op, in, inlen, &r);
    ok = result_is(&r, exp, explen, cwd);
    CHECK_AT(ok, file, line);
    if (!ok)
        show("bytewise got", r.text ? r.text : "", r.text_len);
    sw_out_result_free(&r);
}

#define CHECK_SPLITS(op, in, exp, cwd) check_splits_at(__FILE__, __LINE__, op, in, sizeof(in) - 1, exp, sizeof(exp) - 1, cwd)

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    size_t n = strlen(base) + 32;
    char *t = malloc(n);
    if (!t)
        exit(2);
    snprintf(t, n, "%s/swout-test-XXXXXX", base);
    if (!mkdtemp(t)) {
        perror("mkdtemp");
        exit(2);
    }
    return t;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                size_t n = strlen(path) + strlen(e->d_name) + 2;
                char *c = malloc(n);
                if (!c)
                    exit(2);
                snprintf(c, n, "%s/%s", path, e->d_name);
                rm_rf(c);
                free(c);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *read_all(const char *path, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b)
            exit(2);
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap);
            continue;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return b;
}

static bool spill_name_ok(const char *dir, const char *path)
{
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0 || path[dl] != '/')
        return false;
    const char *b = path + dl + 1;
    if (strncmp(b, "out-", 4) != 0)
        return false;
    b += 4;
    if (!(*b >= '0' && *b <= '9'))
        return false;
    while (*b >= '0' && *b <= '9')
        b++;
    char pid[32];
    snprintf(pid, sizeof pid, "-%ld-", (long)getpid());
    if (strncmp(b, pid, strlen(pid)) != 0)
        return false;
    b += strlen(pid);
    for (int i = 0; i < 8; i++, b++)
        if (!((*b >= '0' && *b <= '9') || (*b >= 'a' && *b <= 'f')))
            return false;
    return strcmp(b, ".log") == 0;
}

static long vm_hwm_kb(void)
{
    size_t n;
    char *s = read_all("/proc/self/status", &n);
    long kb = -1;
    if (s) {
        char *e = s + n;
        for (char *p = s; p < e; p++) {
            if ((p == s || p[-1] == '\n') && e - p > 6 && !memcmp(p, "VmHWM:", 6)) {
                kb = strtol(p + 6, NULL, 10);
                break;
            }
        }
        free(s);
    }
    return kb;
}

static size_t notice_len(size_t omitted, size_t total)
{
    char b[200];
    return (size_t)snprintf(b, sizeof b, "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                            omitted, total);
}

/* ---------------------------------------------------------------- basics */

static void test_basic(void)
{
    sw_out_opts op = opts_of(0, NULL, NULL, 0);
    sw_out_result r;

    run_whole(&op, "hello\nworld\n", 12, &r);
    CHECK(result_is(&r, "hello\nworld", 11, NULL));
    CHECK(r.total_chars == 12);
    CHECK(!r.truncated);
    CHECK(r.full_output_path == NULL);
    sw_out_result_free(&r);
    CHECK(r.text == NULL); /* result_free resets */
    sw_out_result_free(&r); /* and is idempotent */

    run_whole(&op, "", 0, &r);
    CHECK(r.text && r.text_len == 0 && r.text[0] == '\0' && r.total_chars == 0 && !r.truncated);
    sw_out_result_free(&r);

    /* NULL opts mean defaults; NUL bytes are characters */
    sw_out *o = sw_out_new(NULL);
    CHECK(o != NULL);
    sw_out_feed(o, "a\0b", 3);
    sw_out_feed(o, NULL, 0);
    sw_out_feed(o, "x", 0);
    sw_out_finish(o, &r);
    sw_out_free(o);
    CHECK(r.text_len == 3 && memcmp(r.text, "a\0b", 4) == 0 && r.total_chars == 3);
    sw_out_result_free(&r);

    sw_out_free(NULL);
    sw_out_result_free(NULL);
    CHECK(sw_out_last_line(NULL) == NULL);

    /* C0 controls other than ESC are kept */
    CHECK_SPLITS(&op, "a\tb\x07" "c\bd\x01" "e\x7f" "f", "a\tb\x07" "c\bd\x01" "e\x7f" "f", NULL);
}

/* ---------------------------------------------------------------- limit / truncation */

static char *pattern(size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        exit(2);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('A' + (i * 7 + i / 26) % 26);
    p[n] = '\0';
    return p;
}

static void test_at_limit(void)
{
    char *dir = make_tmpdir();
    sw_out_opts op = opts_of(100, NULL, dir, 0);
    char *in = pattern(100);
    sw_out_result r;
    run_whole(&op, in, 100, &r);
    CHECK(result_is(&r, in, 100, NULL));
    CHECK(!r.truncated);
    CHECK(r.total_chars == 100);
    CHECK(r.full_output_path == NULL);
    CHECK(count_entries(dir) == 0);
    sw_out_result_free(&r);

    run_bytes(&op, in, 100, &r);
    CHECK(result_is(&r, in, 100, NULL) && !r.truncated && r.full_output_path == NULL);
    CHECK(count_entries(dir) == 0);
    sw_out_result_free(&r);
    free(in);
    rm_rf(dir);
    free(dir);
}

static void test_one_over(void)
{
    char *dir = make_tmpdir();
    sw_out_opts op = opts_of(100, NULL, dir, 0);
    char *in = pattern(101);
    char exp[300];
    int n = snprintf(exp, sizeof exp,
                     "%.40s\n\n... [OUTPUT TRUNCATED - 1 chars omitted out of 101 total] ...\n\n%.60s", in,
                     in + 41);
    for (int mode = 0; mode < 3; mode++) {
        sw_out_result r;
        if (mode == 0) {
            run_whole(&op, in, 101, &r);
        } else if (mode == 1) {
            run_bytes(&op, in, 101, &r);
        } else {
            size_t cut = 100;
            run_cuts(&op, in, 101, &cut, 1, &r);
        }
        CHECK(result_is(&r, exp, (size_t)n, NULL));
        CHECK(r.truncated);
        CHECK(r.total_chars == 101);
        CHECK(r.full_output_path != NULL);
        if (r.full_output_path) {
            CHECK(spill_name_ok(dir, r.full_output_path));
            struct stat st;
            CHECK(stat(r.full_output_path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
            size_t fl;
            char *f = read_all(r.full_output_path, &fl);
            CHECK(f && fl == 101 && memcmp(f, in, 101) == 0);
            free(f);
            unlink(r.full_output_path);
        }
        sw_out_result_free(&r);
    }
    /* without spill_dir: same text, no file */
    sw_out_opts nop = opts_of(100, NULL, NULL, 0);
    sw_out_result r;
    run_whole(&nop, in, 101, &r);
    CHECK(result_is(&r, exp, (size_t)n, NULL) && r.full_output_path == NULL && r.truncated);
    sw_out_result_free(&r);
    free(in);
    rm_rf(dir);
    free(dir);
}

/* Head is floor(0.4 * limit) characters, tail the rest, for many limits. */
static void test_head_tail_sizes(void)
{
    char *in = pattern(1000);
    for (size_t limit = 1; limit <= 60; limit++) {
        size_t head = limit * 2 / 5, tail = limit - head;
        sw_out_opts op = opts_of(limit, NULL, NULL, 0);
        for (size_t len = limit; len <= limit + 3; len++) {
            sw_out_result r;
            run_whole(&op, in, len, &r);
            if (len == limit) {
                CHECK(result_is(&r, in, len, NULL) && !r.truncated);
            } else {
                char exp[400];
                int n = snprintf(exp, sizeof exp,
                                 "%.*s\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n%.*s",
                                 (int)head, in, len - limit, len, (int)tail, in + len - tail);
                /* with head == 0 the text starts with blank lines, which are trimmed */
                const char *e = exp;
                while (*e == '\n')
                    e++;
                bool ok = result_is(&r, e, (size_t)n - (size_t)(e - exp), NULL) && r.truncated && r.total_chars == len;
                CHECK(ok);
                if (!ok) {
                    fprintf(stderr, "    limit %zu len %zu\n", limit, len);
                    show("got", r.text, r.text_len);
                }
            }
            sw_out_result_free(&r);
        }
    }
    free(in);
}

/* Limit 10 (head 4, tail 6) with multibyte characters right at both cut points. */
static void test_multibyte_cut(void)
{
    /* chars: a b c € | d 😀 é f g h i j 😀 | k l m n o p  -> 20 chars */
    static const char *chars[] = {"a", "b", "c", "\xE2\x82\xAC", "d", "\xF0\x9F\x98\x80", "\xC3\xA9", "f", "g", "h",
                                  "i", "j", "\xF0\x9F\x98\x80", "\xE2\x82\xAC", "\xC3\xA9", "\xF0\x9F\x98\x81",
                                  "n", "o", "p", "\xE4\xB8\xAD"};
    size_t nc = sizeof chars / sizeof chars[0];
    char in[200] = "";
    for (size_t i = 0; i < nc; i++)
        strcat(in, chars[i]);
    size_t inlen = strlen(in);
    char exp[400] = "";
    for (size_t i = 0; i < 4; i++)
        strcat(exp, chars[i]);
    char notice[120];
    snprintf(notice, sizeof notice, "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n", nc - 10,
             nc);
    strcat(exp, notice);
    for (size_t i = nc - 6; i < nc; i++)
        strcat(exp, chars[i]);
    sw_out_opts op = opts_of(10, NULL, NULL, 0);
    check_splits_at(__FILE__, __LINE__, &op, in, inlen, exp, strlen(exp), NULL);

    sw_out_result r;
    run_whole(&op, in, inlen, &r);
    CHECK(r.total_chars == nc && r.truncated);
    size_t nl = strlen(notice);
    CHECK(count_chars(r.text, r.text_len) == 10 + count_chars(notice, nl));
    sw_out_result_free(&r);

    /* exactly at the limit with multibyte characters: no truncation */
    char ten[80] = "";
    for (size_t i = 0; i < 10; i++)
        strcat(ten, chars[i + 3]);
    check_splits_at(__FILE__, __LINE__, &op, ten, strlen(ten), ten, strlen(ten), NULL);
}

/* ---------------------------------------------------------------- UTF-8 */

static void test_utf8_valid_splits(void)
{
    sw_out_opts op = opts_of(0, NULL, NULL, 0);
    /* ASCII, 2-, 3- and 4-byte characters, including the range edges */
    CHECK_SPLITS(&op, "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80" "d\xC2\xA0\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF"
                      "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF" "e\xED\x9F\xBF\xEE\x80\x80",
                 "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80" "d\xC2\xA0\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF"
                 "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF" "e\xED\x9F\xBF\xEE\x80\x80",
                 NULL);
    sw_out_result r;
    const char s[] = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    run_whole(&op, s, sizeof s - 1, &r);
    CHECK(r.total_chars == 3);
    sw_out_result_free(&r);
    /* one character split across two reads */
    sw_out *o = sw_out_new(&op);
    sw_out_feed(o, "x\xE2\x82", 3);
    sw_out_feed(o, "\xACy", 2);
    sw_out_finish(o, &r);
    sw_out_free(o);
    CHECK(result_is(&r, "x\xE2\x82\xACy", 5, NULL) && r.total_chars == 3);
    sw_out_result_free(&r);
}

#define FFFD "\xEF\xBF\xBD"

static void test_utf8_invalid(void)
{
    sw_out_opts op = opts_of(0, NULL, NULL, 0);
    CHECK_SPLITS(&op, "a\x80" "b", "a" FFFD "b", NULL);                      /* lone continuation */
    CHECK_SPLITS(&op, "a\x80\xBF" "b", "a" FFFD FFFD "b", NULL);
    CHECK_SPLITS(&op, "a\xE2\x82" "b", "a" FFFD "b", NULL);                  /* truncated mid-stream */
    CHECK_SPLITS(&op, "a\xE2\x82", "a" FFFD, NULL);                          /* truncated at the end */
    CHECK_SPLITS(&op, "a\xF0\x9F\x98", "a" FFFD, NULL);
    CHECK_SPLITS(&op, "a\xC3", "a" FFFD, NULL);
    CHECK_SPLITS(&op, "\xF0\x9F\x98x", FFFD "x", NULL);
    CHECK_SPLITS(&op, "\xC0\x80", FFFD FFFD, NULL);                          /* overlong NUL */
    CHECK_SPLITS(&op, "\xC1\xBF", FFFD FFFD, NULL);
    CHECK_SPLITS(&op, "\xE0\x80\x80", FFFD FFFD FFFD, NULL);                 /* overlong 3-byte */
    CHECK_SPLITS(&op, "\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD, NULL);        /* overlong 4-byte */
    CHECK_SPLITS(&op, "\xED\xA0\x80", FFFD FFFD FFFD, NULL);                 /* surrogate */
    CHECK_SPLITS(&op, "\xED\xBF\xBF", FFFD FFFD FFFD, NULL);
    CHECK_SPLITS(&op, "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, NULL);        /* > U+10FFFF */
    CHECK_SPLITS(&op, "\xF5\xF8\xFC\xFE\xFF", FFFD FFFD FFFD FFFD FFFD, NULL);
    CHECK_SPLITS(&op, "\xE2\x28\xA1", FFFD "(" FFFD, NULL);
    CHECK_SPLITS(&op, "\xE1\x80\xE2\xF0\x91\x92\xF1\xBF" "A", FFFD FFFD FFFD FFFD "A", NULL);
    /* an invalid byte right before a valid multibyte character */
    CHECK_SPLITS(&op, "\xC3\xC3\xA9", FFFD "\xC3\xA9", NULL);
    /* 0x9B as a raw byte is not CSI, it is invalid UTF-8 */
    CHECK_SPLITS(&op, "x\x9B" "31my", "x" FFFD "31my", NULL);

    sw_out_result r;
    run_whole(&op, "\xED\xA0\x80", 3, &r);
    CHECK(r.total_chars == 3);
    sw_out_result_free(&r);
}

/* ---------------------------------------------------------------- ANSI */

static void test_ansi(void)
{
    sw_out_opts op = opts_of(0, NULL, NULL, 0);
    CHECK_SPLITS(&op, "\x1b[31mred\x1b[0m plain", "red plain", NULL);
    CHECK_SPLITS(&op, "\x1b[1;32;40mX\x1b[K\x1b[2J\x1b[?25l\x1b[>c", "X", NULL);
    CHECK_SPLITS(&op, "a\x1b]0;my title\x07" "b", "ab", NULL);                  /* OSC + BEL */
    CHECK_SPLITS(&op, "a\x1b]0;my title\x1b\\b", "ab", NULL);                   /* OSC + ST */
    CHECK_SPLITS(&op, "\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\", "link", NULL); /* hyperlink */
    CHECK_SPLITS(&op, "t\x1b]2;\xC3\xA9t\xC3\xA9\x07" "u", "tu", NULL);         /* UTF-8 inside OSC */
    CHECK_SPLITS(&op, "\xC2\x9B" "31mX\xC2\x9B" "0m", "X", NULL);              /* 8-bit CSI */
    CHECK_SPLITS(&op, "\xC2\x9D" "0;t\x07Y\xC2\x9D" "0;t\xC2\x9CZ", "YZ", NULL); /* 8-bit OSC */
    CHECK_SPLITS(&op, "a\xC2\x90q#0;2\xC2\x9C" "b", "ab", NULL);                /* 8-bit DCS */
    CHECK_SPLITS(&op, "a\xC2\x85" "b\xC2\x9C" "c\xC2\x80" "d\xC2\x9F" "x\x1b\\e", "abcde", NULL); /* other C1 */
    CHECK_SPLITS(&op, "a\xC2\xA0" "b", "a\xC2\xA0" "b", NULL);                  /* U+00A0 is kept */
    CHECK_SPLITS(&op, "a\x1bPq#0;2;0;0;0#0~~\x1b\\b", "ab", NULL);              /* DCS */
    CHECK_SPLITS(&op, "a\x1b_Gf=100;AAAA\x1b\\b\x1b^pm\x1b\\" "c\x1bXsos\x1b\\" "d", "abcd", NULL);
    CHECK_SPLITS(&op, "a\x1bPno\x07pe\x1b\\b", "ab", NULL);                     /* BEL does not end DCS */
    CHECK_SPLITS(&op, "a\x1b(Bb\x1b)0c\x1b#8" "d\x1b %Ge", "abcde", NULL);      /* nF */
    CHECK_SPLITS(&op, "a\x1b=b\x1b>c\x1b" "7d\x1b" "8e\x1bMf\x1b" "cg\x1b~h", "abcdefgh", NULL); /* Fp/Fe/Fs */
    CHECK_SPLITS(&op, "\x1b[31\x1b[0mX", "X", NULL);                           /* ESC restarts */
    CHECK_SPLITS(&op, "a\x1b[3\nb", "a\nb", NULL);                              /* aborted by C0 */
    CHECK_SPLITS(&op, "a\x1b[3\x18" "b", "ab", NULL);                           /* CAN cancels */
    CHECK_SPLITS(&op, "abc\x1b", "abc", NULL);                                  /* ESC at end */
    CHECK_SPLITS(&op, "abc\x1b[12;", "abc", NULL);                              /* partial CSI at end */
    CHECK_SPLITS(&op, "a\x1b\xC3\xA9" "b", "a\xC3\xA9" "b", NULL);              /* ESC + non-ASCII */
    CHECK_SPLITS(&op, "a\x1b\x1b[1mb", "ab", NULL);
    CHECK_SPLITS(&op, "a\x1b]0;t\x1b[1mb", "ab", NULL);                         /* ESC ends OSC */
    CHECK_SPLITS(&op, "a\x1b\x80" "b", "a" FFFD "b", NULL);
    CHECK_SPLITS(&op, "\x1b[38;2;255;0;0m\xE2\x96\x88\x1b[0m\r\n", "\xE2\x96\x88", NULL);

    sw_out_result r;
    const char s[] = "\x1b[31mab\x1b[0m";
    run_whole(&op, s, sizeof s - 1, &r);
    CHECK(r.total_chars == 2); /* counted after removal */
    sw_out_result_free(&r);
}

/* ---------------------------------------------------------------- over-long strings */

#define STR_MAX ((size_t)4096) /* ANSI_STR_MAX in output.c */

typedef struct {
    char *p;
    size_t n;
} dbuf;

static void db_put(dbuf *b, const char *s, size_t n)
{
    char *q = realloc(b->p, b->n + n + 1);
    if (!q)
        exit(2);
    b->p = q;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void db_rep(dbuf *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        db_put(b, &c, 1);
}

/* in -> exp, whole and (when splits) at every split point and byte by byte. */
static void check_long(int line, const sw_out_opts *op, const dbuf *in, const dbuf *exp, bool splits)
{
    if (splits) {
        check_splits_at(__FILE__, line, op, in->p, in->n, exp->p, exp->n, NULL);
        return;
    }
    sw_out_result r;
    run_whole(op, in->p, in->n, &r);
    bool ok = result_is(&r, exp->p, exp->n, NULL);
    CHECK_AT(ok, __FILE__, line);
    if (!ok) {
        show("expected", exp->p, exp->n);
        show("got", r.text ? r.text : "", r.text_len);
    }
    sw_out_result_free(&r);
}

static void test_ansi_long_strings(void)
{
    sw_out_opts op = opts_of(1000000, NULL, NULL, 0);
    /* an unterminated OSC followed by 10,000 bytes of text: the first 4096 are its payload,
     * the rest is text again */
    {
        char *txt = pattern(10000);
        dbuf in = {0}, exp = {0};
        db_put(&in, "a\x1b]", 3);
        db_put(&in, txt, 10000);
        db_put(&exp, "a", 1);
        db_put(&exp, txt + STR_MAX, 10000 - STR_MAX);
        check_long(__LINE__, &op, &in, &exp, false);
        /* the same in 64-byte chunks and one byte at a time */
        sw_out_result r;
        size_t cuts[200], nc = 0;
        for (size_t k = 64; k < in.n && nc < 200; k += 64)
            cuts[nc++] = k;
        run_cuts(&op, in.p, in.n, cuts, nc, &r);
        CHECK(result_is(&r, exp.p, exp.n, NULL));
        CHECK(r.total_chars == 1 + 10000 - STR_MAX);
        sw_out_result_free(&r);
        run_bytes(&op, in.p, in.n, &r);
        CHECK(result_is(&r, exp.p, exp.n, NULL));
        sw_out_result_free(&r);
        /* every introducer, 7- and 8-bit */
        static const char *const intro[] = {"\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_",
                                            "\xC2\x9D", "\xC2\x90", "\xC2\x98", "\xC2\x9E", "\xC2\x9F"};
        for (size_t i = 0; i < sizeof intro / sizeof intro[0]; i++) {
            in.n = 0;
            db_put(&in, "a", 1);
            db_put(&in, intro[i], strlen(intro[i]));
            db_put(&in, txt, 10000);
            check_long(__LINE__, &op, &in, &exp, false);
        }
        free(in.p);
        free(exp.p);
        free(txt);
    }
    /* a terminated OSC of 4000 bytes (BEL, ST, 8-bit ST) is still fully removed */
    {
        static const char *const term[] = {"\x07", "\x1b\\", "\xC2\x9C"};
        dbuf exp = {0};
        db_put(&exp, "ab", 2);
        for (size_t t = 0; t < 3; t++) {
            dbuf in = {0};
            db_put(&in, "a\x1b]0;", 5);
            db_rep(&in, 'x', 4000 - 2);
            db_put(&in, term[t], strlen(term[t]));
            db_put(&in, "b", 1);
            check_long(__LINE__, &op, &in, &exp, t == 0);
            free(in.p);
        }
        /* a 4000-byte DCS (BEL does not end it; it is part of the payload) */
        dbuf in = {0};
        db_put(&in, "a\x1bPq", 4);
        db_rep(&in, '\x07', 3999);
        db_put(&in, "\x1b\\b", 3);
        check_long(__LINE__, &op, &in, &exp, false);
        free(in.p);
        free(exp.p);
    }
    /* right at the cap: a 4096-byte payload is removed, a 4097th byte is text */
    {
        dbuf in = {0}, exp = {0};
        db_put(&in, "a\x1b]", 3);
        db_rep(&in, 'x', STR_MAX);
        db_put(&in, "\x07" "b", 2);
        db_put(&exp, "ab", 2);
        check_long(__LINE__, &op, &in, &exp, true);
        in.n = exp.n = 0;
        db_put(&in, "a\x1b]", 3);
        db_rep(&in, 'x', STR_MAX);
        db_put(&in, "y\x07" "b", 3); /* 'y' is byte 4097: abandoned, BEL is a kept C0 control */
        db_put(&exp, "ay\x07" "b", 4);
        check_long(__LINE__, &op, &in, &exp, true);
        /* ST after a full payload, and ESC starting another sequence */
        in.n = exp.n = 0;
        db_put(&in, "a\x1b_", 3);
        db_rep(&in, 'x', STR_MAX);
        db_put(&in, "\x1b\\b\x1bP", 5);
        db_rep(&in, 'z', STR_MAX);
        db_put(&in, "\x1b[1mc", 5);
        db_put(&exp, "abc", 3);
        check_long(__LINE__, &op, &in, &exp, true);
        /* payload bytes are counted as UTF-8: a 2-byte character that would make 4097
         * abandons the string and is shown; one that makes exactly 4096 is payload */
        in.n = exp.n = 0;
        db_put(&in, "\xC2\x9D", 2);
        db_rep(&in, 'x', STR_MAX - 1);
        db_put(&in, "\xC3\xA9Z", 3);
        db_put(&exp, "\xC3\xA9Z", 3);
        check_long(__LINE__, &op, &in, &exp, true);
        in.n = exp.n = 0;
        db_put(&in, "\xC2\x9D", 2);
        db_rep(&in, 'x', STR_MAX - 2);
        db_put(&in, "\xC3\xA9Z\xC3\xA9", 5);
        db_put(&exp, "Z\xC3\xA9", 3);
        check_long(__LINE__, &op, &in, &exp, true);
        /* an invalid byte is a U+FFFD, 3 bytes */
        in.n = exp.n = 0;
        db_put(&in, "\x1bX", 2);
        db_rep(&in, 'x', STR_MAX - 3);
        db_put(&in, "\xFF\xFFQ", 3);
        db_put(&exp, FFFD "Q", 4);
        check_long(__LINE__, &op, &in, &exp, true);
        /* the payload count restarts with every string */
        in.n = exp.n = 0;
        for (int k = 0; k < 3; k++) {
            db_put(&in, "\x1b]", 2);
            db_rep(&in, 'x', STR_MAX);
            db_put(&in, "\x07", 1);
        }
        db_put(&in, "\x1b]", 2);
        db_rep(&in, 'x', STR_MAX + 2);
        db_put(&exp, "xx", 2);
        check_long(__LINE__, &op, &in, &exp, false);
        free(in.p);
        free(exp.p);
    }
    /* 1 MB of random bytes (like head -c 1000000 /dev/urandom): most of the printable
     * ASCII in the input is in the output */
    {
        const size_t n = 1000000;
        char *in = malloc(n);
        if (!in)
            exit(2);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            in[i] = (char)(x >> 24);
        }
        size_t in_print = 0, out_print = 0;
        for (size_t i = 0; i < n; i++)
            in_print += in[i] >= 0x20 && in[i] < 0x7F;
        sw_out_opts big = opts_of(4000000, NULL, NULL, 0);
        sw_out_result r;
        size_t cuts[300], nc = 0;
        for (size_t k = 4093; k < n && nc < 300; k += 4093)
            cuts[nc++] = k;
        run_cuts(&big, in, n, cuts, nc, &r);
        CHECK(r.text && !r.truncated && valid_utf8(r.text, r.text_len));
        for (size_t i = 0; r.text && i < r.text_len; i++)
            out_print += r.text[i] >= 0x20 && r.text[i] < 0x7F;
        printf("info: 1 MB random: %zu of %zu printable ASCII bytes kept\n", out_print, in_print);
        CHECK(out_print <= in_print);
        CHECK(out_print >= in_print / 10 * 9);
        sw_out_result_free(&r);

        /* the worst case: a stray "ESC ]" and then only printable ASCII, which never ends
         * the string */
        for (size_t i = 0; i < n; i++)
            in[i] = (char)(0x20 + (unsigned char)in[i] % 0x5F);
        in[0] = '\x1b';
        in[1] = ']';
        run_whole(&big, in, n, &r);
        size_t skip = 2 + STR_MAX;
        size_t b = n;
        while (b > skip && in[b - 1] == ' ')
            b--;
        CHECK(r.text && r.text_len == b - skip && memcmp(r.text, in + skip, b - skip) == 0);
        sw_out_result_free(&r);
        free(in);
    }
}

/* ---------------------------------------------------------------- markers */

static void test_markers(void)
{
    sw_out_opts op = opts_of(0, ID, NULL, 0);
    CHECK_SPLITS(&op, "out" MARK("/home/u/dir"), "out", "/home/u/dir");
    CHECK_SPLITS(&op, "out\n" MARK("/home/u/dir"), "out", "/home/u/dir");
    CHECK_SPLITS(&op, "before\n" MARK("/p") "after", "before\nafter", "/p");
    CHECK_SPLITS(&op, MARK("/p"), "", "/p");                                    /* no output at all */
    CHECK_SPLITS(&op, "x" OPEN "/p" CLOSE, "x", "/p");                          /* no final newline */
    CHECK_SPLITS(&op, "x\r" OPEN "/p" CLOSE "\r\n", "x", "/p");                 /* tty CRLF */
    CHECK_SPLITS(&op, "x" OPEN "/p" CLOSE "\r", "x", "/p");
    CHECK_SPLITS(&op, "a" MARK("/one") "b" MARK("/two") "c", "abc", "/two");    /* last wins */
    CHECK_SPLITS(&op, "\n\n\n" MARK("/p"), "", "/p");
    CHECK_SPLITS(&op, "\xC3" MARK("/p"), FFFD, "/p");
    CHECK_SPLITS(&op, "\x1b[1mB\x1b[0m" MARK("/p"), "B", "/p");
    CHECK_SPLITS(&op, "x" MARK("/a b/\xC3\xA9\xFF/__SHELLWIRE_CWD_other__/\n/z"), "x",
                 "/a b/\xC3\xA9\xFF/__SHELLWIRE_CWD_other__/\n/z");
    CHECK_SPLITS(&op, "x" MARK("/" ID "_/__/_"), "x", "/" ID "_/__/_");
    /* incomplete markers pass through as text */
    CHECK_SPLITS(&op, "x" OPEN "/tmp/fo", "x" OPEN "/tmp/fo", NULL);
    CHECK_SPLITS(&op, "x\n__SHELLWIRE_CWD_abc1", "x\n__SHELLWIRE_CWD_abc1", NULL);
    CHECK_SPLITS(&op, "x\n__SHELLWIRE_CWD_abc12X__/p" CLOSE "\n", "x\n__SHELLWIRE_CWD_abc12X__/p" CLOSE, NULL);
    /* another id is not ours */
    CHECK_SPLITS(&op, "x\n__SHELLWIRE_CWD_zzz__/p__SHELLWIRE_CWD_zzz__\ny",
                 "x\n__SHELLWIRE_CWD_zzz__/p__SHELLWIRE_CWD_zzz__\ny", NULL);
    /* mid-stream without the final newline: not a marker */
    CHECK_SPLITS(&op, "x" OPEN "/p" CLOSE "y", "x" OPEN "/p" CLOSE "y", NULL);
    CHECK_SPLITS(&op, "x" OPEN "/p" CLOSE "\ry", "x" OPEN "/p" CLOSE "\ry", NULL);
    /* empty path or NUL in path: not a marker */
    CHECK_SPLITS(&op, "x" OPEN CLOSE "\ny", "x" OPEN CLOSE "\ny", NULL);
    CHECK_SPLITS(&op, "x" OPEN "/a\0b" CLOSE "\ny", "x" OPEN "/a\0b" CLOSE "\ny", NULL);
    /* a rejected candidate that contains the start of a real marker */
    CHECK_SPLITS(&op, "x" OPEN "\n" CLOSE "/p" CLOSE "\n", "x" OPEN, "/p");
    CHECK_SPLITS(&op, "x" OPEN "/q\n" CLOSE "y" MARK("/r"), "x" OPEN "/q\n" CLOSE "y", "/r");
    /* an incomplete marker followed by a complete one */
    CHECK_SPLITS(&op, "a\n__SHELLWIRE_CWD_ab" MARK("/r") "z", "a\n__SHELLWIRE_CWD_abz", "/r");
    /* without marker_id, markers are plain text */
    sw_out_opts nom = opts_of(0, NULL, NULL, 0);
    CHECK_SPLITS(&nom, "x" MARK("/p"), "x" OPEN "/p" CLOSE, NULL);

    /* long paths (several KB) */
    size_t pl = 6000;
    char *path = malloc(pl + 1);
    for (size_t i = 0; i < pl; i++)
        path[i] = (char)(i % 50 == 0 ? '/' : 'a' + i % 26);
    path[pl] = '\0';
    size_t inlen = 4 + strlen(OPEN) + pl + strlen(CLOSE) + 1 + 4;
    char *in = malloc(inlen + 1);
    snprintf(in, inlen + 1, "head" OPEN "%s" CLOSE "\ntail", path);
    sw_out_result r;
    bool all = true;
    for (size_t k = 0; k <= inlen; k += 7) {
        run_cuts(&op, in, inlen, &k, 1, &r);
        all = all && result_is(&r, "headtail", 8, path);
        sw_out_result_free(&r);
    }
    CHECK(all);
    run_bytes(&op, in, inlen, &r);
    CHECK(result_is(&r, "headtail", 8, path));
    sw_out_result_free(&r);
    free(in);
    free(path);

    /* an over-long "path" (no closing tag for 100 KB) is emitted as text, and a real marker
     * after it is still found */
    size_t junk = 100000;
    size_t len2 = 1 + strlen(OPEN) + junk + strlen(MARK("/real"));
    char *in2 = malloc(len2 + 1);
    size_t p = 0;
    in2[p++] = 'x';
    memcpy(in2 + p, OPEN, strlen(OPEN));
    p += strlen(OPEN);
    for (size_t i = 0; i < junk; i++)
        in2[p++] = (char)(i % 100 == 99 ? '\n' : 'j');
    memcpy(in2 + p, MARK("/real"), strlen(MARK("/real")));
    p += strlen(MARK("/real"));
    sw_out_opts big = opts_of(1000000, ID, NULL, 0);
    size_t explen2 = 1 + strlen(OPEN) + junk;
    for (int mode = 0; mode < 3; mode++) {
        if (mode == 0)
            run_whole(&big, in2, p, &r);
        else if (mode == 1)
            run_bytes(&big, in2, p, &r);
        else {
            size_t cuts[3] = {5, 40000, 100020};
            run_cuts(&big, in2, p, cuts, 3, &r);
        }
        /* the junk ends with '\n' which is trailing whitespace */
        CHECK(r.text && r.text_len == explen2 - 1 && memcmp(r.text, in2, explen2 - 1) == 0);
        CHECK(same_str(r.cwd, "/real"));
        sw_out_result_free(&r);
    }
    free(in2);
}

/* ---------------------------------------------------------------- trimming */

static void test_trim(void)
{
    sw_out_opts op = opts_of(0, NULL, NULL, 0);
    CHECK_SPLITS(&op, "\n\n  \t\n\r\n  indented\n\n  \n", "  indented", NULL);
    CHECK_SPLITS(&op, "a  \t\r\n\n", "a", NULL);
    CHECK_SPLITS(&op, " \t\r\n \n", "", NULL);
    CHECK_SPLITS(&op, "   x  \n\n  y", "   x  \n\n  y", NULL);
    CHECK_SPLITS(&op, "\xC2\xA0x", "\xC2\xA0x", NULL); /* only ASCII whitespace is trimmed */

    sw_out_result r;
    run_whole(&op, "\n\nx\n\n", 5, &r);
    CHECK(r.total_chars == 5); /* counts are before trimming */
    sw_out_result_free(&r);

    /* truncated: leading blank lines of the head and trailing whitespace of the tail go */
    sw_out_opts small = opts_of(10, NULL, NULL, 0);
    const char in[] = "\n\n  ab0123456789cd  \n\n"; /* 22 chars: head "\n\n  ", tail "cd  \n\n" */
    run_whole(&small, in, sizeof in - 1, &r);
    const char exp[] = "... [OUTPUT TRUNCATED - 12 chars omitted out of 22 total] ...\n\ncd";
    CHECK(r.text && r.text_len == sizeof exp - 1 && strcmp(r.text, exp) == 0 && r.total_chars == 22);
    sw_out_result_free(&r);
    const char in2[] = "\n \nab0123456789cd \n"; /* 19 chars: head "\n \na", tail "89cd \n" */
    run_whole(&small, in2, sizeof in2 - 1, &r);
    const char exp2[] = "a\n\n... [OUTPUT TRUNCATED - 9 chars omitted out of 19 total] ...\n\n89cd";
    CHECK(r.text && r.text_len == sizeof exp2 - 1 && strcmp(r.text, exp2) == 0);
    sw_out_result_free(&r);
}

/* ---------------------------------------------------------------- last line */

static char *ll_after(const sw_out_opts *op, const char *const *chunks, size_t n)
{
    sw_out *o = sw_out_new(op);
    for (size_t i = 0; i < n; i++)
        sw_out_feed(o, chunks[i], strlen(chunks[i]));
    char *l = sw_out_last_line(o);
    sw_out_free(o);
    return l;
}

static void test_last_line(void)
{
    sw_out_opts op = opts_of(0, ID, NULL, 0);
    char *l;
#define LL(expected, ...)                                                                                      \
    do {                                                                                                       \
        const char *const ch_[] = {__VA_ARGS__};                                                              \
        l = ll_after(&op, ch_, sizeof ch_ / sizeof ch_[0]);                                                    \
        bool ok_ = same_str(l, expected);                                                                      \
        CHECK(ok_);                                                                                            \
        if (!ok_)                                                                                              \
            fprintf(stderr, "    last_line: got \"%s\", expected \"%s\"\n", l ? l : "(null)",                \
                    (const char *)(expected) ? (const char *)(expected) : "(null)");                            \
        free(l);                                                                                               \
    } while (0)
    LL(NULL, "");
    LL(NULL, "\n\n  \n\t\r\n");
    LL("second", "first\nsecond\n");
    LL("partial", "first\npartial");
    LL("a", "a\n\n\n   \n");
    LL("hello", "hel", "lo\n");
    LL("hello world", "hel", "lo", " world", "\n", "\n");
    LL("20%", "10%\r20%\r");
    LL("30%", "10%\r20%\r", "30%");
    LL("done", "x\r\n", "done\r\n");
    LL("red", "\x1b[31mred\x1b[0m\n");
    LL("x", "x" MARK("/p"));
    LL("one", "one\n", "  \n", "\n");
    LL("two", "one\n", "  two  \n", "\n ");
    LL("a" FFFD "b", "a\xE2\x82", "b\n");

    /* long lines: the last 200 characters */
    char big[1200];
    for (int i = 0; i < 1199; i++)
        big[i] = (char)('a' + i % 26);
    big[1199] = '\0';
    const char *const c1[] = {"start\n", big};
    l = ll_after(&op, c1, 2);
    CHECK(l && strlen(l) == 200 && strcmp(l, big + 999) == 0);
    free(l);
    const char *const c2[] = {big, "\nnext\n\n"};
    l = ll_after(&op, c2, 2);
    CHECK(same_str(l, "next"));
    free(l);
    const char *const c3[] = {big, "\n"};
    l = ll_after(&op, c3, 2);
    CHECK(l && strcmp(l, big + 999) == 0);
    free(l);
    /* many small pieces of one long line */
    sw_out *o = sw_out_new(&op);
    for (int i = 0; i < 1199; i++)
        sw_out_feed(o, big + i, 1);
    l = sw_out_last_line(o);
    CHECK(l && strcmp(l, big + 999) == 0);
    free(l);
    sw_out_feed(o, "\n\n", 2);
    l = sw_out_last_line(o);
    CHECK(l && strcmp(l, big + 999) == 0);
    free(l);
    sw_out_free(o);

    /* multibyte: 300 x "é" -> 200 characters, valid UTF-8 */
    char mb[700] = "";
    for (int i = 0; i < 300; i++)
        strcat(mb, "\xC3\xA9");
    for (int pass = 0; pass < 2; pass++) {
        o = sw_out_new(&op);
        if (pass == 0) {
            sw_out_feed(o, mb, strlen(mb));
        } else {
            for (size_t i = 0; i < strlen(mb); i += 3)
                sw_out_feed(o, mb + i, strlen(mb) - i < 3 ? strlen(mb) - i : 3);
        }
        l = sw_out_last_line(o);
        CHECK(l && strlen(l) == 400 && valid_utf8(l, strlen(l)) && count_chars(l, strlen(l)) == 200);
        free(l);
        sw_out_free(o);
    }
    /* 4-byte characters */
    char emo[2000] = "";
    for (int i = 0; i < 250; i++)
        strcat(emo, "\xF0\x9F\x98\x80");
    const char *const c4[] = {emo};
    l = ll_after(&op, c4, 1);
    CHECK(l && strlen(l) == 800 && count_chars(l, 800) == 200 && valid_utf8(l, 800));
    free(l);
#undef LL
}

/* ---------------------------------------------------------------- spill specifics */

static void test_spill_cap_and_dirs(void)
{
    char *dir = make_tmpdir();
    /* the spill file holds post-processing text and stops at spill_max_chars */
    size_t dl = strlen(dir) + 32;
    char *sub = malloc(dl);
    snprintf(sub, dl, "%s/a/b/spill", dir); /* missing: created with 0700 */
    sw_out_opts op = opts_of(10, ID, sub, 25);
    char in[400] = "";
    char plain[400] = "";
    for (int i = 0; i < 10; i++) {
        char piece[40];
        snprintf(piece, sizeof piece, "\x1b[1m%c%c\x1b[0m\xC3\xA9", 'a' + i, 'A' + i);
        strcat(in, piece);
        snprintf(piece, sizeof piece, "%c%c\xC3\xA9", 'a' + i, 'A' + i);
        strcat(plain, piece);
    }
    strcat(in, MARK("/cwd"));
    sw_out_result r;
    run_bytes(&op, in, strlen(in), &r);
    CHECK(r.truncated && r.total_chars == 30);
    CHECK(same_str(r.cwd, "/cwd"));
    CHECK(r.full_output_path != NULL);
    if (r.full_output_path) {
        struct stat st;
        CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
        size_t fl;
        char *f = read_all(r.full_output_path, &fl);
        char exp[200];
        size_t b25 = 0;
        for (size_t c = 0; c < 25; b25++)
            if (((unsigned char)plain[b25 + 1] & 0xC0) != 0x80)
                c++;
        snprintf(exp, sizeof exp, "%.*s\n... [full output capped at 25 chars] ...\n", (int)b25, plain);
        CHECK(f && fl == strlen(exp) && memcmp(f, exp, fl) == 0);
        if (f && (fl != strlen(exp) || memcmp(f, exp, fl)))
            show("spill", f, fl);
        free(f);
    }
    sw_out_result_free(&r);

    /* exactly spill_max characters: no cap note */
    sw_out_opts op2 = opts_of(10, NULL, dir, 30);
    run_whole(&op2, plain, strlen(plain), &r);
    CHECK(r.full_output_path != NULL);
    if (r.full_output_path) {
        size_t fl;
        char *f = read_all(r.full_output_path, &fl);
        CHECK(f && fl == strlen(plain) && memcmp(f, plain, fl) == 0);
        free(f);
    }
    sw_out_result_free(&r);

    /* spill_dir that cannot be used: pipeline still works, no path */
    size_t fn = strlen(dir) + 16;
    char *file = malloc(fn);
    snprintf(file, fn, "%s/afile", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    sw_out_opts op3 = opts_of(10, NULL, file, 0);
    run_whole(&op3, plain, strlen(plain), &r);
    CHECK(r.truncated && r.full_output_path == NULL && r.text && r.total_chars == 30);
    sw_out_result_free(&r);
    free(file);

    /* freeing without finishing removes the partial spill file */
    char *d2 = make_tmpdir();
    sw_out_opts op4 = opts_of(10, NULL, d2, 0);
    sw_out *o = sw_out_new(&op4);
    sw_out_feed(o, plain, strlen(plain));
    CHECK(count_entries(d2) == 1);
    sw_out_free(o);
    CHECK(count_entries(d2) == 0);
    rm_rf(d2);
    free(d2);

    free(sub);
    rm_rf(dir);
    free(dir);
}

/* A write error in the middle of spilling (file size limit) disables the spill file:
 * the pipeline carries on, the partial file is removed and no path is reported. */
static void test_spill_write_error(void)
{
    char *dir = make_tmpdir();
    const size_t n = 1000000;
    char *in = pattern(n);
    struct rlimit old, lim;
    bool have = getrlimit(RLIMIT_FSIZE, &old) == 0;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 100000;
    bool set = have && (old.rlim_max == RLIM_INFINITY || old.rlim_max >= lim.rlim_cur) &&
               setrlimit(RLIMIT_FSIZE, &lim) == 0;
    sw_out_opts op = opts_of(1000, NULL, dir, 0);
    sw_out *o = sw_out_new(&op);
    for (size_t off = 0; off < n; off += 4096)
        sw_out_feed(o, in + off, n - off < 4096 ? n - off : 4096);
    sw_out_result r;
    sw_out_finish(o, &r);
    sw_out_free(o);
    if (set)
        setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(set);
    CHECK(r.full_output_path == NULL);
    CHECK(count_entries(dir) == 0);
    CHECK(r.truncated && r.total_chars == n && r.text && r.text_len == 1000 + notice_len(n - 1000, n));
    CHECK(r.text && memcmp(r.text, in, 400) == 0 && memcmp(r.text + r.text_len - 600, in + n - 600, 600) == 0);
    sw_out_result_free(&r);
    free(in);
    rm_rf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- randomized model check */

static uint64_t rng_state = 0x123456789abcdefull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            exit(2);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static size_t enc(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reference for the final text: head/notice/tail over a character list, then trimming. */
static void model_text(const char *out, size_t outlen, size_t limit, sbuf *res)
{
    size_t total = count_chars(out, outlen);
    sbuf t = {0};
    if (total <= limit) {
        sb_put(&t, out, outlen);
    } else {
        size_t head = limit * 2 / 5, tail = limit - head;
        size_t hb = 0, c = 0;
        while (c < head) {
            hb++;
            while (hb < outlen && ((unsigned char)out[hb] & 0xC0) == 0x80)
                hb++;
            c++;
        }
        size_t tb = outlen;
        c = 0;
        while (c < tail) {
            tb--;
            while (((unsigned char)out[tb] & 0xC0) == 0x80)
                tb--;
            c++;
        }
        char notice[200];
        int n = snprintf(notice, sizeof notice,
                         "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                         total - head - tail, total);
        sb_put(&t, out, hb);
        sb_put(&t, notice, (size_t)n);
        sb_put(&t, out + tb, outlen - tb);
    }
    /* trim: whitespace-only leading lines, trailing whitespace */
    size_t a = 0, i = 0;
    while (i < t.n) {
        size_t e = i;
        while (e < t.n && t.p[e] != '\n')
            e++;
        bool blank = true;
        for (size_t k = i; k < e; k++)
            if (t.p[k] != ' ' && t.p[k] != '\t' && t.p[k] != '\r')
                blank = false;
        if (!blank || e == t.n)
            break;
        a = i = e + 1;
    }
    size_t b = t.n;
    while (b > a && (t.p[b - 1] == ' ' || t.p[b - 1] == '\t' || t.p[b - 1] == '\r' || t.p[b - 1] == '\n'))
        b--;
    res->n = 0;
    sb_put(res, t.p ? t.p + a : "", b - a);
    free(t.p);
}

static void test_random_model(void)
{
    static const char *const escapes[] = {
        "\x1b[31m", "\x1b[0m", "\x1b[1;2;3;4;5H", "\x1b]0;title\x07", "\x1b]8;;http://e.x/\x1b\\",
        "\xC2\x9B" "1m", "\x1b(B", "\x1b=", "\xC2\x85", "\x1bP1$r\x1b\\", "\xC2\x9D" "2;t\xC2\x9C",
    };
    static const struct {
        const char *in, *out;
    } bad[] = {
        {"\x80", FFFD}, {"\xFF", FFFD}, {"\xE2\x82Z", FFFD "Z"}, {"\xED\xA0\x80", FFFD FFFD FFFD},
        {"\xC0\xAF", FFFD FFFD}, {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD}, {"\xF0\x9F\x98!", FFFD "!"},
    };
    char *dir = make_tmpdir();
    sbuf in = {0}, out = {0}, exp = {0};
    for (int iter = 0; iter < 400; iter++) {
        in.n = out.n = 0;
        char cwd[64] = "";
        size_t ntok = 1 + rnd() % (iter % 10 == 0 ? 3000 : 200);
        for (size_t t = 0; t < ntok; t++) {
            uint32_t k = rnd() % 100;
            char e[8];
            if (k < 50) {
                char c = (char)(k < 6 ? '\n' : k < 8 ? ' ' : k < 9 ? '\t' : 'a' + rnd() % 26);
                sb_put(&in, &c, 1);
                sb_put(&out, &c, 1);
            } else if (k < 80) {
                uint32_t cls = rnd() % 3, cp;
                if (cls == 0)
                    cp = 0xA0 + rnd() % (0x800 - 0xA0);
                else if (cls == 1) {
                    do
                        cp = 0x800 + rnd() % (0x10000 - 0x800);
                    while (cp >= 0xD800 && cp <= 0xDFFF);
                } else
                    cp = 0x10000 + rnd() % (0x110000 - 0x10000);
                size_t n = enc(cp, e);
                sb_put(&in, e, n);
                sb_put(&out, e, n);
            } else if (k < 90) {
                const char *s = escapes[rnd() % (sizeof escapes / sizeof escapes[0])];
                sb_put(&in, s, strlen(s));
            } else if (k < 97) {
                size_t j = rnd() % (sizeof bad / sizeof bad[0]);
                sb_put(&in, bad[j].in, strlen(bad[j].in));
                sb_put(&out, bad[j].out, strlen(bad[j].out));
            } else {
                snprintf(cwd, sizeof cwd, "/d/%u", (unsigned)rnd());
                sb_put(&in, OPEN, strlen(OPEN));
                sb_put(&in, cwd, strlen(cwd));
                sb_put(&in, CLOSE "\n", strlen(CLOSE) + 1);
            }
        }
        size_t limit = 1 + rnd() % (iter % 3 == 0 ? 40 : 600);
        size_t spill_max = iter % 4 == 0 ? 1 + rnd() % 500 : 0;
        sw_out_opts op = opts_of(limit, ID, dir, spill_max);
        sw_out *o = sw_out_new(&op);
        size_t pos = 0;
        int style = (int)(rnd() % 3);
        while (pos < in.n) {
            size_t c = style == 0 ? 1 : style == 1 ? 1 + rnd() % 7 : 1 + rnd() % 300;
            if (c > in.n - pos)
                c = in.n - pos;
            sw_out_feed(o, in.p + pos, c);
            pos += c;
        }
        sw_out_result r;
        sw_out_finish(o, &r);
        sw_out_free(o);
        model_text(out.p ? out.p : "", out.n, limit, &exp);
        size_t total = count_chars(out.p ? out.p : "", out.n);
        bool ok = r.text && r.text_len == exp.n && memcmp(r.text, exp.p, exp.n) == 0 && r.total_chars == total &&
                  r.truncated == (total > limit) && same_str(r.cwd, cwd[0] ? cwd : NULL) &&
                  valid_utf8(r.text, r.text_len);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "    iter %d limit %zu total %zu/%zu\n", iter, limit, r.total_chars, total);
            show("expected", exp.p, exp.n);
            show("got", r.text, r.text_len);
        }
        /* spill file: the processed stream, capped */
        CHECK((r.full_output_path != NULL) == (total > limit));
        if (r.full_output_path) {
            size_t fl, cap = spill_max ? spill_max : 5000000;
            char *f = read_all(r.full_output_path, &fl);
            sbuf se = {0};
            if (total <= cap) {
                sb_put(&se, out.p, out.n);
            } else {
                size_t b = 0, c = 0;
                while (c < cap) {
                    b++;
                    while (b < out.n && ((unsigned char)out.p[b] & 0xC0) == 0x80)
                        b++;
                    c++;
                }
                sb_put(&se, out.p, b);
                char note[100];
                int n = snprintf(note, sizeof note, "\n... [full output capped at %zu chars] ...\n", cap);
                sb_put(&se, note, (size_t)n);
            }
            bool fok = f && fl == se.n && memcmp(f, se.p, fl) == 0;
            CHECK(fok);
            if (!fok) {
                fprintf(stderr, "    iter %d spill mismatch\n", iter);
                show("expected", se.p, se.n);
                show("got", f ? f : "", fl);
            }
            free(f);
            free(se.p);
            unlink(r.full_output_path);
        }
        sw_out_result_free(&r);
    }
    free(in.p);
    free(out.p);
    free(exp.p);
    rm_rf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- large stream */

static void gen(char *b, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t g = off + i;
        size_t pos = g % 64;
        b[i] = (char)(pos == 63 ? '\n' : 'a' + (g / 64 + pos) % 26);
    }
}

static void test_large(void)
{
    char *dir = make_tmpdir();
    const size_t chunk = 65536, total = (size_t)50 * 1024 * 1024;
    char *buf = malloc(chunk);
    sw_out_opts op = opts_of(0, ID, dir, 0);
    long hwm0 = vm_hwm_kb();
    sw_out *o = sw_out_new(&op);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t off = 0; off < total; off += chunk) {
        gen(buf, off, chunk);
        sw_out_feed(o, buf, chunk);
    }
    sw_out_feed(o, MARK("/big"), strlen(MARK("/big")));
    sw_out_result r;
    sw_out_finish(o, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sw_out_free(o);
    long hwm1 = vm_hwm_kb();
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("info: 50 MB in 64 KB chunks (incl. generation) took %.3f s; VmHWM grew by %ld kB\n", secs,
           hwm1 - hwm0);

    CHECK(r.truncated);
    CHECK(r.total_chars == total);
    CHECK(same_str(r.cwd, "/big"));
    size_t nl = notice_len(total - 50000, total);
    CHECK(r.text_len <= 50000 + nl);
    char *exp = malloc(50000 + nl + 1);
    gen(exp, 0, 20000);
    snprintf(exp + 20000, nl + 1, "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
             total - 50000, total);
    gen(exp + 20000 + nl, total - 30000, 30000);
    /* the stream ends with '\n', trimmed away */
    CHECK(r.text_len == 50000 + nl - 1 && memcmp(r.text, exp, r.text_len) == 0);
    free(exp);
    CHECK(r.full_output_path != NULL);
    if (r.full_output_path) {
        struct stat st;
        const char note[] = "\n... [full output capped at 5000000 chars] ...\n";
        CHECK(stat(r.full_output_path, &st) == 0 && (size_t)st.st_size == 5000000 + sizeof note - 1);
        size_t fl;
        char *f = read_all(r.full_output_path, &fl);
        char *g = malloc(5000000);
        gen(g, 0, 5000000);
        CHECK(f && fl == 5000000 + sizeof note - 1 && memcmp(f, g, 5000000) == 0 &&
              memcmp(f + 5000000, note, sizeof note - 1) == 0);
        free(g);
        free(f);
    }
    if (hwm0 > 0 && hwm1 > 0)
        CHECK(hwm1 - hwm0 < 24 * 1024); /* far below the 50 MB streamed */
    sw_out_result_free(&r);
    free(buf);
    rm_rf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- prune */

static void touch(const char *dir, const char *name, time_t mtime, int kind)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    if (kind == 0) {
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    } else if (kind == 1) {
        mkdir(p, 0700);
    } else {
        if (symlink("/etc/passwd", p) != 0)
            perror("symlink");
    }
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
    free(p);
}

static bool exists(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    struct stat st;
    bool r = lstat(p, &st) == 0;
    free(p);
    return r;
}

static void test_prune(void)
{
    char *dir = make_tmpdir();
    time_t now = time(NULL), old = now - 10000;
    touch(dir, "out-1-2-deadbeef.log", old, 0);
    touch(dir, "out-x.log", old, 0);
    touch(dir, "out-new.log", now, 0);
    touch(dir, "other.log", old, 0);
    touch(dir, "out-1.txt", old, 0);
    touch(dir, "out-dir.log", old, 1);
    touch(dir, "out-link.log", old, 2);
    sw_out_prune_spills(dir, 3600);
    CHECK(!exists(dir, "out-1-2-deadbeef.log"));
    CHECK(!exists(dir, "out-x.log"));
    CHECK(exists(dir, "out-new.log"));
    CHECK(exists(dir, "other.log"));
    CHECK(exists(dir, "out-1.txt"));
    CHECK(exists(dir, "out-dir.log"));
    CHECK(exists(dir, "out-link.log"));
    CHECK(access("/etc/passwd", F_OK) == 0);
    touch(dir, "out-mid.log", now - 100, 0);
    sw_out_prune_spills(dir, 1000);
    CHECK(exists(dir, "out-mid.log"));
    sw_out_prune_spills(dir, 50);
    CHECK(!exists(dir, "out-mid.log"));
    sw_out_prune_spills(dir, -5); /* negative age: no-op */
    CHECK(exists(dir, "out-new.log"));
    sw_out_prune_spills(NULL, 0); /* must not crash */
    sw_out_prune_spills("/nonexistent/dir/for/sure", 0);
    rm_rf(dir);
    free(dir);

    /* real spill files are found by the pruner */
    dir = make_tmpdir();
    sw_out_opts op = opts_of(5, NULL, dir, 0);
    sw_out_result r;
    run_whole(&op, "0123456789", 10, &r);
    CHECK(r.full_output_path != NULL && count_entries(dir) == 1);
    if (r.full_output_path) {
        struct timespec ts[2] = {{old, 0}, {old, 0}};
        utimensat(AT_FDCWD, r.full_output_path, ts, 0);
    }
    sw_out_prune_spills(dir, 60);
    CHECK(count_entries(dir) == 0);
    sw_out_result_free(&r);
    rm_rf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- exit codes */

static void test_exit_codes(void)
{
    char b[256];
#define EC(cmd, code, expected)                                                                            \
    do {                                                                                                   \
        const char *m_ = sw_out_exit_code_meaning(cmd, code, b, sizeof b);                                 \
        bool ok_ = same_str(m_, expected) && (m_ == NULL || m_ == b);                                       \
        CHECK(ok_);                                                                                        \
        if (!ok_)                                                                                          \
            fprintf(stderr, "    exit_code_meaning(\"%s\", %d) = \"%s\"\n", (const char *)(cmd) ? (const char *)(cmd) : "(null)", \
                    code, m_ ? m_ : "(null)");                                                             \
    } while (0)
    const char *nomatch = "No matches found (not an error)";
    const char *differ = "Files differ (not an error)";
    const char *cfalse = "The condition was false (not an error)";
    EC("grep foo file", 1, nomatch);
    EC("egrep foo file", 1, nomatch);
    EC("fgrep foo file", 1, nomatch);
    EC("rg foo", 1, nomatch);
    EC("ag foo", 1, nomatch);
    EC("ack foo", 1, nomatch);
    EC("grep foo file", 2, NULL);
    EC("grep foo file", 0, NULL);
    EC("cat x | grep foo", 1, nomatch);
    EC("grep foo x | wc -l", 1, NULL);
    EC("LC_ALL=C FOO=bar /usr/bin/grep -r x .", 1, nomatch);
    EC("  \tgrep x", 1, nomatch);
    EC("cd /tmp && diff a b", 1, differ);
    EC("colordiff a b", 1, differ);
    EC("cmp a b", 1, differ);
    EC("make 2>&1 | rg error", 1, nomatch);
    EC("grep x f 2>&1", 1, nomatch);
    EC("grep x f &>/dev/null", 1, nomatch);
    EC("grep x f >| out", 1, nomatch);
    EC("true || grep x f", 1, nomatch);
    EC("ls; grep a b", 1, nomatch);
    EC("ls\ngrep a b\n", 1, nomatch);
    EC("grep a b &", 1, nomatch);
    EC("grep a b; ls", 1, NULL);
    EC("echo hi |& grep a", 1, nomatch);
    EC("find / -name x 2>/dev/null", 1, "Some paths could not be read; the results may still be useful");
    EC("[ -f /nope ]", 1, cfalse);
    EC("test -d x", 1, cfalse);
    EC("/usr/bin/test -d x", 1, cfalse);
    EC("curl -sf http://x", 6, "Could not resolve the host");
    EC("curl -sf http://x", 7, "Could not connect to the host");
    EC("curl -f http://x", 22, "The server answered with an HTTP error status (4xx/5xx)");
    EC("X=1 curl -m 1 http://x", 28, "The operation timed out");
    EC("curl http://x", 3, NULL);
    EC("curl http://x", 1, NULL);
    EC("git diff --exit-code", 1, "Non-zero status from git (often normal, e.g. git diff reports differences)");
    EC("git push", 128, NULL);
    EC("grepx a", 1, NULL);
    EC("mygrep a", 1, NULL);
    EC("", 1, NULL);
    EC("   ", 1, NULL);
    EC("FOO=1", 1, NULL);
    EC("FOO=1 BAR=2", 1, NULL);
    EC("=x grep", 1, NULL); /* "=x" is not an assignment, so it is the program */
    EC(NULL, 1, NULL);
    EC("grep a |", 1, nomatch);
    /* signals */
    EC("sleep 100", 137, "Killed by signal 9 (SIGKILL): often the out-of-memory killer or kill -9");
    EC("./a.out", 139, "Killed by signal 11 (SIGSEGV): segmentation fault: the program crashed");
    EC(NULL, 139, "Killed by signal 11 (SIGSEGV): segmentation fault: the program crashed");
    EC("x", 130, "Killed by signal 2 (SIGINT): interrupted, as by Ctrl-C");
    EC("x", 134, "Killed by signal 6 (SIGABRT): aborted: the program gave up, often on a failed assertion");
    EC("x", 141, "Killed by signal 13 (SIGPIPE): broken pipe: whatever read its output stopped reading (often harmless)");
    EC("x", 143, "Killed by signal 15 (SIGTERM): asked to terminate, e.g. by kill or a timeout");
    EC("x", 129, "Killed by signal 1 (SIGHUP): hangup: the terminal or session went away");
    EC("x", 138, "Killed by signal 10 (SIGUSR1)");
    EC("x", 128, NULL);
    EC("x", 193, NULL);
    EC("x", 255, NULL);
    EC("x", -1, NULL);
    EC("grep a", 137, "Killed by signal 9 (SIGKILL): often the out-of-memory killer or kill -9");
    /* every code in the signal range gets something */
    bool all = true;
    for (int c = 129; c <= 192; c++) {
        const char *m = sw_out_exit_code_meaning("x", c, b, sizeof b);
        char pre[40];
        snprintf(pre, sizeof pre, "Killed by signal %d", c - 128);
        all = all && m && strncmp(m, pre, strlen(pre)) == 0;
    }
    CHECK(all);
    /* small buffers truncate safely */
    char tiny[8];
    const char *m = sw_out_exit_code_meaning("grep a", 1, tiny, sizeof tiny);
    CHECK(m == tiny && strcmp(tiny, "No matc") == 0);
    CHECK(sw_out_exit_code_meaning("grep a", 1, tiny, 0) == NULL);
    CHECK(sw_out_exit_code_meaning("grep a", 1, NULL, 10) == NULL);
#undef EC
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    test_basic();
    test_at_limit();
    test_one_over();
    test_head_tail_sizes();
    test_multibyte_cut();
    test_utf8_valid_splits();
    test_utf8_invalid();
    test_ansi();
    test_ansi_long_strings();
    test_markers();
    test_trim();
    test_last_line();
    test_spill_cap_and_dirs();
    test_spill_write_error();
    test_random_model();
    test_large();
    test_prune();
    test_exit_codes();
    printf("%ld passed, %ld failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
