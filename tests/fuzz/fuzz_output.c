/* tests/fuzz/fuzz_output.c — the output pipeline (server/output.h) and redaction
 * (server/redact.h).
 *
 * Input: a 12-byte header, then the bytes a command printed.
 *   [0]     flags: 1 cwd marker handling, 2 keep whitespace, 4 spill to a file
 *   [1]     result limit: 1 + 8 * value characters (1 .. 2041)
 *   [2]     spill cap: 1 + 16 * value characters
 *   [3]     exit code for sw_out_exit_code_meaning
 *   [4..11] chunk lengths, used in turn: v < 0xF0 gives v + 1 bytes, else (v - 0xEF) KiB
 *
 * The same bytes go through three pipelines: fed in the chosen chunks, fed at once, and
 * fed at once without a limit and without trimming (the reference). Invariants:
 *   - every result is valid UTF-8 and NUL-terminated;
 *   - chunking changes nothing (text, counts, truncation, cwd);
 *   - the limited result is exactly the reference, trimmed, or, over the limit, the
 *     reference's first 40 % and last 60 % around the notice (then trimmed), so its size
 *     is bounded by the limit;
 *   - when every cwd marker in the input is complete (and no escape sequence or non-ASCII
 *     byte can change the text around it), the last marker's path is the cwd and no
 *     marker text is left in the output;
 *   - a spill file holds the whole reference (capped with its note);
 *   - the progress line is one trimmed line of at most 200 characters, valid UTF-8;
 *   - redaction of the result keeps it valid UTF-8; redaction of raw bytes does not crash.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/output.h"
#include "server/redact.h"
#include "tests/fuzz/fuzz_util.h"

#define HEADER 12
#define MARKER_ID "0123456789abcdef"
#define TAG "__SHELLWIRE_CWD_" MARKER_ID "__"
#define TAG_LEN (sizeof TAG - 1)
#define MARKER_PATH_MAX 65536

static char *spill_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sw_redact_init(true) < 0) abort();
    spill_dir = fuzz_tmpdir("sw-fuzz-output");
    return 0;
}

static void results_equal(const sw_out_result *a, const sw_out_result *b, const char *what)
{
    FUZZ_CHECK(a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len),
               "%s: texts differ (%zu vs %zu bytes)", what, a->text_len, b->text_len);
    FUZZ_CHECK(a->total_chars == b->total_chars, "%s: total_chars %zu vs %zu", what,
               a->total_chars, b->total_chars);
    FUZZ_CHECK(a->truncated == b->truncated, "%s: truncated differs", what);
    FUZZ_CHECK((!a->cwd && !b->cwd) || (a->cwd && b->cwd && !strcmp(a->cwd, b->cwd)),
               "%s: cwd %s vs %s", what, a->cwd ? a->cwd : "(none)", b->cwd ? b->cwd : "(none)");
}

static void check_text(const sw_out_result *r, const char *what)
{
    FUZZ_CHECK(r->text != NULL, "%s: no text", what);
    FUZZ_CHECK(r->text[r->text_len] == '\0', "%s: text not NUL-terminated", what);
    FUZZ_CHECK(fuzz_utf8_valid(r->text, r->text_len), "%s: text is not valid UTF-8", what);
}

/* The spec's trim: leading whitespace-only lines and all trailing whitespace go. */
static void trim(const char *s, size_t n, size_t *from, size_t *to)
{
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') a = i + 1;
        else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') break;
    }
    size_t b = n;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r' || s[b - 1] == '\n'))
        b--;
    *from = a;
    *to = b < a ? a : b;
}

/* Byte offset of character k in valid UTF-8 s[0..n). */
static size_t char_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

/* What the limited result must be, given the reference (whole stream, untrimmed). */
static char *expected_text(const sw_out_result *ref, size_t limit, bool keep_ws, size_t *len)
{
    const char *s = ref->text;
    size_t n = ref->text_len, total = ref->total_chars;
    char *buf;
    size_t bl;
    if (total <= limit) {
        buf = malloc(n + 1);
        memcpy(buf, s, n);
        bl = n;
    } else {
        size_t head = limit / 5 * 2 + limit % 5 * 2 / 5, tail = limit - head;
        size_t hb = char_offset(s, n, head), tb = char_offset(s, n, total - tail);
        char notice[160];
        int w = snprintf(notice, sizeof notice,
                         "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                         total - limit, total);
        buf = malloc(hb + (size_t)w + (n - tb) + 1);
        memcpy(buf, s, hb);
        memcpy(buf + hb, notice, (size_t)w);
        memcpy(buf + hb + (size_t)w, s + tb, n - tb);
        bl = hb + (size_t)w + (n - tb);
    }
    if (!keep_ws) {
        size_t a, b;
        trim(buf, bl, &a, &b);
        memmove(buf, buf + a, b - a);
        bl = b - a;
    }
    buf[bl] = '\0';
    *len = bl;
    return buf;
}

/* Whether the marker outcome is predictable: every occurrence of the tag belongs to a
 * complete marker, and the input has no ESC and no non-ASCII byte (escape removal could
 * otherwise join or split text around a marker). Fills the last marker's path. */
static bool markers_predictable(const char *d, size_t n, const char **path, size_t *plen,
                                size_t *count)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] == 0x1b || (unsigned char)d[i] >= 0x80) return false;
    static const char open[] = "\n" TAG;
    size_t pos = 0;
    *count = 0;
    *path = NULL;
    *plen = 0;
    for (;;) {
        const char *o = pos < n ? memmem(d + pos, n - pos, open, sizeof open - 1) : NULL;
        if (!o) break;
        size_t ps = (size_t)(o - d) + sizeof open - 1;
        const char *c = memmem(d + ps, n - ps, TAG, TAG_LEN);
        if (!c) return false;
        size_t pl = (size_t)(c - d) - ps;
        if (pl == 0 || pl > MARKER_PATH_MAX || memchr(d + ps, '\n', pl) || memchr(d + ps, 0, pl))
            return false;
        size_t e = (size_t)(c - d) + TAG_LEN;
        if (e == n) {
        } else if (d[e] == '\n') {
            e++;
        } else if (d[e] == '\r' && e + 1 < n && d[e + 1] == '\n') {
            e += 2;
        } else if (d[e] == '\r' && e + 1 == n) {
            e++;
        } else {
            return false;
        }
        (*count)++;
        *path = d + ps;
        *plen = pl;
        pos = e;
    }
    return fuzz_count(d, n, TAG, TAG_LEN) == 2 * *count;
}

static void check_last_line(const sw_out *o)
{
    char *l = sw_out_last_line(o);
    if (!l) return;
    size_t n = strlen(l);       /* a U+0000 in the line ends the C string early */
    FUZZ_CHECK(fuzz_utf8_valid(l, n), "progress line is not valid UTF-8");
    FUZZ_CHECK(!strchr(l, '\n') && !strchr(l, '\r'), "progress line holds a line break");
    FUZZ_CHECK(fuzz_utf8_chars(l, n) <= 200, "progress line has %zu characters",
               fuzz_utf8_chars(l, n));
    free(l);
}

static void run(const sw_out_opts *opts, const char *d, size_t n, const unsigned char *lens,
                bool chunked, sw_out_result *r)
{
    sw_out *o = sw_out_new(opts);
    FUZZ_CHECK(o != NULL, "sw_out_new failed");
    if (!chunked) {
        sw_out_feed(o, d, n);
    } else {
        size_t i = 0;
        for (unsigned k = 0; i < n; k++) {
            unsigned v = lens[k % 8];
            size_t step = v < 0xF0 ? v + 1 : (size_t)(v - 0xEF) * 1024;
            if (step > n - i) step = n - i;
            sw_out_feed(o, d + i, step);
            i += step;
            if (k % 64 == 0) check_last_line(o);
        }
    }
    check_last_line(o);
    sw_out_finish(o, r);
    sw_out_free(o);
}

static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "cannot open the spill file %s", path);
    struct stat st;
    FUZZ_CHECK(fstat(fd, &st) == 0 && (st.st_mode & 077) == 0, "spill file is not private");
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf + got, (size_t)st.st_size - got)) > 0) got += (size_t)r;
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER) return 0;
    unsigned flags = data[0];
    size_t limit = 1 + (size_t)data[1] * 8;
    size_t spill_max = 1 + (size_t)data[2] * 16;
    int exit_code = data[3];
    const unsigned char *lens = data + 4;
    const char *d = (const char *)data + HEADER;
    size_t n = size - HEADER;
    bool marker = flags & 1, keep_ws = flags & 2, spill = flags & 4;

    sw_out_opts opts = {
        .limit_chars = limit, .marker_id = marker ? MARKER_ID : NULL,
        .spill_dir = spill ? spill_dir : NULL, .spill_max_chars = spill_max,
        .keep_whitespace = keep_ws,
    };
    sw_out_result chunked, whole, ref;
    run(&opts, d, n, lens, true, &chunked);
    opts.spill_dir = NULL;
    run(&opts, d, n, lens, false, &whole);
    opts.limit_chars = n + 1;
    opts.keep_whitespace = true;
    run(&opts, d, n, lens, false, &ref);

    check_text(&chunked, "chunked");
    check_text(&whole, "whole");
    check_text(&ref, "reference");
    results_equal(&chunked, &whole, "chunked vs whole");

    /* The reference is the whole stream after stages 1-3. */
    FUZZ_CHECK(!ref.truncated, "reference truncated");
    FUZZ_CHECK(fuzz_utf8_chars(ref.text, ref.text_len) == ref.total_chars,
               "reference has %zu characters, total_chars says %zu",
               fuzz_utf8_chars(ref.text, ref.text_len), ref.total_chars);
    FUZZ_CHECK(ref.total_chars == whole.total_chars, "total_chars %zu vs reference %zu",
               whole.total_chars, ref.total_chars);
    FUZZ_CHECK(whole.truncated == (whole.total_chars > limit), "truncated flag wrong");
    FUZZ_CHECK((!ref.cwd && !whole.cwd) || (ref.cwd && whole.cwd && !strcmp(ref.cwd, whole.cwd)),
               "cwd depends on the limit");

    /* The limited text: exactly head + notice + tail of the reference, trimmed. */
    size_t want_len;
    char *want = expected_text(&ref, limit, keep_ws, &want_len);
    FUZZ_CHECK(want_len == whole.text_len && !memcmp(want, whole.text, want_len),
               "limited text differs from the reference cut (%zu vs %zu bytes, limit %zu, "
               "total %zu)", whole.text_len, want_len, limit, ref.total_chars);
    free(want);
    size_t chars = fuzz_utf8_chars(whole.text, whole.text_len);
    FUZZ_CHECK(chars <= limit + 120, "%zu characters over a limit of %zu", chars, limit);

    /* cwd markers. */
    if (!marker) {
        FUZZ_CHECK(whole.cwd == NULL, "cwd without marker handling");
    } else {
        const char *path;
        size_t plen, count;
        if (markers_predictable(d, n, &path, &plen, &count)) {
            if (count == 0) {
                FUZZ_CHECK(whole.cwd == NULL, "cwd %s without a marker", whole.cwd);
            } else {
                FUZZ_CHECK(whole.cwd && strlen(whole.cwd) == plen && !memcmp(whole.cwd, path, plen),
                           "cwd %s, want the last marker's path %.*s",
                           whole.cwd ? whole.cwd : "(none)", (int)plen, path);
                FUZZ_CHECK(!memmem(ref.text, ref.text_len, TAG, TAG_LEN),
                           "marker text left in the output after %zu complete markers", count);
            }
        }
    }

    /* The spill file: the whole reference, capped. */
    if (chunked.full_output_path) {
        FUZZ_CHECK(spill && chunked.truncated, "a spill file without truncation");
        size_t sl;
        char *sp = read_file(chunked.full_output_path, &sl);
        FUZZ_CHECK(fuzz_utf8_valid(sp, sl), "spill file is not valid UTF-8");
        if (ref.total_chars <= spill_max) {
            FUZZ_CHECK(sl == ref.text_len && !memcmp(sp, ref.text, sl),
                       "spill file (%zu bytes) is not the whole output (%zu bytes)", sl, ref.text_len);
        } else {
            size_t cut = char_offset(ref.text, ref.text_len, spill_max);
            char note[96];
            int w = snprintf(note, sizeof note, "\n... [full output capped at %zu chars] ...\n",
                             spill_max);
            FUZZ_CHECK(sl == cut + (size_t)w && !memcmp(sp, ref.text, cut) &&
                           !memcmp(sp + cut, note, (size_t)w),
                       "capped spill file is wrong (%zu bytes, want %zu)", sl, cut + (size_t)w);
        }
        free(sp);
        unlink(chunked.full_output_path);
    } else if (spill && chunked.truncated) {
        FUZZ_CHECK(0, "truncated output without a spill file");
    }

    /* Redaction: of the result (valid UTF-8 in, valid UTF-8 out), and of raw bytes. */
    size_t rl = 0;
    char *red = sw_redact(whole.text, whole.text_len, &rl);
    if (red) {
        FUZZ_CHECK(red[rl] == '\0', "redacted text not NUL-terminated");
        FUZZ_CHECK(fuzz_utf8_valid(red, rl), "redaction broke UTF-8");
        free(red);
    }
    red = sw_redact(d, n, &rl);
    if (red) {
        FUZZ_CHECK(red[rl] == '\0', "redacted raw text not NUL-terminated");
        free(red);
    }

    /* The exit-code explanation, with the input as the command. */
    char *cmd = strndup(d, n);
    char buf[256];
    const char *why = sw_out_exit_code_meaning(cmd, exit_code, buf, sizeof buf);
    FUZZ_CHECK(!why || (why == buf && strlen(buf) < sizeof buf), "bad exit code meaning");
    free(cmd);

    sw_out_result_free(&chunked);
    sw_out_result_free(&whole);
    sw_out_result_free(&ref);
    return 0;
}
