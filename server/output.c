/* server/output.c — the output pipeline (contract in output.h).
 *
 * Data flow for every chunk handed to sw_out_feed():
 *
 *   m_feed()      stage 1: cwd marker removal. In the common state nothing is held and the
 *                 chunk is scanned with memchr for '\n'; only a '\n' whose following bytes
 *                 (as far as the chunk goes) match the marker opening is held back. Held
 *                 bytes live in o->hold and are advanced one byte at a time (m_step); when
 *                 they turn out not to be a marker, m_reject() emits them, keeping back only
 *                 a suffix that could still start a marker.
 *   dec_feed()    stage 2 + 3: UTF-8 repair and ANSI removal. A SWAR fast path (fast_run)
 *                 passes runs of ASCII without ESC and well-formed multibyte characters other
 *                 than C1 controls straight to the sink; anything else goes one byte at a time
 *                 through a WHATWG-style decoder (u8_byte) and an escape-sequence state machine
 *                 (ansi_cp), whose output is batched.
 *   sink()        stage 4: head buffer (first 40 %), a byte ring for the tail, the spill file,
 *                 and the last-line tracker.
 *
 * The tail ring holds the last 4*T bytes (T = tail characters), which always contains the
 * last T characters; the exact cut is found at finish time by a backward scan. Because the
 * ring can only wrap once more than 4*T bytes have gone past the head, i.e. after more than
 * T characters, the ring still holds every post-head byte at the moment the stream first
 * exceeds the limit, which is when the spill file is created from head + ring.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "server/output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LIMIT ((size_t)50000)
#define DEFAULT_SPILL_MAX ((size_t)5000000)
#define MARKER_PATH_MAX ((size_t)65536) /* longest cwd path accepted inside a marker */
#define LL_CHARS ((size_t)200)          /* sw_out_last_line() cap, in characters */
#define LL_KEEP (LL_CHARS * 4)          /* bytes that always hold LL_CHARS characters */
#define SPILL_BUF ((size_t)65536)
#define BATCH_BYTES 4096
/* Longest payload of an OSC/DCS/SOS/PM/APC string sequence, in bytes of the stage-2 (UTF-8
 * repaired) stream; a longer one is abandoned so that an unterminated string (binary output,
 * a stray "ESC ]") cannot hide the rest of the output. */
#define ANSI_STR_MAX ((size_t)4096)

enum { M_NONE, M_OPEN, M_PATH, M_AFTER, M_AFTER_CR };
enum { A_GROUND, A_ESC, A_CSI, A_NF, A_OSC, A_STR, A_OSC_ESC, A_STR_ESC };

struct sw_out {
    /* options */
    size_t limit, head_max, tail_chars_max, spill_max;
    char *spill_dir;
    bool keep_ws;

    /* stage 1: marker */
    char *open;          /* "\n__SHELLWIRE_CWD_<id>__", NULL when no marker handling */
    size_t open_len;
    const char *close;   /* open + 1 */
    size_t close_len;
    int mstate;
    char *hold;
    size_t hold_len, hold_cap;
    size_t m_path_len;   /* path length once the closing tag was seen */
    char *cwd;

    /* stage 2: UTF-8 */
    uint32_t u8_cp;
    unsigned u8_need, u8_seen;
    unsigned char u8_lo, u8_hi;

    /* stage 3: ANSI */
    int astate;
    size_t astr_len;     /* payload bytes of the current A_OSC/A_STR string so far */
    char batch[BATCH_BYTES];
    size_t batch_len, batch_chars;

    /* stage 4: capture */
    char *head;
    size_t head_len, head_cap, head_chars;
    char *tail;          /* ring of at most tail_max bytes */
    size_t tail_len, tail_cap, tail_start, tail_max;
    size_t total;

    /* spill */
    int spill_fd;
    bool spill_tried, spill_capped;
    char *spill_path;
    size_t spill_chars;
    char *sbuf;
    size_t sbuf_len;

    /* last line */
    char *ll_cur;        /* tail of the current (unterminated) line, up to 2*LL_KEEP bytes */
    size_t ll_cur_len;
    bool ll_cur_nonblank;
    char *ll_last;       /* tail of the newest complete non-blank line, up to LL_KEEP bytes */
    size_t ll_last_len;

    bool finished;
};

/* ---------------------------------------------------------------- small helpers */

static bool grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap)
        return true;
    if (need > max)
        return false;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > max)
        n = max;
    char *p = realloc(*buf, n);
    if (!p)
        return false;
    *buf = p;
    *cap = n;
    return true;
}

/* Byte offset just past the first k characters of valid UTF-8 s[0..n). */
static size_t u8_skip(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        k--;
    }
    return i;
}

static size_t u8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool has_nonblank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_space((unsigned char)s[i]))
            return true;
    return false;
}

/* ---------------------------------------------------------------- last line */

static void ll_cur_append(sw_out *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (n >= LL_KEEP) {
        memcpy(o->ll_cur, s + n - LL_KEEP, LL_KEEP);
        o->ll_cur_len = LL_KEEP;
        return;
    }
    if (o->ll_cur_len + n > 2 * LL_KEEP) {
        size_t keep = 2 * LL_KEEP - n; /* > LL_KEEP */
        memmove(o->ll_cur, o->ll_cur + o->ll_cur_len - keep, keep);
        o->ll_cur_len = keep;
    }
    memcpy(o->ll_cur + o->ll_cur_len, s, n);
    o->ll_cur_len += n;
}

/* ll_last = the last LL_KEEP bytes of a ++ b. */
static void ll_set_last(sw_out *o, const char *a, size_t an, const char *b, size_t bn)
{
    if (bn >= LL_KEEP) {
        memcpy(o->ll_last, b + bn - LL_KEEP, LL_KEEP);
        o->ll_last_len = LL_KEEP;
        return;
    }
    size_t fa = LL_KEEP - bn < an ? LL_KEEP - bn : an;
    if (fa)
        memcpy(o->ll_last, a + an - fa, fa);
    if (bn)
        memcpy(o->ll_last + fa, b, bn);
    o->ll_last_len = fa + bn;
}

/* Last '\n' or '\r' in s[0..n), or NULL. */
static const char *last_sep(const char *s, size_t n)
{
    if (n == 0)
        return NULL;
    const char *p = memrchr(s, '\n', n);
    size_t from = p ? (size_t)(p - s) + 1 : 0;
    const char *q = from < n ? memrchr(s + from, '\r', n - from) : NULL;
    return q ? q : p;
}

/* '\r' counts as a line end too: progress bars redraw their line with it. */
static void ll_feed(sw_out *o, const char *s, size_t n)
{
    const char *sep = last_sep(s, n);
    if (!sep) {
        ll_cur_append(o, s, n);
        if (!o->ll_cur_nonblank)
            o->ll_cur_nonblank = has_nonblank(s, n);
        return;
    }
    size_t q = (size_t)(sep - s), j = q;
    while (j > 0 && is_space((unsigned char)s[j - 1]))
        j--;
    if (j > 0) {
        /* s[j-1] is the newest non-blank byte before the last line end: take its line */
        const char *ps = last_sep(s, j);
        size_t start = ps ? (size_t)(ps - s) + 1 : 0, end = j;
        while (end < q && s[end] != '\n' && s[end] != '\r')
            end++;
        if (start == 0)
            ll_set_last(o, o->ll_cur, o->ll_cur_len, s, end);
        else
            ll_set_last(o, NULL, 0, s + start, end - start);
    } else if (o->ll_cur_nonblank) {
        ll_set_last(o, o->ll_cur, o->ll_cur_len, NULL, 0);
    }
    o->ll_cur_len = 0;
    ll_cur_append(o, s + q + 1, n - q - 1);
    o->ll_cur_nonblank = has_nonblank(s + q + 1, n - q - 1);
}

/* Trimmed last LL_CHARS characters of s[0..n), malloc'd; NULL if blank. */
static char *ll_render(const char *s, size_t n)
{
    size_t a = 0, b = n;
    while (a < b && ((unsigned char)s[a] & 0xC0) == 0x80)
        a++; /* the buffer may start in the middle of a character */
    while (a < b && is_space((unsigned char)s[a]))
        a++;
    while (b > a && is_space((unsigned char)s[b - 1]))
        b--;
    if (a == b)
        return NULL;
    size_t i = b, got = 0;
    while (i > a && got < LL_CHARS) {
        i--;
        got += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    while (i < b && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    char *r = malloc(b - i + 1);
    if (!r)
        return NULL;
    memcpy(r, s + i, b - i);
    r[b - i] = '\0';
    return r;
}

char *sw_out_last_line(const sw_out *o)
{
    if (!o)
        return NULL;
    char *r = NULL;
    if (o->ll_cur_nonblank)
        r = ll_render(o->ll_cur, o->ll_cur_len);
    if (!r && o->ll_last_len)
        r = ll_render(o->ll_last, o->ll_last_len);
    return r;
}

/* ---------------------------------------------------------------- spill file */

static void spill_fail(sw_out *o)
{
    if (o->spill_fd >= 0) {
        (void)close(o->spill_fd);
        o->spill_fd = -1;
    }
    if (o->spill_path) {
        (void)unlink(o->spill_path);
        free(o->spill_path);
        o->spill_path = NULL;
    }
    free(o->sbuf);
    o->sbuf = NULL;
    o->sbuf_len = 0;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (w == 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void spill_flush(sw_out *o)
{
    if (o->spill_fd < 0 || o->sbuf_len == 0)
        return;
    size_t n = o->sbuf_len;
    o->sbuf_len = 0;
    if (!write_all(o->spill_fd, o->sbuf, n))
        spill_fail(o);
}

static void spill_raw(sw_out *o, const char *s, size_t n)
{
    if (o->spill_fd < 0 || n == 0)
        return;
    if (o->sbuf_len + n > SPILL_BUF) {
        spill_flush(o);
        if (o->spill_fd < 0)
            return;
    }
    if (n >= SPILL_BUF) {
        if (!write_all(o->spill_fd, s, n))
            spill_fail(o);
        return;
    }
    memcpy(o->sbuf + o->sbuf_len, s, n);
    o->sbuf_len += n;
}

/* Writes nc characters (nb bytes of valid UTF-8), honouring spill_max. */
static void spill_chars(sw_out *o, const char *s, size_t nb, size_t nc)
{
    if (o->spill_fd < 0 || o->spill_capped || nb == 0)
        return;
    if (o->spill_chars + nc <= o->spill_max) {
        spill_raw(o, s, nb);
        o->spill_chars += nc;
        return;
    }
    size_t room = o->spill_max - o->spill_chars;
    spill_raw(o, s, nb == nc ? room : u8_skip(s, nb, room));
    o->spill_chars = o->spill_max;
    char note[96];
    int w = snprintf(note, sizeof note, "\n... [full output capped at %zu chars] ...\n", o->spill_max);
    if (w > 0 && (size_t)w < sizeof note)
        spill_raw(o, note, (size_t)w);
    o->spill_capped = true;
}

static int mkdir_p(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -1;
    if (errno != ENOENT)
        return -1;
    size_t n = strlen(dir);
    char *tmp = malloc(n + 1);
    if (!tmp)
        return -1;
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && tmp[i] != '/')
            continue;
        char save = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            free(tmp);
            return -1;
        }
        tmp[i] = save;
    }
    free(tmp);
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static uint32_t random32(const void *salt, unsigned attempt)
{
    uint32_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, &r, sizeof r);
        (void)close(fd);
        if (got == (ssize_t)sizeof r)
            return r;
    }
    /* Fallback: not secret, but O_EXCL keeps the open safe anyway. */
    struct timespec ts = {0, 0};
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        ts.tv_nsec = 0;
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)salt ^
                 ((uint64_t)attempt * 0x9E3779B97F4A7C15ull) ^ (uint64_t)getpid();
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static void tail_write_to_spill(sw_out *o);

static void spill_start(sw_out *o)
{
    o->spill_tried = true;
    if (!o->spill_dir || mkdir_p(o->spill_dir) != 0)
        return;
    time_t now = time(NULL);
    if (now == (time_t)-1)
        now = 0;
    size_t dl = strlen(o->spill_dir);
    const char *sep = dl > 0 && o->spill_dir[dl - 1] == '/' ? "" : "/";
    size_t cap = dl + 96;
    char *path = malloc(cap);
    if (!path)
        return;
    int fd = -1;
    for (unsigned attempt = 0; attempt < 16 && fd < 0; attempt++) {
        int w = snprintf(path, cap, "%s%sout-%lld-%ld-%08x.log", o->spill_dir, sep, (long long)now,
                         (long)getpid(), (unsigned)random32(o, attempt));
        if (w < 0 || (size_t)w >= cap)
            break;
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        free(path);
        return;
    }
    o->spill_fd = fd;
    o->spill_path = path;
    o->sbuf = malloc(SPILL_BUF);
    if (!o->sbuf) {
        spill_fail(o);
        return;
    }
    spill_chars(o, o->head, o->head_len, o->head_chars);
    tail_write_to_spill(o);
}

/* ---------------------------------------------------------------- capture */

static void tail_append(sw_out *o, const char *s, size_t n)
{
    size_t max = o->tail_max;
    if (n == 0 || max == 0)
        return;
    if (n >= max) {
        if (!grow(&o->tail, &o->tail_cap, max, max))
            return;
        memcpy(o->tail, s + n - max, max);
        o->tail_start = 0;
        o->tail_len = max;
        return;
    }
    if (o->tail_start == 0 && o->tail_len + n <= max) {
        if (!grow(&o->tail, &o->tail_cap, o->tail_len + n, max))
            return;
        memcpy(o->tail + o->tail_len, s, n);
        o->tail_len += n;
        return;
    }
    if (!grow(&o->tail, &o->tail_cap, max, max))
        return;
    size_t end = o->tail_start + o->tail_len; /* < 2 * max */
    if (end >= max)
        end -= max;
    size_t first = max - end < n ? max - end : n;
    memcpy(o->tail + end, s, first);
    if (n > first)
        memcpy(o->tail, s + first, n - first);
    size_t nl = o->tail_len + n;
    if (nl > max) {
        o->tail_start += nl - max; /* nl - max < max */
        if (o->tail_start >= max)
            o->tail_start -= max;
        nl = max;
    }
    o->tail_len = nl;
}

static void tail_write_to_spill(sw_out *o)
{
    /* Never wrapped at this point (see the file comment); handled generally anyway. */
    size_t max = o->tail_max, a = o->tail_start;
    size_t n1 = o->tail_len < max - a ? o->tail_len : max - a;
    if (o->tail_len == 0)
        return;
    spill_chars(o, o->tail + a, n1, u8_count(o->tail + a, n1));
    if (o->tail_len > n1)
        spill_chars(o, o->tail, o->tail_len - n1, u8_count(o->tail, o->tail_len - n1));
}

static void reverse(char *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        char t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

static void tail_linearize(sw_out *o)
{
    if (o->tail_start == 0)
        return;
    /* full ring: tail_len == tail_max == tail_cap */
    reverse(o->tail, o->tail_start);
    reverse(o->tail + o->tail_start, o->tail_len - o->tail_start);
    reverse(o->tail, o->tail_len);
    o->tail_start = 0;
}

/* Stage 4 entry: nb bytes of valid UTF-8 holding nc characters. */
static void sink(sw_out *o, const char *s, size_t nb, size_t nc)
{
    if (nb == 0)
        return;
    ll_feed(o, s, nb);
    if (o->head_chars < o->head_max) {
        size_t room = o->head_max - o->head_chars;
        size_t tc = nc < room ? nc : room;
        size_t tb = tc == nc ? nb : nb == nc ? tc : u8_skip(s, nb, tc);
        if (grow(&o->head, &o->head_cap, o->head_len + tb, o->head_max * 4)) {
            memcpy(o->head + o->head_len, s, tb);
            o->head_len += tb;
        }
        o->head_chars += tc;
        o->total += tc;
        s += tb;
        nb -= tb;
        nc -= tc;
        if (nb == 0)
            return;
    }
    if (!o->spill_tried && o->total + nc > o->limit)
        spill_start(o);
    if (o->spill_fd >= 0 && !o->spill_capped)
        spill_chars(o, s, nb, nc);
    tail_append(o, s, nb);
    o->total += nc;
}

/* ---------------------------------------------------------------- stage 3: ANSI */

static void batch_flush(sw_out *o)
{
    if (o->batch_len == 0)
        return;
    size_t nb = o->batch_len, nc = o->batch_chars;
    o->batch_len = 0;
    o->batch_chars = 0;
    sink(o, o->batch, nb, nc);
}

static void emit_cp(sw_out *o, uint32_t cp)
{
    if (o->batch_len + 4 > sizeof o->batch)
        batch_flush(o);
    char *p = o->batch + o->batch_len;
    if (cp < 0x80) {
        p[0] = (char)cp;
        o->batch_len += 1;
    } else if (cp < 0x800) {
        p[0] = (char)(0xC0 | (cp >> 6));
        p[1] = (char)(0x80 | (cp & 0x3F));
        o->batch_len += 2;
    } else if (cp < 0x10000) {
        p[0] = (char)(0xE0 | (cp >> 12));
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        o->batch_len += 3;
    } else {
        p[0] = (char)(0xF0 | (cp >> 18));
        p[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        p[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[3] = (char)(0x80 | (cp & 0x3F));
        o->batch_len += 4;
    }
    o->batch_chars++;
}

static void ansi_cp(sw_out *o, uint32_t cp)
{
    for (;;) {
        switch (o->astate) {
        case A_GROUND:
            if (cp == 0x1B) {
                o->astate = A_ESC;
            } else if (cp >= 0x80 && cp <= 0x9F) {
                o->astr_len = 0;
                if (cp == 0x9B)
                    o->astate = A_CSI;
                else if (cp == 0x9D)
                    o->astate = A_OSC;
                else if (cp == 0x90 || cp == 0x98 || cp == 0x9E || cp == 0x9F)
                    o->astate = A_STR;
                /* any other C1 control is dropped */
            } else {
                emit_cp(o, cp);
            }
            return;
        case A_ESC:
            o->astr_len = 0;
            if (cp == '[')
                o->astate = A_CSI;
            else if (cp == ']')
                o->astate = A_OSC;
            else if (cp == 'P' || cp == 'X' || cp == '^' || cp == '_')
                o->astate = A_STR;
            else if (cp >= 0x20 && cp <= 0x2F)
                o->astate = A_NF;
            else if ((cp >= 0x30 && cp <= 0x7E) || cp == 0x18 || cp == 0x1A)
                o->astate = A_GROUND; /* Fp/Fe/Fs escape, or cancelled */
            else if (cp == 0x7F)
                ; /* DEL is ignored inside sequences */
            else {
                o->astate = A_GROUND; /* lone ESC: drop it, reprocess cp */
                continue;
            }
            return;
        case A_CSI:
        case A_NF:
            if (cp >= 0x20 && cp <= (o->astate == A_CSI ? 0x3Fu : 0x2Fu))
                return;                         /* parameter / intermediate */
            if (cp >= (o->astate == A_CSI ? 0x40u : 0x30u) && cp <= 0x7E) {
                o->astate = A_GROUND;           /* final byte */
                return;
            }
            if (cp == 0x7F)
                return;                         /* DEL is ignored inside sequences */
            o->astate = A_GROUND;
            if (cp == 0x18 || cp == 0x1A)
                return;                         /* CAN / SUB cancel the sequence */
            continue;                           /* malformed: abort, reprocess cp */
        case A_OSC:
        case A_STR:
            if (cp == 0x9C || (cp == 0x07 && o->astate == A_OSC) || cp == 0x18 || cp == 0x1A)
                o->astate = A_GROUND;
            else if (cp == 0x1B)
                o->astate = o->astate == A_OSC ? A_OSC_ESC : A_STR_ESC;
            else {
                size_t w = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (o->astr_len + w > ANSI_STR_MAX) {
                    /* over-long: abandon the string (what it swallowed stays dropped)
                     * and reprocess cp as text */
                    o->astate = A_GROUND;
                    continue;
                }
                o->astr_len += w;
            }
            return;
        case A_OSC_ESC:
        case A_STR_ESC:
            if (cp == '\\') {
                o->astate = A_GROUND;
                return;
            }
            o->astate = A_ESC; /* the ESC ended the string and starts a new sequence */
            continue;
        default:
            o->astate = A_GROUND;
            continue;
        }
    }
}

/* ---------------------------------------------------------------- stage 2: UTF-8 */

static void u8_reset(sw_out *o)
{
    o->u8_need = 0;
    o->u8_seen = 0;
    o->u8_cp = 0;
    o->u8_lo = 0x80;
    o->u8_hi = 0xBF;
}

/* WHATWG UTF-8 decoder: one U+FFFD per maximal subpart of an ill-formed sequence. */
static void u8_byte(sw_out *o, unsigned char b)
{
    if (o->u8_need == 0) {
        if (b < 0x80) {
            ansi_cp(o, b);
        } else if (b >= 0xC2 && b <= 0xDF) {
            o->u8_need = 1;
            o->u8_cp = b & 0x1Fu;
        } else if (b >= 0xE0 && b <= 0xEF) {
            if (b == 0xE0)
                o->u8_lo = 0xA0;
            else if (b == 0xED)
                o->u8_hi = 0x9F;
            o->u8_need = 2;
            o->u8_cp = b & 0x0Fu;
        } else if (b >= 0xF0 && b <= 0xF4) {
            if (b == 0xF0)
                o->u8_lo = 0x90;
            else if (b == 0xF4)
                o->u8_hi = 0x8F;
            o->u8_need = 3;
            o->u8_cp = b & 0x07u;
        } else {
            ansi_cp(o, 0xFFFD);
        }
        return;
    }
    if (b < o->u8_lo || b > o->u8_hi) {
        u8_reset(o);
        ansi_cp(o, 0xFFFD);
        u8_byte(o, b); /* at most one level deep: u8_need is 0 now */
        return;
    }
    o->u8_lo = 0x80;
    o->u8_hi = 0xBF;
    o->u8_cp = (o->u8_cp << 6) | (b & 0x3Fu);
    if (++o->u8_seen == o->u8_need) {
        uint32_t cp = o->u8_cp;
        u8_reset(o);
        ansi_cp(o, cp);
    }
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Length of the leading run of s that needs no decoding: ASCII other than ESC, and
 * complete well-formed multibyte characters other than C1 controls. *chars gets its
 * character count. */
static size_t fast_run(const unsigned char *s, size_t n, size_t *chars)
{
    size_t i = 0, cont = 0;
    for (;;) {
        while (i + 16 <= n) {
            uint64_t a, b;
            memcpy(&a, s + i, 8);
            memcpy(&b, s + i + 8, 8);
            uint64_t ea = a ^ (ONES * 0x1B), eb = b ^ (ONES * 0x1B);
            uint64_t bad = ((a | b) & HIGHS) | ((ea - ONES) & ~ea & HIGHS) | ((eb - ONES) & ~eb & HIGHS);
            if (bad)
                break;
            i += 16;
        }
        while (i < n && s[i] < 0x80 && s[i] != 0x1B)
            i++;
        if (i >= n || s[i] == 0x1B)
            break;
        while (i < n && s[i] >= 0x80) {
            unsigned char c = s[i];
            if (c >= 0xC2 && c <= 0xDF) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80 || (c == 0xC2 && s[i + 1] < 0xA0))
                    goto out;
                i += 2;
                cont += 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (i + 2 >= n)
                    goto out;
                unsigned char c1 = s[i + 1];
                unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
                if (c1 < lo || c1 > hi || (s[i + 2] & 0xC0) != 0x80)
                    goto out;
                i += 3;
                cont += 2;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (i + 3 >= n)
                    goto out;
                unsigned char c1 = s[i + 1];
                unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
                if (c1 < lo || c1 > hi || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                    goto out;
                i += 4;
                cont += 3;
            } else {
                goto out;
            }
        }
    }
out:
    *chars = i - cont;
    return i;
}

static void dec_feed(sw_out *o, const char *buf, size_t n)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < n) {
        if (o->u8_need == 0 && o->astate == A_GROUND) {
            size_t chars;
            size_t run = fast_run(s + i, n - i, &chars);
            if (run) {
                if (run <= sizeof o->batch - o->batch_len && run < 256) {
                    memcpy(o->batch + o->batch_len, buf + i, run); /* short: coalesce */
                    o->batch_len += run;
                    o->batch_chars += chars;
                } else {
                    batch_flush(o);
                    sink(o, buf + i, run, chars);
                }
                i += run;
                if (i >= n)
                    break;
            }
            if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
                /* a complete, well-formed CSI inside this buffer: drop it without the
                 * state machine (which handles every other case) */
                size_t j = i + 2;
                while (j < n && s[j] >= 0x20 && s[j] <= 0x3F)
                    j++;
                if (j < n && s[j] >= 0x40 && s[j] <= 0x7E) {
                    i = j + 1;
                    continue;
                }
            }
        }
        u8_byte(o, s[i]);
        i++;
    }
    batch_flush(o);
}

/* ---------------------------------------------------------------- stage 1: marker */

static bool hold_reserve(sw_out *o, size_t extra)
{
    return grow(&o->hold, &o->hold_cap, o->hold_len + extra,
                o->open_len + MARKER_PATH_MAX + o->close_len + 2);
}

/* What state a held buffer d[0..len) (d[0] == '\n') would be in, or -1 if it cannot be
 * the start of a marker. Mirrors m_step(). */
static int m_classify(const sw_out *o, const char *d, size_t len, size_t *path_len)
{
    if (len < o->open_len)
        return memcmp(d, o->open, len) == 0 ? M_OPEN : -1;
    if (memcmp(d, o->open, o->open_len) != 0)
        return -1;
    const char *p = d + o->open_len;
    size_t pl = len - o->open_len;
    if (pl > MARKER_PATH_MAX + o->close_len || (pl && memchr(p, 0, pl)))
        return -1;
    const char *c = pl ? memmem(p, pl, o->close, o->close_len) : NULL;
    if (!c)
        return M_PATH;
    size_t plen = (size_t)(c - p), end = plen + o->close_len;
    if (plen == 0)
        return -1;
    *path_len = plen;
    if (end == pl)
        return M_AFTER;
    if (end + 1 == pl && p[end] == '\r')
        return M_AFTER_CR;
    return -1; /* a complete marker inside held bytes: impossible for ids without '\n' */
}

/* The held bytes are not a marker: emit them, except a suffix that may still be one. */
static void m_reject(sw_out *o)
{
    size_t from = 1;
    for (;;) {
        const char *p = from < o->hold_len ? memchr(o->hold + from, '\n', o->hold_len - from) : NULL;
        if (!p) {
            size_t n = o->hold_len;
            o->hold_len = 0;
            o->mstate = M_NONE;
            dec_feed(o, o->hold, n);
            return;
        }
        size_t k = (size_t)(p - o->hold), pl = 0;
        int st = m_classify(o, p, o->hold_len - k, &pl);
        if (st >= 0) {
            dec_feed(o, o->hold, k);
            memmove(o->hold, o->hold + k, o->hold_len - k);
            o->hold_len -= k;
            o->mstate = st;
            o->m_path_len = pl;
            return;
        }
        from = k + 1;
    }
}

static void m_accept(sw_out *o)
{
    char *c = malloc(o->m_path_len + 1);
    if (c) {
        memcpy(c, o->hold + o->open_len, o->m_path_len);
        c[o->m_path_len] = '\0';
        free(o->cwd);
        o->cwd = c;
    }
    o->hold_len = 0;
    o->mstate = M_NONE;
}

/* Advances a held marker by one byte; false if c was not consumed (reprocess it). */
static bool m_step(sw_out *o, unsigned char c)
{
    switch (o->mstate) {
    case M_OPEN:
        if (c == (unsigned char)o->open[o->hold_len] && hold_reserve(o, 1)) {
            o->hold[o->hold_len++] = (char)c;
            if (o->hold_len == o->open_len)
                o->mstate = M_PATH;
            return true;
        }
        m_reject(o);
        return false;
    case M_PATH: {
        size_t after = o->hold_len - o->open_len;
        if (c == 0 || after >= MARKER_PATH_MAX + o->close_len || !hold_reserve(o, 1)) {
            m_reject(o);
            return false;
        }
        o->hold[o->hold_len++] = (char)c;
        after++;
        if (c == (unsigned char)o->close[o->close_len - 1] && after >= o->close_len &&
            memcmp(o->hold + o->hold_len - o->close_len, o->close, o->close_len) == 0) {
            if (after == o->close_len) {
                m_reject(o); /* empty path: not a marker */
                return true;
            }
            o->m_path_len = after - o->close_len;
            o->mstate = M_AFTER;
        }
        return true;
    }
    case M_AFTER:
    case M_AFTER_CR:
        if (c == '\n') {
            m_accept(o);
            return true;
        }
        if (c == '\r' && o->mstate == M_AFTER && hold_reserve(o, 1)) {
            o->hold[o->hold_len++] = (char)c;
            o->mstate = M_AFTER_CR; /* tolerate "\r\n" from a tty's onlcr */
            return true;
        }
        m_reject(o);
        return false;
    default:
        o->mstate = M_NONE;
        return false;
    }
}

static void m_feed(sw_out *o, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (o->mstate != M_NONE) {
            if (m_step(o, (unsigned char)s[i]))
                i++;
            continue;
        }
        size_t start = i;
        for (;;) {
            size_t k;
            if (s[i] == '\n') {
                k = i;
            } else {
                const char *p = memchr(s + i, '\n', n - i);
                if (!p) {
                    dec_feed(o, s + start, n - start);
                    return;
                }
                k = (size_t)(p - s);
            }
            size_t avail = n - k;
            size_t cmp = avail < o->open_len ? avail : o->open_len;
            if ((cmp > 1 && s[k + 1] != o->open[1]) || memcmp(s + k, o->open, cmp) != 0 ||
                !hold_reserve(o, cmp)) {
                i = k + 1;
                if (i == n) {
                    dec_feed(o, s + start, n - start);
                    return;
                }
                continue;
            }
            dec_feed(o, s + start, k - start);
            memcpy(o->hold, s + k, cmp);
            o->hold_len = cmp;
            o->mstate = cmp == o->open_len ? M_PATH : M_OPEN;
            i = k + cmp;
            break;
        }
    }
}

/* ---------------------------------------------------------------- public API */

sw_out *sw_out_new(const sw_out_opts *opts)
{
    sw_out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->spill_fd = -1;
    u8_reset(o);
    size_t limit = opts && opts->limit_chars ? opts->limit_chars : DEFAULT_LIMIT;
    if (limit > SIZE_MAX / 16)
        limit = SIZE_MAX / 16;
    o->limit = limit;
    o->head_max = limit / 5 * 2 + limit % 5 * 2 / 5; /* floor(0.4 * limit) */
    o->tail_chars_max = limit - o->head_max;
    o->tail_max = o->tail_chars_max * 4;
    o->spill_max = opts && opts->spill_max_chars ? opts->spill_max_chars : DEFAULT_SPILL_MAX;
    o->keep_ws = opts && opts->keep_whitespace;
    o->ll_cur = malloc(2 * LL_KEEP);
    o->ll_last = malloc(LL_KEEP);
    if (!o->ll_cur || !o->ll_last)
        goto oom;
    if (opts && opts->spill_dir) {
        o->spill_dir = strdup(opts->spill_dir);
        if (!o->spill_dir)
            goto oom;
    }
    if (opts && opts->marker_id) {
        static const char pre[] = "\n__SHELLWIRE_CWD_";
        size_t il = strlen(opts->marker_id);
        o->open_len = sizeof pre - 1 + il + 2;
        o->open = malloc(o->open_len + 1);
        if (!o->open)
            goto oom;
        memcpy(o->open, pre, sizeof pre - 1);
        memcpy(o->open + sizeof pre - 1, opts->marker_id, il);
        memcpy(o->open + sizeof pre - 1 + il, "__", 3);
        o->close = o->open + 1;
        o->close_len = o->open_len - 1;
    }
    return o;
oom:
    sw_out_free(o);
    return NULL;
}

void sw_out_feed(sw_out *o, const char *buf, size_t len)
{
    if (!o || o->finished || !buf || len == 0)
        return;
    if (o->open)
        m_feed(o, buf, len);
    else
        dec_feed(o, buf, len);
}

static bool is_trim_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void build_text(sw_out *o, sw_out_result *r)
{
    tail_linearize(o);
    const char *tail = o->tail;
    size_t tlen = o->tail_len;
    char notice[160];
    size_t nlen = 0;
    if (o->total > o->limit) {
        size_t i = tlen, got = 0;
        while (i > 0 && got < o->tail_chars_max) {
            i--;
            got += ((unsigned char)tail[i] & 0xC0) != 0x80;
        }
        while (i < tlen && ((unsigned char)tail[i] & 0xC0) == 0x80)
            i++;
        tail += i;
        tlen -= i;
        size_t omitted = o->total - o->head_chars - got;
        int w = snprintf(notice, sizeof notice,
                         "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                         omitted, o->total);
        nlen = w > 0 && (size_t)w < sizeof notice ? (size_t)w : 0;
    }
    size_t len = o->head_len + nlen + tlen;
    char *t = malloc(len + 1);
    if (!t)
        return;
    if (o->head_len)
        memcpy(t, o->head, o->head_len);
    if (nlen)
        memcpy(t + o->head_len, notice, nlen);
    if (tlen)
        memcpy(t + o->head_len + nlen, tail, tlen);

    /* drop leading whitespace-only lines, then all trailing whitespace */
    size_t a = 0;
    for (size_t i = 0; i < len && !o->keep_ws; i++) {
        if (t[i] == '\n')
            a = i + 1;
        else if (t[i] != ' ' && t[i] != '\t' && t[i] != '\r')
            break;
    }
    size_t b = len;
    while (b > a && !o->keep_ws && is_trim_ws(t[b - 1]))
        b--;
    if (a)
        memmove(t, t + a, b - a);
    t[b - a] = '\0';
    char *shrunk = realloc(t, b - a + 1);
    r->text = shrunk ? shrunk : t;
    r->text_len = b - a;
}

void sw_out_finish(sw_out *o, sw_out_result *r)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    if (!o || o->finished) {
        r->text = calloc(1, 1);
        return;
    }
    switch (o->mstate) {
    case M_AFTER:
    case M_AFTER_CR:
        m_accept(o); /* marker at the very end without its final newline */
        break;
    case M_OPEN:
    case M_PATH: {
        size_t n = o->hold_len;
        o->hold_len = 0;
        o->mstate = M_NONE;
        dec_feed(o, o->hold, n);
        break;
    }
    default:
        break;
    }
    if (o->u8_need) {
        u8_reset(o);
        ansi_cp(o, 0xFFFD);
    }
    o->astate = A_GROUND; /* an unfinished escape sequence is dropped */
    batch_flush(o);
    o->finished = true;

    build_text(o, r);
    r->total_chars = o->total;
    r->truncated = o->total > o->limit;
    if (o->spill_fd >= 0) {
        spill_flush(o);
        if (o->spill_fd >= 0) {
            int fd = o->spill_fd;
            o->spill_fd = -1;
            if (close(fd) != 0) {
                spill_fail(o);
            } else {
                r->full_output_path = o->spill_path;
                o->spill_path = NULL;
            }
        }
        free(o->sbuf);
        o->sbuf = NULL;
    }
    r->cwd = o->cwd;
    o->cwd = NULL;
}

void sw_out_free(sw_out *o)
{
    if (!o)
        return;
    if (o->spill_fd >= 0)
        spill_fail(o); /* never finished: the partial spill file is useless */
    free(o->spill_path);
    free(o->sbuf);
    free(o->spill_dir);
    free(o->open);
    free(o->hold);
    free(o->cwd);
    free(o->head);
    free(o->tail);
    free(o->ll_cur);
    free(o->ll_last);
    free(o);
}

void sw_out_result_free(sw_out_result *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->full_output_path);
    free(r->cwd);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- spill pruning */

void sw_out_prune_spills(const char *dir, long max_age_seconds)
{
    if (!dir || max_age_seconds < 0)
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        (void)close(dfd);
        return;
    }
    time_t now = time(NULL);
    if (now == (time_t)-1) {
        (void)closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (n < 8 || memcmp(name, "out-", 4) != 0 || memcmp(name + n - 4, ".log", 4) != 0)
            continue;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (st.st_mtime < now && (long long)(now - st.st_mtime) > (long long)max_age_seconds)
            (void)unlinkat(dfd, name, 0); /* best effort */
    }
    (void)closedir(d);
}

/* ---------------------------------------------------------------- exit codes */

static const struct {
    int sig;
    const char *name, *why;
} sigtab[] = {
    {SIGHUP, "SIGHUP", "hangup: the terminal or session went away"},
    {SIGINT, "SIGINT", "interrupted, as by Ctrl-C"},
    {SIGQUIT, "SIGQUIT", "quit, as by Ctrl-\\"},
    {SIGILL, "SIGILL", "illegal instruction: the program crashed"},
    {SIGTRAP, "SIGTRAP", NULL},
    {SIGABRT, "SIGABRT", "aborted: the program gave up, often on a failed assertion"},
    {SIGBUS, "SIGBUS", "bus error: the program crashed on a bad memory access"},
    {SIGFPE, "SIGFPE", "arithmetic error such as division by zero"},
    {SIGKILL, "SIGKILL", "often the out-of-memory killer or kill -9"},
    {SIGUSR1, "SIGUSR1", NULL},
    {SIGSEGV, "SIGSEGV", "segmentation fault: the program crashed"},
    {SIGUSR2, "SIGUSR2", NULL},
    {SIGPIPE, "SIGPIPE", "broken pipe: whatever read its output stopped reading (often harmless)"},
    {SIGALRM, "SIGALRM", "a timer expired"},
    {SIGTERM, "SIGTERM", "asked to terminate, e.g. by kill or a timeout"},
#ifdef SIGSTKFLT
    {SIGSTKFLT, "SIGSTKFLT", NULL},
#endif
    {SIGCHLD, "SIGCHLD", NULL},
    {SIGCONT, "SIGCONT", NULL},
    {SIGSTOP, "SIGSTOP", NULL},
    {SIGTSTP, "SIGTSTP", NULL},
    {SIGTTIN, "SIGTTIN", NULL},
    {SIGTTOU, "SIGTTOU", NULL},
    {SIGURG, "SIGURG", NULL},
    {SIGXCPU, "SIGXCPU", "CPU time limit exceeded"},
    {SIGXFSZ, "SIGXFSZ", "file size limit exceeded"},
    {SIGVTALRM, "SIGVTALRM", NULL},
    {SIGPROF, "SIGPROF", NULL},
    {SIGWINCH, "SIGWINCH", NULL},
    {SIGIO, "SIGIO", NULL},
#ifdef SIGPWR
    {SIGPWR, "SIGPWR", NULL},
#endif
    {SIGSYS, "SIGSYS", "bad system call"},
};

static const struct {
    const char *cmd;
    int code;
    const char *msg;
} codetab[] = {
    {"grep", 1, "No matches found (not an error)"},
    {"egrep", 1, "No matches found (not an error)"},
    {"fgrep", 1, "No matches found (not an error)"},
    {"rg", 1, "No matches found (not an error)"},
    {"ag", 1, "No matches found (not an error)"},
    {"ack", 1, "No matches found (not an error)"},
    {"diff", 1, "Files differ (not an error)"},
    {"colordiff", 1, "Files differ (not an error)"},
    {"cmp", 1, "Files differ (not an error)"},
    {"find", 1, "Some paths could not be read; the results may still be useful"},
    {"test", 1, "The condition was false (not an error)"},
    {"[", 1, "The condition was false (not an error)"},
    {"[[", 1, "The condition was false (not an error)"},
    {"curl", 6, "Could not resolve the host"},
    {"curl", 7, "Could not connect to the host"},
    {"curl", 22, "The server answered with an HTTP error status (4xx/5xx)"},
    {"curl", 28, "The operation timed out"},
    {"git", 1, "Non-zero status from git (often normal, e.g. git diff reports differences)"},
};

static bool is_blank_ch(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool is_assignment(const char *w, size_t n)
{
    if (n == 0 || !((w[0] >= 'A' && w[0] <= 'Z') || (w[0] >= 'a' && w[0] <= 'z') || w[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = w[i];
        if (c == '=')
            return true;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return false;
}

/* Basename of the program of the last list/pipeline segment, as [*name, *name + *len). */
static bool last_program(const char *cmd, const char **name, size_t *len)
{
    size_t n = strlen(cmd), seg = 0, best_a = 0, best_b = 0;
    bool have = false;
    for (size_t i = 0; i <= n; i++) {
        bool cut = i == n;
        if (!cut) {
            char c = cmd[i];
            if (c == ';' || c == '\n')
                cut = true;
            else if (c == '|')
                cut = !(i > 0 && cmd[i - 1] == '>'); /* ">|" is a redirection */
            else if (c == '&')                        /* not ">&", "<&", "&>" */
                cut = !(i > 0 && (cmd[i - 1] == '>' || cmd[i - 1] == '<')) &&
                      !(i + 1 < n && cmd[i + 1] == '>');
        }
        if (!cut)
            continue;
        size_t a = seg, b = i;
        while (a < b && is_blank_ch(cmd[a]))
            a++;
        if (a < b) {
            best_a = a;
            best_b = b;
            have = true;
        }
        seg = i + 1;
    }
    if (!have)
        return false;
    size_t i = best_a;
    for (;;) {
        while (i < best_b && is_blank_ch(cmd[i]))
            i++;
        if (i >= best_b)
            return false;
        size_t w = i;
        while (i < best_b && !is_blank_ch(cmd[i]))
            i++;
        if (is_assignment(cmd + w, i - w))
            continue;
        const char *s = cmd + w;
        size_t l = i - w;
        for (size_t k = l; k > 0; k--) {
            if (s[k - 1] == '/') {
                s += k;
                l -= k;
                break;
            }
        }
        *name = s;
        *len = l;
        return l > 0;
    }
}

const char *sw_out_exit_code_meaning(const char *command, int exit_code, char *buf, size_t buflen)
{
    if (!buf || buflen == 0 || exit_code == 0)
        return NULL;
    if (exit_code >= 129 && exit_code <= 192) {
        int sig = exit_code - 128;
        for (size_t i = 0; i < sizeof sigtab / sizeof sigtab[0]; i++) {
            if (sigtab[i].sig != sig)
                continue;
            if (sigtab[i].why)
                snprintf(buf, buflen, "Killed by signal %d (%s): %s", sig, sigtab[i].name, sigtab[i].why);
            else
                snprintf(buf, buflen, "Killed by signal %d (%s)", sig, sigtab[i].name);
            return buf;
        }
#ifdef SIGRTMIN
        if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
            snprintf(buf, buflen, "Killed by signal %d (SIGRTMIN+%d)", sig, sig - SIGRTMIN);
            return buf;
        }
#endif
        snprintf(buf, buflen, "Killed by signal %d", sig);
        return buf;
    }
    const char *name;
    size_t len;
    if (!command || !last_program(command, &name, &len))
        return NULL;
    for (size_t i = 0; i < sizeof codetab / sizeof codetab[0]; i++) {
        if (codetab[i].code == exit_code && strlen(codetab[i].cmd) == len &&
            memcmp(codetab[i].cmd, name, len) == 0) {
            snprintf(buf, buflen, "%s", codetab[i].msg);
            return buf;
        }
    }
    return NULL;
}
