/* server/redact.c — see redact.h. Each pattern's first capture group (or the whole
 * match when it has none) is the secret; the text around it is kept. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "server/redact.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/log.h"
#include "server/util.h"

/* Each shape with its anchor: a pattern that every match of the shape contains, written to
 * begin with a character that is rare in ordinary output (the literal before it is checked
 * by a lookbehind, with the shape's word boundary, so that no two anchors match at one
 * place and hide each other). All anchors form one pattern whose possible first bytes are few, so
 * PCRE2's JIT skips through text without any of them at about a byte per nanosecond; most
 * output contains none, and then no shape is run at all. */
static const struct { const char *re, *anchor; } shapes[] = {
    {"\\b(sk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_-]{20,})", "-(?<=\\bsk-)"},
    {"\\b((?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})", "_(?<=_live_|_test_)"},
    {"\\b(gh[pousr]_[A-Za-z0-9]{30,})", "_(?<=\\bgh[pousr]_)"},
    {"\\b(github_pat_[A-Za-z0-9_]{22,})", "_(?<=\\bgithub_pat_)"},
    {"\\b(glpat-[A-Za-z0-9_-]{20,})", "-(?<=\\bglpat-)"},
    {"\\b(xox[abprs]-[A-Za-z0-9-]{10,})", "-(?<=\\bxox[abprs]-)"},
    {"\\b(xapp-[A-Za-z0-9-]{10,})", "-(?<=\\bxapp-)"},
    {"\\b((?:AKIA|ASIA)[0-9A-Z]{16})\\b", "I(?<=\\bAKI|\\bASI)A"},
    {"\\b(AIza[0-9A-Za-z_-]{35})", "z(?<=\\bAIz)a"},
    {"\\b(hf_[A-Za-z0-9]{30,})", "_(?<=\\bhf_)"},
    {"\\b(npm_[A-Za-z0-9]{36})", "_(?<=\\bnpm_)"},
    {"\\b((?:xai|gsk|tvly|pplx)-[A-Za-z0-9_-]{20,})", "-(?<=\\bxai-|\\bgsk-|\\btvly-|\\bpplx-)"},
    {"\\b(eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,})", "J(?<=\\beyJ)"},
    {"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----([\\s\\S]*?)-----END [A-Z0-9 ]*PRIVATE KEY-----", "V(?<=PRIV)ATE KEY"},
    {"(?i)\\bauthorization\\s*:\\s*(?:bearer|basic|token)\\s+([A-Za-z0-9._~+/=-]{8,})", "[zZ](?<=(?i:\\bauthoriz))"},
    {"(?i)\\bbearer\\s+([A-Za-z0-9._~+/-]{16,}=*)", "\\b[bB](?i:earer)"},
    {"\\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\\s@]+:([^@\\s/]{1,})@", ":(?=//)"},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])
static pcre2_code *codes[NSHAPES];
static pcre2_code *any_anchor;  /* every anchor in one pattern: one scan decides */
static bool on;

/* Compiled on a thread of its own at start (a few milliseconds); the first redaction
 * waits for it if it has to. */
static pthread_once_t compiled = PTHREAD_ONCE_INIT;
static int compile_shapes(void);
static void compile_once(void) { compile_shapes(); }
static void ready(void) { pthread_once(&compiled, compile_once); }

static void *compile_main(void *arg)
{
    (void)arg;
    ready();
    return NULL;
}

int sw_redact_init(bool enabled)
{
    on = enabled;
    if (on && sw_thread_detached(compile_main, NULL, 256 * 1024) != 0) ready();
    return 0;
}

static int compile_shapes(void)
{
    char *alt = sw_strdup("");
    for (size_t i = 0; i < NSHAPES; i++) {
        char *next = sw_printf("%s%s(?:%s)(*MARK:%zu)", alt, *alt ? "|" : "", shapes[i].anchor, i);
        free(alt);
        alt = next;
    }
    int ecode;
    PCRE2_SIZE eoff;
    any_anchor = pcre2_compile((PCRE2_SPTR)alt, PCRE2_ZERO_TERMINATED, 0, &ecode, &eoff, NULL);
    free(alt);
    if (!any_anchor) {
        sw_error("redaction anchors do not compile");
        return -1;
    }
    pcre2_jit_compile(any_anchor, PCRE2_JIT_COMPLETE);
    for (size_t i = 0; i < NSHAPES; i++) {
        int code;
        PCRE2_SIZE off;
        codes[i] = pcre2_compile((PCRE2_SPTR)shapes[i].re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
        if (!codes[i]) {
            sw_error("redaction pattern %zu does not compile", i);
            return -1;
        }
        pcre2_jit_compile(codes[i], PCRE2_JIT_COMPLETE);
    }
    return 0;
}

typedef struct buf { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 256;
        b->p = sw_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* Appends the masked form of a secret. */
static void mask(buf *b, const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars < 18 || n != chars) {   /* short (or not plain ASCII): hide all of it */
        put(b, "***", 3);
        return;
    }
    put(b, s, 6);
    put(b, "...", 3);
    put(b, s + n - 4, 4);
}

/* One pass of one pattern; returns NULL when it did not match. */
static char *apply(pcre2_code *re, const char *text, size_t len, size_t *outlen)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    buf b = {0};
    size_t pos = 0, copied = 0;
    bool any = false;
    while (pos <= len && pcre2_match(re, (PCRE2_SPTR)text, len, pos, 0, md, NULL) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s0 = ov[0], s1 = ov[1];
        if (pcre2_get_ovector_count(md) > 1 && ov[2] != PCRE2_UNSET) { s0 = ov[2]; s1 = ov[3]; }
        put(&b, text + copied, s0 - copied);
        mask(&b, text + s0, s1 - s0);
        copied = s1;
        any = true;
        pos = ov[1] > pos ? ov[1] : pos + 1;
    }
    pcre2_match_data_free(md);
    if (!any) { free(b.p); return NULL; }
    put(&b, text + copied, len - copied);
    *outlen = b.n;
    return b.p;
}

char *sw_redact(const char *text, size_t len, size_t *outlen)
{
    if (!on || !text) return NULL;
    ready();
    if (!any_anchor) return NULL;
    /* Which shapes have an anchor in the text: only those are run. */
    bool want[NSHAPES] = {false};
    size_t nwant = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(any_anchor, NULL);
    for (size_t pos = 0; pos < len && nwant < NSHAPES;) {
        if (pcre2_match(any_anchor, (PCRE2_SPTR)text, len, pos, 0, md, NULL) < 0) break;
        PCRE2_SPTR mark = pcre2_get_mark(md);
        size_t i = mark ? strtoul((const char *)mark, NULL, 10) : NSHAPES;
        if (i < NSHAPES && !want[i]) want[i] = true, nwant++;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        pos = ov[1] > pos ? ov[1] : pos + 1;
    }
    pcre2_match_data_free(md);
    if (!nwant) return NULL;   /* no shape can match: the common case */
    char *cur = NULL;
    size_t curlen = len;
    for (size_t i = 0; i < NSHAPES; i++) {
        if (!want[i] || !codes[i]) continue;
        size_t n;
        char *next = apply(codes[i], cur ? cur : text, curlen, &n);
        if (next) {
            free(cur);
            cur = next;
            curlen = n;
        }
    }
    if (cur) *outlen = curlen;
    return cur;
}

void sw_redact_file(const char *path)
{
    if (!on) return;
    FILE *f = fopen(path, "rbe");
    if (!f) return;
    buf in = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) put(&in, chunk, r);
    fclose(f);
    size_t n;
    char *out = sw_redact(in.p ? in.p : "", in.n, &n);
    if (out) {
        char *tmp = sw_printf("%s.tmp", path);
        FILE *w = fopen(tmp, "wbxe");
        if (w) {
            chmod(tmp, 0600);
            bool ok = fwrite(out, 1, n, w) == n;
            if (fclose(w) == 0 && ok) rename(tmp, path);
            else unlink(tmp);
        }
        free(tmp);
        free(out);
    }
    free(in.p);
}
