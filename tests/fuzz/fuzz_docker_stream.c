/* tests/fuzz/fuzz_docker_stream.c — the Engine API's multiplexed exec stream decoder
 * (backends/docker_stream.h).
 *
 * Input: 9 header bytes, then the stream.
 *   [0]    when non-zero, the emitter asks to stop after that many payload pieces
 *   [1..8] chunk lengths, used in turn (value + 1 bytes; 0xFF: a 64 KiB chunk)
 *
 * A straightforward whole-buffer decoder is the reference. Invariants:
 *   - fed in chunks, the decoder emits exactly the reference's payload bytes, in order,
 *     each piece tagged with its frame's stream (1..2, or 0), never an empty piece;
 *   - it reports a bad header exactly when the reference meets one, and stays bad;
 *   - at the end, the decoder's state (no header bytes pending, no payload due) says "at a
 *     frame boundary" exactly when the reference ends between frames;
 *   - a stop request is returned as is, with nothing emitted after it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker_stream.h"
#include "tests/fuzz/fuzz_util.h"

/* Whether the decoder sits between frames (its state is public in the header). */
static int at_boundary(const sw_dstream *d)
{
    return d->stream != SW_DSTREAM_BAD && d->left == 0 && d->hdr_len == 0;
}

typedef struct got {
    unsigned char *buf;          /* payload bytes, each preceded by its stream byte */
    size_t len, cap;
    size_t pieces, stop_after;
    int stopped;
} got;

static int emit(void *ctx, int stream, const char *buf, size_t len)
{
    got *g = ctx;
    FUZZ_CHECK(!g->stopped, "emitted after a stop request");
    FUZZ_CHECK(stream >= 0 && stream <= 2, "stream %d", stream);
    FUZZ_CHECK(len > 0, "empty piece");
    if (g->len + 2 * len > g->cap) {
        while (g->len + 2 * len > g->cap) g->cap = g->cap ? 2 * g->cap : 1024;
        g->buf = realloc(g->buf, g->cap);
    }
    for (size_t i = 0; i < len; i++) {
        g->buf[g->len++] = (unsigned char)stream;
        g->buf[g->len++] = (unsigned char)buf[i];
    }
    g->pieces++;
    if (g->stop_after && g->pieces == g->stop_after) {
        g->stopped = 1;
        return 7;
    }
    return 0;
}

/* The reference: payload bytes as (stream, byte) pairs; *bad when a header is not one;
 * *boundary when the input ends between frames. */
static unsigned char *reference(const unsigned char *d, size_t n, size_t *len, int *bad,
                                int *boundary)
{
    unsigned char *out = malloc(2 * n + 1);
    size_t o = 0, i = 0;
    *bad = 0;
    *boundary = 1;
    while (i < n) {
        if (n - i < 8) {
            *boundary = 0;
            break;
        }
        const unsigned char *h = d + i;
        if (h[0] > 2 || h[1] || h[2] || h[3]) {
            *bad = 1;
            *boundary = 0;
            break;
        }
        size_t fl = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
        i += 8;
        size_t take = fl < n - i ? fl : n - i;
        for (size_t k = 0; k < take; k++) {
            out[o++] = h[0];
            out[o++] = d[i + k];
        }
        i += take;
        if (take < fl) *boundary = 0;
    }
    *len = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9) return 0;
    const unsigned char *lens = data + 1;
    const unsigned char *d = data + 9;
    size_t n = size - 9;

    size_t rlen;
    int rbad, rboundary;
    unsigned char *ref = reference(d, n, &rlen, &rbad, &rboundary);

    sw_dstream ds;
    memset(&ds, 0, sizeof ds);
    FUZZ_CHECK(at_boundary(&ds), "a fresh decoder is not at a boundary");
    got g = {.stop_after = data[0]};
    int last = 0;
    size_t i = 0;
    for (unsigned k = 0; i < n; k++) {
        unsigned v = lens[k % 8];
        size_t step = v == 0xFF ? 65536 : v + 1;
        if (step > n - i) step = n - i;
        last = sw_dstream_feed(&ds, (const char *)d + i, step, emit, &g);
        i += step;
        if (last == SW_DSTREAM_BAD) {
            /* Bad stays bad, whatever comes next. */
            int again = sw_dstream_feed(&ds, "\x01\0\0\0\0\0\0\x01x", 9, emit, &g);
            FUZZ_CHECK(again == SW_DSTREAM_BAD, "decoder recovered from a bad header (%d)", again);
            FUZZ_CHECK(!at_boundary(&ds), "a bad decoder claims a boundary");
            break;
        }
        if (last > 0) {
            FUZZ_CHECK(last == 7 && g.stopped, "feed returned %d without a stop request", last);
            break;
        }
        FUZZ_CHECK(last == 0, "feed returned %d", last);
    }

    if (g.stopped) {
        /* Everything emitted before the stop is a prefix of the reference. */
        FUZZ_CHECK(g.len <= rlen && (g.len == 0 || !memcmp(g.buf, ref, g.len)),
                   "payload before a stop differs");
    } else {
        FUZZ_CHECK((last == SW_DSTREAM_BAD) == (rbad != 0), "bad header: decoder %d, reference %d",
                   last == SW_DSTREAM_BAD, rbad);
        FUZZ_CHECK(g.len == rlen && (rlen == 0 || !memcmp(g.buf, ref, rlen)),
                   "payload differs from the reference (%zu vs %zu pair bytes)", g.len, rlen);
        if (!rbad)
            FUZZ_CHECK(at_boundary(&ds) == rboundary, "boundary: decoder %d, reference %d",
                       at_boundary(&ds), rboundary);
    }
    free(ref);
    free(g.buf);
    return 0;
}
